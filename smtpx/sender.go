package smtpx

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"golang.org/x/oauth2"

	"github.com/devicemail/devicemail/internal/logx"
	"github.com/devicemail/devicemail/internal/redact"
	"github.com/devicemail/devicemail/logging"
)

// TokenSource supplies the OAuth 2.0 access token for SMTP AUTH. It is
// asked once per connection, with the context of the call that connects,
// when the connection is set up (after the EHLO that follows STARTTLS) and
// just before AUTH: a token source may still be refreshing while the
// connection is set up. If it fails, the session ends with QUIT and the
// error wraps the token source's.
type TokenSource interface {
	Token(ctx context.Context) (*oauth2.Token, error)
}

// Refresher is an optional add-on to [TokenSource]. When the server
// refuses a token from a Refresher with 535 (or 5.5.127, token expiring),
// the Sender calls Refresh once with the rejected token and retries AUTH
// once with the new token.
type Refresher interface {
	TokenSource
	Refresh(ctx context.Context, rejected *oauth2.Token) (*oauth2.Token, error)
}

// TLSMode selects how the connection is secured.
type TLSMode int

const (
	// StartTLS connects in plaintext and upgrades with STARTTLS (port 587,
	// what Exchange Online offers). A server that does not offer STARTTLS,
	// or fails it, is an error, never a downgrade.
	StartTLS TLSMode = iota
	// ImplicitTLS starts TLS at once (port 465). Exchange Online has no
	// such endpoint: "If your device recommends or defaults to port 465, it
	// doesn't support SMTP AUTH client submission"
	// (https://learn.microsoft.com/exchange/mail-flow-best-practices/how-to-set-up-a-multifunction-device-or-application-to-send-email-using-microsoft-365-or-office-365).
	ImplicitTLS
)

// String returns "STARTTLS" or "implicit TLS".
func (m TLSMode) String() string {
	switch m {
	case StartTLS:
		return "STARTTLS"
	case ImplicitTLS:
		return "implicit TLS"
	}
	return fmt.Sprintf("TLSMode(%d)", int(m))
}

// Dialer opens network connections; *net.Dialer satisfies it.
type Dialer interface {
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
}

// Sender submits mail with SMTP AUTH XOAUTH2 (or OAUTHBEARER). The zero
// value is not usable: Addr, Account (or SendAs) and TokenSource must be
// set. Fields may not be changed once a method has been called; a Sender
// is safe for concurrent use.
type Sender struct {
	// Addr is the server's host:port, e.g. "smtp.office365.com:587".
	Addr string
	// TLS is the TLS mode; the zero value is StartTLS.
	TLS TLSMode
	// TLSConfig configures TLS. nil means system roots and the host of
	// Addr as ServerName. smtpx works on a clone, fills ServerName from
	// Addr when empty and raises MinVersion to TLS 1.2. InsecureSkipVerify
	// is refused. Set RootCAs to trust a private CA (e.g. the emulator's).
	TLSConfig *tls.Config
	// Username is the SASL user (XOAUTH2 "user="); "" means Account. For a
	// shared mailbox it is the mailbox's address
	// (https://learn.microsoft.com/exchange/client-developer/legacy-protocols/how-to-authenticate-an-imap-pop-smtp-application-by-using-oauth).
	Username string
	// Account is the signed-in account's address (the token's UPN). The
	// From address of every message must equal it (case-insensitive) or
	// appear in SendAs.
	Account string
	// SendAs lists other From addresses the account may use (send-as
	// rights, shared mailboxes, aliases), compared case-insensitively.
	SendAs []string
	// TokenSource is asked for a token once per connection, when the
	// connection is set up. If it also implements Refresher, a rejected
	// token is refreshed once.
	TokenSource TokenSource
	// Mechanism is the SASL mechanism: "XOAUTH2", "OAUTHBEARER" (RFC 7628),
	// or "" to choose from what the server advertises after STARTTLS:
	// XOAUTH2 when offered (Exchange Online, Gmail), else OAUTHBEARER when
	// offered, else XOAUTH2.
	Mechanism string
	// Dialer opens the TCP connection; nil means a *net.Dialer.
	Dialer Dialer
	// ConnectTimeout bounds connection set-up (dial, greeting, EHLO,
	// STARTTLS, the TLS handshake) when the context has no deadline of its
	// own, so that a server that stays silent cannot hold the client;
	// zero means DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// Logger receives protocol steps at Debug level; nil discards. Tokens
	// are never logged.
	Logger logging.Logger
	// Debug, if set, receives the SMTP transcript of each connection from
	// the moment AUTH has succeeded, with AUTH lines masked. It includes
	// message bodies.
	Debug io.Writer
	// InsecureAllowPlaintextAuth allows AUTH without TLS when the peer is
	// a loopback address (for tests against a plaintext server). AUTH is
	// never sent in plaintext to any other address.
	InsecureAllowPlaintextAuth bool
	// Now returns the current time for Date headers; nil means time.Now.
	Now func() time.Time
	// LocalName is the EHLO name; "" means "localhost".
	LocalName string
	// DisableChunking makes smtpx send with DATA and base64-encoded
	// attachments even when the server offers CHUNKING and BINARYMIME
	// (RFC 3030), as Exchange Online does. By default smtpx then uses BDAT
	// and sends attachments unencoded, about a quarter fewer bytes; if the
	// server then answers 500-504, the Sender falls back to DATA by itself.
	// Set it for a server that advertises the extensions but mishandles
	// them in another way.
	DisableChunking bool
	// MaxRecipients is the most recipients (To, Cc and Bcc together) a
	// message may have; a message with more is refused before connecting
	// with an [*Error] of reason [ReasonTooManyRecipients]. Zero means no
	// local limit (the server's replies decide). Exchange Online allows
	// [ExchangeRecipientLimit] by default.
	MaxRecipients int
	// MaxSize is the largest message, in bytes with attachments
	// base64-encoded, that is sent; a larger one is refused before
	// connecting with an [*Error] of reason [ReasonTooLarge]. Attachments
	// of unknown Size are held to it as they are read: past it, the upload
	// is abandoned with the same error. Zero means no local limit (the SIZE
	// the server advertises still applies). Exchange Online allows
	// [ExchangeMaxSendSize] by default.
	MaxSize int64

	// noChunking is set when the server failed a BDAT transaction with a
	// reply that says it did not understand (500-504): from then on this
	// Sender uses DATA.
	noChunking atomic.Bool
}

// Send submits one message on a new connection, then closes it. The sender
// policy and the message are checked before dialing. When the server offers
// PIPELINING, QUIT is sent with the end of the message, so the whole send
// costs no round trip more than the protocol needs; the server's reply to
// QUIT is not waited on as a condition of success.
func (s *Sender) Send(ctx context.Context, m *Message) error {
	if err := s.Check(m); err != nil {
		return err
	}
	sess, err := s.Dial(ctx)
	if err != nil {
		return err
	}
	defer sess.Close()
	// The session sends nothing after this message: with PIPELINING, QUIT
	// goes out in the same write as the final dot (RFC 2920 §3.1 lets QUIT
	// end a pipelined group), which saves the round trip of a separate QUIT.
	sess.oneShot = true
	if err := sess.Send(ctx, m); err != nil {
		return err
	}
	return sess.clean(sess.quit(ctx))
}

// Dial opens an authenticated session, to send several messages over one
// connection.
func (s *Sender) Dial(ctx context.Context) (*Session, error) {
	if s.TokenSource == nil {
		return nil, errors.New("smtpx: Sender.TokenSource is nil")
	}
	if s.Addr == "" {
		return nil, errors.New("smtpx: Sender.Addr is empty")
	}
	if s.TLSConfig != nil && s.TLSConfig.InsecureSkipVerify {
		return nil, errors.New("smtpx: TLSConfig.InsecureSkipVerify is not supported")
	}
	if s.TLS != StartTLS && s.TLS != ImplicitTLS {
		return nil, fmt.Errorf("smtpx: unknown TLS mode %d (StartTLS or ImplicitTLS)", int(s.TLS))
	}
	switch strings.ToUpper(s.Mechanism) {
	case "", MechanismXOAUTH2, "OAUTHBEARER":
	default:
		return nil, fmt.Errorf("smtpx: unsupported mechanism %q", s.Mechanism)
	}
	sess := &Session{s: s, secrets: &redact.Masker{}}
	if err := sess.connect(ctx); err != nil {
		return nil, sess.clean(err)
	}
	return sess, nil
}

// Clone returns a copy of s's settings, for use as a template: the
// copy's fields may be changed without affecting s, and it shares no state
// with s (what s learnt about a server's BDAT support is not carried over).
// Slices are copied; TLSConfig is cloned; Dialer, TokenSource, Logger,
// Debug and Now are shared.
func (s *Sender) Clone() *Sender {
	c := &Sender{
		Addr:                       s.Addr,
		TLS:                        s.TLS,
		TLSConfig:                  s.TLSConfig.Clone(),
		Username:                   s.Username,
		Account:                    s.Account,
		SendAs:                     append([]string(nil), s.SendAs...),
		TokenSource:                s.TokenSource,
		Mechanism:                  s.Mechanism,
		Dialer:                     s.Dialer,
		ConnectTimeout:             s.ConnectTimeout,
		Logger:                     s.Logger,
		Debug:                      s.Debug,
		InsecureAllowPlaintextAuth: s.InsecureAllowPlaintextAuth,
		Now:                        s.Now,
		LocalName:                  s.LocalName,
		DisableChunking:            s.DisableChunking,
		MaxRecipients:              s.MaxRecipients,
		MaxSize:                    s.MaxSize,
	}
	if s.SendAs == nil {
		c.SendAs = nil
	}
	return c
}

func (s *Sender) logger() logging.Logger { return logx.Or(s.Logger) }

func (s *Sender) now() time.Time {
	if s.Now == nil {
		return time.Now()
	}
	return s.Now()
}

func (s *Sender) username() string {
	if s.Username != "" {
		return s.Username
	}
	return s.Account
}

// Check reports, without connecting, whether Send would refuse m before
// dialing: [Message.Validate], then MaxRecipients and MaxSize, then the
// sender policy (Account and SendAs).
func (s *Sender) Check(m *Message) error {
	if err := m.Validate(); err != nil {
		return err
	}
	if n := len(m.To) + len(m.Cc) + len(m.Bcc); s.MaxRecipients > 0 && n > s.MaxRecipients {
		return &Error{Stage: StageRcpt, Reason: ReasonTooManyRecipients,
			Message: fmt.Sprintf("%d recipients exceed the limit of %d per message; split the message", n, s.MaxRecipients)}
	}
	if size := m.estimateSize(false); s.MaxSize > 0 && size > s.MaxSize {
		return &Error{Stage: StageMail, Reason: ReasonTooLarge,
			Message: fmt.Sprintf("message of at least %d bytes (attachments base64-encoded) exceeds the limit of %d bytes", size, s.MaxSize)}
	}
	from := m.From.Email
	if s.Account != "" && strings.EqualFold(from, s.Account) {
		return nil
	}
	for _, a := range s.SendAs {
		if strings.EqualFold(from, a) {
			return nil
		}
	}
	return &SenderMismatchError{From: from, Account: s.Account}
}

func (s *Sender) tlsConfig() *tls.Config {
	var cfg *tls.Config
	if s.TLSConfig != nil {
		cfg = s.TLSConfig.Clone()
	} else {
		cfg = &tls.Config{}
	}
	if cfg.ServerName == "" {
		host, _, err := net.SplitHostPort(s.Addr)
		if err != nil {
			host = s.Addr
		}
		cfg.ServerName = host
	}
	if cfg.MinVersion < tls.VersionTLS12 {
		cfg.MinVersion = tls.VersionTLS12
	}
	return cfg
}

// Session is an authenticated SMTP connection that sends messages one
// after the other. If the server drops the connection between messages
// (idle timeout, 421), the next Send reconnects once, transparently. A
// Session is safe for concurrent use; sends are serialised.
type Session struct {
	s *Sender

	mu         sync.Mutex
	c          *smtp.Client // greeting, EHLO and AUTH; nil: not connected
	conn       *ctxConn
	w          *wire // the transaction after AUTH
	pipelining bool  // the server offers PIPELINING (RFC 2920)
	dirty      bool  // a transaction was left unfinished: RSET before the next
	closed     bool
	oneShot    bool          // set by Sender.Send: QUIT is pipelined after the final dot
	fresh      bool          // no transaction has run on this connection yet
	chunkBuf   *bufio.Writer // BDAT chunk buffer, reused

	// secrets holds every access token the session has sent and the SASL
	// strings that carried them, raw and base64: the server's replies are
	// masked with it before they become errors or transcript lines.
	secrets *redact.Masker
}

// DefaultConnectTimeout is the set-up bound used when neither the context
// nor Sender.ConnectTimeout gives one.
const DefaultConnectTimeout = 60 * time.Second

// connect dials, secures, and authenticates a connection.
func (ss *Session) connect(ctx context.Context) error {
	s := ss.s
	log := s.logger()
	if ctx.Err() != nil {
		return fmt.Errorf("smtpx: %s: %w", StageDial, ctx.Err())
	}
	d := s.Dialer
	if d == nil {
		d = &net.Dialer{}
	}
	setup, cancel := ctx, context.CancelFunc(func() {})
	if _, ok := ctx.Deadline(); !ok {
		t := s.ConnectTimeout
		if t <= 0 {
			t = DefaultConnectTimeout
		}
		setup, cancel = context.WithTimeout(ctx, t)
	}
	defer cancel()
	if log != nil {
		log.DebugContext(ctx, "smtp dial", "smtp.stage", string(StageDial), "smtp.addr", s.Addr)
	}
	raw, err := d.DialContext(setup, "tcp", s.Addr)
	if err != nil {
		return ctxOr(setup, StageDial, err)
	}
	cc := &ctxConn{Conn: raw}
	unbind := cc.bind(setup)
	c, nc, isTLS, err := ss.secure(setup, cc)
	unbind()
	if err != nil {
		cc.Close()
		return err
	}
	unbind = cc.bind(ctx)
	defer unbind()

	// The guard against plaintext AUTH (net/smtp's PlainAuth rule):
	// go-sasl's Start gets no server information, so it is checked here.
	if !isTLS && !(s.InsecureAllowPlaintextAuth && isLoopback(raw.RemoteAddr())) {
		c.Close()
		return &Error{Stage: StageAuth, Reason: ReasonTLS, Message: "refusing to send AUTH over a connection without TLS"}
	}
	// The token is asked for only now, with the connection secured and the
	// server waiting for AUTH, so that a TokenSource that is still
	// refreshing runs alongside the set-up.
	tok, err := s.TokenSource.Token(ctx)
	if err == nil && (tok == nil || tok.AccessToken == "") {
		err = errors.New("token source returned no access token")
	}
	if err != nil {
		// Nothing was sent since the final EHLO: end the session politely,
		// within a bound of its own (ctx may be what ended the token's wait).
		unbind()
		goodbye(cc, c)
		return fmt.Errorf("smtpx: token: %w", err)
	}
	if err := ss.auth(ctx, c, tok); err != nil {
		c.Close()
		return err
	}
	var debug io.Writer
	if s.Debug != nil {
		debug = newMaskWriter(s.Debug, ss.secrets)
	}
	ss.c, ss.conn, ss.w, ss.dirty, ss.fresh = c, cc, newWire(nc, debug), false, true
	ss.pipelining = isPipelining(c.Extension)
	if log != nil {
		log.DebugContext(ctx, "smtp authenticated", "smtp.stage", string(StageAuth), "account", s.Account)
	}
	return nil
}

// secure returns a client that has greeted the server and is, unless the
// plaintext escape hatch applies, running over verified TLS, and the
// connection that client uses (for the transaction layer after AUTH).
func (ss *Session) secure(ctx context.Context, cc *ctxConn) (*smtp.Client, net.Conn, bool, error) {
	s := ss.s
	cfg := s.tlsConfig()
	localName := s.LocalName
	if localName == "" {
		localName = "localhost"
	}
	if strings.ContainsAny(localName, "\r\n ") {
		return nil, nil, false, errors.New("smtpx: LocalName is malformed")
	}

	if s.TLS == ImplicitTLS {
		tc := tls.Client(cc, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, nil, false, tlsFailure(ctx, StageDial, err)
		}
		nc := &replyCapConn{Conn: tc}
		c := smtp.NewClient(nc)
		if err := c.Hello(localName); err != nil {
			return nil, nil, false, ctxOr(ctx, StageDial, err)
		}
		return c, nc, true, nil
	}

	// Pre-TLS dialogue: banner, EHLO, STARTTLS (RFC 3207).
	// The pre-TLS replies go through the same caps as the later ones; the
	// TLS handshake below reads cc itself, past this wrapper.
	tp := textproto.NewConn(&replyCapConn{Conn: cc})
	if _, _, err := tp.ReadResponse(220); err != nil {
		return nil, nil, false, ctxOr(ctx, StageDial, protoErr(err))
	}
	ext, err := ehlo(tp, localName)
	if err != nil {
		return nil, nil, false, ctxOr(ctx, StageDial, err)
	}
	if _, ok := ext["STARTTLS"]; !ok {
		if s.InsecureAllowPlaintextAuth && isLoopback(cc.RemoteAddr()) {
			// Test-only plaintext path: hand the greeted connection to
			// go-smtp, replaying a greeting.
			if tp.R.Buffered() > 0 {
				return nil, nil, false, &Error{Stage: StageDial, Reason: ReasonRejected, Message: "unexpected data after EHLO"}
			}
			nc := &greetingConn{Conn: &replyCapConn{Conn: cc}, greeting: []byte("220 smtpx\r\n")}
			c := smtp.NewClient(nc)
			if err := c.Hello(localName); err != nil {
				return nil, nil, false, ctxOr(ctx, StageDial, err)
			}
			return c, nc, false, nil
		}
		return nil, nil, false, &Error{Stage: StageStartTLS, Reason: ReasonTLS, Message: "server does not offer STARTTLS"}
	}
	id, err := tp.Cmd("STARTTLS")
	if err != nil {
		return nil, nil, false, ctxOr(ctx, StageStartTLS, err)
	}
	tp.StartResponse(id)
	_, _, err = tp.ReadResponse(220)
	tp.EndResponse(id)
	if err != nil {
		e := ctxOr(ctx, StageStartTLS, protoErr(err))
		var se *Error
		if errors.As(e, &se) && se.Reason != ReasonNetwork {
			se.Reason = ReasonTLS // a refused STARTTLS is a TLS failure, whatever the code
		}
		return nil, nil, false, e
	}
	if tp.R.Buffered() > 0 {
		// Plaintext injected after the STARTTLS reply (CVE-2011-0411 class).
		return nil, nil, false, &Error{Stage: StageStartTLS, Reason: ReasonTLS, Message: "server sent data after the STARTTLS reply"}
	}
	tc := tls.Client(cc, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, nil, false, tlsFailure(ctx, StageStartTLS, err)
	}
	nc := &greetingConn{Conn: &replyCapConn{Conn: tc}, greeting: []byte("220 smtpx\r\n")}
	c := smtp.NewClient(nc)
	if err := c.Hello(localName); err != nil {
		return nil, nil, false, ctxOr(ctx, StageStartTLS, err)
	}
	return c, nc, true, nil
}

// ehlo sends EHLO on the pre-TLS connection and returns the extensions.
func ehlo(tp *textproto.Conn, localName string) (map[string]string, error) {
	id, err := tp.Cmd("EHLO %s", localName)
	if err != nil {
		return nil, err
	}
	tp.StartResponse(id)
	defer tp.EndResponse(id)
	_, msg, err := tp.ReadResponse(250)
	if err != nil {
		return nil, protoErr(err)
	}
	ext := map[string]string{}
	lines := strings.Split(msg, "\n")
	for _, l := range lines[1:] {
		k, v, _ := strings.Cut(l, " ")
		ext[strings.ToUpper(k)] = v
	}
	return ext, nil
}

// protoErr converts a textproto reply error into go-smtp's SMTPError, so
// that pre-TLS replies look like every other reply.
func protoErr(err error) error {
	var te *textproto.Error
	if !errors.As(err, &te) {
		return err
	}
	se := &smtp.SMTPError{Code: te.Code, Message: te.Msg}
	if code, rest, ok := strings.Cut(te.Msg, " "); ok {
		if e, ok := parseEnhancedCode(code); ok {
			se.EnhancedCode = e
			// RFC 2034 §3 repeats the enhanced code on every line.
			se.Message = strings.ReplaceAll(rest, "\n"+code+" ", "\n")
		}
	}
	return se
}

// parseEnhancedCode parses an RFC 3463 enhanced status code, "class.subject.detail"
// (e.g. "5.7.3"): three dot-separated runs of 1 to 3 digits. It uses no fmt
// scanning, which would link fmt's whole scanner for this one line.
func parseEnhancedCode(code string) (smtp.EnhancedCode, bool) {
	var e smtp.EnhancedCode
	for i := range e {
		part, rest, found := strings.Cut(code, ".")
		if found != (i < 2) || len(part) == 0 || len(part) > 3 {
			return e, false
		}
		for _, c := range []byte(part) {
			if c < '0' || c > '9' {
				return e, false
			}
			e[i] = e[i]*10 + int(c-'0')
		}
		code = rest
	}
	return e, true
}

func tlsFailure(ctx context.Context, stage Stage, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("smtpx: %s: %w", stage, ctx.Err())
	}
	e := replyError(stage, err)
	if e.Reason == ReasonNetwork {
		e.Reason, e.Message = ReasonTLS, "tls handshake failed"
	}
	return e
}

// ctxOr returns the context's error if it ended (the I/O error is then
// only its symptom), else the classified error.
func ctxOr(ctx context.Context, stage Stage, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("smtpx: %s: %w", stage, ctx.Err())
	}
	// The connection's deadline is the context's, and may fire a moment
	// before the context's own timer marks it done.
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		return fmt.Errorf("smtpx: %s: %w", stage, context.DeadlineExceeded)
	}
	return replyError(stage, err)
}

func isLoopback(a net.Addr) bool {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.IsLoopback()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (ss *Session) saslClient(c *smtp.Client, tok *oauth2.Token) sasl.Client {
	s := ss.s
	bearer := strings.EqualFold(s.Mechanism, MechanismOAUTHBEARER)
	if s.Mechanism == "" && !c.SupportsAuth(MechanismXOAUTH2) && c.SupportsAuth(MechanismOAUTHBEARER) {
		bearer = true
	}
	if bearer {
		host, port, _ := net.SplitHostPort(s.Addr)
		p, _ := strconv.Atoi(port)
		return OAUTHBEARER(s.username(), tok.AccessToken, host, p)
	}
	return XOAUTH2(s.username(), tok.AccessToken)
}

// goodbye sends QUIT on a set-up connection that will not authenticate,
// waits a few seconds at most for the reply, and closes it.
func goodbye(cc *ctxConn, c *smtp.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), quitTimeout)
	defer cancel()
	unbind := cc.bind(ctx)
	defer unbind()
	if c.Quit() != nil {
		c.Close()
	}
}

// quitTimeout bounds the QUIT of a connection that is given up.
const quitTimeout = 5 * time.Second

// auth authenticates with tok and, if the server refuses it and the token
// source is a Refresher, once more with a refreshed token.
func (ss *Session) auth(ctx context.Context, c *smtp.Client, tok *oauth2.Token) error {
	s := ss.s
	err := c.Auth(ss.saslFor(c, tok))
	if err == nil {
		return nil
	}
	e := ctxOr(ctx, StageAuth, err)
	var se *Error
	r, ok := s.TokenSource.(Refresher)
	if !ok || !errors.As(e, &se) || (se.Reason != ReasonAuthFailed && se.Reason != ReasonTokenExpiring) {
		return e
	}
	if lg := s.logger(); lg != nil {
		lg.DebugContext(ctx, "smtp auth rejected, refreshing token", "smtp.stage", string(StageAuth), "smtp.code", se.Code)
	}
	tok2, rerr := r.Refresh(ctx, tok)
	if rerr != nil {
		return errors.Join(e, fmt.Errorf("smtpx: token refresh: %w", rerr))
	}
	if tok2 == nil || tok2.AccessToken == "" {
		return e
	}
	if err := c.Auth(ss.saslFor(c, tok2)); err != nil {
		return ctxOr(ctx, StageAuth, err)
	}
	return nil
}

// saslFor returns the SASL client for tok and first notes the token and the
// initial response it will send (raw and base64) as secrets to mask in the
// server's replies: a server may repeat them in its 535.
func (ss *Session) saslFor(c *smtp.Client, tok *oauth2.Token) sasl.Client {
	cl := ss.saslClient(c, tok)
	if ss.secrets == nil {
		ss.secrets = &redact.Masker{}
	}
	ss.secrets.Add(tok.AccessToken)
	if _, ir, err := cl.Start(); err == nil && len(ir) > 0 { // Start has no side effects for XOAUTH2 and OAUTHBEARER
		ss.secrets.Add(string(ir), base64.StdEncoding.EncodeToString(ir))
	}
	return cl
}

// clean masks the session's secrets in the server text err carries: the
// Message of every *Error and *smtp.SMTPError in its tree. Should the text
// of err still hold a secret (a server reply inside an error type smtpx does
// not know), the error is wrapped in one whose text is masked.
func (ss *Session) clean(err error) error {
	if err == nil || ss.secrets == nil {
		return err
	}
	maskTree(err, ss.secrets)
	if msg := err.Error(); ss.secrets.Contains(msg) {
		return &maskedError{msg: ss.secrets.String(msg), err: err}
	}
	return err
}

func maskTree(err error, m *redact.Masker) {
	switch e := err.(type) {
	case *Error:
		e.Message = m.String(e.Message)
	case *smtp.SMTPError:
		e.Message = m.String(e.Message)
	}
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		if next := u.Unwrap(); next != nil {
			maskTree(next, m)
		}
	case interface{ Unwrap() []error }:
		for _, next := range u.Unwrap() {
			if next != nil {
				maskTree(next, m)
			}
		}
	}
}

// maskedError gives err a text with the session's secrets masked.
type maskedError struct {
	msg string
	err error
}

func (e *maskedError) Error() string { return e.msg }
func (e *maskedError) Unwrap() error { return e.err }

// Send submits m on the session. The sender policy and the message are
// checked before anything is sent. If the connection was dropped while
// idle, Send reconnects once and retries.
func (ss *Session) Send(ctx context.Context, m *Message) (err error) {
	if err := ss.s.Check(m); err != nil {
		return err
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	defer func() { err = ss.clean(err) }()
	if ss.closed {
		return errors.New("smtpx: session is closed")
	}
	reconnected := false
	if ss.c == nil {
		if err := ss.connect(ctx); err != nil {
			return err
		}
		reconnected = true
	}
	err = ss.send(ctx, m)
	if err != nil && !reconnected && errors.Is(err, errDropped) {
		if lg := ss.s.logger(); lg != nil {
			lg.DebugContext(ctx, "smtp connection dropped, reconnecting", "smtp.stage", string(StageMail))
		}
		ss.drop()
		if cerr := ss.connect(ctx); cerr != nil {
			return cerr
		}
		err = ss.send(ctx, m)
	}
	var ce *chunkingError
	if errors.As(err, &ce) {
		// The server advertised BDAT but did not understand it. Nothing
		// was accepted (a 50x reply), so the message may go again with
		// DATA, on a new connection, if it can be read again.
		err = ce.err
		s := ss.s
		s.noChunking.Store(true)
		if lg := s.logger(); lg != nil {
			lg.DebugContext(ctx, "smtp server failed BDAT, using DATA", "smtp.reply", ss.clean(ce.err).Error())
		}
		ss.drop()
		if !m.hasReader() {
			if cerr := ss.connect(ctx); cerr != nil {
				return cerr
			}
			err = ss.send(ctx, m)
		}
	}
	var de *droppedError
	if errors.As(err, &de) {
		err = de.err
	}
	return err
}

// errDropped marks a connection that was found dead before the first
// command of a transaction had been answered, so retrying is safe.
var errDropped = errors.New("smtpx: connection dropped")

type droppedError struct{ err error }

func (e *droppedError) Error() string        { return e.err.Error() }
func (e *droppedError) Unwrap() error        { return e.err }
func (e *droppedError) Is(target error) bool { return target == errDropped }

func (ss *Session) drop() {
	if ss.c != nil {
		ss.c.Close()
	}
	ss.c, ss.conn, ss.w = nil, nil, nil
}

// command is one command of the envelope: MAIL, RCPT or DATA.
type command struct {
	stage  Stage
	parts  []string
	expect int // reply code, or its first digit(s) as in textproto
}

// send runs one transaction. On any failure that leaves the connection in
// an unknown state, the connection is dropped (the next Send redials).
func (ss *Session) send(ctx context.Context, m *Message) (err error) {
	s := ss.s
	c, w := ss.c, ss.w
	unbind := ss.conn.bind(ctx)
	defer unbind()
	log := s.logger()

	if ss.dirty {
		w.cmd("RSET")
		err := w.flush()
		if err == nil {
			err = w.reply(250, commandTimeout)
		}
		if err != nil {
			// Treat like a dropped idle connection.
			ss.drop()
			return &droppedError{ctxOr(ctx, StageMail, err)}
		}
		ss.dirty = false
	}

	defer func() { ss.fresh = false }()
	if s.MaxSize > 0 {
		// Attachments of unknown size are held to the limit as they are
		// read, with a fresh budget for every attempt.
		m = m.capped(s.MaxSize)
	}
	chunked := ss.chunking()
	binary := chunked && len(m.Attachments) > 0
	size := m.estimateSize(binary)
	if max, ok := c.MaxMessageSize(); ok && max > 0 && size > int64(max) {
		return &Error{Stage: StageMail, Reason: ReasonTooLarge,
			Message: fmt.Sprintf("message of at least %d bytes exceeds the server's SIZE limit of %d bytes", size, max)}
	}
	mail, merr := mailCommand(m.From.Email, c.Extension, size, needsUTF8(m), binary)
	if merr != nil {
		return &Error{Stage: StageMail, Reason: ReasonRejected, Message: merr.Error()}
	}
	cmds := make([]command, 0, 2+len(m.To)+len(m.Cc)+len(m.Bcc))
	cmds = append(cmds, command{StageMail, mail, 250})
	for _, l := range [][]Address{m.To, m.Cc, m.Bcc} {
		for _, a := range l {
			if hasCRLF(a.Email) {
				return &HeaderInjectionError{Field: "RCPT"}
			}
			cmds = append(cmds, command{StageRcpt, []string{"RCPT TO:<", a.Email, ">"}, 25})
		}
	}
	msgID := m.MessageID
	if msgID == "" {
		msgID = newMessageID(m.From.Email[strings.LastIndexByte(m.From.Email, '@')+1:])
	}
	date := m.Date
	if date.IsZero() {
		date = s.now()
	}
	if log != nil {
		log.DebugContext(ctx, "smtp mail", "smtp.stage", string(StageMail), "smtp.from", m.From.Email, "smtp.pipelining", ss.pipelining, "smtp.chunking", chunked)
	}
	if chunked {
		return ss.sendChunked(ctx, m, cmds, msgID, date, size)
	}

	cmds = append(cmds, command{StageData, []string{"DATA"}, 354})
	if err := ss.envelope(ctx, cmds); err != nil {
		return err
	}
	dw := w.data()
	err = writeMessage(dw, m, date, msgID, false)
	if err == nil {
		err = dw.Close()
	}
	if err != nil {
		// The message is incomplete: sending the final dot would submit a
		// truncated message, so the connection is abandoned instead.
		ss.drop()
		var ae *attachmentError
		if errors.As(err, &ae) {
			return ae
		}
		return ctxOr(ctx, StageData, err)
	}
	quit := ss.oneShot && ss.pipelining
	if quit {
		w.cmd("QUIT")
	}
	if err := w.flush(); err != nil {
		ss.drop()
		return ctxOr(ctx, StageData, err)
	}
	err = w.reply(250, submissionTimeout)
	if quit {
		// The reply to the final dot decides the result; QUIT's 221 is read
		// only to end the session politely, and its failure (a reply lost
		// to a closed connection) never turns a delivered message into an
		// error.
		if se := (*smtp.SMTPError)(nil); err == nil || errors.As(err, &se) {
			w.reply(221, commandTimeout)
		}
		ss.drop()
		ss.closed = true
		if err != nil {
			return ctxOr(ctx, StageData, err)
		}
		if log != nil {
			log.DebugContext(ctx, "smtp message accepted", "smtp.stage", string(StageData), "smtp.message_id", msgID)
		}
		return nil
	}
	if err != nil {
		return ss.fail(ctx, StageData, err)
	}
	ss.dirty = false
	if log != nil {
		log.DebugContext(ctx, "smtp message accepted", "smtp.stage", string(StageData), "smtp.message_id", msgID)
	}
	return nil
}

// envelope sends MAIL, the RCPTs and DATA and reads their replies. With
// PIPELINING (RFC 2920 §3.1) the commands go out in one write and the
// replies are read in order; without it, one command at a time. It returns
// nil when DATA was answered 354 after every other command succeeded. The
// first failed command decides the error, so a refused MAIL is reported
// at StageMail even though RCPT and DATA were refused after it.
func (ss *Session) envelope(ctx context.Context, cmds []command) error {
	w := ss.w
	// first classifies the failure of the first command: a dead connection
	// or 421 there means the server dropped the idle connection, and
	// nothing of this transaction was accepted, so it is safe to retry.
	first := func(err error) error {
		if ctx.Err() != nil {
			ss.drop()
			return fmt.Errorf("smtpx: %s: %w", StageMail, ctx.Err())
		}
		e := replyError(StageMail, err)
		if e.Reason == ReasonNetwork || e.Code == 421 {
			ss.drop()
			return &droppedError{e}
		}
		ss.dirty = true
		return e
	}
	if !ss.pipelining {
		for i, c := range cmds {
			w.cmd(c.parts...)
			err := w.flush()
			if err == nil {
				err = w.reply(c.expect, commandTimeout)
			}
			if err != nil {
				if i == 0 {
					return first(err)
				}
				return ss.fail(ctx, c.stage, err)
			}
			ss.dirty = true
		}
		return nil
	}

	for _, c := range cmds {
		w.cmd(c.parts...)
	}
	if err := w.flush(); err != nil {
		return first(err)
	}
	ss.dirty = true
	var failed error
	for i, c := range cmds {
		err := w.reply(c.expect, commandTimeout)
		if err == nil {
			continue
		}
		if i == 0 {
			e := first(err)
			if ss.c == nil {
				return e // dropped: the other replies will never come
			}
			failed = e
			continue
		}
		e := ss.fail(ctx, c.stage, err)
		if ss.c == nil {
			return e
		}
		if failed == nil {
			failed = e
		}
		if i == len(cmds)-1 {
			return failed // DATA refused: the transaction is over
		}
	}
	if failed != nil {
		// DATA was accepted although MAIL or a RCPT was refused. Sending
		// the final dot would deliver an empty message to the recipients
		// that were accepted, and SMTP has no other way to leave the DATA
		// state, so the connection is abandoned (RFC 2920 §3.1).
		ss.drop()
	}
	return failed
}

// fail classifies err; a non-reply failure drops the connection.
func (ss *Session) fail(ctx context.Context, stage Stage, err error) error {
	e := ctxOr(ctx, stage, err)
	var se *Error
	if !errors.As(e, &se) || se.Code == 0 || se.Code == 421 {
		ss.drop()
	}
	return e
}

func (ss *Session) quit(ctx context.Context) error {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.c == nil {
		return nil
	}
	unbind := ss.conn.bind(ctx)
	defer unbind()
	c, w := ss.c, ss.w
	ss.c, ss.conn, ss.w, ss.closed = nil, nil, nil, true
	// A failed QUIT is not worth an error: every message has been
	// answered already.
	w.cmd("QUIT")
	if w.flush() == nil {
		w.reply(221, commandTimeout)
	}
	c.Close()
	return nil
}

// Close ends the session with QUIT (waiting at most a few seconds) and
// closes the connection.
func (ss *Session) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), quitTimeout)
	defer cancel()
	err := ss.quit(ctx)
	ss.mu.Lock()
	ss.closed = true
	ss.mu.Unlock()
	return err
}
