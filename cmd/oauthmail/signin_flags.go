package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/devicemail/devicemail/devicecode"
	"github.com/devicemail/devicemail/oauthmail"
)

// certFlags are --client-cert and --client-key: a certificate credential
// instead of a client secret.
type certFlags struct {
	cert, key string
}

func (f *certFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.cert, "client-cert", "", "PEM certificate of the app registration's certificate credential (instead of --client-secret-file)")
	fs.StringVar(&f.key, "client-key", "", "PEM private key of --client-cert (PKCS#8 or PKCS#1 RSA, unencrypted)")
}

// load reads the certificate and key; nil, nil when neither flag is given.
func (f *certFlags) load() (*devicecode.ClientCertificate, error) {
	if f.cert == "" && f.key == "" {
		return nil, nil
	}
	if f.cert == "" || f.key == "" {
		return nil, usagef("--client-cert and --client-key go together")
	}
	cert, err := readInput(context.Background(), "--client-cert", f.cert, maxSecretFile, nil)
	if err != nil {
		return nil, err
	}
	key, err := readInput(context.Background(), "--client-key", f.key, maxSecretFile, nil)
	if err != nil {
		return nil, err
	}
	cc, err := devicecode.LoadClientCertificate(cert, key)
	if err != nil {
		return nil, usagef("%v", err)
	}
	return cc, nil
}

// locale turns a POSIX LANG ("ja_JP.UTF-8") into the locale the provider
// localises its device code message with ("ja-JP"); "" for C, POSIX or none.
func locale(lang string) string {
	if i := strings.IndexAny(lang, ".@"); i >= 0 {
		lang = lang[:i]
	}
	if lang == "" || lang == "C" || lang == "POSIX" {
		return ""
	}
	return strings.ReplaceAll(lang, "_", "-")
}

// graphConsentWarning prints, after a sign-in whose app lacks consent to
// send through Microsoft Graph, which permission to add and where.
func (e *env) graphConsentWarning(st *oauthmail.Status) {
	if st != nil && st.GraphConsentWarning != "" {
		fmt.Fprintf(e.stderr, "WARNING: %s\n", st.GraphConsentWarning)
	}
}

// japanese reports whether LANG asks for Japanese messages.
func (e *env) japanese() bool { return strings.HasPrefix(e.getenv("LANG"), "ja") }

// loginPaste runs `login --flow paste`: it prints the address to open (the
// one of a pending paste-back sign-in of the account, if there is one), reads
// the pasted answer, one line, from stdin, and finishes the sign-in.
func (e *env) loginPaste(ctx context.Context, m *oauthmail.Mailer) (*devicecode.Identity, error) {
	st, err := m.Status(ctx)
	if err != nil {
		return nil, err
	}
	addr := ""
	if p := st.Pending; p != nil && p.Flow == "paste" && p.URL != "" {
		addr = p.URL
		fmt.Fprintln(e.stderr, "oauthmail: a paste-back sign-in was already started; its address is still valid.")
	} else if addr, err = m.StartPasteSignIn(ctx, nil); err != nil {
		return nil, err
	}
	fmt.Fprintf(e.stderr, "Open this address on any computer and sign in:\n\n  %s\n\n"+
		"The browser ends on a blank page. Copy its whole address and paste it here, then press Enter:\n", addr)
	if e.japanese() {
		fmt.Fprintln(e.stderr, "上のアドレスを任意のPCで開いてサインインしてください。最後に表示される空白ページのアドレス全体をコピーしてここに貼り付け、Enterキーを押してください。")
	}
	line, err := readLine(ctx, e.stdin)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, usagef("login: no answer was pasted; the sign-in stays pending: run the same command again and paste the address")
	}
	e.secrets.Add(line)
	return m.FinishPasteSignIn(ctx, line)
}

// readLine reads one line from r, or ends with ctx.
func readLine(ctx context.Context, r io.Reader) (string, error) {
	if r == nil {
		r = os.Stdin
	}
	type result struct {
		s   string
		err error
	}
	ch := make(chan result, 1)
	go func() {
		s, err := bufio.NewReaderSize(r, 16<<10).ReadString('\n')
		if err == io.EOF && strings.TrimSpace(s) != "" {
			err = nil
		}
		ch <- result{strings.TrimSpace(s), err}
	}()
	select {
	case res := <-ch:
		return res.s, res.err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// printSignInWarnings prints the status lines of this package's sign-in
// additions: a pending sign-in, the client certificate's expiry and the
// lapse warning, in English and, with a Japanese LANG, Japanese too.
func (e *env) printSignInWarnings(w io.Writer, st *oauthmail.Status) {
	if p := st.Pending; p != nil {
		switch p.Flow {
		case "device_code":
			fmt.Fprintf(w, "pending:      device code %s at %s, until %s\n", p.UserCode, p.VerificationURI, when(p.Expires))
		default:
			fmt.Fprintf(w, "pending:      paste-back sign-in until %s (run login --flow paste to finish it)\n", when(p.Expires))
		}
	}
	if cc := st.ClientCertificate; cc != nil {
		fmt.Fprintf(w, "cert until:   %s\n", cc.Expires.UTC().Format("2006-01-02"))
		if cc.Message != "" {
			fmt.Fprintf(w, "WARNING:      %s\n", cc.Message)
		}
	}
	if lw := st.LapseWarning; lw != nil {
		fmt.Fprintf(w, "WARNING:      %s\n", lw.Message("en"))
		if e.japanese() {
			fmt.Fprintf(w, "警告:         %s\n", lw.Message("ja"))
		}
	}
}
