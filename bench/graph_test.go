package bench_test

// Figure 8: sending through Microsoft Graph (package graphmail) against the
// emulator's Graph side. Kept in its own files (graph_test.go,
// graph_child_test.go).

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/devicemail/devicemail/graphmail"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
	"github.com/devicemail/devicemail/smtpx"
)

// countConn counts the bytes a connection moves (TLS records included).
type countConn struct {
	net.Conn
	up, down *atomic.Int64
}

func (c countConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.down.Add(int64(n))
	return n, err
}

func (c countConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.up.Add(int64(n))
	return n, err
}

type fixedTok string

func (t fixedTok) Token(context.Context) (*oauth2.Token, error) {
	return &oauth2.Token{AccessToken: string(t)}, nil
}

// BenchmarkGraph is figure 8. small: one small message (a 1 KB text body)
// through sendMail in MIME form, on a fresh connection: requests (the floor
// is 1), bytes on the wire both ways (TLS included), the MIME message's
// size, and the request body's (base64 of the MIME, 4/3 of it).
// upload-50MB: a 50 MB attachment through a draft and an upload session,
// sent by a child process (peak RSS from VmHWM), against https-put, a plain
// HTTPS PUT of the same file by a child, with the same client, to the same
// server (/_emulator/store), which keeps the body as an upload session keeps
// an attachment: read into new chunks of at most 4 MB, kept for the
// emulator's lifetime.
func BenchmarkGraph(b *testing.B) {
	b.Run("small", func(b *testing.B) {
		e := oauthmailtest.Start(b, &oauthmailtest.Options{SendRate: -1, GraphRequestLimit: -1})
		tok := fixedTok(e.GraphAccessToken(sender, "Mail.Send"))
		var up, down atomic.Int64
		var reqs, body atomic.Int64
		msg := &smtpx.Message{From: smtpx.Address{Email: sender}, To: []smtpx.Address{{Email: "bob@contoso.com"}},
			Subject: "scan", Text: strings.Repeat("0123456789abcdef", 64)}
		var mimeLen int
		{
			var sb strings.Builder
			must(b, msg.WriteMIME(&sb, graphDate))
			mimeLen = sb.Len()
		}
		for range b.N {
			tr := &http.Transport{TLSClientConfig: e.TLSConfig(), ForceAttemptHTTP2: false,
				DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
					c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
					if err != nil {
						return nil, err
					}
					return countConn{c, &up, &down}, nil
				}}
			s := &graphmail.Sender{BaseURL: e.GraphURL(), TokenSource: tok, Account: sender,
				HTTPClient: &http.Client{Transport: roundTripCounter{tr, &reqs, &body}},
				Now:        func() time.Time { return graphDate }}
			must(b, s.Send(context.Background(), msg))
			tr.CloseIdleConnections()
		}
		n := float64(b.N)
		b.ReportMetric(float64(reqs.Load())/n, "requests/op")
		b.ReportMetric(1, "floor-requests")
		b.ReportMetric(float64(up.Load())/n, "wire-up-B/op")
		b.ReportMetric(float64(down.Load())/n, "wire-down-B/op")
		b.ReportMetric(float64(mimeLen), "mime-B")
		b.ReportMetric(float64(body.Load())/n, "body-B/op")
		b.ReportMetric(float64(body.Load())/n/float64(mimeLen), "base64-ratio")
	})

	size := int64(50 << 20)
	if testing.Short() {
		size = 5 << 20
	}
	dir := b.TempDir()
	file := filepath.Join(dir, "scan.pdf")
	must(b, writeRandomFile(file, size))
	run := func(b *testing.B, mode string, env ...string) {
		var secs, cpu float64
		var peak int64
		for range b.N {
			r := runGraphChild(b, mode, append(env, "BENCH_FILE="+file)...)
			secs += r.Seconds
			cpu += r.CPU
			peak = max(peak, r.PeakRSS)
		}
		b.ReportMetric(float64(size)/1e6/(secs/float64(b.N)), "MB/s")
		b.ReportMetric(float64(peak)/1e6, "peak-RSS-MB")
		b.ReportMetric(cpu/float64(b.N), "child-cpu-s")
		b.ReportMetric(secs/float64(b.N), "child-wall-s")
	}
	e := oauthmailtest.Start(b, &oauthmailtest.Options{SendRate: -1, GraphRequestLimit: -1, MaxSendSize: -1})
	e.Update(func(d *oauthmailtest.Directory) {
		for _, u := range d.Users {
			u.MaxReceiveSize = -1
		}
	})
	ca, tok := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "graph-token")
	must(b, os.WriteFile(ca, e.CAPEM(), 0o600))
	must(b, os.WriteFile(tok, []byte(e.GraphAccessToken(sender, "Mail.Send Mail.ReadWrite")), 0o600))
	env := []string{"BENCH_GRAPH_URL=" + e.GraphURL(), "BENCH_CA=" + ca, "BENCH_TOKEN=" + tok}
	b.Run("upload-50MB", func(b *testing.B) { run(b, "graph-upload", env...) })
	b.Run("https-put", func(b *testing.B) {
		run(b, "https-put", append(env, "BENCH_PUT_URL="+strings.TrimSuffix(e.GraphURL(), "/v1.0")+"/_emulator/store")...)
	})
}

// roundTripCounter counts requests and request body bytes.
type roundTripCounter struct {
	rt         http.RoundTripper
	reqs, body *atomic.Int64
}

func (c roundTripCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	c.reqs.Add(1)
	if r.ContentLength > 0 {
		c.body.Add(r.ContentLength)
	}
	return c.rt.RoundTrip(r)
}

const graphChildEnv = "BENCH_GRAPH_CHILD"

// graphDate is the Date of figure 8's small message, so that its size is the same every run.
var graphDate = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// graphProfileEnv, set to a directory, makes each child of figure 8 write a
// CPU profile there (<mode>-<n>.pprof), to see where the sender's time goes.
// The profiler's own cost is then in the child's figures.
const graphProfileEnv = "BENCH_CHILD_CPUPROFILE"

func runGraphChild(b testing.TB, mode string, env ...string) childResult {
	b.Helper()
	args := []string{"-test.run=^TestGraphChild$", "-test.bench=^$", "-test.count=1"}
	if dir := os.Getenv(graphProfileEnv); dir != "" {
		args = append(args, "-test.cpuprofile="+filepath.Join(dir, fmt.Sprintf("%s-%d.pprof", mode, time.Now().UnixNano())))
	}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(append(os.Environ(), graphChildEnv+"="+mode), env...)
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

// TestGraphChild is the child process of figure 8; without BENCH_GRAPH_CHILD it skips.
func TestGraphChild(t *testing.T) {
	mode := os.Getenv(graphChildEnv)
	if mode == "" {
		t.Skip("TestGraphChild is the child process of BenchmarkGraph, which sets " + graphChildEnv + "; run alone it has nothing to measure")
	}
	roots, err := childRoots()
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	file := os.Getenv("BENCH_FILE")
	st, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	switch mode {
	case "graph-upload":
		tok, err := os.ReadFile(os.Getenv("BENCH_TOKEN"))
		if err != nil {
			t.Fatal(err)
		}
		s := &graphmail.Sender{BaseURL: os.Getenv("BENCH_GRAPH_URL"), HTTPClient: client,
			TokenSource: fixedTok(strings.TrimSpace(string(tok))), Account: sender}
		err = s.Send(context.Background(), &smtpx.Message{From: smtpx.Address{Email: sender},
			To: []smtpx.Address{{Email: "bob@contoso.com"}}, Subject: "scan", Text: "attached",
			Attachments: []smtpx.Attachment{{Name: "scan.pdf", ContentType: "application/pdf", Size: st.Size(),
				Open: func() (io.ReadCloser, error) { return os.Open(file) }}}})
		if err != nil {
			t.Fatal(err)
		}
	case "https-put":
		f, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		req, err := http.NewRequest(http.MethodPut, os.Getenv("BENCH_PUT_URL"), f)
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = st.Size()
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated || resp.Header.Get("X-Stored") != fmt.Sprint(st.Size()) {
			t.Fatalf("PUT: %s, %s bytes stored", resp.Status, resp.Header.Get("X-Stored"))
		}
	default:
		t.Fatalf("unknown mode %q", mode)
	}
	res := childResult{Seconds: time.Since(start).Seconds()}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
		res.CPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	}
	if res.PeakRSS, err = vmHWM(); err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(res)
	fmt.Printf("BENCHCHILD %s\n", out)
}
