package bench_test

import (
	"context"
	"crypto/tls"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/devicemail/devicemail/bench"
	"github.com/devicemail/devicemail/devicecode"
	"github.com/devicemail/devicemail/oauthmail"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
	"github.com/devicemail/devicemail/smtpx"
)

// Figure 1: one message on a fresh connection over a link with 20 ms each
// way. rt/op is the round trips counted by the proxy; floor-rt is the
// protocol's floor against this server, which offers CHUNKING (BDAT): 8. The
// clients that send with DATA (ours-data, msmtp, floor-data) also report
// data-floor-rt, the floor with DATA: 9.
func BenchmarkOneMessage(b *testing.B) {
	e := startEmulator(b, nil)
	p := startProxy(b, e.SMTPAddr(), oneWay)
	ctx := context.Background()
	run := func(b *testing.B, data bool, send func(i int) error) {
		must(b, send(-1)) // warm up: TLS session caches, msmtp's page cache
		settle(p)
		p.Reset()
		b.ResetTimer()
		for i := range b.N {
			if err := send(i); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		s := settle(p)
		b.ReportMetric(float64(s.RoundTrips())/float64(b.N), "rt/op")
		b.ReportMetric(float64(bench.FloorRoundTripsChunked(1)), "floor-rt")
		if data {
			b.ReportMetric(float64(bench.FloorRoundTrips(1, true)), "data-floor-rt")
		}
	}
	b.Run("ours", func(b *testing.B) {
		s := newSender(e, p.Addr())
		run(b, false, func(i int) error { return s.Send(ctx, smallMessage(i)) })
	})
	b.Run("ours-data", func(b *testing.B) {
		s := newSender(e, p.Addr())
		s.DisableChunking = true
		run(b, true, func(i int) error { return s.Send(ctx, smallMessage(i)) })
	})
	b.Run("msmtp", func(b *testing.B) {
		m := newMsmtp(b, e, p.Addr())
		run(b, true, func(i int) error { return m.send(ctx, rawMessage(i)) })
	})
	b.Run("floor", func(b *testing.B) {
		tok := e.AccessToken(sender)
		run(b, false, func(i int) error { return floorSend(ctx, p.Addr(), e.CertPool(), tok, rawMessage(i), true) })
	})
	b.Run("floor-data", func(b *testing.B) {
		tok := e.AccessToken(sender)
		run(b, true, func(i int) error { return floorSend(ctx, p.Addr(), e.CertPool(), tok, rawMessage(i), false) })
	})
}

// Figure 2: 100 messages on loopback (no added delay).
func BenchmarkBatch100(b *testing.B) {
	const n = 100
	e := startEmulator(b, nil)
	ctx := context.Background()
	run := func(b *testing.B, warm, batch func() error) {
		must(b, warm()) // one message first: caches, msmtp's pages
		b.ResetTimer()
		start := time.Now()
		for range b.N {
			if err := batch(); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(n*b.N)/time.Since(start).Seconds(), "msg/s")
	}
	b.Run("ours-session", func(b *testing.B) {
		s := newSender(e, e.SMTPAddr())
		warm := func() error { return s.Send(ctx, smallMessage(-1)) }
		run(b, warm, func() error {
			ss, err := s.Dial(ctx)
			if err != nil {
				return err
			}
			for i := range n {
				if err := ss.Send(ctx, smallMessage(i)); err != nil {
					ss.Close()
					return err
				}
			}
			return ss.Close()
		})
	})
	b.Run("msmtp-process-per-msg", func(b *testing.B) {
		m := newMsmtp(b, e, e.SMTPAddr())
		warm := func() error { return m.send(ctx, rawMessage(-1)) }
		run(b, warm, func() error {
			for i := range n {
				if err := m.send(ctx, rawMessage(i)); err != nil {
					return err
				}
			}
			return nil
		})
	})
	b.Run("ours-conn-per-msg", func(b *testing.B) {
		s := newSender(e, e.SMTPAddr())
		warm := func() error { return s.Send(ctx, smallMessage(-1)) }
		run(b, warm, func() error {
			for i := range n {
				if err := s.Send(ctx, smallMessage(i)); err != nil {
					return err
				}
			}
			return nil
		})
	})
}

// Figure 3: a 50 MB attachment, sent by a child process so that its peak RSS
// is the sender's alone, against a plain TLS copy of the same bytes. Every
// receiver but the last offers CHUNKING, BINARYMIME and PIPELINING, so smtpx
// sends with BDAT and the attachment unencoded; ours-base64-to-raw-sink is
// the sender with DisableChunking (DATA, base64) to the same raw sink, the
// path that every figure took before BDAT.
func BenchmarkAttachment50MB(b *testing.B) {
	size := int64(50 << 20)
	if testing.Short() {
		size = 1 << 20
	}
	dir := b.TempDir()
	file := filepath.Join(dir, "scan.pdf")
	must(b, writeRandomFile(file, size))
	run := func(b *testing.B, mode string, env ...string) {
		var secs, cpu float64
		var peak int64
		for range b.N {
			r := runChild(b, mode, append(env, "BENCH_FILE="+file)...)
			secs += r.Seconds
			cpu += r.CPU
			peak = max(peak, r.PeakRSS)
		}
		b.ReportMetric(float64(size)/1e6/(secs/float64(b.N)), "MB/s")
		b.ReportMetric(float64(peak)/1e6, "peak-RSS-MB")
		b.ReportMetric(cpu/float64(b.N), "child-cpu-s")
		b.ReportMetric(secs/float64(b.N), "child-wall-s")
	}
	// wire reports the bytes of message content a sink received per send.
	wire := func(b *testing.B, st *sinkStats) {
		if n := st.msgs.Load(); n > 0 {
			b.ReportMetric(float64(st.bodyBytes.Load())/float64(n)/1e6, "wire-MB")
		}
	}
	b.Run("ours", func(b *testing.B) {
		e := oauthmailtest.Start(b, &oauthmailtest.Options{SendRate: -1, MaxSendSize: 150 << 20}) // 50 MB is over the 35 MB default
		ca, tok := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "token")
		must(b, os.WriteFile(ca, e.CAPEM(), 0o600))
		must(b, os.WriteFile(tok, []byte(e.AccessToken(sender)), 0o600))
		run(b, "attach", "BENCH_ADDR="+e.SMTPAddr(), "BENCH_CA="+ca, "BENCH_TOKEN="+tok)
	})
	b.Run("ours-to-discard-sink", func(b *testing.B) {
		addr, pem := smtpSink(b)
		ca, tok := filepath.Join(dir, "smtpsink.pem"), filepath.Join(dir, "sinktoken")
		must(b, os.WriteFile(ca, pem, 0o600))
		must(b, os.WriteFile(tok, []byte("any-token"), 0o600))
		run(b, "attach", "BENCH_ADDR="+addr, "BENCH_CA="+ca, "BENCH_TOKEN="+tok)
	})
	b.Run("ours-to-raw-sink", func(b *testing.B) {
		addr, pem, st := rawSink(b)
		ca, tok := filepath.Join(dir, "rawsink.pem"), filepath.Join(dir, "rawtoken")
		must(b, os.WriteFile(ca, pem, 0o600))
		must(b, os.WriteFile(tok, []byte("any-token"), 0o600))
		run(b, "attach", "BENCH_ADDR="+addr, "BENCH_CA="+ca, "BENCH_TOKEN="+tok)
		wire(b, st)
	})
	b.Run("ours-base64-to-raw-sink", func(b *testing.B) {
		addr, pem, st := rawSink(b)
		ca, tok := filepath.Join(dir, "rawsink64.pem"), filepath.Join(dir, "rawtoken64")
		must(b, os.WriteFile(ca, pem, 0o600))
		must(b, os.WriteFile(tok, []byte("any-token"), 0o600))
		run(b, "attach", "BENCH_ADDR="+addr, "BENCH_CA="+ca, "BENCH_TOKEN="+tok, disableChunkingEnv+"=1")
		wire(b, st)
	})
	b.Run("tls-copy", func(b *testing.B) {
		addr, pem := tlsSink(b, size)
		ca := filepath.Join(dir, "sink.pem")
		must(b, os.WriteFile(ca, pem, 0o600))
		run(b, "tlscopy", "BENCH_ADDR="+addr, "BENCH_CA="+ca)
	})
}

// signedInMailer returns a Mailer signed in to e as alice.
func signedInMailer(b testing.TB, e *oauthmailtest.Emulator, clock devicecode.Clock) *oauthmail.Mailer {
	b.Helper()
	a, err := devicecode.ExchangeOnline(oauthmailtest.ContosoTenantID)
	must(b, err)
	m, err := oauthmail.New(oauthmail.Config{
		Authority:  a.WithLoginURL(e.URL()),
		ClientID:   oauthmailtest.DeviceAppClientID,
		Sender:     &smtpx.Sender{Addr: e.SMTPAddr(), TLSConfig: e.TLSConfig()},
		HTTPClient: e.Client(),
		Clock:      clock,
	})
	must(b, err)
	_, err = m.SignIn(context.Background(), func(*devicecode.Prompt) error { return nil })
	must(b, err)
	return m
}

// Figure 5: 1,000 concurrent sends on an expired token. "valid-token" is the
// same load with a fresh token, to tell the refresh's share of the latency
// from that of 1,000 concurrent TLS sessions.
func BenchmarkRefreshUnderLoad(b *testing.B) {
	b.Run("expired", func(b *testing.B) { concurrentSends(b, true) })
	b.Run("valid-token", func(b *testing.B) { concurrentSends(b, false) })
}

func concurrentSends(b *testing.B, expire bool) {
	n := 1000
	if testing.Short() {
		n = 50
	}
	ctx := context.Background()
	var tokenReqs float64
	var lat []time.Duration
	for range b.N {
		b.StopTimer()
		clock := oauthmailtest.NewClock(time.Now())
		e := oauthmailtest.New(&oauthmailtest.Options{Clock: clock, SendRate: -1, RecipientRateLimit: -1, MaxConcurrent: 5000, AutoApprove: sender})
		m := signedInMailer(b, e, clock)
		if expire {
			clock.Advance(2 * time.Hour) // the access token (1 h) has expired
		}
		before := len(e.Requests())
		var wg sync.WaitGroup
		var mu sync.Mutex
		var firstErr error
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				t0 := time.Now()
				err := m.Send(ctx, smallMessage(i))
				d := time.Since(t0)
				mu.Lock()
				lat = append(lat, d)
				if err != nil && firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			})
		}
		b.StartTimer()
		close(start)
		wg.Wait()
		b.StopTimer()
		for _, r := range e.Requests()[before:] {
			if strings.HasSuffix(r.Path, "/token") {
				tokenReqs++
			}
		}
		e.Close()
		if firstErr != nil {
			b.Fatal(firstErr)
		}
	}
	b.ReportMetric(tokenReqs/float64(b.N), "token-requests")
	b.ReportMetric(ms(percentile(lat, 50)), "p50-ms")
	b.ReportMetric(ms(percentile(lat, 99)), "p99-ms")
}

// Figure 6: allocations per message on the client side (the emulator runs in
// a child process, so its allocations do not count).
func BenchmarkAllocs(b *testing.B) {
	re := startRemoteEmulator(b)
	ctx := context.Background()
	tlsConf := &tls.Config{RootCAs: re.roots}
	newS := func() *smtpx.Sender {
		s := &smtpx.Sender{Addr: re.SMTPAddr, TLSConfig: tlsConf, Account: sender}
		s.TokenSource = staticSource{bearer(re.Token)}
		return s
	}
	b.Run("smtpx-session", func(b *testing.B) {
		ss, err := newS().Dial(ctx)
		must(b, err)
		defer ss.Close()
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			if err := ss.Send(ctx, smallMessage(i)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("smtpx-send", func(b *testing.B) {
		s := newS()
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			if err := s.Send(ctx, smallMessage(i)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("oauthmail-send", func(b *testing.B) {
		a, err := devicecode.ExchangeOnline(oauthmailtest.ContosoTenantID)
		must(b, err)
		m, err := oauthmail.New(oauthmail.Config{
			Authority:  a.WithLoginURL(re.URL),
			ClientID:   oauthmailtest.DeviceAppClientID,
			Sender:     &smtpx.Sender{Addr: re.SMTPAddr, TLSConfig: tlsConf},
			HTTPClient: &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConf}},
		})
		must(b, err)
		_, err = m.SignIn(ctx, func(*devicecode.Prompt) error { return nil })
		must(b, err)
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			if err := m.Send(ctx, smallMessage(i)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
