package oauthmailtest

import (
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
)

// The sign-in pages are plain HTML forms, so that a browser without
// JavaScript (or a test with net/http) can complete them.

type flowKind int

const (
	flowDevice flowKind = iota
	flowAuthorize
	flowAdminConsent
)

// pageFlow is one sign-in in progress on the pages.
type pageFlow struct {
	id       string
	kind     flowKind
	grant    *deviceGrant // flowDevice
	az       *authzReq    // flowAuthorize, flowAdminConsent
	clientID string
	ref      tenantRef
	scopes   *scopeSet
	upn      string
	pwOK     bool
	mfaOK    bool
}

// authzReq holds the parameters of /authorize or an admin consent request.
type authzReq struct {
	redirectURI, state, responseMode string
	challenge, method, nonce, hint   string
	adminV2                          bool
	scopeParam                       string
}

type kv struct{ K, V string }

type pageData struct {
	Title, Message, Error string
	Flow, Code, Login     string
	AppName, Tenant       string
	Scopes                []string
	Target                string
	Params                []kv
}

// outcome is what a page handler decided, rendered after c.mu is released.
type outcome struct {
	page     string
	status   int
	data     pageData
	redirect string // 302 Location
	post     bool   // form_post: page "formpost" with data.Target/Params
}

var pageTmpl = template.Must(template.New("pages").Parse(`
{{define "head"}}<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{{.Title}}</title>
<meta name="viewport" content="width=device-width"></head><body><h1>{{.Title}}</h1>
{{if .Error}}<p role="alert" id="error">{{.Error}}</p>{{end}}{{end}}
{{define "foot"}}<p><small>devicemail emulator — for tests, not for production.</small></p></body></html>{{end}}
{{define "code"}}{{template "head" .}}<p>Enter the code displayed on your app or device.</p>
<form method="post" action="/devicelogin"><label>Code <input name="otc" value="{{.Code}}" autocomplete="off" autofocus></label>
<button type="submit">Next</button></form>{{template "foot" .}}{{end}}
{{define "account"}}{{template "head" .}}<p>Sign in to continue to {{.AppName}}.</p>
<form method="post" action="/login"><input type="hidden" name="flow" value="{{.Flow}}"><input type="hidden" name="action" value="account">
<label>Email, phone, or Skype <input name="login" type="email" value="{{.Login}}" autofocus></label>
<button type="submit">Next</button></form>{{template "foot" .}}{{end}}
{{define "password"}}{{template "head" .}}<p>{{.Login}}</p>
<form method="post" action="/login"><input type="hidden" name="flow" value="{{.Flow}}"><input type="hidden" name="action" value="password">
<label>Password <input name="passwd" type="password" autofocus></label>
<button type="submit">Sign in</button></form>{{template "foot" .}}{{end}}
{{define "mfa"}}{{template "head" .}}<p>{{.Login}}: approve the sign-in request (emulated multi-factor authentication).</p>
<form method="post" action="/login"><input type="hidden" name="flow" value="{{.Flow}}"><input type="hidden" name="action" value="mfa">
<button type="submit" name="approve" value="yes">Approve</button></form>{{template "foot" .}}{{end}}
{{define "consent"}}{{template "head" .}}<p>{{.AppName}} needs permission to access resources in your organization that only an admin can grant, or that you grant for yourself:</p>
<ul>{{range .Scopes}}<li>{{.}}</li>{{end}}</ul>
<form method="post" action="/login"><input type="hidden" name="flow" value="{{.Flow}}"><input type="hidden" name="action" value="consent">
<button type="submit" name="accept" value="yes">Accept</button> <button type="submit" name="accept" value="no">Cancel</button></form>{{template "foot" .}}{{end}}
{{define "admin"}}{{template "head" .}}<p>Permissions requested by {{.AppName}}. Accept for your organization ({{.Tenant}}):</p>
<ul>{{range .Scopes}}<li>{{.}}</li>{{end}}</ul>
<form method="post" action="/login"><input type="hidden" name="flow" value="{{.Flow}}"><input type="hidden" name="action" value="admin">
<button type="submit" name="accept" value="yes">Accept</button> <button type="submit" name="accept" value="no">Cancel</button></form>{{template "foot" .}}{{end}}
{{define "confirm"}}{{template "head" .}}<p>Are you trying to sign in to {{.AppName}}? Only continue if you downloaded the app from a store or website that you trust.</p>
<form method="post" action="/login"><input type="hidden" name="flow" value="{{.Flow}}"><input type="hidden" name="action" value="confirm">
<button type="submit" name="accept" value="yes">Continue</button> <button type="submit" name="accept" value="no">Cancel</button></form>{{template "foot" .}}{{end}}
{{define "done"}}{{template "head" .}}<p id="done">{{.Message}}</p>{{template "foot" .}}{{end}}
{{define "error"}}{{template "head" .}}<p id="message">{{.Message}}</p>{{template "foot" .}}{{end}}
{{define "info"}}{{template "head" .}}<p>{{.Message}}</p>{{template "foot" .}}{{end}}
{{define "formpost"}}<!DOCTYPE html><html><head><meta charset="utf-8"><title>Working...</title></head>
<body onload="javascript:document.forms[0].submit()"><form method="post" action="{{.Target}}">
{{range .Params}}<input type="hidden" name="{{.K}}" value="{{.V}}">{{end}}
<noscript><p>Script is disabled. Click Submit to continue.</p><input type="submit" value="Submit"></noscript></form></body></html>{{end}}
`))

func (s *entraServer) renderPage(w http.ResponseWriter, status int, name string, d pageData) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store, no-cache")
	h.Set("X-Frame-Options", "DENY")
	w.WriteHeader(status)
	if err := pageTmpl.ExecuteTemplate(w, name, d); err != nil {
		s.o.Logger.Debug("oauthmailtest: page template", "error", err.Error())
	}
}

func (s *entraServer) render(w http.ResponseWriter, r *http.Request, o outcome) {
	if o.data.Error != "" {
		if rec, ok := w.(*recorder); ok && rec.err == "" {
			rec.err = "page_error"
		}
	}
	switch {
	case o.redirect != "":
		http.Redirect(w, r, o.redirect, http.StatusFound)
	case o.post:
		s.renderPage(w, http.StatusOK, "formpost", o.data)
	default:
		st := o.status
		if st == 0 {
			st = http.StatusOK
		}
		s.renderPage(w, st, o.page, o.data)
	}
}

// errPage is a sign-in error page carrying an AADSTS code, as Entra shows for
// errors it cannot redirect (AADSTS50011: WangNingkai/OLAINDEX#456; 50020:
// json-schema-org/json-schema-org.github.io#404).
func (s *entraServer) errPage(w http.ResponseWriter, e *aadError) outcome {
	if rec, ok := w.(*recorder); ok {
		rec.err, rec.aadsts = e.code, e.aadsts
	}
	return outcome{page: "error", status: http.StatusBadRequest, data: pageData{
		Title: "Sorry, but we're having trouble signing you in.",
		Message: fmt.Sprintf("AADSTS%d: %s\nTimestamp: %s", e.aadsts, e.msg,
			s.c.clock.Now().UTC().Format(time.RFC3339))}}
}

func (s *entraServer) parsePage(w http.ResponseWriter, r *http.Request) bool {
	if err := r.ParseForm(); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			s.render(w, r, s.errPage(w, errTooLarge()))
		} else {
			s.render(w, r, s.errPage(w, errMalformed()))
		}
		return false
	}
	return true
}

func (s *entraServer) handleDeviceLogin(w http.ResponseWriter, r *http.Request) {
	if !s.parsePage(w, r) {
		return
	}
	d := pageData{Title: "Enter code", Code: r.Form.Get("otc")}
	if r.Method != http.MethodPost {
		s.renderPage(w, http.StatusOK, "code", d)
		return
	}
	s.c.mu.Lock()
	o := s.deviceLoginPost(w, r, d)
	s.c.mu.Unlock()
	s.render(w, r, o)
}

func (s *entraServer) deviceLoginPost(w http.ResponseWriter, r *http.Request, d pageData) outcome {
	g, err := s.pendingGrant(d.Code)
	if err != nil {
		// The real page's text for a wrong code (AADSTS70018 is Entra's BadVerificationCode).
		d.Error = "That code didn't work. Check the code and try again."
		if rec, ok := w.(*recorder); ok {
			rec.err, rec.aadsts = "bad_verification_code", 70018
		}
		return outcome{page: "code", data: d}
	}
	f := &pageFlow{id: randomToken("flow", 18), kind: flowDevice, grant: g, clientID: g.clientID, ref: g.ref, scopes: g.scopes}
	s.flows[f.id] = f
	return s.next(w, f, "")
}

// appName returns the display name of a flow's app; c.mu is held.
func (s *entraServer) appName(f *pageFlow) string {
	if a := s.c.dir.app(f.clientID); a != nil && a.Name != "" {
		return a.Name
	}
	return f.clientID
}

// scopeList lists a flow's scopes for a consent page.
func scopeList(ss *scopeSet) []string {
	var out []string
	for _, p := range ss.pairs {
		out = append(out, p[1])
	}
	for k := range ss.oidc {
		out = append(out, k)
	}
	sort.Strings(out[len(out)-len(ss.oidc):])
	return out
}

// adminConsentRoles are the Entra directory roles that may grant tenant-wide
// admin consent: Global Administrator and Privileged Role Administrator for
// any permission, Cloud Application Administrator and Application
// Administrator for permissions other than Microsoft Graph app roles
// (https://learn.microsoft.com/entra/identity/enterprise-apps/grant-admin-consent#prerequisites).
// The emulator's apps ask for no Graph app roles, so all four suffice.
var adminConsentRoles = []string{"Global Administrator", "Privileged Role Administrator",
	"Cloud Application Administrator", "Application Administrator"}

func canGrantAdminConsent(u *User) bool {
	for _, r := range u.Roles {
		if hasWord(adminConsentRoles, r) {
			return true
		}
	}
	return false
}

// next decides the page that follows in flow f; c.mu is held.
func (s *entraServer) next(w http.ResponseWriter, f *pageFlow, errMsg string) outcome {
	d := pageData{Flow: f.id, AppName: s.appName(f), Login: f.upn, Error: errMsg}
	if f.kind == flowAuthorize && f.upn == "" {
		d.Login = f.az.hint
	}
	if f.upn == "" {
		d.Title = "Sign in"
		return outcome{page: "account", data: d}
	}
	u := s.c.dir.user(f.upn)
	app := s.c.dir.app(f.clientID)
	if u == nil || app == nil {
		delete(s.flows, f.id)
		return s.errPage(w, errAppNotFound(f.clientID, f.ref.seg))
	}
	if u.Password != "" && !f.pwOK {
		d.Title = "Enter password"
		return outcome{page: "password", data: d}
	}
	if u.MFARequired && !f.mfaOK {
		d.Title = "Approve sign in request"
		return outcome{page: "mfa", data: d}
	}
	d.Scopes = scopeList(f.scopes)
	switch f.kind {
	case flowAdminConsent:
		if !canGrantAdminConsent(u) {
			delete(s.flows, f.id)
			// Only an administrator in one of the roles that may grant
			// tenant-wide consent gets the consent page
			// (https://learn.microsoft.com/entra/identity/enterprise-apps/grant-admin-consent#prerequisites).
			// Entra's page for anyone else says "Need admin approval"; the
			// AADSTS number shown (90094) is UNVERIFIED.
			return s.errPage(w, &aadError{status: 400, code: "access_denied", aadsts: 90094,
				msg: fmt.Sprintf("Need admin approval. %s needs permission to access resources in your organization that only an admin can grant. The user %s is not in a role that may grant admin consent (%s).",
					app.Name, u.UPN, strings.Join(adminConsentRoles, ", "))})
		}
		d.Title, d.Tenant = "Permissions requested", u.TenantID
		return outcome{page: "admin", data: d}
	case flowDevice:
		if s.needsConsent(app, u, f.scopes) && s.canConsent(app, u) {
			d.Title = "Permissions requested"
			return outcome{page: "consent", data: d}
		}
		d.Title = "Are you trying to sign in?"
		return outcome{page: "confirm", data: d}
	}
	// flowAuthorize
	if s.needsConsent(app, u, f.scopes) {
		if s.canConsent(app, u) {
			d.Title = "Permissions requested"
			return outcome{page: "consent", data: d}
		}
		delete(s.flows, f.id)
		e := errConsent(app)
		// UNVERIFIED: Entra shows "Need admin approval"; the emulator returns
		// consent_required to the app so that it can tell the user.
		return s.redirectBack(f.az, url.Values{"error": {"consent_required"},
			"error_description": {fmt.Sprintf("AADSTS%d: %s", e.aadsts, e.msg)}})
	}
	return s.completeAuthorize(f, u)
}

// completeAuthorize issues an authorization code and redirects; c.mu is held.
func (s *entraServer) completeAuthorize(f *pageFlow, u *User) outcome {
	delete(s.flows, f.id)
	code := randomToken("ac", 48)
	s.codes[code] = &authCode{clientID: f.clientID, redirectURI: f.az.redirectURI, challenge: f.az.challenge,
		method: f.az.method, upn: u.UPN, ref: f.ref, scopes: f.scopes, nonce: f.az.nonce, issued: s.c.clock.Now()}
	return s.redirectBack(f.az, url.Values{"code": {code}})
}

// redirectBack sends params (plus state) to the app's redirect URI in the
// requested response mode (form_post as MSAL Go's AcquireTokenInteractive
// expects it: AzureAD/microsoft-authentication-library-for-go, apps/internal/local/server.go).
func (s *entraServer) redirectBack(az *authzReq, params url.Values) outcome {
	if az.state != "" {
		params.Set("state", az.state)
	}
	switch az.responseMode {
	case "form_post":
		d := pageData{Target: az.redirectURI}
		keys := make([]string, 0, len(params))
		for k := range params {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			d.Params = append(d.Params, kv{k, params.Get(k)})
		}
		return outcome{post: true, data: d}
	case "fragment":
		return outcome{redirect: az.redirectURI + "#" + params.Encode()}
	}
	u, _ := url.Parse(az.redirectURI)
	q := u.Query()
	for k, v := range params {
		q[k] = v
	}
	u.RawQuery = q.Encode()
	return outcome{redirect: u.String()}
}

func (s *entraServer) handleLogin(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Redirect(w, r, "/devicelogin", http.StatusFound)
		return
	}
	if !s.parsePage(w, r) {
		return
	}
	s.c.mu.Lock()
	o := s.loginStep(w, r)
	s.c.mu.Unlock()
	s.render(w, r, o)
}

// loginStep handles one form of a sign-in flow; c.mu is held.
func (s *entraServer) loginStep(w http.ResponseWriter, r *http.Request) outcome {
	f := s.flows[r.PostForm.Get("flow")]
	if f == nil {
		return s.errPage(w, &aadError{code: "invalid_request", aadsts: 90014,
			msg: "The sign-in session was not found or has ended. Start again."})
	}
	if f.kind == flowDevice {
		if g := f.grant; g.state != grantPending || !s.c.clock.Now().Before(g.expires) {
			delete(s.flows, f.id)
			return outcome{page: "code", data: pageData{Title: "Enter code",
				Error: "That code didn't work. Check the code and try again."}}
		}
	}
	app := s.c.dir.app(f.clientID)
	if app == nil {
		return s.errPage(w, errAppNotFound(f.clientID, f.ref.seg))
	}
	accept := r.PostForm.Get("accept") == "yes"
	switch r.PostForm.Get("action") {
	case "account":
		login := strings.TrimSpace(r.PostForm.Get("login"))
		u := s.c.dir.user(login)
		if u == nil {
			return s.next(w, f, "This username may be incorrect. Make sure you typed it correctly.")
		}
		if e := userAllowed(app, u, f.ref, s.c.dir); e != nil {
			return s.next(w, f, fmt.Sprintf("AADSTS%d: %s", e.aadsts, e.msg))
		}
		if f.kind == flowAdminConsent {
			if t := s.c.dir.tenantByID(u.TenantID); t != nil && t.Consumer {
				return s.next(w, f, "Personal accounts cannot grant admin consent.")
			}
		}
		f.upn, f.pwOK, f.mfaOK = u.UPN, false, false
	case "password":
		u := s.c.dir.user(f.upn)
		if u == nil || u.Password != r.PostForm.Get("passwd") {
			// AADSTS50126 as seen in MicrosoftDocs/azure-docs#30802.
			return s.next(w, f, "AADSTS50126: Error validating credentials due to invalid username or password.")
		}
		f.pwOK = true
	case "mfa":
		if f.upn != "" && r.PostForm.Get("approve") == "yes" {
			f.mfaOK = true
		}
	case "consent", "confirm", "admin":
		u := s.c.dir.user(f.upn)
		if u == nil || (u.Password != "" && !f.pwOK) || (u.MFARequired && !f.mfaOK) {
			return s.next(w, f, "")
		}
		return s.decide(w, f, app, u, r.PostForm.Get("action"), accept)
	default:
		return s.next(w, f, "")
	}
	return s.next(w, f, "")
}

// decide applies the user's answer on the confirm, consent or admin page; c.mu is held.
func (s *entraServer) decide(w http.ResponseWriter, f *pageFlow, app *App, u *User, action string, accept bool) outcome {
	delete(s.flows, f.id)
	done := pageData{Title: app.Name, AppName: app.Name}
	switch f.kind {
	case flowDevice:
		if !accept {
			f.grant.state = grantDenied
			done.Message = "You have declined to sign in to the application on your device. You may now close this window."
			return outcome{page: "done", data: done}
		}
		if action == "consent" && s.canConsent(app, u) {
			s.recordConsent(app, u, f.scopes)
		}
		f.grant.state, f.grant.upn, f.grant.mfaDone = grantApproved, u.UPN, true
		if e := s.signInPolicy(app, u, f.scopes, true, true); e != nil {
			return s.errPage(w, e)
		}
		done.Message = fmt.Sprintf("You have signed in to the %s application on your device. You may now close this window.", app.Name)
		return outcome{page: "done", data: done}
	case flowAdminConsent:
		if !accept {
			if f.az.adminV2 {
				// The v2 error form (https://learn.microsoft.com/entra/identity-platform/v2-admin-consent).
				return s.redirectBack(f.az, url.Values{"admin_consent": {"True"}, "error": {"consent_required"},
					"error_description": {"AADSTS65004: The resource owner or authorization server denied the request."}})
			}
			// The v1-style error form (https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow).
			return s.redirectBack(f.az, url.Values{"error": {"permission_denied"},
				"error_description": {"The admin canceled the request"}})
		}
		found := false
		for _, t := range app.ConsentedTenants {
			found = found || strings.EqualFold(t, u.TenantID)
		}
		if !found {
			app.ConsentedTenants = append(app.ConsentedTenants, u.TenantID)
		}
		for _, fam := range f.scopes.families {
			delete(s.revoked, revokedKey(app, u.TenantID, fam)) // consented again
		}
		p := url.Values{"admin_consent": {"True"}, "tenant": {u.TenantID}}
		if f.az.adminV2 {
			p.Set("scope", f.az.scopeParam)
		}
		return s.redirectBack(f.az, p)
	}
	// flowAuthorize consent page.
	if !accept {
		// access_denied when the user cancels (https://learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow).
		return s.redirectBack(f.az, url.Values{"error": {"access_denied"},
			"error_description": {"AADSTS65004: User declined to consent to access the app."}})
	}
	s.recordConsent(app, u, f.scopes)
	return s.completeAuthorize(f, u)
}

// redirectAllowed checks a redirect URI against the registered ones. A
// registered loopback URI matches any port on localhost, 127.0.0.1 or [::1]
// (Microsoft's rule for native apps). prefix allows extra path segments, as
// the v1-style admin consent endpoint does
// (https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow).
func redirectAllowed(app *App, uri string, prefix bool) bool {
	ru, err := url.Parse(uri)
	if err != nil || ru.Scheme == "" || ru.Fragment != "" {
		return false
	}
	for _, reg := range app.RedirectURIs {
		if reg == uri {
			return true
		}
		if prefix && strings.HasPrefix(uri, strings.TrimSuffix(reg, "/")+"/") {
			return true
		}
		gu, err := url.Parse(reg)
		if err != nil {
			continue
		}
		if gu.Scheme == "http" && ru.Scheme == "http" && loopback(gu.Hostname()) && loopback(ru.Hostname()) {
			gp, rp := strings.TrimSuffix(gu.Path, "/"), strings.TrimSuffix(ru.Path, "/")
			if gp == rp || (prefix && strings.HasPrefix(rp, gp+"/")) {
				return true
			}
		}
	}
	return false
}

func loopback(h string) bool { return h == "localhost" || h == "127.0.0.1" || h == "::1" }

func errRedirectMismatch(uri, clientID string) *aadError {
	// AADSTS50011, shown on the /authorize error page (WangNingkai/OLAINDEX#456).
	return &aadError{status: 400, code: "invalid_request", aadsts: 50011,
		msg: fmt.Sprintf("The redirect URI '%s' specified in the request does not match the redirect URIs configured for the application '%s'. Make sure the redirect URI sent in the request matches one added to your application in the Azure portal.", uri, clientID)}
}

func (s *entraServer) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	if !s.parsePage(w, r) {
		return
	}
	if rec, ok := w.(*recorder); ok {
		rec.clientID = r.Form.Get("client_id")
	}
	s.c.mu.Lock()
	o := s.authorize(w, r)
	s.c.mu.Unlock()
	s.render(w, r, o)
}

// authorize validates /authorize and starts the sign-in pages; c.mu is held.
func (s *entraServer) authorize(w http.ResponseWriter, r *http.Request) outcome {
	q := r.Form
	ref, e := s.resolveTenant(r.PathValue("tenant"))
	if e != nil {
		return s.errPage(w, e)
	}
	clientID := q.Get("client_id")
	if clientID == "" {
		return s.errPage(w, errMissing("client_id"))
	}
	app := s.c.dir.app(clientID)
	if app == nil {
		return s.errPage(w, errAppNotFound(clientID, ref.seg))
	}
	if e := appAvailable(app, ref); e != nil {
		return s.errPage(w, e)
	}
	ru := q.Get("redirect_uri")
	if ru == "" {
		return s.errPage(w, errMissing("redirect_uri"))
	}
	if !redirectAllowed(app, ru, false) {
		return s.errPage(w, errRedirectMismatch(ru, app.ClientID))
	}
	az := &authzReq{redirectURI: ru, state: q.Get("state"), responseMode: q.Get("response_mode"),
		challenge: q.Get("code_challenge"), method: q.Get("code_challenge_method"), nonce: q.Get("nonce"),
		hint: q.Get("login_hint")}
	fail := func(code string, e *aadError) outcome {
		if rec, ok := w.(*recorder); ok {
			rec.err, rec.aadsts = code, e.aadsts
		}
		return s.redirectBack(az, url.Values{"error": {code}, "error_description": {fmt.Sprintf("AADSTS%d: %s", e.aadsts, e.msg)}})
	}
	switch az.responseMode {
	case "", "query", "fragment", "form_post":
	default:
		az.responseMode = ""
		return fail("invalid_request", &aadError{aadsts: 900144, msg: "The provided value for the input parameter 'response_mode' is not valid."})
	}
	if rt := q.Get("response_type"); rt != "code" {
		if rt == "" {
			return fail("invalid_request", errMissing("response_type"))
		}
		return fail("unsupported_response_type", &aadError{aadsts: 70005,
			msg: "The provided value for the input parameter 'response_type' is not allowed for this request. Expected value is 'code'."})
	}
	ss, e := parseScopes(q.Get("scope"))
	if e != nil {
		return fail(e.code, e)
	}
	switch az.method {
	case "":
		if az.challenge != "" {
			az.method = "plain"
		}
	case "S256", "plain":
		if az.challenge == "" {
			return fail("invalid_request", errMissing("code_challenge"))
		}
	default:
		return fail("invalid_request", &aadError{aadsts: 50148,
			msg: "The code_challenge_method is not valid. Use 'S256' or 'plain'."})
	}
	if q.Get("prompt") == "none" {
		// No single sign-on session exists in the emulator.
		return fail("login_required", &aadError{aadsts: 50058, msg: "A silent sign-in request was sent but no user is signed in."})
	}
	f := &pageFlow{id: randomToken("flow", 18), kind: flowAuthorize, az: az, clientID: app.ClientID, ref: ref, scopes: ss}
	s.flows[f.id] = f
	return s.next(w, f, "")
}

// handleAdminConsent serves both admin consent endpoints
// (https://learn.microsoft.com/entra/identity-platform/v2-admin-consent,
// https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow).
func (s *entraServer) handleAdminConsent(w http.ResponseWriter, r *http.Request) {
	if !s.parsePage(w, r) {
		return
	}
	s.c.mu.Lock()
	o := s.adminConsent(w, r)
	s.c.mu.Unlock()
	s.render(w, r, o)
}

func (s *entraServer) adminConsent(w http.ResponseWriter, r *http.Request) outcome {
	q := r.Form
	v2 := strings.Contains(r.URL.Path, "/v2.0/")
	ref, e := s.resolveTenant(r.PathValue("tenant"))
	if e != nil {
		return s.errPage(w, e)
	}
	if ref.kind == tenantConsumers {
		return s.errPage(w, &aadError{aadsts: 90130, msg: "Application is not supported over the /consumers endpoint."})
	}
	for _, p := range []string{"client_id", "redirect_uri"} {
		if q.Get(p) == "" {
			return s.errPage(w, errMissing(p))
		}
	}
	app := s.c.dir.app(q.Get("client_id"))
	if app == nil {
		return s.errPage(w, errAppNotFound(q.Get("client_id"), ref.seg))
	}
	ru := q.Get("redirect_uri")
	if !redirectAllowed(app, ru, !v2) {
		return s.errPage(w, errRedirectMismatch(ru, app.ClientID))
	}
	scope := q.Get("scope")
	if v2 && scope == "" {
		return s.errPage(w, errMissing("scope"))
	}
	if scope == "" {
		scope = strings.Join(app.Permissions, " ")
		if scope == "" {
			scope = AudienceAppOnly + "/.default"
		}
	}
	ss, e := parseScopes(scope)
	if e != nil {
		return s.errPage(w, e)
	}
	az := &authzReq{redirectURI: ru, state: q.Get("state"), adminV2: v2, scopeParam: q.Get("scope")}
	f := &pageFlow{id: randomToken("flow", 18), kind: flowAdminConsent, az: az, clientID: app.ClientID, ref: ref, scopes: ss}
	s.flows[f.id] = f
	return s.next(w, f, "")
}
