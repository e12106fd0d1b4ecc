package oauthmailtest

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// maxBody caps request bodies. Real token requests are a few kilobytes; a
// larger body is refused before it is parsed.
const maxBody = 64 << 10

// entraServer is the Entra ID half of the emulator: the HTTPS server with
// Microsoft's login paths. Its state lives behind core.mu.
type entraServer struct {
	c    *core
	o    *Options
	ln   net.Listener
	srv  *http.Server
	mux  *http.ServeMux
	base string // scheme://host:port, no trailing slash

	// Guarded by c.mu.
	devices   map[string]*deviceGrant  // by device code
	userCodes map[string]*deviceGrant  // by normalised user code
	codes     map[string]*authCode     // by authorization code
	refresh   map[string]*refreshGrant // by refresh token
	flows     map[string]*pageFlow     // sign-in pages in progress, by flow id
	consents  map[string][]string      // clientID|oid -> scope names the user consented to
	revoked   map[string]bool          // clientID|tid|family: tenant-wide consent withdrawn for one resource
	requests  []Request
	faults    []*HTTPFault
	slowDown  bool                 // answer slow_down to polls faster than the interval
	jtis      map[string]time.Time // client|jti of client assertions used -> when to forget them
	graph     http.Handler         // the Graph side, /v1.0/ and /upload/
}

// startEntra listens and serves the Entra side. It panics if it cannot listen.
func startEntra(c *core, o *Options) *entraServer {
	addr := o.HTTPAddr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		panic("oauthmailtest: entra listen: " + err.Error())
	}
	s := &entraServer{
		c: c, o: o, ln: ln, mux: http.NewServeMux(),
		devices: map[string]*deviceGrant{}, userCodes: map[string]*deviceGrant{},
		codes: map[string]*authCode{}, refresh: map[string]*refreshGrant{},
		flows: map[string]*pageFlow{}, consents: map[string][]string{}, revoked: map[string]bool{}, jtis: map[string]time.Time{},
		slowDown: o.SlowDownFastPolls,
	}
	scheme := "https"
	if o.PlainHTTP {
		scheme = "http"
	}
	s.base = scheme + "://" + ln.Addr().String()
	s.routes()
	s.srv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		// HTTP/1.1 only, so that a Reset fault can hijack the connection.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
		ErrorLog:     nil,
	}
	if o.PlainHTTP {
		go s.srv.Serve(ln)
	} else {
		s.srv.TLSConfig = c.serverTLS()
		go s.srv.ServeTLS(ln, "", "")
	}
	return s
}

func (s *entraServer) close() { s.srv.Close() }

func (s *entraServer) routes() {
	m := s.mux
	m.HandleFunc("/{tenant}/oauth2/v2.0/devicecode", s.handleDeviceCode)
	m.HandleFunc("/{tenant}/oauth2/v2.0/token", s.handleToken)
	m.HandleFunc("/{tenant}/oauth2/v2.0/authorize", s.handleAuthorize)
	m.HandleFunc("/{tenant}/adminconsent", s.handleAdminConsent)
	m.HandleFunc("/{tenant}/v2.0/adminconsent", s.handleAdminConsent)
	m.HandleFunc("/{tenant}/v2.0/.well-known/openid-configuration", s.handleDiscovery)
	m.HandleFunc("/{tenant}/discovery/v2.0/keys", s.handleKeys)
	m.HandleFunc("/devicelogin", s.handleDeviceLogin)
	m.HandleFunc("/login", s.handleLogin)
	m.HandleFunc("/error", s.handleErrorLookup)
	m.HandleFunc("/{$}", s.handleRoot)
}

// recorder captures what the handler answered, for the request log.
type recorder struct {
	http.ResponseWriter
	status   int
	wrote    bool
	err      string
	aadsts   int
	clientID string
}

func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if !r.wrote {
		r.status, r.wrote = http.StatusOK, true
	}
	return r.ResponseWriter.Write(b)
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// ServeHTTP caps the body, applies injected faults, routes, and logs the request.
func (s *entraServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := s.c.clock.Now()
	if lp := strings.ToLower(r.URL.Path); s.graph != nil && (strings.HasPrefix(lp, "/v1.0/") || strings.HasPrefix(lp, "/upload/") || lp == "/_emulator/store") {
		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		s.graph.ServeHTTP(rec, r)
		s.logRequest(r.Context(), start, r, rec)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	rec := &recorder{ResponseWriter: w, status: http.StatusOK}
	r.URL.Path, r.URL.RawPath = foldPath(r.URL.Path), ""
	if f := s.takeFault(r.URL.Path); f != nil {
		_ = r.ParseForm()
		if !s.applyFault(rec, r, f) {
			s.logRequest(r.Context(), start, r, &recorder{status: 0, err: "connection reset"})
			// No answer at all: a handler that just returned would be
			// answered 200 with an empty body.
			panic(http.ErrAbortHandler)
		}
	} else {
		s.mux.ServeHTTP(rec, r)
	}
	s.logRequest(r.Context(), start, r, rec)
}

// foldPath lower-cases every path segment but the {tenant} one, so that
// /{tenant}/oauth2/V2.0/token, as vendor manuals print it, reaches the token
// endpoint. Whether Entra matches its paths case-insensitively is not
// documented (UNVERIFIED): its endpoints are served by IIS/ASP.NET, whose
// routing ignores case, and the emulator follows that so that what a manual
// says to type works here as it does against login.microsoftonline.com.
// The tenant segment keeps its case (tenants are resolved case-insensitively
// anyway, and discovery echoes the segment as given).
func foldPath(p string) string {
	segs := strings.Split(p, "/")
	// segs[0] is "" (the path starts with "/"); segs[1] is the tenant when
	// more segments follow.
	for i := 1; i < len(segs); i++ {
		if i == 1 && len(segs) > 2 {
			continue
		}
		segs[i] = strings.ToLower(segs[i])
	}
	return strings.Join(segs, "/")
}

func (s *entraServer) takeFault(path string) *HTTPFault {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	for i, f := range s.faults {
		if strings.HasSuffix(path, f.Path) {
			f.Count--
			if f.Count <= 0 {
				s.faults = append(s.faults[:i:i], s.faults[i+1:]...)
			}
			c := *f
			return &c
		}
	}
	return nil
}

// applyFault answers r as the fault says. It returns false if the connection
// was reset without an answer.
func (s *entraServer) applyFault(w *recorder, r *http.Request, f *HTTPFault) bool {
	if f.Delay > 0 {
		t := time.NewTimer(f.Delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return false
		}
	}
	if f.Reset {
		hj, ok := w.ResponseWriter.(http.Hijacker)
		if !ok {
			panic("oauthmailtest: connection cannot be hijacked for a Reset fault")
		}
		conn, _, err := hj.Hijack()
		if err != nil {
			return false
		}
		if nc, ok := conn.(interface{ NetConn() net.Conn }); ok {
			if tc, ok := nc.NetConn().(*net.TCPConn); ok {
				tc.SetLinger(0) // RST instead of FIN
			}
		} else if tc, ok := conn.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
		conn.Close()
		return false
	}
	status := f.Status
	if status == 0 {
		if f.Delay > 0 {
			s.mux.ServeHTTP(w, r) // delay only
			return true
		}
		status = http.StatusServiceUnavailable
	}
	if f.RetryAfter > 0 {
		secs := int((f.RetryAfter + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
	}
	// Emulator choice (UNVERIFIED, FIDELITY.md): an injected failure is
	// answered in Entra's error shape with temporarily_unavailable.
	s.writeError(w, r, &aadError{status: status, code: "temporarily_unavailable", aadsts: 90033,
		msg: "A transient error has occurred. Please try again."})
	return true
}

func (s *entraServer) logRequest(ctx context.Context, at time.Time, r *http.Request, rec *recorder) {
	clientID := rec.clientID
	if clientID == "" && r.Form != nil {
		clientID = r.Form.Get("client_id")
	}
	gt, scope := "", ""
	if r.Form != nil {
		gt, scope = r.Form.Get("grant_type"), r.Form.Get("scope")
	}
	req := Request{Time: at, Method: r.Method, Path: r.URL.Path, GrantType: gt, Scope: scope,
		ClientID: clientID, Status: rec.status, Error: rec.err, AADSTS: rec.aadsts}
	s.c.mu.Lock()
	s.requests = append(s.requests, req)
	s.c.mu.Unlock()
	// No query, form values or headers: they carry codes and tokens.
	s.o.Logger.LogAttrs(ctx, slog.LevelDebug, "oauthmailtest: http request",
		slog.String("http.method", req.Method), slog.String("http.path", req.Path),
		slog.String("oauth.grant", req.GrantType), slog.String("oauth.client_id", req.ClientID),
		slog.Int("http.status", req.Status), slog.String("oauth.error", req.Error),
		slog.Int("aadsts", req.AADSTS))
}

// aadError is an Entra ID error answer (https://learn.microsoft.com/entra/identity-platform/reference-error-codes).
type aadError struct {
	status   int
	code     string // the OAuth "error" value
	aadsts   int
	msg      string // after "AADSTSnnnn: "
	suberror string
	extra    []int // further error_codes
}

func (e *aadError) Error() string { return fmt.Sprintf("%s: AADSTS%d: %s", e.code, e.aadsts, e.msg) }

// errBody is the JSON error body, fields in Microsoft's order
// (https://learn.microsoft.com/entra/identity-platform/reference-error-codes;
// a real body: secureworks/squarephish#3).
type errBody struct {
	Error         string `json:"error"`
	Description   string `json:"error_description"`
	ErrorCodes    []int  `json:"error_codes"`
	Timestamp     string `json:"timestamp"`
	TraceID       string `json:"trace_id"`
	CorrelationID string `json:"correlation_id"`
	ErrorURI      string `json:"error_uri"`
	SubError      string `json:"suberror,omitempty"`
}

var guidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// msTime formats t as Entra's error timestamps: "2023-01-05 20:36:23Z"
// (secureworks/squarephish#3).
func msTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") }

// netTime formats t as .NET's round-trip format Entra uses inside messages
// ("2020-02-26T21:52:54.2810613Z" in the AADSTS700082 message of Azure/azure-cli#14244).
func netTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.0000000Z") }

func (s *entraServer) errorBody(r *http.Request, e *aadError) errBody {
	trace := newGUID()
	corr := r.Header.Get("client-request-id")
	if !guidRE.MatchString(corr) {
		corr = newGUID()
	}
	ts := msTime(s.c.clock.Now())
	codes := append([]int{e.aadsts}, e.extra...)
	return errBody{
		Error: e.code,
		// "AADSTS<code>: <message>\r\nTrace ID: …\r\nCorrelation ID: …\r\nTimestamp: …"
		// (https://learn.microsoft.com/entra/identity-platform/reference-error-codes).
		Description: fmt.Sprintf("AADSTS%d: %s\r\nTrace ID: %s\r\nCorrelation ID: %s\r\nTimestamp: %s",
			e.aadsts, e.msg, trace, corr, ts),
		ErrorCodes: codes, Timestamp: ts, TraceID: trace, CorrelationID: corr,
		ErrorURI: s.scheme() + "://" + r.Host + "/error?code=" + strconv.Itoa(e.aadsts),
		SubError: e.suberror,
	}
}

func (s *entraServer) scheme() string {
	if s.o.PlainHTTP {
		return "http"
	}
	return "https"
}

// writeError answers with Microsoft's error body and headers (https://learn.microsoft.com/entra/identity-platform/reference-error-codes).
func (s *entraServer) writeError(w http.ResponseWriter, r *http.Request, e *aadError) {
	if rec, ok := w.(*recorder); ok {
		rec.err, rec.aadsts = e.code, e.aadsts
	}
	body := s.errorBody(r, e)
	w.Header().Set("x-ms-request-id", body.TraceID)
	s.writeJSON(w, e.status, body)
}

func (s *entraServer) writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	// Headers of real token-endpoint answers (Azure/azure-cli#22251,
	// Azure/azure-sdk-for-python#32375).
	h.Set("Cache-Control", "no-store, no-cache")
	h.Set("Pragma", "no-cache")
	h.Set("Expires", "-1")
	h.Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	w.Write(b)
}

// Common errors, with the wording Entra answers
// (https://learn.microsoft.com/entra/identity-platform/reference-error-codes;
// a real AADSTS900144 body: MicrosoftDocs/azure-docs#46110).
func errMissing(param string) *aadError {
	return &aadError{status: 400, code: "invalid_request", aadsts: 900144,
		msg: fmt.Sprintf("The request body must contain the following parameter: '%s'.", param)}
}

func errMalformed() *aadError {
	// AADSTS9002313 as seen in davidjrh/dnn.azureadprovider#112 (error value
	// UNVERIFIED: invalid_request chosen).
	return &aadError{status: 400, code: "invalid_request", aadsts: 9002313,
		msg: "Invalid request. Request is malformed or invalid."}
}

func errTooLarge() *aadError {
	// Emulator choice (UNVERIFIED): 413 with Entra's malformed-request error.
	return &aadError{status: http.StatusRequestEntityTooLarge, code: "invalid_request", aadsts: 9002313,
		msg: "Invalid request. Request is malformed or invalid. The request body is too large."}
}

func errPostOnly(method string) *aadError {
	// UNVERIFIED: AADSTS900561 is what Entra answers a GET to the token endpoint.
	return &aadError{status: 400, code: "invalid_request", aadsts: 900561,
		msg: fmt.Sprintf("The endpoint only accepts POST, OPTIONS requests. Received a %s request.", method)}
}

func errAppNotFound(clientID, tenant string) *aadError {
	// AADSTS700016 as seen in vippsas/vipps-ecom-api#183.
	return &aadError{status: 400, code: "unauthorized_client", aadsts: 700016,
		msg: fmt.Sprintf("Application with identifier '%s' was not found in the directory '%s'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.", clientID, tenant)}
}

// parsePost parses a POST form, answering the error itself when it cannot.
func (s *entraServer) parsePost(w http.ResponseWriter, r *http.Request) bool {
	if r.Method != http.MethodPost {
		s.writeError(w, r, errPostOnly(r.Method))
		return false
	}
	if err := r.ParseForm(); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			s.writeError(w, r, errTooLarge())
		} else {
			s.writeError(w, r, errMalformed())
		}
		return false
	}
	if rec, ok := w.(*recorder); ok {
		rec.clientID = r.PostForm.Get("client_id")
	}
	return true
}

// tenantKind is what the {tenant} path segment names (https://learn.microsoft.com/entra/identity-platform/v2-protocols-oidc).
type tenantKind int

const (
	tenantSpecific tenantKind = iota
	tenantCommon
	tenantOrganizations
	tenantConsumers
)

// tenantRef is a resolved {tenant} segment.
type tenantRef struct {
	seg  string
	kind tenantKind
	t    *Tenant // the tenant for tenantSpecific (and consumers, if the directory has it)
}

var dnsRE = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?)+$`)

// resolveTenant resolves a {tenant} segment; c.mu must be held.
func (s *entraServer) resolveTenant(seg string) (tenantRef, *aadError) {
	ref := tenantRef{seg: seg}
	switch strings.ToLower(seg) {
	case "common":
		ref.kind = tenantCommon
		return ref, nil
	case "organizations":
		ref.kind = tenantOrganizations
		return ref, nil
	case "consumers":
		ref.kind = tenantConsumers
		ref.t = s.c.dir.tenantByID(ConsumerTenantID)
		return ref, nil
	}
	if t := s.c.dir.tenantByName(seg); t != nil {
		ref.t = t
		if t.Consumer {
			ref.kind = tenantConsumers
		}
		return ref, nil
	}
	if !guidRE.MatchString(seg) && !dnsRE.MatchString(seg) {
		// AADSTS900023 as seen in caddy-dns/azure#3.
		return ref, &aadError{status: 400, code: "invalid_request", aadsts: 900023,
			msg: fmt.Sprintf("Specified tenant identifier '%s' is neither a valid DNS name, nor a valid external domain.", seg)}
	}
	// AADSTS90002 as seen in microsoftgraph/windowsupdates-webapplication-sample#6.
	return ref, &aadError{status: 400, code: "invalid_tenant", aadsts: 90002,
		msg: fmt.Sprintf("Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.", seg)}
}

// tenantOf resolves r's {tenant} segment under the lock, answering the error itself.
func (s *entraServer) tenantOf(w http.ResponseWriter, r *http.Request) (tenantRef, bool) {
	s.c.mu.Lock()
	ref, e := s.resolveTenant(r.PathValue("tenant"))
	s.c.mu.Unlock()
	if e != nil {
		s.writeError(w, r, e)
		return ref, false
	}
	return ref, true
}

// appAvailable checks that app may be used through the tenant segment ref
// (AADSTS700016, AADSTS50194: https://learn.microsoft.com/entra/identity-platform/reference-error-codes).
func appAvailable(app *App, ref tenantRef) *aadError {
	switch ref.kind {
	case tenantCommon, tenantOrganizations:
		if !app.MultiTenant && !(ref.kind == tenantCommon && app.PersonalAccounts) {
			// AADSTS50194 (wording UNVERIFIED).
			return &aadError{status: 400, code: "invalid_request", aadsts: 50194,
				msg: fmt.Sprintf("Application '%s'(%s) is not configured as a multi-tenant application. Usage of the /%s endpoint is not supported for such applications. Use a tenant-specific endpoint or configure the application to be multi-tenant.", app.ClientID, app.Name, ref.seg)}
		}
	case tenantConsumers:
		if !app.PersonalAccounts {
			return errAppNotFound(app.ClientID, ref.seg)
		}
	default:
		if !strings.EqualFold(ref.t.ID, app.HomeTenant) && !app.MultiTenant {
			return errAppNotFound(app.ClientID, ref.seg)
		}
	}
	return nil
}

// userAllowed checks that user may sign in through ref to app. It returns an
// error message for a sign-in page, or "".
func userAllowed(app *App, u *User, ref tenantRef, dir *Directory) *aadError {
	ut := dir.tenantByID(u.TenantID)
	consumer := ut != nil && ut.Consumer
	switch ref.kind {
	case tenantOrganizations:
		if consumer {
			return errUserNotInTenant(u.UPN, ref.seg)
		}
	case tenantConsumers:
		if !consumer {
			return errUserNotInTenant(u.UPN, ref.seg)
		}
	case tenantSpecific:
		if !strings.EqualFold(ref.t.ID, u.TenantID) {
			return errUserNotInTenant(u.UPN, ref.seg)
		}
	}
	switch {
	case strings.EqualFold(u.TenantID, app.HomeTenant):
	case consumer && app.PersonalAccounts:
	case !consumer && app.MultiTenant:
	default:
		return errAppNotFound(app.ClientID, u.TenantID)
	}
	return nil
}

func errUserNotInTenant(upn, tenant string) *aadError {
	// Sign-in page error; AADSTS50034 is Entra's "user account does not exist"
	// (UNVERIFIED: no public source).
	return &aadError{status: 400, code: "invalid_grant", aadsts: 50034,
		msg: fmt.Sprintf("The user account %s does not exist in the %s directory. To sign into this application, the account must be added to the directory.", upn, tenant)}
}

// issuerFor is the v2 issuer of a tenant (https://learn.microsoft.com/entra/identity-platform/access-tokens,
// https://learn.microsoft.com/entra/identity-platform/id-token-claims-reference).
func (s *entraServer) issuerFor(tid string) string { return s.base + "/" + tid + "/v2.0" }

func (s *entraServer) handleDiscovery(w http.ResponseWriter, r *http.Request) {
	ref, ok := s.tenantOf(w, r)
	if !ok {
		return
	}
	seg := ref.seg
	var issuer string
	switch {
	case ref.kind == tenantCommon || ref.kind == tenantOrganizations:
		issuer = s.base + "/{tenantid}/v2.0" // the templated issuer Entra documents
	case ref.kind == tenantConsumers:
		issuer = s.issuerFor(ConsumerTenantID)
	default:
		issuer = s.issuerFor(ref.t.ID)
	}
	p := s.base + "/" + seg
	doc := map[string]any{
		"token_endpoint":                        p + "/oauth2/v2.0/token",
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
		"jwks_uri":                              p + "/discovery/v2.0/keys",
		"response_modes_supported":              []string{"query", "fragment", "form_post"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
		"scopes_supported":                      []string{"openid", "profile", "email", "offline_access"},
		"issuer":                                issuer,
		"request_uri_parameter_supported":       false,
		"userinfo_endpoint":                     "https://graph.microsoft.com/oidc/userinfo",
		"authorization_endpoint":                p + "/oauth2/v2.0/authorize",
		"device_authorization_endpoint":         p + "/oauth2/v2.0/devicecode",
		"http_logout_supported":                 true,
		"frontchannel_logout_supported":         true,
		"end_session_endpoint":                  p + "/oauth2/v2.0/logout",
		"claims_supported":                      []string{"sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "preferred_username", "name", "tid", "ver", "oid", "upn", "email"},
		"tenant_region_scope":                   "WW",
		"cloud_instance_name":                   "microsoftonline.com",
		"code_challenge_methods_supported":      []string{"plain", "S256"},
	}
	s.writeJSON(w, http.StatusOK, doc)
}

func (s *entraServer) handleKeys(w http.ResponseWriter, r *http.Request) {
	ref, ok := s.tenantOf(w, r)
	if !ok {
		return
	}
	iss := s.base + "/{tenantid}/v2.0"
	if ref.kind == tenantSpecific {
		iss = s.issuerFor(ref.t.ID)
	}
	pub := s.c.signKey.PublicKey
	key := map[string]any{
		"kty": "RSA", "use": "sig", "kid": s.c.kid, "x5t": s.c.kid,
		"n":      base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
		"e":      base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
		"x5c":    []string{base64.StdEncoding.EncodeToString(s.c.signCert)},
		"issuer": iss,
	}
	s.writeJSON(w, http.StatusOK, map[string]any{"keys": []any{key}})
}

func (s *entraServer) handleErrorLookup(w http.ResponseWriter, r *http.Request) {
	code := r.URL.Query().Get("code")
	if _, err := strconv.Atoi(code); err != nil {
		code = ""
	}
	s.renderPage(w, http.StatusOK, "error", pageData{Title: "Error lookup",
		Message: "AADSTS" + code + ": see the emulator's FIDELITY.md for what this code means here."})
}

func (s *entraServer) handleRoot(w http.ResponseWriter, r *http.Request) {
	s.renderPage(w, http.StatusOK, "info", pageData{Title: "devicemail emulator",
		Message: "Entra ID emulator for tests. Sign in with a device code at /devicelogin."})
}

// pairwise returns a per-app subject for a user, as Entra's sub claim is
// ("pairwise per app": https://learn.microsoft.com/entra/identity-platform/id-token-claims-reference).
func pairwise(oid, clientID string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(oid) + "|" + strings.ToLower(clientID)))
	return base64.RawURLEncoding.EncodeToString(sum[:])[:43]
}

// servicePrincipalOID is a stable object ID for an app's service principal in a tenant.
func servicePrincipalOID(clientID, tid string) string {
	sum := sha256.Sum256([]byte("sp|" + strings.ToLower(clientID) + "|" + strings.ToLower(tid)))
	b := sum[:16]
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
