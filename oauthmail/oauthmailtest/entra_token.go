package oauthmailtest

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Grant type spellings accepted at /token: the RFC 8628 URN of Microsoft's
// documentation (https://learn.microsoft.com/entra/identity-platform/v2-oauth2-device-code)
// and the short form MSAL Go sends (AzureAD/microsoft-authentication-library-for-go,
// apps/internal/oauth/ops/internal/grant/grant.go).
const (
	grantDeviceURN  = "urn:ietf:params:oauth:grant-type:device_code"
	grantDeviceMSAL = "device_code"
)

// authCodeLifetime: "typically expiring after about 10 minutes"
// (https://learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow).
const authCodeLifetime = 10 * time.Minute

// issueReq is what a successful grant turns into tokens.
type issueReq struct {
	app        *App
	user       *User // nil for app-only
	tid        string
	scopes     *scopeSet
	nonce      string
	authTime   time.Time // when the user signed in (refresh tokens inherit it)
	appOnly    bool
	appOnlyAud string
}

// refreshGrant is what a refresh token stands for.
type refreshGrant struct {
	clientID string
	upn      string
	scopes   *scopeSet
	authTime time.Time // original sign-in
	issued   time.Time // this token
	lastUsed time.Time
	used     bool // redeemed once (matters with StrictRefreshRotation)
	revoked  time.Time
}

// authCode is an authorization code issued by /authorize.
type authCode struct {
	clientID, redirectURI string
	challenge, method     string
	upn                   string
	ref                   tenantRef
	scopes                *scopeSet
	nonce                 string
	issued                time.Time
	redeemed              bool
}

type tokenResponse struct {
	TokenType    string `json:"token_type"`
	Scope        string `json:"scope"`
	ExpiresIn    int64  `json:"expires_in"`
	ExtExpiresIn int64  `json:"ext_expires_in"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token,omitempty"`
	IDToken      string `json:"id_token,omitempty"`
	ClientInfo   string `json:"client_info,omitempty"`
}

// idClaims are the v2 ID token claims (https://learn.microsoft.com/entra/identity-platform/id-token-claims-reference).
type idClaims struct {
	Ver               string `json:"ver"`
	Iss               string `json:"iss"`
	Sub               string `json:"sub"`
	Aud               string `json:"aud"`
	Exp               int64  `json:"exp"`
	Iat               int64  `json:"iat"`
	Nbf               int64  `json:"nbf"`
	Name              string `json:"name,omitempty"`
	PreferredUsername string `json:"preferred_username,omitempty"`
	UPN               string `json:"upn,omitempty"`
	Email             string `json:"email,omitempty"`
	Oid               string `json:"oid,omitempty"`
	Tid               string `json:"tid"`
	Nonce             string `json:"nonce,omitempty"`
}

func (s *entraServer) handleToken(w http.ResponseWriter, r *http.Request) {
	if !s.parsePost(w, r) {
		return
	}
	clientID := r.PostForm.Get("client_id")
	if id, _, ok := basicAuth(r); ok && id != "" {
		clientID = id
	}
	if rec, ok := w.(*recorder); ok {
		rec.clientID = clientID
	}
	s.c.mu.Lock()
	resp, e := s.token(r, clientID)
	s.c.mu.Unlock()
	if e != nil {
		s.writeError(w, r, e)
		return
	}
	s.writeJSON(w, http.StatusOK, resp)
}

// token dispatches a token request; c.mu is held.
func (s *entraServer) token(r *http.Request, clientID string) (*tokenResponse, *aadError) {
	ref, e := s.resolveTenant(r.PathValue("tenant"))
	if e != nil {
		return nil, e
	}
	gt := r.PostForm.Get("grant_type")
	if gt == "" {
		return nil, errMissing("grant_type")
	}
	switch gt {
	case grantDeviceURN, grantDeviceMSAL, "authorization_code", "refresh_token", "client_credentials":
	default:
		// AADSTS70003 UnsupportedGrantType (number UNVERIFIED: no public source).
		return nil, &aadError{status: 400, code: "unsupported_grant_type", aadsts: 70003,
			msg: fmt.Sprintf("The app requested an unsupported grant type '%s'.", gt)}
	}
	if clientID == "" {
		return nil, errMissing("client_id")
	}
	app := s.c.dir.app(clientID)
	if app == nil {
		return nil, errAppNotFound(clientID, ref.seg)
	}
	var ir *issueReq
	switch gt {
	case grantDeviceURN, grantDeviceMSAL:
		ir, e = s.pollDevice(r, app)
	case "authorization_code":
		ir, e = s.redeemCode(r, app)
	case "refresh_token":
		ir, e = s.redeemRefresh(r, app)
	case "client_credentials":
		ir, e = s.clientCredentials(r, app, ref)
	}
	if e != nil {
		return nil, e
	}
	ir.app = app
	return s.issue(r, ir)
}

// basicAuth reads client_secret_basic credentials (RFC 6749 §2.3.1: form-encoded
// id and secret inside HTTP Basic).
func basicAuth(r *http.Request) (id, secret string, ok bool) {
	u, p, ok := r.BasicAuth()
	if !ok {
		return "", "", false
	}
	if v, err := url.QueryUnescape(u); err == nil {
		u = v
	}
	if v, err := url.QueryUnescape(p); err == nil {
		p = v
	}
	return u, p, true
}

// clientAuth authenticates the client (AADSTS7000215: Azure/sap-automation#418;
// 7000222: liprec/vsts-release-aas#119; 7000218: MicrosoftDocs/azure-docs#31986;
// 700025: MicrosoftDocs/azure-docs#96567); c.mu is held. confidential demands a secret.
func (s *entraServer) clientAuth(r *http.Request, app *App, confidential bool) *aadError {
	if r.PostForm.Has("client_assertion") {
		return s.checkAssertion(r, app)
	}
	secret := r.PostForm.Get("client_secret")
	if _, p, ok := basicAuth(r); ok && p != "" {
		secret = p
	}
	if secret == "" {
		if confidential || (!app.PublicClient) {
			return &aadError{status: 401, code: "invalid_client", aadsts: 7000218,
				msg: "The request body must contain the following parameter: 'client_assertion' or 'client_secret'."}
		}
		return nil
	}
	if len(app.Secrets) == 0 {
		return &aadError{status: 401, code: "invalid_client", aadsts: 700025,
			msg: "Client is public so neither 'client_assertion' nor 'client_secret' should be presented."}
	}
	now := s.c.clock.Now()
	expired := false
	for _, sec := range app.Secrets {
		if subtle.ConstantTimeCompare([]byte(sec.Value), []byte(secret)) == 1 {
			if sec.Expires.IsZero() || now.Before(sec.Expires) {
				return nil
			}
			expired = true
		}
	}
	if expired {
		return &aadError{status: 401, code: "invalid_client", aadsts: 7000222,
			msg: fmt.Sprintf("The provided client secret keys for app '%s' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds.", app.ClientID)}
	}
	return &aadError{status: 401, code: "invalid_client", aadsts: 7000215,
		msg: fmt.Sprintf("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%s'.", app.ClientID)}
}

func errInvalidGrant(msg string) *aadError {
	return &aadError{status: 400, code: "invalid_grant", aadsts: 70000, msg: msg}
}

// redeemCode answers the authorization code grant; c.mu is held.
func (s *entraServer) redeemCode(r *http.Request, app *App) (*issueReq, *aadError) {
	code := r.PostForm.Get("code")
	if code == "" {
		return nil, errMissing("code")
	}
	ac := s.codes[code]
	if ac == nil || !strings.EqualFold(ac.clientID, app.ClientID) {
		return nil, errInvalidGrant("The provided value for the 'code' parameter is not valid.")
	}
	if e := s.clientAuth(r, app, false); e != nil {
		return nil, e
	}
	now := s.c.clock.Now()
	if ac.redeemed {
		// AADSTS54005 as seen in davidjrh/dnn.azureadprovider#17.
		return nil, &aadError{status: 400, code: "invalid_grant", aadsts: 54005,
			msg: "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token."}
	}
	if !now.Before(ac.issued.Add(authCodeLifetime)) {
		// AADSTS70000 with the message seen in spencerwooo/onedrive-cf-index#25.
		return nil, errInvalidGrant("The provided value for the 'code' parameter is not valid. The code has expired.")
	}
	if ru := r.PostForm.Get("redirect_uri"); ru != ac.redirectURI {
		// UNVERIFIED: AADSTS50011 wording reused for a redirect_uri that differs
		// from the one sent to /authorize.
		return nil, &aadError{status: 400, code: "invalid_grant", aadsts: 50011,
			msg: fmt.Sprintf("The redirect URI '%s' specified in the request does not match the redirect URI used in the authorization request for the application: '%s'.", ru, app.ClientID)}
	}
	if ac.challenge != "" {
		v := r.PostForm.Get("code_verifier")
		if v == "" || !pkceMatches(ac.method, ac.challenge, v) {
			// UNVERIFIED: AADSTS501481 is Entra's PKCE mismatch code (no public source).
			return nil, &aadError{status: 400, code: "invalid_grant", aadsts: 501481,
				msg: "The Code_Verifier does not match the code_challenge supplied in the authorization request."}
		}
	}
	ac.redeemed = true
	ss := ac.scopes
	if p := r.PostForm.Get("scope"); p != "" {
		var e *aadError
		if ss, e = parseScopes(p); e != nil {
			return nil, e
		}
	}
	if e := ss.multi(); e != nil {
		return nil, e
	}
	u := s.c.dir.user(ac.upn)
	if u == nil {
		return nil, errInvalidGrant("The user of the code no longer exists.")
	}
	return &issueReq{user: u, scopes: ss, nonce: ac.nonce, authTime: ac.issued}, nil
}

// pkceMatches checks an RFC 7636 verifier against the challenge.
func pkceMatches(method, challenge, verifier string) bool {
	if method == "plain" {
		return subtle.ConstantTimeCompare([]byte(challenge), []byte(verifier)) == 1
	}
	sum := sha256.Sum256([]byte(verifier))
	want := base64.RawURLEncoding.EncodeToString(sum[:])
	return subtle.ConstantTimeCompare([]byte(want), []byte(challenge)) == 1
}

// inactiveFor formats a duration as .NET's TimeSpan "d.hh:mm:ss", as in the
// AADSTS700082 message of Azure/azure-cli#14244.
func inactiveFor(d time.Duration) string {
	d = d.Truncate(time.Second)
	days := int(d / (24 * time.Hour))
	d -= time.Duration(days) * 24 * time.Hour
	return fmt.Sprintf("%d.%02d:%02d:%02d", days, int(d/time.Hour), int(d/time.Minute)%60, int(d/time.Second)%60)
}

// redeemRefresh answers the refresh token grant; c.mu is held.
func (s *entraServer) redeemRefresh(r *http.Request, app *App) (*issueReq, *aadError) {
	rt := r.PostForm.Get("refresh_token")
	if rt == "" {
		return nil, errMissing("refresh_token")
	}
	g := s.refresh[rt]
	if g == nil {
		// AADSTS9002313 as seen in davidjrh/dnn.azureadprovider#112.
		return nil, &aadError{status: 400, code: "invalid_grant", aadsts: 9002313,
			msg: "Invalid request. Request is malformed or invalid."}
	}
	if !strings.EqualFold(g.clientID, app.ClientID) {
		// Refresh tokens are bound to the client
		// (https://learn.microsoft.com/entra/identity-platform/refresh-tokens); wording UNVERIFIED.
		return nil, errInvalidGrant("The refresh token was issued to a different client.")
	}
	if e := s.clientAuth(r, app, false); e != nil {
		return nil, e
	}
	now := s.c.clock.Now()
	if !g.revoked.IsZero() {
		// AADSTS50173 as seen in Azure/azure-cli#16745.
		return nil, &aadError{status: 400, code: "invalid_grant", aadsts: 50173,
			msg: fmt.Sprintf("The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have changed or reset their password. The grant was issued on '%s' and the TokensValidFrom date (before which tokens are not valid) for this user is '%s'.", netTime(g.authTime), netTime(g.revoked))}
	}
	if idle := now.Sub(g.lastUsed); idle >= s.o.RefreshInactivity {
		// AADSTS700082 as seen in Azure/azure-cli#14244.
		return nil, &aadError{status: 400, code: "invalid_grant", aadsts: 700082,
			msg: fmt.Sprintf("The refresh token has expired due to inactivity. The token was issued on %s and was inactive for %s.", netTime(g.issued), inactiveFor(s.o.RefreshInactivity))}
	}
	if g.used && s.o.StrictRefreshRotation {
		// Emulator's strict mode (not Entra's default): wording is the emulator's.
		return nil, errInvalidGrant("The provided value for the 'refresh_token' parameter is not valid. The refresh token was already redeemed (StrictRefreshRotation).")
	}
	u := s.c.dir.user(g.upn)
	if u == nil {
		return nil, errInvalidGrant("The user of the refresh token no longer exists.")
	}
	ss := g.scopes
	if p := r.PostForm.Get("scope"); p != "" {
		var e *aadError
		if ss, e = parseScopes(p); e != nil {
			return nil, e
		}
		if g.scopes.has("offline_access") {
			ss.oidc["offline_access"] = true // the new refresh token replaces the used one
		}
		// Mixed resources on refresh: a token for the first one
		// (https://learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow).
		if s.needsConsent(app, u, ss) {
			return nil, errConsent(app)
		}
	}
	g.used, g.lastUsed = true, now
	return &issueReq{user: u, scopes: ss, authTime: g.authTime}, nil
}

// clientCredentials answers the client credentials grant for app-only access;
// c.mu is held (https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow,
// https://learn.microsoft.com/exchange/client-developer/legacy-protocols/how-to-authenticate-an-imap-pop-smtp-application-by-using-oauth).
func (s *entraServer) clientCredentials(r *http.Request, app *App, ref tenantRef) (*issueReq, *aadError) {
	if ref.kind == tenantCommon || ref.kind == tenantConsumers {
		// AADSTS9001023 (https://learn.microsoft.com/entra/identity-platform/reference-error-codes;
		// wording and error value UNVERIFIED).
		return nil, &aadError{status: 400, code: "invalid_request", aadsts: 9001023,
			msg: "The grant type isn't supported over the /common or /consumers endpoints. Please use the /organizations or tenant-specific endpoint."}
	}
	if e := s.clientAuth(r, app, true); e != nil {
		return nil, e
	}
	tid := app.HomeTenant
	if ref.kind == tenantSpecific {
		tid = ref.t.ID
		if !strings.EqualFold(tid, app.HomeTenant) && !app.MultiTenant {
			return nil, errAppNotFound(app.ClientID, ref.seg)
		}
	}
	param := r.PostForm.Get("scope")
	if param == "" {
		return nil, errMissing("scope")
	}
	var defaults []string
	for _, sc := range strings.Fields(param) {
		if oidcScopes[strings.ToLower(sc)] {
			// MSAL Go appends these (AzureAD/microsoft-authentication-library-for-go,
			// accesstokens.go AppendDefaultScopes) and its client credential
			// calls work, so the STS tolerates them.
			continue
		}
		if !strings.HasSuffix(sc, "/.default") {
			// AADSTS1002012 as quoted in MSAL Go's apps/internal/oauth/oauth.go
			// scopeError (status UNVERIFIED).
			return nil, &aadError{status: 400, code: "invalid_scope", aadsts: 1002012,
				msg: fmt.Sprintf("The provided value for scope %s is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).", param)}
		}
		defaults = append(defaults, sc)
	}
	if len(defaults) != 1 {
		// Two .default scopes → AADSTS70011 (AzureAD/microsoft-authentication-library-for-js#6069,
		// Azure/azure-sdk-for-net#9076).
		return nil, errInvalidScope(fmt.Sprintf("The provided value for the input parameter 'scope' is not valid. The scope %s is not valid.", param))
	}
	ss, e := parseScopes(defaults[0])
	if e != nil {
		return nil, e
	}
	return &issueReq{tid: tid, scopes: ss, appOnly: true, appOnlyAud: ss.resource}, nil
}

// tokenLifetime is the lifetime of the next access token: AccessTokenLifetime,
// or a whole number of seconds drawn between it and AccessTokenLifetimeMax, as
// Entra draws each token's lifetime between 60 and 90 minutes
// (https://learn.microsoft.com/entra/identity-platform/configurable-token-lifetimes#access-tokens).
func (s *entraServer) tokenLifetime() time.Duration {
	lo, hi := s.o.AccessTokenLifetime, s.o.AccessTokenLifetimeMax
	if hi <= lo {
		return lo
	}
	n, err := rand.Int(rand.Reader, big.NewInt(int64((hi-lo)/time.Second)+1))
	if err != nil {
		return lo
	}
	return lo + time.Duration(n.Int64())*time.Second
}

// issue mints the tokens of a successful grant; c.mu is held.
func (s *entraServer) issue(r *http.Request, ir *issueReq) (*tokenResponse, *aadError) {
	now := s.c.clock.Now()
	life := s.tokenLifetime()
	app := ir.app
	resp := &tokenResponse{TokenType: "Bearer", ExpiresIn: int64(life / time.Second), ExtExpiresIn: int64(life / time.Second)}
	if ir.appOnly {
		var roles []string
		consented := false
		for _, t := range app.ConsentedTenants {
			consented = consented || strings.EqualFold(t, ir.tid)
		}
		// Without admin consent in the tenant Entra still issues the token, with
		// no roles; the resource then refuses it.
		if consented && (ir.scopes.family == resourceExchange || ir.scopes.family == resourceGraph) {
			roles = append(roles, app.AppRoles...)
		}
		sp := servicePrincipalOID(app.ClientID, ir.tid)
		at, err := s.c.sign(accessClaims{
			Aud: ir.appOnlyAud, Iss: "https://sts.windows.net/" + ir.tid + "/",
			Iat: now.Unix(), Nbf: now.Unix(), Exp: now.Add(life).Unix(),
			AppID: app.ClientID, Roles: roles, Oid: sp, Sub: sp, Tid: ir.tid, Ver: "1.0", Uti: newGUID(),
		})
		if err != nil {
			return nil, &aadError{status: 500, code: "server_error", aadsts: 90000, msg: "token signing failed"}
		}
		resp.AccessToken = at
		resp.Scope = ir.scopes.raw[0]
		return resp, nil
	}
	u := ir.user
	tid := u.TenantID
	aud, names := ir.scopes.granted(app)
	pw := pairwise(u.ObjectID, app.ClientID)
	at, err := s.c.sign(accessClaims{
		Aud: aud, Iss: "https://sts.windows.net/" + tid + "/",
		Iat: now.Unix(), Nbf: now.Unix(), Exp: now.Add(life).Unix(),
		AppID: app.ClientID, Scp: strings.Join(names, " "), UPN: u.UPN, UniqueName: u.UPN,
		Name: u.DisplayName, Oid: u.ObjectID, Sub: pw, Tid: tid, Ver: "1.0", Uti: newGUID(),
	})
	if err != nil {
		return nil, &aadError{status: 500, code: "server_error", aadsts: 90000, msg: "token signing failed"}
	}
	resp.AccessToken = at
	// For a non-Graph resource the scope lists only the resource's scopes (the MSAL
	// comment quoted in AzureAD/microsoft-authentication-library-for-python#125).
	resp.Scope = strings.Join(fullNames(aud, names), " ")
	if aud == resourceGraph {
		var extra []string
		for _, o := range []string{"openid", "profile", "email"} {
			if ir.scopes.has(o) {
				extra = append(extra, o)
			}
		}
		resp.Scope = strings.Join(append(fullNames(aud, names), extra...), " ")
	}
	if ir.scopes.has("openid") {
		cl := idClaims{
			Ver: "2.0", Iss: s.issuerFor(tid), Sub: pw, Aud: app.ClientID,
			Exp: now.Add(time.Hour).Unix(), Iat: now.Unix(), Nbf: now.Unix(), Tid: tid, Nonce: ir.nonce,
		}
		if ir.scopes.has("profile") {
			cl.Name, cl.PreferredUsername, cl.UPN, cl.Oid = u.DisplayName, u.UPN, u.UPN, u.ObjectID
		}
		if ir.scopes.has("email") && !u.NoMailbox {
			cl.Email = u.Address()
		}
		idt, err := s.c.sign(cl)
		if err != nil {
			return nil, &aadError{status: 500, code: "server_error", aadsts: 90000, msg: "token signing failed"}
		}
		resp.IDToken = idt
	}
	if ir.scopes.has("offline_access") {
		rt := randomToken("rt", 48)
		s.refresh[rt] = &refreshGrant{clientID: app.ClientID, upn: u.UPN, scopes: ir.scopes,
			authTime: ir.authTime, issued: now, lastUsed: now}
		resp.RefreshToken = rt
	}
	if r.PostForm.Get("client_info") == "1" {
		ci, _ := json.Marshal(map[string]string{"uid": u.ObjectID, "utid": tid})
		resp.ClientInfo = base64.RawURLEncoding.EncodeToString(ci)
	}
	return resp, nil
}
