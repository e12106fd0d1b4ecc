package oauthmailtest

import (
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"time"
)

// Device code flow constants (https://learn.microsoft.com/entra/identity-platform/v2-oauth2-device-code;
// a real answer: MicrosoftDocs/azure-docs#33126).
const (
	deviceCodeLifetime = 900 * time.Second
	deviceInterval     = 5 * time.Second
	// userCodeAlphabet: real codes are 9 upper-case letters and digits; that
	// 0, 1, I and O are left out is an emulator choice (UNVERIFIED;
	// codes seen in MicrosoftDocs/azure-docs#33126 and Azure/azure-cli#6270).
	userCodeAlphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	userCodeLen      = 9
)

// Errors of Approve and Deny.
var (
	// ErrUnknownCode is returned for a user code the emulator did not issue,
	// or one that expired or was already used.
	ErrUnknownCode = errors.New("oauthmailtest: unknown, expired or used user code")
	// ErrUnknownUser is returned for a UPN that is not in the directory.
	ErrUnknownUser = errors.New("oauthmailtest: unknown user")
)

type grantState int

const (
	grantPending grantState = iota
	grantApproved
	grantDenied
	grantRedeemed
	grantFailed
)

// deviceGrant is one device authorization, from /devicecode to redemption.
type deviceGrant struct {
	deviceCode, userCode string
	clientID             string
	ref                  tenantRef
	scopes               *scopeSet
	issued, expires      time.Time
	lastPoll             time.Time
	state                grantState
	upn                  string
	mfaDone              bool
	failed               *aadError
}

func newUserCode() string {
	b := make([]byte, userCodeLen)
	max := big.NewInt(int64(len(userCodeAlphabet)))
	for i := range b {
		n, err := rand.Int(rand.Reader, max)
		if err != nil {
			panic(err)
		}
		b[i] = userCodeAlphabet[n.Int64()]
	}
	return string(b)
}

// normCode normalises a user code as typed on a page.
func normCode(c string) string {
	return strings.Map(func(r rune) rune {
		if r == '-' || r == ' ' || r == '\t' {
			return -1
		}
		return r
	}, strings.ToUpper(strings.TrimSpace(c)))
}

// deviceMessage is the localised instruction (https://learn.microsoft.com/entra/identity-platform/v2-oauth2-device-code;
// ?mkt= localises it). The en-US text
// is Microsoft's verbatim; the ja-JP wording is the emulator's (UNVERIFIED).
func deviceMessage(mkt, uri, code string) string {
	if strings.HasPrefix(strings.ToLower(mkt), "ja") {
		return fmt.Sprintf("サインインするには、Web ブラウザーを使用してページ %s を開き、コード %s を入力して認証します。", uri, code)
	}
	return fmt.Sprintf("To sign in, use a web browser to open the page %s and enter the code %s to authenticate.", uri, code)
}

type deviceCodeResponse struct {
	UserCode        string `json:"user_code"`
	DeviceCode      string `json:"device_code"`
	VerificationURI string `json:"verification_uri"`
	ExpiresIn       int    `json:"expires_in"`
	Interval        int    `json:"interval"`
	Message         string `json:"message"`
}

func (s *entraServer) handleDeviceCode(w http.ResponseWriter, r *http.Request) {
	if !s.parsePost(w, r) {
		return
	}
	clientID := r.PostForm.Get("client_id")
	if clientID == "" {
		s.writeError(w, r, errMissing("client_id"))
		return
	}
	s.c.mu.Lock()
	resp, e := s.startDevice(r, clientID)
	s.c.mu.Unlock()
	if e != nil {
		s.writeError(w, r, e)
		return
	}
	s.writeJSON(w, http.StatusOK, resp)
}

// startDevice validates a device authorization request; c.mu is held.
func (s *entraServer) startDevice(r *http.Request, clientID string) (*deviceCodeResponse, *aadError) {
	ref, e := s.resolveTenant(r.PathValue("tenant"))
	if e != nil {
		return nil, e
	}
	app := s.c.dir.app(clientID)
	if app == nil {
		return nil, errAppNotFound(clientID, ref.seg)
	}
	if e := appAvailable(app, ref); e != nil {
		return nil, e
	}
	ss, e := parseScopes(r.PostForm.Get("scope"))
	if e != nil {
		return nil, e
	}
	// Scopes of several resources are accepted here, and the user consents
	// to all of them, but the device_code grant then fails with AADSTS28000
	// (MicrosoftDocs/azure-docs#42565): see pollDevice.
	now := s.c.clock.Now()
	g := &deviceGrant{
		deviceCode: randomToken("dc", 48), clientID: app.ClientID, ref: ref, scopes: ss,
		issued: now, expires: now.Add(deviceCodeLifetime),
	}
	for {
		g.userCode = newUserCode()
		if _, dup := s.userCodes[g.userCode]; !dup {
			break
		}
	}
	s.devices[g.deviceCode] = g
	s.userCodes[g.userCode] = g
	uri := s.base + "/devicelogin"
	mkt := r.URL.Query().Get("mkt")
	if mkt == "" {
		mkt = r.PostForm.Get("mkt")
	}
	return &deviceCodeResponse{
		UserCode: g.userCode, DeviceCode: g.deviceCode, VerificationURI: uri,
		ExpiresIn: int(deviceCodeLifetime / time.Second), Interval: int(deviceInterval / time.Second),
		Message: deviceMessage(mkt, uri, g.userCode),
	}, nil
}

// pollGrace tolerates network jitter between polls on a wall clock; a manual
// clock is exact.
func (s *entraServer) pollGrace() time.Duration {
	if s.c.clock.manual {
		return 0
	}
	return 500 * time.Millisecond
}

// pollDevice answers a device code token request; c.mu is held. On success it
// returns the token request to issue.
func (s *entraServer) pollDevice(r *http.Request, app *App) (*issueReq, *aadError) {
	dc := r.PostForm.Get("device_code")
	if dc == "" {
		return nil, errMissing("device_code")
	}
	g := s.devices[dc]
	if g == nil || !strings.EqualFold(g.clientID, app.ClientID) {
		// AADSTS70018 (https://learn.microsoft.com/entra/identity-platform/reference-error-codes;
		// status UNVERIFIED).
		return nil, &aadError{status: 400, code: "bad_verification_code", aadsts: 70018,
			msg: "The provided value for the input parameter 'device_code' is not valid."}
	}
	if e := s.clientAuth(r, app, false); e != nil {
		return nil, e
	}
	now := s.c.clock.Now()
	last := g.lastPoll
	g.lastPoll = now
	if g.state == grantPending && s.o.AutoApprove != "" && !now.After(g.expires) {
		if err := s.approve(g, s.o.AutoApprove, false); err != nil {
			s.o.Logger.Debug("oauthmailtest: auto-approve failed", "error", err.Error())
		}
	}
	switch g.state {
	case grantRedeemed:
		// Emulator choice (UNVERIFIED): a redeemed device code is an invalid grant.
		return nil, &aadError{status: 400, code: "invalid_grant", aadsts: 70000,
			msg: "The provided value for the input parameter 'device_code' is not valid. The device code was already redeemed."}
	case grantFailed:
		return nil, g.failed
	case grantDenied:
		// authorization_declined (https://learn.microsoft.com/entra/identity-platform/v2-oauth2-device-code);
		// AADSTS number
		// UNVERIFIED (65004 "declined to consent" chosen).
		return nil, &aadError{status: 400, code: "authorization_declined", aadsts: 65004,
			msg: "User declined to consent to access the app."}
	}
	if !now.Before(g.expires) {
		delete(s.userCodes, g.userCode)
		// AADSTS70020 as seen in Azure/azure-sdk-for-python#32375 (error value per
		// the device code page: expired_token).
		return nil, &aadError{status: 400, code: "expired_token", aadsts: 70020,
			msg: "The provided value for the input parameter 'device_code' is not valid. This device code has expired."}
	}
	if g.state == grantPending {
		if s.slowDown && !last.IsZero() && now.Sub(last) < deviceInterval-s.pollGrace() {
			// RFC 8628 §3.5 slow_down, only when a test asks for it: Entra is
			// not documented to send it (no real slow_down body is known;
			// MSAL Go polls faster than the interval at first and Entra
			// answers authorization_pending). Its number is UNVERIFIED
			// (50196 LoopDetected chosen).
			return nil, &aadError{status: 400, code: "slow_down", aadsts: 50196,
				msg: "The server terminated an operation because it encountered a client request loop. Poll no more often than the interval."}
		}
		// AADSTS70016, HTTP 400, as in the real body of secureworks/squarephish#3.
		return nil, &aadError{status: 400, code: "authorization_pending", aadsts: 70016,
			msg: "OAuth 2.0 device flow error. Authorization is pending. Continue polling."}
	}
	// Approved: apply the tenant's and the user's policies.
	u := s.c.dir.user(g.upn)
	if u == nil {
		g.state, g.failed = grantFailed, errUserNotInTenant(g.upn, g.ref.seg)
		return nil, g.failed
	}
	if e := s.signInPolicy(app, u, g.scopes, true, g.mfaDone); e != nil {
		g.state, g.failed = grantFailed, e
		return nil, e
	}
	if e := g.scopes.multi(); e != nil {
		// The device_code grant carries no scope parameter: it asks for
		// what /devicecode asked for, and one token cannot cover two
		// resources. The consent given on the way stays
		// (MicrosoftDocs/azure-docs#42565).
		g.state, g.failed = grantFailed, e
		delete(s.userCodes, g.userCode)
		return nil, e
	}
	g.state = grantRedeemed
	delete(s.userCodes, g.userCode)
	return &issueReq{app: app, user: u, scopes: g.scopes, authTime: now}, nil
}

// signInPolicy applies Conditional Access, MFA and consent to a completed
// sign-in; c.mu is held (AADSTS53003: MartinIngesen/MSOLSpray#5; 50076:
// AzureAD/microsoft-authentication-library-for-go#398; 65001: MicrosoftDocs/azure-docs#39189).
func (s *entraServer) signInPolicy(app *App, u *User, ss *scopeSet, deviceFlow, mfaDone bool) *aadError {
	if t := s.c.dir.tenantByID(u.TenantID); deviceFlow && t != nil && t.BlockDeviceCodeFlow {
		return &aadError{status: 400, code: "interaction_required", aadsts: 53003, suberror: "message_only",
			msg: "Access has been blocked by Conditional Access policies. The access policy does not allow token issuance."}
	}
	if u.MFARequired && !mfaDone {
		aud, _ := ss.granted(app)
		return &aadError{status: 400, code: "invalid_grant", aadsts: 50076, suberror: "basic_action",
			msg: fmt.Sprintf("Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access '%s'.", aud)}
	}
	if s.needsConsent(app, u, ss) {
		return errConsent(app)
	}
	return nil
}

func errConsent(app *App) *aadError {
	return &aadError{status: 400, code: "invalid_grant", aadsts: 65001, suberror: "consent_required",
		msg: fmt.Sprintf("The user or administrator has not consented to use the application with ID '%s' named '%s'. Send an interactive authorization request for this user and resource.", app.ClientID, app.Name)}
}

// needsConsent reports whether u lacks consent for any scope of ss; c.mu is held.
func (s *entraServer) needsConsent(app *App, u *User, ss *scopeSet) bool {
	admin := false
	for _, t := range app.ConsentedTenants {
		admin = admin || strings.EqualFold(t, u.TenantID)
	}
	given := s.consents[consentKey(app, u)]
	for _, p := range ss.pairs {
		if p[1] == ".default" {
			// .default asks for what was configured and consented already.
			if admin || len(given) > 0 {
				continue
			}
			return true
		}
		if admin && configured(app, p[0], p[1]) && !s.revoked[revokedKey(app, u.TenantID, p[0])] {
			continue
		}
		ok := false
		for _, g := range given {
			ok = ok || strings.EqualFold(g, p[0]+"|"+p[1])
		}
		if !ok {
			return true
		}
	}
	return false
}

func consentKey(app *App, u *User) string {
	return strings.ToLower(app.ClientID + "|" + u.ObjectID)
}

// canConsent reports whether u may consent to app for themselves.
func (s *entraServer) canConsent(app *App, u *User) bool {
	if t := s.c.dir.tenantByID(u.TenantID); t != nil && t.Consumer {
		return true // personal accounts always consent for themselves
	}
	return app.UserConsent
}

// recordConsent stores u's consent to every scope of ss; c.mu is held.
func (s *entraServer) recordConsent(app *App, u *User, ss *scopeSet) {
	k := consentKey(app, u)
	for _, p := range ss.pairs {
		s.consents[k] = append(s.consents[k], p[0]+"|"+p[1])
	}
}

// approve signs upn in for g; c.mu is held. mfa says whether MFA was satisfied.
func (s *entraServer) approve(g *deviceGrant, upn string, mfa bool) error {
	u := s.c.dir.user(upn)
	if u == nil {
		return fmt.Errorf("%w: %q", ErrUnknownUser, upn)
	}
	app := s.c.dir.app(g.clientID)
	if app == nil {
		return fmt.Errorf("oauthmailtest: app %s was removed", g.clientID)
	}
	if e := userAllowed(app, u, g.ref, s.c.dir); e != nil {
		return fmt.Errorf("oauthmailtest: %s cannot sign in here: AADSTS%d", upn, e.aadsts)
	}
	if s.needsConsent(app, u, g.scopes) && s.canConsent(app, u) {
		s.recordConsent(app, u, g.scopes)
	}
	g.state, g.upn, g.mfaDone = grantApproved, u.UPN, mfa
	return nil
}

// pendingGrant finds a live, pending grant by user code; c.mu is held.
func (s *entraServer) pendingGrant(userCode string) (*deviceGrant, error) {
	g := s.userCodes[normCode(userCode)]
	if g == nil || g.state != grantPending {
		return nil, ErrUnknownCode
	}
	if !s.c.clock.Now().Before(g.expires) {
		return nil, fmt.Errorf("%w (expired)", ErrUnknownCode)
	}
	return g, nil
}
