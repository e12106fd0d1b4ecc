package bench_test

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/url"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/devicemail/devicemail/bench/internal/delayproxy"
	"github.com/devicemail/devicemail/devicecode"
	"github.com/devicemail/devicemail/oauthmail"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
	"github.com/devicemail/devicemail/smtpx"
)

// Figure 7: a cold send, what a printer does a few times a day: the access
// token has expired and no connection to the login host is open, so the
// send refreshes the token (TCP, TLS, POST) and sets up the SMTP connection
// (TCP, banner, EHLO, STARTTLS, TLS, EHLO) before AUTH and the transaction.
// Both links go through a delay proxy: login host and SMTP server at 20 ms
// each way, then the login host at 80 ms.
//
//   - sequential: refresh, then send (Mailer.Token, then Mailer.Send with the
//     fresh token): the path Mailer.Send took before it overlapped the two.
//   - overlapped: Mailer.Send, which refreshes while it sets up.
//   - floor: the parts measured alone in each iteration: a refresh
//     (Mailer.KeepAlive) on a cold connection, and an smtpx send with a
//     valid token whose TokenSource notes when it is asked (the end of the
//     set-up). floor = max(refresh, set-up) + (AUTH + transaction), in wall
//     time and in round trips.
//
// Metrics: wall-ms per send; login-rt and smtp-rt, the round trips each
// proxy counted; and, when both links have the same delay, cp-rt, the round
// trips on the critical path: their sum for sequential, and for overlapped
// max(login-rt, smtp set-up) + AUTH and transaction, with the SMTP split
// into set-up and the rest as the floor measured it (the same client and
// server). With unequal links round trips of the two differ in length, so
// only wall time compares them.
func BenchmarkColdSend(b *testing.B) {
	for _, l := range []struct {
		name        string
		login, smtp time.Duration
	}{
		{"login20-smtp20", 20 * time.Millisecond, 20 * time.Millisecond},
		{"login80-smtp20", 80 * time.Millisecond, 20 * time.Millisecond},
	} {
		b.Run(l.name, func(b *testing.B) {
			r := newColdRig(b, l.login, l.smtp)
			b.Run("floor", r.floor)
			b.Run("sequential", func(b *testing.B) { r.send(b, true) })
			b.Run("overlapped", func(b *testing.B) { r.send(b, false) })
		})
	}
	b.Run("graph-login20-graph20", benchmarkColdSendGraph)
	b.Run("reconnect", benchmarkReconnect)
}

// coldRig is the emulator behind two delay proxies, and a Mailer signed in
// through them.
type coldRig struct {
	clock       *oauthmailtest.Clock
	e           *oauthmailtest.Emulator
	login, smtp *delayproxy.Proxy
	tr          *http.Transport
	m           *oauthmail.Mailer
	postRT      float64 // round trips of AUTH and the transaction, from floor
}

func newColdRig(b *testing.B, login, smtp time.Duration) *coldRig {
	r := &coldRig{clock: oauthmailtest.NewClock(time.Now())}
	r.e = startEmulator(b, r.clock)
	u, err := url.Parse(r.e.URL())
	must(b, err)
	r.login = startProxy(b, u.Host, login)
	r.smtp = startProxy(b, r.e.SMTPAddr(), smtp)
	a, err := devicecode.ExchangeOnline(oauthmailtest.ContosoTenantID)
	must(b, err)
	r.tr = &http.Transport{TLSClientConfig: r.e.TLSConfig()}
	r.m, err = oauthmail.New(oauthmail.Config{
		Authority:  a.WithLoginURL("https://" + r.login.Addr()),
		ClientID:   oauthmailtest.DeviceAppClientID,
		Sender:     &smtpx.Sender{Addr: r.smtp.Addr(), TLSConfig: r.e.TLSConfig()},
		HTTPClient: &http.Client{Transport: r.tr},
		Clock:      r.clock,
	})
	must(b, err)
	_, err = r.m.SignIn(context.Background(), func(*devicecode.Prompt) error { return nil })
	must(b, err)
	return r
}

// cold expires the access token and closes the idle connection to the
// login host, as hours between sends would.
func (r *coldRig) cold() {
	r.clock.Advance(2 * time.Hour)
	r.tr.CloseIdleConnections()
}

// measure runs op once, timed, and returns the wall time and the round
// trips each proxy counted for it.
func (r *coldRig) measure(op func() error) (time.Duration, float64, float64, error) {
	l0, s0 := settle(r.login), settle(r.smtp)
	t0 := time.Now()
	err := op()
	d := time.Since(t0)
	l1, s1 := settle(r.login), settle(r.smtp)
	return d, float64(l1.RoundTrips() - l0.RoundTrips()), float64(s1.RoundTrips() - s0.RoundTrips()), err
}

func (r *coldRig) send(b *testing.B, sequential bool) {
	ctx := context.Background()
	i := 0
	op := func() error {
		i++
		if sequential {
			if _, err := r.m.Token(ctx); err != nil {
				return err
			}
		}
		return r.m.Send(ctx, smallMessage(i))
	}
	r.cold()
	_, _, _, err := r.measure(op) // warm up
	must(b, err)
	b.StopTimer()
	var wall time.Duration
	var login, smtp float64
	for range b.N {
		r.cold()
		d, l, s, err := r.measure(op)
		must(b, err)
		wall, login, smtp = wall+d, login+l, smtp+s
	}
	n := float64(b.N)
	cp := login/n + smtp/n
	if !sequential {
		cp = max(login/n, smtp/n-r.postRT) + r.postRT
	}
	b.ReportMetric(ms(wall)/n, "wall-ms")
	b.ReportMetric(login/n, "login-rt")
	b.ReportMetric(smtp/n, "smtp-rt")
	if r.login.Delay == r.smtp.Delay {
		b.ReportMetric(cp, "cp-rt")
	}
}

// askedSource hands out tok and notes when it was first asked, with the SMTP
// proxy's totals then: the end of the connection set-up.
type askedSource struct {
	tok   *oauth2.Token
	p     *delayproxy.Proxy
	at    time.Time
	stats delayproxy.Stats
}

func (s *askedSource) Token(context.Context) (*oauth2.Token, error) {
	if s.at.IsZero() {
		s.at, s.stats = time.Now(), s.p.Stats()
	}
	return s.tok, nil
}

func (r *coldRig) floor(b *testing.B) {
	ctx := context.Background()
	b.StopTimer()
	var wall, refresh, setUp, whole time.Duration
	var rts, login, smtp, post float64
	for i := range b.N + 1 { // the first is a warm-up
		r.cold()
		dRefresh, lRT, _, err := r.measure(func() error { return r.m.KeepAlive(ctx, 0) })
		must(b, err)
		src := &askedSource{tok: bearer(r.e.AccessToken(sender)), p: r.smtp}
		s := &smtpx.Sender{Addr: r.smtp.Addr(), TLSConfig: r.e.TLSConfig(), Account: sender, TokenSource: src}
		s0 := settle(r.smtp)
		t0 := time.Now()
		err = s.Send(ctx, smallMessage(i))
		dSend := time.Since(t0)
		must(b, err)
		s1 := settle(r.smtp)
		setup := src.at.Sub(t0)
		setupRT := float64(src.stats.RoundTrips() - s0.RoundTrips())
		postRT := float64(s1.RoundTrips()) - float64(src.stats.RoundTrips())
		if i == 0 {
			continue
		}
		wall += max(dRefresh, setup) + dSend - setup
		refresh, setUp, whole = refresh+dRefresh, setUp+setup, whole+dSend
		rts += max(lRT, setupRT) + postRT
		login, smtp, post = login+lRT, smtp+setupRT+postRT, post+postRT
	}
	n := float64(b.N)
	r.postRT = post / n
	b.ReportMetric(ms(wall)/n, "wall-ms")
	b.ReportMetric(login/n, "login-rt")
	b.ReportMetric(smtp/n, "smtp-rt")
	if r.login.Delay == r.smtp.Delay {
		b.ReportMetric(rts/n, "cp-rt")
	}
	b.ReportMetric(ms(refresh)/n, "refresh-ms")
	b.ReportMetric(ms(setUp)/n, "setup-ms")
	b.ReportMetric(ms(whole)/n, "smtp-ms")
}

// benchmarkReconnect measures a second connection to the same SMTP server
// (20 ms each way) with and without TLS session resumption, to decide
// whether smtpx should keep a session cache: it would if resumption saved a
// round trip.
func benchmarkReconnect(b *testing.B) {
	e := startEmulator(b, nil)
	p := startProxy(b, e.SMTPAddr(), oneWay)
	ctx := context.Background()
	for _, resume := range []bool{false, true} {
		name := "full-handshake"
		if resume {
			name = "resumed"
		}
		b.Run(name, func(b *testing.B) {
			var resumed int
			tc := &tls.Config{RootCAs: e.CertPool(), ServerName: "127.0.0.1",
				VerifyConnection: func(cs tls.ConnectionState) error {
					if cs.DidResume {
						resumed++
					}
					return nil
				}}
			if resume {
				tc.ClientSessionCache = tls.NewLRUClientSessionCache(4)
			}
			s := newSender(e, p.Addr())
			s.TLSConfig = tc
			must(b, s.Send(ctx, smallMessage(-1))) // the first connection: a ticket to resume with
			b.StopTimer()
			var wall time.Duration
			var rt float64
			resumed = 0
			for i := range b.N {
				s0 := settle(p)
				t0 := time.Now()
				ss, err := s.Dial(ctx)
				must(b, err)
				wall += time.Since(t0)
				must(b, ss.Send(ctx, smallMessage(i)))
				ss.Close()
				rt += float64(settle(p).RoundTrips() - s0.RoundTrips())
			}
			n := float64(b.N)
			b.ReportMetric(ms(wall)/n, "dial-ms")
			b.ReportMetric(rt/n, "rt")
			b.ReportMetric(float64(resumed)/n, "resumed")
		})
	}
}
