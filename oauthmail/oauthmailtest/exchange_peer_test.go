package oauthmailtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/devicemail/devicemail/internal/testpeer"
)

// writeFile writes data to a 0600 file in dir and returns its path.
func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

type smtplibResult struct {
	Auth  []any  `json:"auth"`
	Data  []any  `json:"data"`
	Error string `json:"error"`
	Code  int    `json:"code"`
	Text  string `json:"text"`
}

// TestSMTPWithPythonSmtplib drives the Exchange side with CPython's smtplib
// (a client we did not write): STARTTLS with the emulator's CA, XOAUTH2 in both
// forms, a message accepted, and SendAsDenied after the final dot.
func TestSMTPWithPythonSmtplib(t *testing.T) {
	py := testpeer.LookPath(t, "python3")
	e := Start(t, nil)
	dir := t.TempDir()
	ca := writeFile(t, dir, "ca.pem", e.CAPEM())
	tok := writeFile(t, dir, "token", []byte(e.AccessToken("alice@contoso.com")))
	_, port, _ := net.SplitHostPort(e.SMTPAddr())
	run := func(t *testing.T, from string, extra ...string) smtplibResult {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		args := append([]string{filepath.Join("testdata", "exchange_smtplib.py"), "--port", port, "--cafile", ca,
			"--user", "alice@contoso.com", "--token-file", tok, "--from", from, "--to", "bob@contoso.com"}, extra...)
		var stdout, stderr bytes.Buffer
		cmd := exec.CommandContext(ctx, py, args...)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("smtplib script: %v\nstderr: %s", err, stderr.String())
		}
		var res smtplibResult
		if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
			t.Fatalf("smtplib output %q: %v", stdout.String(), err)
		}
		return res
	}
	t.Run("initial response", func(t *testing.T) {
		res := run(t, "alice@contoso.com")
		if res.Error != "" || len(res.Data) != 2 || res.Data[0] != float64(250) {
			t.Fatalf("smtplib = %+v, want the message accepted", res)
		}
		if res.Auth[0] != float64(235) || res.Auth[1] != "2.7.0 Authentication successful" {
			t.Errorf("smtplib auth = %v", res.Auth)
		}
	})
	t.Run("two-step", func(t *testing.T) {
		if res := run(t, "scanner@contoso.com", "--no-ir"); res.Error != "" || res.Data[0] != float64(250) {
			t.Fatalf("smtplib two-step, send as a granted mailbox = %+v", res)
		}
	})
	t.Run("SendAsDenied", func(t *testing.T) {
		res := run(t, "bob@contoso.com")
		// smtplib's data() returns the reply to the final dot; its 8192-byte line
		// limit (_MAXLINE in CPython's Lib/smtplib.py) reads Exchange's long
		// single-line reply whole.
		if res.Error != "" || len(res.Data) != 2 || res.Data[0] != float64(554) {
			t.Fatalf("smtplib = %+v, want 554 after the final dot", res)
		}
		if text, _ := res.Data[1].(string); !strings.HasPrefix(text, "5.2.252 SendAsDenied; alice@contoso.com not allowed to send as bob@contoso.com;") {
			t.Errorf("smtplib reply text = %q", trunc(text))
		}
	})
	msgs := e.Messages()
	if len(msgs) != 2 || msgs[0].From != "alice@contoso.com" || msgs[1].From != "scanner@contoso.com" {
		t.Fatalf("Messages() = %+v, want the two accepted messages", msgs)
	}
	if got := msgs[0].Header.Get("Subject"); got != "smtplib" {
		t.Errorf("Subject = %q", got)
	}
}

// TestSMTPWithMsmtp drives the Exchange side with Debian's msmtp: STARTTLS
// with the emulator's CA, "auth xoauth2" with the token from passwordeval.
func TestSMTPWithMsmtp(t *testing.T) {
	msmtp := testpeer.LookPath(t, "msmtp")
	e := Start(t, nil)
	dir := t.TempDir()
	ca := writeFile(t, dir, "ca.pem", e.CAPEM())
	tok := writeFile(t, dir, "token", []byte(e.AccessToken("alice@contoso.com")))
	host, port, _ := net.SplitHostPort(e.SMTPAddr())
	cfg := writeFile(t, dir, "msmtprc", []byte(strings.Join([]string{
		"defaults",
		"account emulator",
		"host " + host,
		"port " + port,
		"domain printer.example",
		"tls on",
		"tls_starttls on",
		"tls_trust_file " + ca,
		"auth xoauth2",
		"user alice@contoso.com",
		"passwordeval cat " + tok,
		"account default : emulator",
		"",
	}, "\n")))
	run := func(from string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, msmtp, "--file="+cfg, "--from="+from, "bob@contoso.com")
		cmd.Stdin = strings.NewReader("From: " + from + "\r\nTo: bob@contoso.com\r\nSubject: msmtp\r\n\r\nhello from msmtp\r\n")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := run("alice@contoso.com"); err != nil {
		t.Fatalf("msmtp as alice: %v\n%s", err, out)
	}
	// Sending as bob ends in SendAsDenied after the final dot. Its reply is one
	// line of more than 1.5 kB, like Exchange's (FIDELITY.md [T2]); msmtp
	// 1.8.23 does not accept so long a reply line and reports "the server sent
	// an invalid reply", which is what it would do against Exchange Online too.
	// Either way the send must fail and nothing be stored.
	out, err := run("bob@contoso.com")
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("msmtp sending as bob: err = %v, want a non-zero exit\n%s", err, out)
	}
	msgs := e.Messages()
	if len(msgs) != 1 || msgs[0].User != "alice@contoso.com" || msgs[0].Header.Get("Subject") != "msmtp" {
		t.Fatalf("Messages() = %+v, want msmtp's one accepted message", msgs)
	}
}
