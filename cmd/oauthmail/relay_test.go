package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/devicemail/devicemail/internal/testdir"
	"github.com/devicemail/devicemail/internal/testlog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/devicemail/devicemail/internal/testpeer"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
)

const relayTestPassword = "scanner-pass-0123"

// relaySetup signs "printer" in on an emulator and writes a relay
// configuration: device "mfp" sends without AUTH from 127.0.0.2, device
// "scanner" with AUTH and a password. It returns the emulator, the
// configuration file and the relay's state directory.
func relaySetup(t *testing.T, extra string) (*oauthmailtest.Emulator, string, string) {
	t.Helper()
	e, tokens, _ := queueLogin(t)
	dir := testdir.New(t)
	hash := runCmdIn(t, relayTestPassword+"\n", "relay", "hash-password")
	if hash.status != 0 || !strings.HasPrefix(hash.stdout, "$2a$") {
		t.Fatalf("relay hash-password: exit %d %q %s", hash.status, hash.stdout, hash.stderr)
	}
	state := filepath.Join(dir, "state")
	ca := filepath.Join(dir, "ca.pem")
	os.WriteFile(ca, e.CAPEM(), 0o600)
	cfg := fmt.Sprintf(`{
  "listen": "127.0.0.1:0",
  "hostname": "relay.test",
  "state_dir": %q,
  "store": %q,
  "ca_file": %q,
  "send_rate": -1,%s
  "devices": [
    {"name": "mfp", "account": "printer", "networks": ["127.0.0.2/32"]},
    {"name": "scanner", "account": "printer", "username": "scanner", "password_hash": %q}
  ]
}`, state, "file:"+tokens, ca, extra, strings.TrimSpace(hash.stdout))
	path := filepath.Join(dir, "relay.json")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return e, path, state
}

func runCmdIn(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	st := runIO(context.Background(), args, strings.NewReader(stdin), &out, &errb, nil)
	return result{st, out.String(), errb.String()}
}

var listeningRE = regexp.MustCompile(`relay listening on (\S+) \(STARTTLS\)`)

// startRelayCmd runs "oauthmail relay --config cfg" in-process until the
// test ends and returns its STARTTLS address and stderr.
func startRelayCmd(t *testing.T, cfg string, args ...string) (string, *testlog.Buffer, func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stderr := &testlog.Buffer{}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, append([]string{"relay", "--config", cfg}, args...), &bytes.Buffer{}, stderr, func(string) string { return "" })
	}()
	stop := func() int {
		cancel()
		select {
		case st := <-done:
			done <- st
			return st
		case <-time.After(2 * time.Minute):
			t.Fatal("relay did not stop within 2 minutes")
			return -1
		}
	}
	t.Cleanup(func() { stop() })
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if m := listeningRE.FindStringSubmatch(stderr.String()); m != nil {
			return m[1], stderr, stop
		}
		select {
		case st := <-done:
			t.Fatalf("relay exited %d:\n%s", st, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("relay not listening after 2 minutes:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func waitEmulator(t *testing.T, e *oauthmailtest.Emulator, n int, log fmt.Stringer) []oauthmailtest.Message {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		msgs := e.Messages()
		if len(msgs) >= n {
			return msgs
		}
		if time.Now().After(deadline) {
			t.Fatalf("the emulator has %d messages after 3 minutes, want %d; relay:\n%s", len(msgs), n, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Real legacy clients through "oauthmail relay": msmtp and Python's
// smtplib, each once with AUTH PLAIN after STARTTLS (trusting the relay's
// generated certificate) and once without AUTH from the allowed address.
// All four messages reach the emulator as the signed-in account, and
// "relay status" shows the devices and the empty queue.
func TestRelayLegacyClients(t *testing.T) {
	if runtime.GOOS == "windows" {
		// The legacy clients are the Linux msmtp and python3 of the CI
		// machine; the Windows run (under Wine) has no Windows builds of them.
		// The relay itself is covered there by the package's own tests.
		t.Skip("msmtp and python3 are Linux programs here; this test runs in the Linux run")
	}
	msmtp := testpeer.LookPath(t, "msmtp")
	python := testpeer.LookPath(t, "python3")
	e, cfg, state := relaySetup(t, "")
	addr, stderr, stop := startRelayCmd(t, cfg, "--smtp", e.SMTPAddr())
	host, port, _ := net.SplitHostPort(addr)
	cert := filepath.Join(state, "relay-cert.pem")
	dir := testdir.New(t)

	msmtprc := filepath.Join(dir, "msmtprc")
	os.WriteFile(msmtprc, []byte(strings.Join([]string{
		"defaults", "host " + host, "port " + port, "domain mfp.example", "timeout 60",
		"account plain", "tls on", "tls_starttls on", "tls_trust_file " + cert, "auth plain", "user scanner", "password " + relayTestPassword,
		"account noauth", "tls off", "auth off", "source_ip 127.0.0.2",
		"",
	}, "\n")), 0o600)
	for _, acct := range []string{"plain", "noauth"} {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		cmd := exec.CommandContext(ctx, msmtp, "--file="+msmtprc, "--account="+acct, "--from=scanner@device.example", "bob@contoso.com")
		cmd.Stdin = strings.NewReader("From: Scanner <scanner@device.example>\r\nTo: bob@contoso.com\r\nSubject: msmtp-" + acct + "\r\n\r\nhello from msmtp\r\n")
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("msmtp --account=%s: %v\n%s\nrelay:\n%s", acct, err, out, stderr.String())
		}
	}

	script := filepath.Join(dir, "send.py")
	os.WriteFile(script, []byte(pythonSender), 0o600)
	for _, mode := range []string{"auth", "noauth"} {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		cmd := exec.CommandContext(ctx, python, script, port, mode, cert)
		cmd.Env = append(os.Environ(), "RELAY_PASSWORD="+relayTestPassword)
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("smtplib %s: %v\n%s\nrelay:\n%s", mode, err, out, stderr.String())
		}
	}

	msgs := waitEmulator(t, e, 4, stderr)
	subjects := map[string]bool{}
	for _, m := range msgs {
		subjects[m.Header.Get("Subject")] = true
		if m.User != "alice@contoso.com" || m.From != "alice@contoso.com" {
			t.Errorf("%q delivered as %q from %q, want alice@contoso.com", m.Header.Get("Subject"), m.User, m.From)
		}
		if strings.HasPrefix(m.Header.Get("Subject"), "smtplib") && !bytes.Contains(m.Data, []byte("scan.pdf")) {
			t.Errorf("smtplib's attachment is missing:\n%.1500s", m.Data)
		}
	}
	for _, want := range []string{"msmtp-plain", "msmtp-noauth", "smtplib-auth", "smtplib-noauth"} {
		if !subjects[want] {
			t.Errorf("no message %q arrived; got %v", want, subjects)
		}
	}
	if st := stop(); st != 0 {
		t.Fatalf("relay exit %d after SIGINT:\n%s", st, stderr.String())
	}
	if strings.Contains(stderr.String(), relayTestPassword) {
		t.Errorf("the relay's log holds the device password")
	}

	r := runCmd(t, nil, "relay", "status", "--config", cfg)
	if r.status != 0 {
		t.Fatalf("relay status: exit %d %s", r.status, r.stderr)
	}
	for _, want := range []string{"mfp ", "scanner ", "accepted 2", "queued 0 dead 0", "fingerprint:"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("relay status lacks %q:\n%s", want, r.stdout)
		}
	}
	rj := runCmd(t, nil, "relay", "status", "--config", cfg, "--json")
	var js map[string]any
	if err := json.Unmarshal([]byte(rj.stdout), &js); err != nil || js["queues"] == nil {
		t.Errorf("relay status --json: %v\n%s", err, rj.stdout)
	}
}

// pythonSender sends one message with smtplib: "auth" does STARTTLS
// (verifying the relay's certificate) and AUTH (smtplib picks PLAIN);
// "noauth" connects from 127.0.0.2 and sends without either.
const pythonSender = `import os, smtplib, ssl, sys
from email.message import EmailMessage
port, mode, cafile = int(sys.argv[1]), sys.argv[2], sys.argv[3]
msg = EmailMessage()
msg["From"] = "Scanner <scanner@device.example>"
msg["To"] = "bob@contoso.com"
msg["Subject"] = "smtplib-" + mode
msg.set_content("scan attached")
msg.add_attachment(b"%PDF-1.4 fake", maintype="application", subtype="pdf", filename="scan.pdf")
if mode == "auth":
    s = smtplib.SMTP("127.0.0.1", port, timeout=60)
    s.starttls(context=ssl.create_default_context(cafile=cafile))
    s.login("scanner", os.environ["RELAY_PASSWORD"])
else:
    s = smtplib.SMTP("127.0.0.1", port, timeout=60, source_address=("127.0.0.2", 0))
s.send_message(msg)
s.quit()
`

// Bad configuration files are refused before anything listens, with the
// file and line or the device named.
func TestRelayBadConfig(t *testing.T) {
	dir := testdir.New(t)
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(s), 0o600)
		return p
	}
	for _, c := range []struct{ name, body, want string }{
		{"syntax", "{\n  \"listen\": \":2525\",\n  oops\n}", "line 3"},
		{"unknown", `{"listen": ":2525", "state_dir": "x", "devcies": []}`, "devcies"},
		{"nostate", `{"listen": ":2525", "devices": [{"name": "a", "account": "b", "networks": ["10.0.0.1/32"]}]}`, "state_dir"},
		{"nodevices", `{"listen": ":2525", "state_dir": "x"}`, "no devices"},
		{"badprefix", `{"listen": ":2525", "state_dir": "x", "devices": [{"name": "a", "account": "b", "networks": ["10.0.0.300/32"]}]}`, "10.0.0.300"},
	} {
		r := runCmd(t, nil, "relay", "--config", write(c.name+".json", c.body))
		if r.status != exitUsage || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%s: exit %d, stderr %q; want %d mentioning %q", c.name, r.status, r.stderr, exitUsage, c.want)
		}
	}
	r := runCmd(t, nil, "relay")
	if r.status != exitUsage || !strings.Contains(r.stderr, "--config") {
		t.Errorf("relay without --config: exit %d %q", r.status, r.stderr)
	}
	r = runCmd(t, nil, "relay", "hash-password", "secret-in-args")
	if r.status != exitUsage {
		t.Errorf("hash-password with an argument: exit %d, want %d", r.status, exitUsage)
	}
}
