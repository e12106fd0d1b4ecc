package bench_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/devicemail/devicemail/bench/internal/delayproxy"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
	"github.com/devicemail/devicemail/smtpx"
	"golang.org/x/oauth2"
)

const (
	sender    = "alice@contoso.com"
	recipient = "bob@contoso.com"
	// oneWay is the delay the proxy adds to each direction: a 40 ms round
	// trip, a device on one continent and the mail service on another.
	oneWay = 20 * time.Millisecond
)

// startEmulator starts an emulator without send-rate or concurrency limits,
// so that the figures measure the clients, not the emulated throttling.
func startEmulator(b testing.TB, clock *oauthmailtest.Clock) *oauthmailtest.Emulator {
	b.Helper()
	return oauthmailtest.Start(b, &oauthmailtest.Options{
		Clock:              clock,
		SendRate:           -1,
		RecipientRateLimit: -1,
		MaxConcurrent:      5000,
		AutoApprove:        sender,
	})
}

// staticSource hands out one token.
type staticSource struct{ tok *oauth2.Token }

func (s staticSource) Token(context.Context) (*oauth2.Token, error) { return s.tok, nil }

func newSender(e *oauthmailtest.Emulator, addr string) *smtpx.Sender {
	return &smtpx.Sender{
		Addr:        addr,
		TLSConfig:   &tls.Config{RootCAs: e.CertPool(), ServerName: "127.0.0.1"},
		Account:     sender,
		TokenSource: staticSource{bearer(e.AccessToken(sender))},
	}
}

func bearer(tok string) *oauth2.Token {
	return &oauth2.Token{AccessToken: tok, TokenType: "Bearer", Expiry: time.Now().Add(time.Hour)}
}

func smallMessage(i int) *smtpx.Message {
	return &smtpx.Message{
		From:    smtpx.Address{Email: sender},
		To:      []smtpx.Address{{Email: recipient}},
		Subject: "scan " + strconv.Itoa(i),
		Text:    "Scanned document " + strconv.Itoa(i) + " from the second-floor printer.\n",
	}
}

// rawMessage is the same message as smallMessage for clients that take RFC 5322 text.
func rawMessage(i int) []byte {
	return []byte("From: " + sender + "\r\nTo: " + recipient + "\r\nSubject: scan " + strconv.Itoa(i) +
		"\r\nDate: " + time.Now().Format(time.RFC1123Z) + "\r\nMessage-ID: <bench-" + strconv.Itoa(i) + "@contoso.com>" +
		"\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nScanned document " +
		strconv.Itoa(i) + " from the second-floor printer.\r\n")
}

func startProxy(b testing.TB, target string, d time.Duration) *delayproxy.Proxy {
	b.Helper()
	p := &delayproxy.Proxy{Target: target, Delay: d}
	if err := p.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close() })
	return p
}

// settle returns the proxy's totals once the last server flight is counted.
func settle(p *delayproxy.Proxy) delayproxy.Stats {
	// The server's last flight (250 + 221) may still be in the proxy's
	// queue when the client returns; give it the one-way delay to land.
	time.Sleep(2*p.Delay + 10*time.Millisecond)
	return p.Stats()
}

// floorSend is the floor client: exactly the steps the protocol needs for one
// message on a fresh connection. With chunked (the server must offer
// CHUNKING) it writes MAIL, RCPT, "BDAT <n> LAST" with the message and QUIT
// in one flight (RFC 3030 §4.2); otherwise it pipelines MAIL/RCPT/DATA and
// sends QUIT with the content. It does not wait for the 221.
func floorSend(ctx context.Context, addr string, roots *x509.CertPool, token string, msg []byte, chunked bool) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	r := bufio.NewReader(c)
	var conn net.Conn = c
	expect := func(code string) (string, error) {
		var all strings.Builder
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				return "", err
			}
			all.WriteString(l)
			if !strings.HasPrefix(l, code) {
				return "", fmt.Errorf("floor: want %s, got %q", code, strings.TrimSpace(l))
			}
			if len(l) < 4 || l[3] != '-' {
				return all.String(), nil
			}
		}
	}
	write := func(s string) error { _, err := conn.Write([]byte(s)); return err }
	if _, err := expect("220"); err != nil {
		return err
	}
	if err := write("EHLO floor\r\n"); err != nil {
		return err
	}
	if _, err := expect("250"); err != nil {
		return err
	}
	if err := write("STARTTLS\r\n"); err != nil {
		return err
	}
	if _, err := expect("220"); err != nil {
		return err
	}
	tc := tls.Client(c, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS13})
	if err := tc.HandshakeContext(ctx); err != nil {
		return err
	}
	conn, r = tc, bufio.NewReader(tc)
	if err := write("EHLO floor\r\n"); err != nil {
		return err
	}
	caps, err := expect("250")
	if err != nil {
		return err
	}
	ir := base64.StdEncoding.EncodeToString([]byte("user=" + sender + "\x01auth=Bearer " + token + "\x01\x01"))
	if err := write("AUTH XOAUTH2 " + ir + "\r\n"); err != nil {
		return err
	}
	if _, err := expect("235"); err != nil {
		return err
	}
	if chunked {
		if !hasExtension(caps, "CHUNKING") || !hasExtension(caps, "PIPELINING") {
			return errors.New("floor: the server offers no CHUNKING with PIPELINING")
		}
		// BDAT takes the content as it is: no dot-stuffing, no terminator;
		// the count is the message's exact length in bytes. BODY= is left
		// at its default: rawMessage is 7-bit text.
		group := "MAIL FROM:<" + sender + ">\r\nRCPT TO:<" + recipient + ">\r\n" +
			"BDAT " + strconv.Itoa(len(msg)) + " LAST\r\n" + string(msg) + "QUIT\r\n"
		if err := write(group); err != nil {
			return err
		}
		for range 3 { // MAIL, RCPT, BDAT LAST
			if _, err := expect("250"); err != nil {
				return err
			}
		}
		return nil
	}
	cmds := []struct{ line, code string }{
		{"MAIL FROM:<" + sender + ">\r\n", "250"},
		{"RCPT TO:<" + recipient + ">\r\n", "250"},
		{"DATA\r\n", "354"},
	}
	if hasExtension(caps, "PIPELINING") {
		var group string
		for _, c := range cmds {
			group += c.line
		}
		if err := write(group); err != nil {
			return err
		}
		for _, c := range cmds {
			if _, err := expect(c.code); err != nil {
				return err
			}
		}
	} else {
		for _, c := range cmds {
			if err := write(c.line); err != nil {
				return err
			}
			if _, err := expect(c.code); err != nil {
				return err
			}
		}
	}
	// Dot-stuffing is not needed: no line of rawMessage starts with ".".
	if err := write(string(msg) + ".\r\nQUIT\r\n"); err != nil {
		return err
	}
	_, err = expect("250")
	return err
}

// hasExtension reports whether the EHLO reply lines in caps (with their
// "250-" or "250 " prefixes) name the extension ext.
func hasExtension(caps, ext string) bool {
	for l := range strings.Lines(caps) {
		if len(l) < 4 {
			continue
		}
		f := strings.Fields(l[4:])
		if len(f) > 0 && strings.EqualFold(f[0], ext) {
			return true
		}
	}
	return false
}

// msmtp runs Debian's msmtp, one process per message, with XOAUTH2 and the
// token from passwordeval.
type msmtp struct {
	path, conf string
}

func newMsmtp(b testing.TB, e *oauthmailtest.Emulator, addr string) *msmtp {
	b.Helper()
	path, err := exec.LookPath("msmtp")
	if err != nil {
		b.Skipf("msmtp not installed (bench/run installs it): %v", err)
	}
	dir := b.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	tok := filepath.Join(dir, "token")
	conf := filepath.Join(dir, "msmtprc")
	host, port, _ := net.SplitHostPort(addr)
	must(b, os.WriteFile(ca, e.CAPEM(), 0o600))
	must(b, os.WriteFile(tok, []byte(e.AccessToken(sender)+"\n"), 0o600))
	must(b, os.WriteFile(conf, []byte(strings.Join([]string{
		"defaults",
		"account bench",
		"host " + host,
		"port " + port,
		"from " + sender,
		"user " + sender,
		"auth xoauth2",
		"passwordeval cat " + tok,
		"tls on",
		"tls_starttls on",
		"tls_trust_file " + ca,
		"account default : bench",
		"",
	}, "\n")), 0o600))
	return &msmtp{path: path, conf: conf}
}

func (m *msmtp) send(ctx context.Context, msg []byte) error {
	cmd := exec.CommandContext(ctx, m.path, "--file="+m.conf, recipient)
	cmd.Stdin = bytes.NewReader(msg)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("msmtp: %v: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

func must(b testing.TB, err error) {
	b.Helper()
	if err != nil {
		b.Fatal(err)
	}
}

// percentile returns the p-th percentile (0..100) of ds by nearest rank.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s))*p/100+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}

func base64Std(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// vmHWM returns the peak resident set size of this process in bytes.
func vmHWM() (int64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for l := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmHWM in /proc/self/status")
}
