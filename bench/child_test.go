package bench_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
	"github.com/devicemail/devicemail/smtpx"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"golang.org/x/oauth2"
)

// Child processes: the benchmark binary re-runs itself with BENCH_CHILD set,
// so that a child's peak RSS (figure 3) holds only the sending side, and so
// that the emulator of the allocation benchmarks (figure 6) does not count in
// the client's allocations.

const childEnv = "BENCH_CHILD"

// disableChunkingEnv, set to 1 in an "attach" child's environment, makes the
// child's Sender use DATA and base64 (smtpx.Sender.DisableChunking) even
// when the server offers CHUNKING.
const disableChunkingEnv = "BENCH_DISABLE_CHUNKING"

// childResult is what a child prints on its last stdout line.
type childResult struct {
	Seconds float64 `json:"seconds"`
	CPU     float64 `json:"cpu"` // user+system seconds of the whole child
	PeakRSS int64   `json:"peak_rss"`
	// Emulator mode:
	URL, SMTPAddr, CAPEM, Token string `json:",omitempty"`
}

// TestChild is the child process entry point; without BENCH_CHILD it skips.
func TestChild(t *testing.T) {
	mode := os.Getenv(childEnv)
	if mode == "" {
		t.Skip("TestChild is the child process of the figure 3 and figure 6 benchmarks, which set " + childEnv + "; run alone it has nothing to measure")
	}
	var res childResult
	var err error
	switch mode {
	case "attach":
		res, err = childAttach()
	case "tlscopy":
		res, err = childTLSCopy()
	case "emulator":
		childEmulator()
		return
	default:
		err = fmt.Errorf("unknown child mode %q", mode)
	}
	if err != nil {
		t.Fatal(err)
	}
	if res.PeakRSS, err = vmHWM(); err != nil {
		t.Fatal(err)
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
		res.CPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	}
	out, _ := json.Marshal(res)
	fmt.Printf("\nBENCHCHILD %s\n", out)
}

// runChild runs the benchmark binary as a child in mode with env, and returns
// its result.
func runChild(b testing.TB, mode string, env ...string) childResult {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestChild$", "-test.bench=^$", "-test.count=1")
	cmd.Env = append(append(os.Environ(), childEnv+"="+mode), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		b.Fatalf("child %s: %v\n%s", mode, err, out)
	}
	for l := range strings.Lines(string(out)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "BENCHCHILD "); ok {
			var r childResult
			if err := json.Unmarshal([]byte(v), &r); err != nil {
				b.Fatal(err)
			}
			return r
		}
	}
	b.Fatalf("child %s printed no result:\n%s", mode, out)
	return childResult{}
}

// writeRandomFile writes n pseudo-random (incompressible, reproducible) bytes.
func writeRandomFile(path string, n int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	r := mrand.NewChaCha8([32]byte{9})
	if _, err := io.CopyN(f, r, n); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func childRoots() (*x509.CertPool, error) {
	pem, err := os.ReadFile(os.Getenv("BENCH_CA"))
	if err != nil {
		return nil, err
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(pem) {
		return nil, errors.New("no certificate in BENCH_CA")
	}
	return p, nil
}

// childAttach sends BENCH_FILE as an attachment with smtpx to BENCH_ADDR.
func childAttach() (childResult, error) {
	roots, err := childRoots()
	if err != nil {
		return childResult{}, err
	}
	tok, err := os.ReadFile(os.Getenv("BENCH_TOKEN"))
	if err != nil {
		return childResult{}, err
	}
	path := os.Getenv("BENCH_FILE")
	fi, err := os.Stat(path)
	if err != nil {
		return childResult{}, err
	}
	s := &smtpx.Sender{
		Addr:        os.Getenv("BENCH_ADDR"),
		TLSConfig:   &tls.Config{RootCAs: roots},
		Account:     sender,
		TokenSource: staticSource{&oauth2.Token{AccessToken: strings.TrimSpace(string(tok)), TokenType: "Bearer", Expiry: time.Now().Add(time.Hour)}},

		DisableChunking: os.Getenv(disableChunkingEnv) == "1",
	}
	m := smallMessage(0)
	m.Attachments = []smtpx.Attachment{{
		Name: "scan.pdf", ContentType: "application/pdf", Size: fi.Size(),
		Open: func() (io.ReadCloser, error) { return os.Open(path) },
	}}
	start := time.Now()
	if err := s.Send(context.Background(), m); err != nil {
		return childResult{}, err
	}
	return childResult{Seconds: time.Since(start).Seconds()}, nil
}

// childTLSCopy writes BENCH_FILE over TLS to BENCH_ADDR through a 64 KiB
// buffer and waits for the server's one-byte acknowledgement that it read
// the file's length.
func childTLSCopy() (childResult, error) {
	roots, err := childRoots()
	if err != nil {
		return childResult{}, err
	}
	f, err := os.Open(os.Getenv("BENCH_FILE"))
	if err != nil {
		return childResult{}, err
	}
	defer f.Close()
	start := time.Now()
	c, err := tls.Dial("tcp", os.Getenv("BENCH_ADDR"), &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"})
	if err != nil {
		return childResult{}, err
	}
	defer c.Close()
	w := bufio.NewWriterSize(c, 64<<10)
	if _, err := w.ReadFrom(f); err != nil {
		return childResult{}, err
	}
	if err := w.Flush(); err != nil {
		return childResult{}, err
	}
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		return childResult{}, err
	}
	return childResult{Seconds: time.Since(start).Seconds()}, nil
}

// sinkTLS returns a server TLS configuration with a fresh self-signed
// certificate for 127.0.0.1, and that certificate in PEM form.
func sinkTLS(b testing.TB) (*tls.Config, []byte) {
	b.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(b, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench sink"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	must(b, err)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}, pemCert(der)
}

// tlsSink is a TLS server on loopback that reads n bytes from each
// connection, discards them and answers one byte: a plain copy, with no
// parsing. It returns its address and the PEM of its certificate.
func tlsSink(b testing.TB, n int64) (addr string, certPEM []byte) {
	b.Helper()
	conf, pem := sinkTLS(b)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", conf)
	must(b, err)
	b.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if _, err := io.CopyN(io.Discard, c, n); err == nil {
					c.Write([]byte{1})
				}
			}()
		}
	}()
	return ln.Addr().String(), pem
}

// smtpSink is a go-smtp server on loopback (STARTTLS, any XOAUTH2 accepted)
// that discards every message: the receiving side of figure 3 without the
// emulator's checks and storage. It offers BINARYMIME (go-smtp always offers
// PIPELINING and CHUNKING), so smtpx sends to it with BDAT, as to the
// emulator.
func smtpSink(b testing.TB) (addr string, certPEM []byte) {
	b.Helper()
	conf, pem := sinkTLS(b)
	s := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return sinkSession{}, nil }))
	s.Domain = "127.0.0.1"
	s.TLSConfig = conf
	s.MaxMessageBytes = 200 << 20
	s.EnableBINARYMIME = true
	// The emulator's line limit (Exchange's, 32 KiB), not go-smtp's default
	// of 2,000: go-smtp counts against it the bytes its reader takes in
	// ahead of a pipelined BDAT chunk, and a binary attachment has runs of
	// more than 2,000 bytes without a line feed.
	s.MaxLineLength = 32 << 10
	s.ErrorLog = log.New(io.Discard, "", 0)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(b, err)
	tl := &trackingListener{Listener: ln, conns: map[net.Conn]struct{}{}}
	go s.Serve(tl)
	b.Cleanup(func() {
		// The sockets are closed and the handlers let return before
		// s.Close: in go-smtp v0.25.1, Server.Close during a BDAT upload
		// is a data race inside go-smtp.
		tl.closeAll()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		s.Shutdown(ctx)
		s.Close()
	})
	return ln.Addr().String(), pem
}

// trackingListener remembers the connections it accepted, so that they can
// be closed before the server is.
type trackingListener struct {
	net.Listener
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.conns[c] = struct{}{}
	l.mu.Unlock()
	return c, nil
}

func (l *trackingListener) closeAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range l.conns {
		c.Close()
	}
	clear(l.conns)
}

type sinkSession struct{}

func (sinkSession) AuthMechanisms() []string             { return []string{"XOAUTH2"} }
func (sinkSession) Auth(string) (sasl.Server, error)     { return acceptAll{}, nil }
func (sinkSession) Reset()                               {}
func (sinkSession) Logout() error                        { return nil }
func (sinkSession) Mail(string, *smtp.MailOptions) error { return nil }
func (sinkSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (sinkSession) Data(r io.Reader) error               { _, err := io.Copy(io.Discard, r); return err }

type acceptAll struct{}

func (acceptAll) Next([]byte) ([]byte, bool, error) { return nil, true, nil }

func pemCert(der []byte) []byte {
	var sb strings.Builder
	sb.WriteString("-----BEGIN CERTIFICATE-----\n")
	s := base64Std(der)
	for len(s) > 64 {
		sb.WriteString(s[:64] + "\n")
		s = s[64:]
	}
	sb.WriteString(s + "\n-----END CERTIFICATE-----\n")
	return []byte(sb.String())
}

// childEmulator runs an emulator, prints where it is, and serves until stdin
// closes.
func childEmulator() {
	e := oauthmailtest.New(&oauthmailtest.Options{SendRate: -1, RecipientRateLimit: -1, MaxSendSize: 150 << 20, MaxConcurrent: 5000, AutoApprove: sender})
	defer e.Close()
	out, _ := json.Marshal(childResult{URL: e.URL(), SMTPAddr: e.SMTPAddr(), CAPEM: string(e.CAPEM()), Token: e.AccessToken(sender)})
	fmt.Printf("\nBENCHCHILD %s\n", out)
	io.Copy(io.Discard, os.Stdin)
}

// remoteEmulator is an emulator in a child process.
type remoteEmulator struct {
	childResult
	roots *x509.CertPool
}

func startRemoteEmulator(b testing.TB) *remoteEmulator {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestChild$", "-test.bench=^$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"=emulator")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	must(b, err)
	stdout, err := cmd.StdoutPipe()
	must(b, err)
	must(b, cmd.Start())
	b.Cleanup(func() { stdin.Close(); cmd.Wait() })
	sc := bufio.NewScanner(stdout)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "BENCHCHILD "); ok {
			r := &remoteEmulator{roots: x509.NewCertPool()}
			must(b, json.Unmarshal([]byte(v), &r.childResult))
			r.roots.AppendCertsFromPEM([]byte(r.CAPEM))
			go io.Copy(io.Discard, stdout)
			return r
		}
	}
	b.Fatalf("emulator child printed no address: %v", sc.Err())
	return nil
}
