package bench_test

import (
	"context"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"testing"
	"time"

	"github.com/devicemail/devicemail/bench/internal/delayproxy"
	"github.com/devicemail/devicemail/devicecode"
	"github.com/devicemail/devicemail/graphmail"
	"github.com/devicemail/devicemail/oauthmail"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
)

// benchmarkColdSendGraph is figure 7's Graph row: a cold send through
// Microsoft Graph (a signed-in account moved to Graph, its access token
// expired, no connection open), login host and Graph host each behind a
// delay proxy at 20 ms each way.
//
//   - sequential: Mailer.Token, then Mailer.Send.
//   - overlapped: Mailer.Send, which opens the connection to Graph while
//     it refreshes.
//   - floor: a refresh alone (Mailer.KeepAlive, cold) and a graphmail send
//     with a valid token on a cold connection, whose set-up ends when the
//     transport hands the request its connection (httptrace GotConn):
//     max(refresh, set-up) + the sendMail request.
//
// Metrics as for SMTP, with graph-rt for the Graph link.
func benchmarkColdSendGraph(b *testing.B) {
	r := newColdGraphRig(b, oneWay, oneWay)
	b.Run("floor", r.floor)
	b.Run("sequential", func(b *testing.B) { r.send(b, true) })
	b.Run("overlapped", func(b *testing.B) { r.send(b, false) })
}

type coldGraphRig struct {
	clock        *oauthmailtest.Clock
	e            *oauthmailtest.Emulator
	login, graph *delayproxy.Proxy
	tr           *http.Transport
	m            *oauthmail.Mailer
	postRT       float64
}

func newColdGraphRig(b *testing.B, login, graph time.Duration) *coldGraphRig {
	r := &coldGraphRig{clock: oauthmailtest.NewClock(time.Now())}
	r.e = startEmulator(b, r.clock)
	r.e.Update(func(d *oauthmailtest.Directory) {
		for _, a := range d.Apps {
			if a.ClientID == oauthmailtest.DeviceAppClientID {
				a.Permissions = append(a.Permissions, "https://graph.microsoft.com/Mail.Send", "https://graph.microsoft.com/Mail.ReadWrite")
			}
		}
	})
	u, err := url.Parse(r.e.URL())
	must(b, err)
	r.login = startProxy(b, u.Host, login)
	r.graph = startProxy(b, u.Host, graph)
	a, err := devicecode.ExchangeOnline(oauthmailtest.ContosoTenantID)
	must(b, err)
	r.tr = &http.Transport{TLSClientConfig: r.e.TLSConfig()}
	r.m, err = oauthmail.New(oauthmail.Config{
		Authority:  a.WithLoginURL("https://" + r.login.Addr()),
		ClientID:   oauthmailtest.DeviceAppClientID,
		Transport:  oauthmail.TransportGraph,
		GraphURL:   "https://" + r.graph.Addr() + "/v1.0",
		HTTPClient: &http.Client{Transport: r.tr},
		Clock:      r.clock,
	})
	must(b, err)
	_, err = r.m.SignIn(context.Background(), func(*devicecode.Prompt) error { return nil })
	must(b, err)
	must(b, r.m.Send(context.Background(), smallMessage(-1))) // moves the sign-in to Graph
	return r
}

func (r *coldGraphRig) cold() {
	r.clock.Advance(2 * time.Hour)
	r.tr.CloseIdleConnections()
}

func (r *coldGraphRig) measure(op func() error) (time.Duration, float64, float64, error) {
	l0, g0 := settle(r.login), settle(r.graph)
	t0 := time.Now()
	err := op()
	d := time.Since(t0)
	l1, g1 := settle(r.login), settle(r.graph)
	return d, float64(l1.RoundTrips() - l0.RoundTrips()), float64(g1.RoundTrips() - g0.RoundTrips()), err
}

func (r *coldGraphRig) send(b *testing.B, sequential bool) {
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
	var login, graph float64
	for range b.N {
		r.cold()
		d, l, g, err := r.measure(op)
		must(b, err)
		wall, login, graph = wall+d, login+l, graph+g
	}
	n := float64(b.N)
	cp := login/n + graph/n
	if !sequential {
		cp = max(login/n, graph/n-r.postRT) + r.postRT
	}
	b.ReportMetric(ms(wall)/n, "wall-ms")
	b.ReportMetric(login/n, "login-rt")
	b.ReportMetric(graph/n, "graph-rt")
	b.ReportMetric(cp, "cp-rt")
}

func (r *coldGraphRig) floor(b *testing.B) {
	ctx := context.Background()
	b.StopTimer()
	var wall, refresh, setUp, whole time.Duration
	var rts, login, graph, post float64
	for i := range b.N + 1 { // the first is a warm-up
		r.cold()
		dRefresh, lRT, _, err := r.measure(func() error { return r.m.KeepAlive(ctx, 0) })
		must(b, err)
		r.tr.CloseIdleConnections()
		s := &graphmail.Sender{BaseURL: "https://" + r.graph.Addr() + "/v1.0", HTTPClient: &http.Client{Transport: r.tr},
			TokenSource: fixedTok(r.e.GraphAccessToken(sender, "Mail.Send")), Account: sender}
		var at time.Time
		var stats delayproxy.Stats
		tctx := httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: func(httptrace.GotConnInfo) {
			if at.IsZero() {
				at, stats = time.Now(), r.graph.Stats()
			}
		}})
		g0 := settle(r.graph)
		t0 := time.Now()
		err = s.Send(tctx, smallMessage(i))
		dSend := time.Since(t0)
		must(b, err)
		g1 := settle(r.graph)
		setup := at.Sub(t0)
		setupRT := float64(stats.RoundTrips() - g0.RoundTrips())
		postRT := float64(g1.RoundTrips() - stats.RoundTrips())
		if i == 0 {
			continue
		}
		wall += max(dRefresh, setup) + dSend - setup
		refresh, setUp, whole = refresh+dRefresh, setUp+setup, whole+dSend
		rts += max(lRT, setupRT) + postRT
		login, graph, post = login+lRT, graph+setupRT+postRT, post+postRT
	}
	n := float64(b.N)
	r.postRT = post / n
	b.ReportMetric(ms(wall)/n, "wall-ms")
	b.ReportMetric(login/n, "login-rt")
	b.ReportMetric(graph/n, "graph-rt")
	b.ReportMetric(rts/n, "cp-rt")
	b.ReportMetric(ms(refresh)/n, "refresh-ms")
	b.ReportMetric(ms(setUp)/n, "setup-ms")
	b.ReportMetric(ms(whole)/n, "graph-ms")
}
