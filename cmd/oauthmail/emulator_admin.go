package main

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
)

// emulatorFidelity holds the emulator command's flags for behaviours where
// the in-process test helper picks fast defaults and the command picks
// Microsoft's.
type emulatorFidelity struct {
	errorDelay         *time.Duration
	tokenLife, lifeMax *time.Duration
	adminListen        *string
}

// addFidelityFlags registers those flags on fs.
func addFidelityFlags(fs *flag.FlagSet) *emulatorFidelity {
	return &emulatorFidelity{
		errorDelay: fs.Duration("smtp-error-delay", oauthmailtest.Tarpit,
			"how long the SMTP side waits before an error reply, as Exchange Online's tarpit does (0: answer at once)"),
		tokenLife: fs.Duration("token-lifetime", time.Hour,
			"shortest access token lifetime (expires_in)"),
		lifeMax: fs.Duration("token-lifetime-max", 90*time.Minute,
			"longest access token lifetime: each token's is drawn between the two, as Entra's 60 to 90 minutes (set it to --token-lifetime to fix it)"),
		adminListen: fs.String("admin-listen", "127.0.0.1:0",
			"loopback `address` of the admin API (see below); empty: no admin API"),
	}
}

// apply sets the options the flags stand for.
func (f *emulatorFidelity) apply(o *oauthmailtest.Options) {
	o.ErrorDelay = *f.errorDelay
	o.AccessTokenLifetime, o.AccessTokenLifetimeMax = *f.tokenLife, *f.lifeMax
}

// The admin API: a control plane for test suites in any language. It listens
// on loopback only, over plain HTTP, and every request needs
// "Authorization: Bearer <admin_token>" (the token is printed in the JSON
// line). Requests and answers are JSON; an error is {"error": "..."} with 400
// (bad request), 401 (no or wrong token) or 404 (unknown user, app or tenant).
const adminUsage = `Admin API (on "admin_url", with "Authorization: Bearer <admin_token>"; JSON bodies):

  POST /clock/advance          {"duration": "2160h"}       move the emulated clock forward
  POST /users/revoke           {"upn": "alice@contoso.com"} revoke the user's sign-ins (refresh tokens)
  POST /smtp-auth              {"tenant": "<GUID>", "disabled": true}
                               {"mailbox": "<UPN>", "setting": "enabled|disabled|"}
                                                           switch SMTP AUTH for a tenant or a mailbox
  POST /conditional-access     {"tenant": "<GUID>", "block_device_code_flow": true}
  POST /apps/permissions       {"client_id": "<GUID>", "add": ["https://graph.microsoft.com/Mail.Send"]}
                                                           configure delegated permissions on the app
                                                           (granted where its admin consent is)
  POST /consent/revoke         {"client_id": "<GUID>", "upn": "<UPN or empty: everyone>",
                                "resource": "https://graph.microsoft.com"}
                                                           withdraw the consent for one resource
  POST /graph/rest             {"mailbox": "<UPN>", "enabled": false}
                                                           Graph answers 404 MailboxNotEnabledForRESTAPI
  POST /graph/throttle         {"mailbox": "<UPN>", "count": 1, "retry_after_seconds": 30}
                                                           Graph answers 429 with Retry-After for the mailbox
  POST /apps/expire-secrets    {"client_id": "<GUID>"}     expire the app's client secrets now
  POST /slow-down              {"enabled": true}           answer slow_down to fast device polls
  POST /faults/http            {"path": "/token", "count": 1, "status": 503,
                                "retry_after_seconds": 0, "reset": false, "delay_ms": 0}
  POST /faults/smtp            {"stage": "banner|starttls|auth|data|data-end",
                                "reply": "451 4.7.0 ...", "count": 1}   (no reply: drop)
  GET  /clock                  {"now": "<RFC 3339>"}
`

// adminAPI serves the control plane for one emulator.
type adminAPI struct {
	e     *oauthmailtest.Emulator
	token string
	mux   *http.ServeMux
}

func newAdminAPI(e *oauthmailtest.Emulator) *adminAPI {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	a := &adminAPI{e: e, token: base64.RawURLEncoding.EncodeToString(b), mux: http.NewServeMux()}
	a.mux.HandleFunc("GET /clock", a.clock)
	a.mux.HandleFunc("POST /clock/advance", a.advance)
	a.mux.HandleFunc("POST /users/revoke", a.revoke)
	a.mux.HandleFunc("POST /smtp-auth", a.smtpAuth)
	a.mux.HandleFunc("POST /conditional-access", a.conditionalAccess)
	a.mux.HandleFunc("POST /apps/permissions", a.appPermissions)
	a.mux.HandleFunc("POST /consent/revoke", a.revokeConsent)
	a.mux.HandleFunc("POST /graph/rest", a.graphREST)
	a.mux.HandleFunc("POST /graph/throttle", a.graphThrottle)
	a.mux.HandleFunc("POST /apps/expire-secrets", a.expireSecrets)
	a.mux.HandleFunc("POST /slow-down", a.slowDown)
	a.mux.HandleFunc("POST /faults/http", a.httpFault)
	a.mux.HandleFunc("POST /faults/smtp", a.smtpFault)
	return a
}

func (a *adminAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	got := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	if subtle.ConstantTimeCompare([]byte(got), []byte(a.token)) != 1 {
		w.Header().Set("WWW-Authenticate", `Bearer realm="oauthmail emulator admin"`)
		adminError(w, http.StatusUnauthorized, "missing or wrong bearer token: use the admin_token the emulator printed")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	a.mux.ServeHTTP(w, r)
}

func adminJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func adminError(w http.ResponseWriter, status int, msg string) {
	adminJSON(w, status, map[string]string{"error": msg})
}

// decode reads the JSON body into v, refusing unknown fields so that a typo
// is an error rather than a silent no-op.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		adminError(w, http.StatusBadRequest, "bad JSON body: "+err.Error())
		return false
	}
	return true
}

func (a *adminAPI) ok(w http.ResponseWriter) {
	adminJSON(w, http.StatusOK, map[string]string{"now": a.e.Clock().Now().UTC().Format(time.RFC3339)})
}

func (a *adminAPI) clock(w http.ResponseWriter, _ *http.Request) { a.ok(w) }

func (a *adminAPI) advance(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Duration string `json:"duration"`
	}
	if !decode(w, r, &req) {
		return
	}
	d, err := time.ParseDuration(req.Duration)
	if err != nil || d < 0 {
		adminError(w, http.StatusBadRequest, fmt.Sprintf("duration %q: want a positive Go duration such as \"2160h\"", req.Duration))
		return
	}
	a.e.Clock().Advance(d)
	a.ok(w)
}

func (a *adminAPI) revoke(w http.ResponseWriter, r *http.Request) {
	var req struct {
		UPN string `json:"upn"`
	}
	if !decode(w, r, &req) {
		return
	}
	if err := a.e.RevokeUser(req.UPN); err != nil {
		adminError(w, http.StatusNotFound, fmt.Sprintf("unknown user %q", req.UPN))
		return
	}
	a.ok(w)
}

func (a *adminAPI) smtpAuth(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Tenant   string  `json:"tenant"`
		Disabled *bool   `json:"disabled"`
		Mailbox  string  `json:"mailbox"`
		Setting  *string `json:"setting"`
	}
	if !decode(w, r, &req) {
		return
	}
	switch {
	case req.Tenant != "" && req.Disabled != nil && req.Mailbox == "":
		if !a.tenant(w, req.Tenant, func(t *oauthmailtest.Tenant) { t.SMTPAuthDisabled = *req.Disabled }) {
			return
		}
	case req.Mailbox != "" && req.Setting != nil && req.Tenant == "":
		s := oauthmailtest.MailboxSMTPAuth(*req.Setting)
		if s != oauthmailtest.SMTPAuthEnabled && s != oauthmailtest.SMTPAuthDisabled && s != oauthmailtest.SMTPAuthFollowTenant {
			adminError(w, http.StatusBadRequest, fmt.Sprintf("setting %q: want \"enabled\", \"disabled\" or \"\" (follow the tenant)", *req.Setting))
			return
		}
		if !a.mailbox(w, req.Mailbox, func(u *oauthmailtest.User) { u.SMTPAuth = s }) {
			return
		}
	default:
		adminError(w, http.StatusBadRequest, `want {"tenant": ..., "disabled": ...} or {"mailbox": ..., "setting": ...}`)
		return
	}
	a.ok(w)
}

// tenant runs f on the tenant with that ID, answering 404 if there is none.
func (a *adminAPI) tenant(w http.ResponseWriter, id string, f func(*oauthmailtest.Tenant)) bool {
	return updateOne(a, w, func(d *oauthmailtest.Directory) []*oauthmailtest.Tenant { return d.Tenants },
		func(t *oauthmailtest.Tenant) bool { return strings.EqualFold(t.ID, id) }, f,
		fmt.Sprintf("unknown tenant %q (use its GUID)", id))
}

// updateOne runs f, in one directory update, on the items of list that
// match, answering 404 with notFound if none does.
func updateOne[T any](a *adminAPI, w http.ResponseWriter, list func(*oauthmailtest.Directory) []*T, match func(*T) bool, f func(*T), notFound string) bool {
	found := false
	a.e.Update(func(d *oauthmailtest.Directory) {
		for _, x := range list(d) {
			if match(x) {
				f(x)
				found = true
			}
		}
	})
	if !found {
		adminError(w, http.StatusNotFound, notFound)
	}
	return found
}

func (a *adminAPI) conditionalAccess(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Tenant string `json:"tenant"`
		Block  *bool  `json:"block_device_code_flow"`
	}
	if !decode(w, r, &req) {
		return
	}
	if req.Block == nil {
		adminError(w, http.StatusBadRequest, `want {"tenant": ..., "block_device_code_flow": true|false}`)
		return
	}
	if a.tenant(w, req.Tenant, func(t *oauthmailtest.Tenant) { t.BlockDeviceCodeFlow = *req.Block }) {
		a.ok(w)
	}
}

// appPermissions adds delegated permissions to an app registration, as
// API permissions > Add a permission does; they count as admin-consented in
// the tenants that consented for the app.
func (a *adminAPI) appPermissions(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ClientID string   `json:"client_id"`
		Add      []string `json:"add"`
	}
	if !decode(w, r, &req) {
		return
	}
	if len(req.Add) == 0 {
		adminError(w, http.StatusBadRequest, `want {"client_id": ..., "add": ["https://graph.microsoft.com/Mail.Send", ...]}`)
		return
	}
	if a.app(w, req.ClientID, func(app *oauthmailtest.App) {
		for _, p := range req.Add {
			if !slices.ContainsFunc(app.Permissions, func(q string) bool { return strings.EqualFold(p, q) }) {
				app.Permissions = append(app.Permissions, p)
			}
		}
	}) {
		a.ok(w)
	}
}

// revokeConsent withdraws an app's consent for one resource, for one user
// or (upn "") for everyone (Emulator.RevokeConsent).
func (a *adminAPI) revokeConsent(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ClientID string `json:"client_id"`
		UPN      string `json:"upn"`
		Resource string `json:"resource"`
	}
	if !decode(w, r, &req) {
		return
	}
	if req.Resource == "" {
		adminError(w, http.StatusBadRequest, `want {"client_id": ..., "upn": ... or "", "resource": "https://graph.microsoft.com"}`)
		return
	}
	if err := a.e.RevokeConsent(req.ClientID, req.UPN, req.Resource); err != nil {
		adminError(w, http.StatusNotFound, err.Error())
		return
	}
	a.ok(w)
}

// app runs f on the app registration with that client ID, answering 404 if
// there is none.
func (a *adminAPI) app(w http.ResponseWriter, clientID string, f func(*oauthmailtest.App)) bool {
	return updateOne(a, w, func(d *oauthmailtest.Directory) []*oauthmailtest.App { return d.Apps },
		func(app *oauthmailtest.App) bool { return strings.EqualFold(app.ClientID, clientID) }, f,
		fmt.Sprintf("unknown app %q", clientID))
}

// mailbox runs f on the user whose mailbox is upn, answering 404 if there is none.
func (a *adminAPI) mailbox(w http.ResponseWriter, upn string, f func(*oauthmailtest.User)) bool {
	return updateOne(a, w, func(d *oauthmailtest.Directory) []*oauthmailtest.User { return d.Users },
		func(u *oauthmailtest.User) bool { return strings.EqualFold(u.UPN, upn) }, f,
		fmt.Sprintf("unknown mailbox %q", upn))
}

// graphREST switches Graph's mail API on or off for a mailbox: off, Graph
// answers 404 MailboxNotEnabledForRESTAPI, as for a mailbox hosted
// on-premises or unlicensed (https://learn.microsoft.com/graph/api/resources/mail-api-overview).
func (a *adminAPI) graphREST(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Mailbox string `json:"mailbox"`
		Enabled *bool  `json:"enabled"`
	}
	if !decode(w, r, &req) {
		return
	}
	if req.Enabled == nil {
		adminError(w, http.StatusBadRequest, `want {"mailbox": ..., "enabled": true|false}`)
		return
	}
	if a.mailbox(w, req.Mailbox, func(u *oauthmailtest.User) { u.GraphRESTDisabled = !*req.Enabled }) {
		a.ok(w)
	}
}

// graphThrottle makes Graph answer the mailbox's next count requests with
// 429 and Retry-After (https://learn.microsoft.com/graph/throttling-limits#outlook-service-limits).
func (a *adminAPI) graphThrottle(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Mailbox    string `json:"mailbox"`
		Count      int    `json:"count"`
		RetryAfter int    `json:"retry_after_seconds"`
	}
	if !decode(w, r, &req) {
		return
	}
	if req.Mailbox == "" || req.Count < 0 || req.RetryAfter < 0 {
		adminError(w, http.StatusBadRequest, `want {"mailbox": ..., "count": n >= 0, "retry_after_seconds": n >= 0}`)
		return
	}
	if !a.mailbox(w, req.Mailbox, func(*oauthmailtest.User) {}) {
		return
	}
	a.e.InjectGraph(oauthmailtest.GraphFault{Mailbox: req.Mailbox, Status: http.StatusTooManyRequests,
		Code: "ApplicationThrottled", RetryAfter: time.Duration(req.RetryAfter) * time.Second, Count: req.Count})
	a.ok(w)
}

func (a *adminAPI) expireSecrets(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ClientID string `json:"client_id"`
	}
	if !decode(w, r, &req) {
		return
	}
	now := a.e.Clock().Now()
	if a.app(w, req.ClientID, func(app *oauthmailtest.App) {
		for i := range app.Secrets {
			app.Secrets[i].Expires = now.Add(-time.Second)
		}
	}) {
		a.ok(w)
	}
}

func (a *adminAPI) slowDown(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Enabled bool `json:"enabled"`
	}
	if !decode(w, r, &req) {
		return
	}
	a.e.SlowDownFastPolls(req.Enabled)
	a.ok(w)
}

func (a *adminAPI) httpFault(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Path       string `json:"path"`
		Count      int    `json:"count"`
		Status     int    `json:"status"`
		RetryAfter int    `json:"retry_after_seconds"`
		Reset      bool   `json:"reset"`
		DelayMS    int    `json:"delay_ms"`
	}
	if !decode(w, r, &req) {
		return
	}
	if req.Path == "" || req.Count < 0 || req.RetryAfter < 0 || req.DelayMS < 0 || req.Status != 0 && (req.Status < 400 || req.Status > 599) {
		adminError(w, http.StatusBadRequest, `want {"path": "/token", "count": n >= 0, "status": 0 or 400-599, "retry_after_seconds": n >= 0, "reset": bool, "delay_ms": n >= 0}`)
		return
	}
	a.e.InjectHTTP(oauthmailtest.HTTPFault{Path: req.Path, Count: req.Count, Status: req.Status,
		RetryAfter: time.Duration(req.RetryAfter) * time.Second, Reset: req.Reset, Delay: time.Duration(req.DelayMS) * time.Millisecond})
	a.ok(w)
}

func (a *adminAPI) smtpFault(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Stage string `json:"stage"`
		Reply string `json:"reply"`
		Count int    `json:"count"`
	}
	if !decode(w, r, &req) {
		return
	}
	stages := map[string]oauthmailtest.SMTPStage{"banner": oauthmailtest.StageBanner, "starttls": oauthmailtest.StageStartTLS,
		"auth": oauthmailtest.StageAuth, "data": oauthmailtest.StageData, "data-end": oauthmailtest.StageDataEnd}
	st, ok := stages[req.Stage]
	if !ok || req.Count < 0 {
		adminError(w, http.StatusBadRequest, fmt.Sprintf("stage %q: want banner, starttls, auth, data or data-end (and count >= 0)", req.Stage))
		return
	}
	a.e.InjectSMTP(oauthmailtest.SMTPFault{Stage: st, Reply: req.Reply, Count: req.Count})
	a.ok(w)
}

// serveAdmin listens on addr, which must be a loopback address, and serves
// the admin API until the emulator stops. It returns the base URL.
func serveAdmin(addr string, a *adminAPI) (string, func(), error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return "", nil, fmt.Errorf("--admin-listen %q: %v", addr, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return "", nil, fmt.Errorf("--admin-listen %q: the admin API listens on a loopback address only (127.0.0.1 or ::1)", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("admin API: %w", err)
	}
	srv := &http.Server{Handler: a, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), func() { _ = srv.Close() }, nil
}

// startAdmin serves the admin API for e unless --admin-listen is empty; it
// returns its URL and token ("" when off) and a function that stops it.
func (f *emulatorFidelity) startAdmin(e *oauthmailtest.Emulator) (url, token string, stop func(), err error) {
	if *f.adminListen == "" {
		return "", "", func() {}, nil
	}
	a := newAdminAPI(e)
	url, stop, err = serveAdmin(*f.adminListen, a)
	if err != nil {
		return "", "", nil, err
	}
	return url, a.token, stop, nil
}
