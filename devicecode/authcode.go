package devicecode

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/devicemail/devicemail/internal/redact"
)

// ClientAuth is how [AuthCode] presents the client secret at the token
// endpoint (RFC 6749 §2.3.1).
type ClientAuth int

const (
	// ClientSecretPost sends client_secret in the request body, as Microsoft
	// documents for its token endpoint. It is the zero value.
	ClientSecretPost ClientAuth = iota
	// ClientSecretBasic sends the client ID and secret in an HTTP Basic
	// Authorization header, each form-encoded first (RFC 6749 §2.3.1).
	ClientSecretBasic
)

// Response modes of the authorization response (OAuth 2.0 Form Post Response
// Mode; MSAL Go's authorization URL, github.com/AzureAD/microsoft-authentication-library-for-go).
const (
	ResponseModeQuery    = "query"     // the browser is redirected with ?code=...&state=... (the default)
	ResponseModeFormPost = "form_post" // the browser POSTs code and state to the redirect URI
)

// DefaultAuthCodeTimeout bounds [AuthCode.SignIn] and [AuthRequest.Wait] when
// AuthCode.Timeout is zero.
const DefaultAuthCodeTimeout = 10 * time.Minute

// Errors of the authorization-code sign-in.
var (
	// ErrStateMismatch is wrapped by the [*Error] (ReasonProtocol) returned when
	// the authorization response carries a state other than the one sent: a
	// response this sign-in did not ask for. Its code is never redeemed.
	ErrStateMismatch = errors.New("devicecode: state in the authorization response does not match")

	// ErrAuthTimeout is returned, together with context.DeadlineExceeded, when the
	// browser did not come back to the redirect URI within AuthCode.Timeout.
	ErrAuthTimeout = errors.New("devicecode: no answer from the browser in time")

	// ErrNoBrowser is returned by [AuthCode.SignIn] when no browser could be opened
	// (AuthCode.OpenBrowser is nil or failed) and AuthCode.ShowURL is nil, so the
	// user cannot be told where to go.
	ErrNoBrowser = errors.New("devicecode: no browser to open and no ShowURL to print the sign-in URL")
)

// AuthCode signs a user in with the authorization code grant (RFC 6749 §4.1)
// in a browser (see AuthCode.OpenBrowser): PKCE with S256 always (RFC 7636),
// a random state that the answer must carry back, and a loopback redirect URI
// http://localhost:PORT served by a listener on 127.0.0.1 and ::1 (RFC 8252
// §7.3). Microsoft matches a registered "http://localhost" on any port, so the
// app registration needs only that one redirect URI.
//
// The embedded Config gives the authority, client ID, client secret (for a
// Web-platform app registration), scopes, HTTP client, logger and clock; the
// token is redeemed with the same requests, retries and typed errors as the
// device flow, and [IdentityFromToken] names the account. Config.Refresh
// renews the token later.
//
// Fields may be changed until the first method call.
type AuthCode struct {
	Config

	// AuthURL and TokenURL, if set, replace the authorization and token
	// endpoints of Config.Authority: the two endpoint fields of a desktop
	// tool's settings. They must be https (http only on loopback).
	AuthURL, TokenURL string
	// ClientAuth is how the client secret travels; the zero value is
	// ClientSecretPost. It does not matter for a public client (no secret).
	ClientAuth ClientAuth
	// Host is the host of the redirect URI: "localhost" (the zero value),
	// "127.0.0.1" or "::1". The listener always binds loopback addresses only.
	Host string
	// Port is the listener's port; 0 picks a free port. Set it when the
	// provider requires the registered port exactly (Google and Microsoft do
	// not for loopback redirects).
	Port int
	// Path is the path of the redirect URI; "" means none
	// ("http://localhost:PORT").
	Path string
	// ResponseMode is ResponseModeQuery (the zero value "" means it; nothing
	// is sent) or ResponseModeFormPost. The listener accepts both answers.
	ResponseMode string
	// LoginHint pre-fills the account on the sign-in page (login_hint).
	LoginHint string
	// Prompt is the OpenID Connect prompt parameter ("select_account",
	// "consent", "login"); "" sends none.
	Prompt string
	// Params are further authorization request parameters, for example
	// access_type=offline, which Google needs to issue a refresh token. They
	// cannot replace the parameters AuthCode sets itself.
	Params map[string]string
	// Timeout bounds the wait for the browser; zero means
	// DefaultAuthCodeTimeout. ctx may end the wait earlier.
	Timeout time.Duration
	// OpenBrowser opens url in the user's browser, for example
	// [github.com/devicemail/devicemail/devicecode/browser.Open] for the
	// system browser. It should return once the browser is asked to open,
	// not wait for the sign-in. nil opens nothing: SignIn calls ShowURL.
	// Tests set it to drive the pages themselves (from another goroutine).
	OpenBrowser func(url string) error
	// ShowURL, if set, is called with the sign-in URL when OpenBrowser is nil
	// or fails (no display, no opener), so the program can print it for the
	// user to open by hand. It should return quickly.
	ShowURL func(url string)
	// RedirectURI is the redirect URI of a paste-back sign-in
	// ([AuthCode.StartPaste]); "" means NativeClientRedirectURI. The
	// browser sign-in (Start, SignIn) ignores it and uses its listener's.
	RedirectURI string
	// NoPreflight turns off the check of the authorization URL before the
	// browser opens (see [AuthCode.Start]).
	NoPreflight bool
	// ExtraConsentScopes are scopes of other resources to ask consent for
	// in the same browser visit: the authorization request carries them
	// besides the Config's scopes, while the code is redeemed for the
	// Config's scopes only. Microsoft's /authorize accepts scopes of several
	// resources for consent, but its token endpoint issues a token for one
	// resource and refuses a request spanning two with AADSTS28000
	// (AzureAD/microsoft-authentication-library-for-js#1487,
	// Earlybyte/aad_oauth#328); MSAL.NET calls these extraScopesToConsent
	// (AzureAD/microsoft-authentication-library-for-dotnet#528), MSAL
	// Python additional scopes
	// (AzureAD/microsoft-authentication-library-for-python#212). Once
	// consented, a refresh token grant gets a token for them.
	ExtraConsentScopes []string
}

// consentScopes returns scopes followed by those of ExtraConsentScopes not
// already among them: the scope of the authorization request.
func (a *AuthCode) consentScopes(scopes []string) []string {
	out := append([]string(nil), scopes...)
	for _, x := range a.ExtraConsentScopes {
		x = strings.TrimSpace(x)
		if x != "" && !slices.ContainsFunc(out, func(s string) bool { return strings.EqualFold(s, x) }) {
			out = append(out, x)
		}
	}
	return out
}

// Format prints the AuthCode with the client secret redacted, for every verb.
func (a AuthCode) Format(f fmt.State, verb rune) {
	type plain AuthCode // no methods, so no recursion; the embedded Config keeps its Format
	fmt.Fprintf(f, fmt.FormatString(f, verb), plain(a))
}

// MarshalJSON encodes the Config (as [Config.MarshalJSON] does), the
// authorization URL and the port, never the client secret; log/slog's
// JSONHandler shows the AuthCode so.
func (a AuthCode) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Config  configView `json:"config"`
		AuthURL string     `json:"auth_url"`
		Port    int        `json:"port"`
	}{a.Config.logView(), a.effective().Authority.AuthURL, a.Port})
}

// effective returns the Config with the endpoint overrides applied.
func (a *AuthCode) effective() Config {
	c := a.Config
	if a.AuthURL != "" {
		c.Authority.AuthURL = a.AuthURL
	}
	if a.TokenURL != "" {
		c.Authority.TokenURL = a.TokenURL
	}
	return c
}

// AuthRequest is one authorization-code sign-in in progress: the listener is
// open and URL is ready for the browser. Call [AuthRequest.Wait] once, or
// Close to give up.
type AuthRequest struct {
	// URL is the authorization URL to open in the browser.
	URL string
	// RedirectURI is the loopback redirect URI in URL, e.g.
	// "http://localhost:49152".
	RedirectURI string

	cfg      Config // effective, with Basic auth wrapped in when asked
	state    redact.Secret
	verifier redact.Secret
	scopes   []string
	timeout  time.Duration
	srv      *http.Server
	lns      []net.Listener
	answers  chan *callback
	once     sync.Once
	done     chan struct{} // closed when Wait has its answer or Close runs
}

// Format prints only the redirect URI: the rest holds the state, the PKCE
// verifier and the client secret.
func (r *AuthRequest) Format(f fmt.State, verb rune) {
	fmt.Fprintf(f, "devicecode.AuthRequest{RedirectURI: %q}", r.RedirectURI)
}

// MarshalJSON encodes the redirect URI only; log/slog's JSONHandler shows
// the AuthRequest so.
func (r *AuthRequest) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		RedirectURI string `json:"redirect_uri"`
	}{r.RedirectURI})
}

// callback is one authorization response that reached the listener; Wait
// sends the outcome back on reply so the browser shows it.
type callback struct {
	params url.Values
	reply  chan error
}

// Start checks the settings, opens the loopback listener and builds the
// authorization URL. Unless NoPreflight is set it then loads that URL once
// with Config.HTTPClient, without cookies and without following redirects: an
// error page that names an AADSTS code (HTTP 4xx), as Microsoft shows for an
// unregistered redirect URI (AADSTS50011), an unknown app or tenant, ends the
// sign-in at once with the typed [*Error] (ReasonRedirectMismatch,
// ReasonAppNotFound, ReasonTenantNotFound) instead of leaving the user on an error
// page. A redirect back to the listener carrying an error (invalid_scope, ...)
// is reported the same way.
func (a *AuthCode) Start(ctx context.Context) (*AuthRequest, error) {
	c := a.effective()
	if err := c.check("auth_url", c.Authority.AuthURL); err != nil {
		return nil, err
	}
	if err := c.check("token_url", c.Authority.TokenURL); err != nil {
		return nil, err
	}
	for _, f := range []struct{ field, v string }{{"auth_url", a.AuthURL}, {"token_url", a.TokenURL}} {
		if f.v == "" {
			continue
		}
		if err := checkEndpoint(f.field, f.v); err != nil {
			return nil, err
		}
	}
	scopes := c.scopes()
	if len(scopes) == 0 {
		return nil, &ConfigError{Field: "scopes", Msg: "missing (set Config.Scopes or use an authority with default scopes)"}
	}
	host := a.Host
	switch host {
	case "":
		host = "localhost"
	case "localhost", "127.0.0.1", "::1":
	default:
		return nil, &ConfigError{Field: "host", Value: host, Msg: "must be localhost, 127.0.0.1 or ::1"}
	}
	if a.Port < 0 || a.Port > 65535 {
		return nil, &ConfigError{Field: "port", Value: strconv.Itoa(a.Port), Msg: "not a TCP port"}
	}
	path := a.Path
	if path != "" && !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	switch a.ResponseMode {
	case "", ResponseModeQuery, ResponseModeFormPost:
	default:
		return nil, &ConfigError{Field: "response_mode", Value: a.ResponseMode, Msg: "must be query or form_post"}
	}
	if a.ClientAuth == ClientSecretBasic && c.ClientSecret != "" {
		c.HTTPClient = basicAuthClient(c.httpClient(), c.Authority.TokenURL, c.ClientID, c.ClientSecret)
		c.ClientSecret = "" // so that tokenRequest does not put it in the body too
	}

	lns, port, err := listenLoopback(host, a.Port)
	if err != nil {
		return nil, err
	}
	hostPort := net.JoinHostPort(host, strconv.Itoa(port))
	r := &AuthRequest{
		RedirectURI: "http://" + hostPort + path,
		cfg:         c,
		state:       redact.Secret(randomString(32)),
		verifier:    redact.Secret(randomString(48)), // 64 characters (RFC 7636 §4.1: 43-128)
		scopes:      scopes,
		timeout:     a.Timeout,
		lns:         lns,
		answers:     make(chan *callback),
		done:        make(chan struct{}),
	}
	if r.timeout <= 0 {
		r.timeout = DefaultAuthCodeTimeout
	}
	r.URL = a.authorizationURL(c, r.RedirectURI, string(r.state), string(r.verifier), a.consentScopes(scopes), a.ResponseMode)

	r.srv = &http.Server{
		Handler:           http.HandlerFunc(r.serve(path)),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	for _, ln := range lns {
		go r.srv.Serve(ln)
	}
	if lg := c.logger(); lg != nil {
		lg.DebugContext(ctx, "devicecode: loopback listener open", "oauth.grant", grantAuthCode.String(), "redirect_uri", r.RedirectURI)
	}
	if !a.NoPreflight {
		if err := r.preflight(ctx); err != nil {
			r.Close()
			return nil, err
		}
	}
	return r, nil
}

// SignIn runs the whole sign-in: Start, open the browser at the
// authorization URL (or call ShowURL), wait for the browser to come back,
// redeem the code and return the token. The browser shows a page saying
// whether the sign-in worked.
//
// Failures are typed like the device flow's: ReasonAccessDenied (the user
// cancelled or declined consent), ReasonConsentRequired, ReasonRedirectMismatch,
// ReasonInvalidClient (wrong secret), ReasonClientSecretExpired, ReasonInvalidScope,
// ReasonMFARequired, ReasonConditionalAccess, ...; a foreign state gives
// ErrStateMismatch (and ReasonProtocol); no answer within Timeout gives
// ErrAuthTimeout; if ctx ends first, ctx.Err().
func (a *AuthCode) SignIn(ctx context.Context) (*oauth2.Token, error) {
	r, err := a.Start(ctx)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	err = errors.New("AuthCode.OpenBrowser is nil")
	if a.OpenBrowser != nil {
		err = a.OpenBrowser(r.URL)
	}
	if err != nil {
		if a.ShowURL == nil {
			return nil, fmt.Errorf("%w: %v", ErrNoBrowser, err)
		}
		a.ShowURL(r.URL)
	}
	return r.Wait(ctx)
}

// Wait waits for the browser to come back to the redirect URI, checks the
// state, redeems the code with the PKCE verifier and returns the token. It
// ends with the typed errors listed at [AuthCode.SignIn]. The listener is
// closed when Wait returns.
func (r *AuthRequest) Wait(ctx context.Context) (*oauth2.Token, error) {
	defer r.Close()
	tctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	var cb *callback
	select {
	case cb = <-r.answers:
	case <-r.done:
		return nil, &ConfigError{Field: "auth_request", Msg: "closed or already used"}
	case <-tctx.Done():
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w (%v): %w", ErrAuthTimeout, r.timeout, context.DeadlineExceeded)
	}
	tok, err := r.redeem(ctx, cb.params)
	cb.reply <- err
	return tok, err
}

// Close stops the listener. It is safe to call more than once, and after Wait.
func (r *AuthRequest) Close() error {
	r.once.Do(func() {
		close(r.done)
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := r.srv.Shutdown(sctx); err != nil {
			r.srv.Close()
		}
	})
	return nil
}

// redeem turns the authorization response into a token.
func (r *AuthRequest) redeem(ctx context.Context, p url.Values) (*oauth2.Token, error) {
	c := &r.cfg
	if p.Get("state") != string(r.state) {
		return nil, &Error{Reason: ReasonProtocol, Description: "state mismatch: the authorization response was not for this sign-in", Err: ErrStateMismatch}
	}
	if code := p.Get("error"); code != "" {
		return nil, authorizeError(code, p.Get("error_description")).mask(r.masker())
	}
	code := p.Get("code")
	if code == "" {
		return nil, protocolError("authorization response lacks code and error", nil)
	}
	var tok *oauth2.Token
	err := c.retry(ctx, grantAuthCode, func() error {
		form := url.Values{
			"grant_type":    {"authorization_code"},
			"code":          {code},
			"redirect_uri":  {r.RedirectURI},
			"code_verifier": {string(r.verifier)},
			"scope":         {strings.Join(r.scopes, " ")},
		}
		t, err := c.tokenRequest(ctx, grantAuthCode, form)
		tok = t
		return err
	})
	if err != nil {
		return nil, err
	}
	c.logToken(ctx, grantAuthCode, tok)
	return tok, nil
}

// masker returns a Masker of the request's secrets: the state the
// authorization URL carried, the PKCE verifier and the client secret.
func (r *AuthRequest) masker() *redact.Masker {
	m := r.cfg.masker(nil)
	m.Add(string(r.state), string(r.verifier))
	return m
}

// aadstsRE finds a Microsoft error number in a description or page.
var aadstsRE = regexp.MustCompile(`AADSTS(\d{4,9})`)

// authorizeError types an error sent back to the redirect URI (RFC 6749
// §4.1.2.1, https://learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow). The description may carry "AADSTSnnnn:".
func authorizeError(code, desc string) *Error {
	var codes []int
	if m := aadstsRE.FindStringSubmatch(desc); m != nil {
		n, _ := strconv.Atoi(m[1])
		codes = append(codes, n)
	}
	e := &Error{Reason: classify(grantAuthCode, code, codes, ""), Code: code, Description: desc}
	if e.Reason == "" {
		e.Reason = ReasonProtocol
	}
	if len(codes) > 0 {
		e.AADSTS = codes[0]
	}
	return e
}

// preflight loads the authorization URL once (see Start).
func (r *AuthRequest) preflight(ctx context.Context) error {
	base := r.cfg.httpClient()
	hc := &http.Client{
		Transport:     base.Transport,
		Timeout:       base.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, r.URL, nil)
	if err != nil {
		return &ConfigError{Field: "auth_url", Value: r.cfg.Authority.AuthURL, Msg: "cannot build a request"}
	}
	resp, err := hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if certificateError(err) {
			return &Error{Reason: ReasonCertificate, Err: err}
		}
		if permanentTransportError(err) {
			return &Error{Reason: ReasonNetwork, Err: err}
		}
		// A flaky network now may be fine for the browser later.
		if lg := r.cfg.logger(); lg != nil {
			lg.DebugContext(ctx, "devicecode: preflight failed", "error", err.Error())
		}
		return nil
	}
	defer resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode/100 == 3 && strings.HasPrefix(loc, r.RedirectURI) {
		if u, err := url.Parse(loc); err == nil && u.Query().Get("error") != "" {
			q := u.Query()
			return authorizeError(q.Get("error"), q.Get("error_description")).mask(r.masker())
		}
	}
	if resp.StatusCode < 400 || resp.StatusCode >= 500 {
		return nil
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	m := aadstsRE.FindSubmatch(body)
	if m == nil {
		return nil
	}
	n, _ := strconv.Atoi(string(m[1]))
	reason := classifyAADSTS(grantAuthCode, n)
	if reason == "" {
		reason = ReasonProtocol
	}
	return &Error{Reason: reason, AADSTS: n, HTTPStatus: resp.StatusCode,
		Description: "the authorization page shows an error: " + pageText(body, m[0])}
}

// pageText returns the text around an AADSTS code on an error page, without
// markup, for Error.Description.
func pageText(body, at []byte) string {
	s := string(body)
	i := strings.Index(s, string(at))
	s = s[i:]
	if j := strings.IndexByte(s, '<'); j >= 0 {
		s = s[:j]
	}
	s = strings.NewReplacer("&#39;", "'", "&quot;", `"`, "&amp;", "&", "&lt;", "<", "&gt;", ">").Replace(s)
	return firstLine(s)
}

// serve handles requests to the listener: the authorization response on path
// (GET with a query, or a form_post POST), a 404 for anything else.
func (r *AuthRequest) serve(path string) http.HandlerFunc {
	if path == "" {
		path = "/"
	}
	return func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path != path || (req.Method != http.MethodGet && req.Method != http.MethodPost) {
			http.NotFound(w, req)
			return
		}
		req.Body = http.MaxBytesReader(w, req.Body, 64<<10)
		if err := req.ParseForm(); err != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		if !req.Form.Has("code") && !req.Form.Has("error") {
			http.NotFound(w, req)
			return
		}
		cb := &callback{params: req.Form, reply: make(chan error, 1)}
		select {
		case r.answers <- cb:
		case <-r.done:
			writePage(w, http.StatusGone, "Sign-in already finished", "This sign-in has already finished. You can close this window.")
			return
		case <-req.Context().Done():
			return
		}
		select {
		case err := <-cb.reply:
			if err != nil {
				writePage(w, http.StatusOK, "Sign-in failed", "The sign-in did not succeed: "+err.Error()+
					" Return to the application for details. You can close this window.")
				return
			}
			writePage(w, http.StatusOK, "Signed in", "You are signed in. You can close this window and return to the application.")
		case <-req.Context().Done():
		}
	}
}

// writePage writes the small HTML page the browser shows after the redirect.
func writePage(w http.ResponseWriter, status int, title, msg string) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", "default-src 'none'")
	w.WriteHeader(status)
	fmt.Fprintf(w, "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>%s</title></head>"+
		"<body><h1 id=\"title\">%s</h1><p id=\"message\">%s</p></body></html>\n",
		htmlEscape(title), htmlEscape(title), htmlEscape(msg))
}

func htmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&#39;").Replace(s)
}

// listenLoopback binds host's loopback addresses on port (0: a free one). For
// "localhost" it binds 127.0.0.1 and, when the machine has it, ::1 on the same
// port, because a browser may resolve localhost to either.
func listenLoopback(host string, port int) ([]net.Listener, int, error) {
	first := "127.0.0.1"
	if host == "::1" {
		first = "::1"
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(first, strconv.Itoa(port)))
	if err != nil {
		return nil, 0, &Error{Reason: ReasonNetwork, Description: "cannot open the loopback listener for the redirect URI", Err: err}
	}
	lns := []net.Listener{ln}
	port = ln.Addr().(*net.TCPAddr).Port
	if host == "localhost" {
		if ln6, err := net.Listen("tcp", net.JoinHostPort("::1", strconv.Itoa(port))); err == nil {
			lns = append(lns, ln6)
		}
	}
	return lns, port, nil
}

// randomString returns n random bytes in base64url: a state or a PKCE verifier.
func randomString(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand, Go 1.24)
	return base64.RawURLEncoding.EncodeToString(b)
}

// basicAuthTransport adds client_secret_basic credentials to requests for the
// token endpoint only, so that a redirect elsewhere never carries them.
type basicAuthTransport struct {
	base       http.RoundTripper
	host, path string
	id, secret string
}

func (t *basicAuthTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Host != t.host || req.URL.Path != t.path {
		return t.base.RoundTrip(req)
	}
	r2 := req.Clone(req.Context())
	// RFC 6749 §2.3.1: both are form-encoded before Basic encoding.
	r2.SetBasicAuth(url.QueryEscape(t.id), url.QueryEscape(t.secret))
	return t.base.RoundTrip(r2)
}

// basicAuthClient returns a copy of hc that sends Basic credentials to tokenURL's host.
func basicAuthClient(hc *http.Client, tokenURL, id, secret string) *http.Client {
	base := hc.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	u, _ := url.Parse(tokenURL)
	c := *hc
	c.Transport = &basicAuthTransport{base: base, host: u.Host, path: u.Path, id: id, secret: secret}
	return &c
}

// authorizationURL is the authorization request (RFC 6749 §4.1.1) with PKCE
// (RFC 7636 §4.3, S256) for c's authorization endpoint: the loopback flow's
// and the paste-back flow's. Params never override the request's own
// parameters.
func (a *AuthCode) authorizationURL(c Config, redirect, state, verifier string, scopes []string, responseMode string) string {
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{
		"client_id":             {c.ClientID},
		"response_type":         {"code"},
		"redirect_uri":          {redirect},
		"scope":                 {strings.Join(scopes, " ")},
		"state":                 {state},
		"code_challenge":        {base64.RawURLEncoding.EncodeToString(sum[:])},
		"code_challenge_method": {"S256"},
	}
	if responseMode != "" {
		q.Set("response_mode", responseMode)
	}
	if a.LoginHint != "" {
		q.Set("login_hint", a.LoginHint)
	}
	if a.Prompt != "" {
		q.Set("prompt", a.Prompt)
	}
	for k, v := range a.Params {
		if !q.Has(k) {
			q.Set(k, v)
		}
	}
	u, _ := url.Parse(c.Authority.AuthURL)
	uq := u.Query()
	for k, v := range q {
		uq[k] = v
	}
	u.RawQuery = uq.Encode()
	return u.String()
}
