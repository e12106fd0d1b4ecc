package oauthmailtest

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	"github.com/emersion/go-sasl"

	"github.com/devicemail/devicemail/internal/jwt"
)

// The Exchange Online IMAP side (outlook.office365.com:993): implicit TLS,
// AUTHENTICATE XOAUTH2 with delegated tokens that carry
// IMAP.AccessAsUser.All
// (https://learn.microsoft.com/exchange/client-developer/legacy-protocols/how-to-authenticate-an-imap-pop-smtp-application-by-using-oauth),
// and a mailbox per user holding the mail the SMTP side accepted for that
// user. Built on go-imap v2's imapserver with its in-memory backend.
//
// Every refusal is the tagged "NO AUTHENTICATE failed." that clients report
// from Exchange Online (for example MailKit's Exchange OAuth2 notes and
// the many "AUTHENTICATE failed" reports against Office 365 IMAP;
// UNVERIFIED against a Microsoft page: Microsoft documents no IMAP
// failure text). LOGIN (Basic authentication) is refused with
// "NO LOGIN failed.", as after Basic authentication was turned off
// (https://learn.microsoft.com/exchange/clients-and-mobile-in-exchange-online/deprecation-of-basic-authentication-exchange-online).
type imapServer struct {
	c    *core
	log  *slog.Logger
	srv  *imapserver.Server
	ln   net.Listener
	addr string
	smtp *smtpServer
	done chan struct{}

	mu        sync.Mutex
	users     map[string]*imapmemserver.User // upn (lower case)
	delivered int                            // how many of smtp.msgs are delivered
}

func startIMAP(c *core, o *Options, smtp *smtpServer) *imapServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(fmt.Sprintf("oauthmailtest: IMAP listen: %v", err))
	}
	s := &imapServer{c: c, log: o.Logger, ln: ln, addr: ln.Addr().String(), smtp: smtp,
		users: map[string]*imapmemserver.User{}, done: make(chan struct{})}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.srv = imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			s.deliver()
			return &imapSession{s: s}, &imapserver.GreetingData{}, nil
		},
		Caps: imap.CapSet{
			imap.CapIMAP4rev1: {}, imap.CapIdle: {}, imap.CapMove: {}, imap.CapUIDPlus: {},
			imap.CapNamespace: {}, imap.CapUnselect: {}, imap.CapChildren: {}, imap.CapID: {},
		},
		Logger: imapLog{s.log},
	})
	conf := c.serverTLS()
	go func() { _ = s.srv.Serve(tls.NewListener(ln, conf)) }()
	go s.watch()
	return s
}

func (s *imapServer) close() {
	close(s.done)
	_ = s.srv.Close()
}

// watch delivers each message as the SMTP side accepts it, so that a
// client in IDLE sees it arrive.
func (s *imapServer) watch() {
	for {
		s.smtp.mu.Lock()
		ch := s.smtp.changed
		s.smtp.mu.Unlock()
		s.deliver()
		select {
		case <-ch:
		case <-s.done:
			return
		}
	}
}

// deliver appends what the SMTP side accepted since the last call to the
// INBOX of every recipient whose mailbox store exists. A store is made when
// its user first signs in to IMAP, with the mail accepted for the user
// until then (userLocked): what a client sees is the same as if every
// message had been appended on arrival, and an emulator that nobody reads
// by IMAP does not copy every message into a second store (a 50 MB
// attachment would cost it a 67 MB copy grown by doubling).
func (s *imapServer) deliver() {
	s.smtp.mu.Lock()
	msgs := append([]stored(nil), s.smtp.msgs...)
	s.smtp.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range msgs[min(s.delivered, len(msgs)):] {
		for _, rcpt := range m.To {
			if u := s.users[strings.ToLower(rcpt)]; u != nil {
				s.appendLocked(u, rcpt, m)
			}
		}
	}
	s.delivered = len(msgs)
}

func (s *imapServer) appendLocked(u *imapmemserver.User, rcpt string, m stored) {
	r, n := m.content()
	if _, err := u.Append("INBOX", literal{r, n}, &imap.AppendOptions{Time: m.Received}); err != nil {
		s.log.Debug("imap delivery failed", "account", rcpt, "error", err)
	}
}

// userLocked returns the mailbox store of upn, creating it on first use
// with the mail delivered for upn so far, or nil if the directory has no
// such mailbox.
func (s *imapServer) userLocked(upn string) *imapmemserver.User {
	key := strings.ToLower(upn)
	if u := s.users[key]; u != nil {
		return u
	}
	s.c.mu.Lock()
	du := s.c.dir.user(upn)
	if du == nil {
		du = s.c.dir.mailboxOwner(upn)
	}
	ok := du != nil && !du.NoMailbox
	s.c.mu.Unlock()
	if !ok {
		return nil
	}
	// The password is random and never used: LOGIN is always refused.
	u := imapmemserver.NewUser(key, randomToken("imap", 16))
	_ = u.Create("INBOX", nil)
	s.users[key] = u
	s.smtp.mu.Lock()
	msgs := append([]stored(nil), s.smtp.msgs[:min(s.delivered, len(s.smtp.msgs))]...)
	s.smtp.mu.Unlock()
	for _, m := range msgs {
		for _, rcpt := range m.To {
			if strings.ToLower(rcpt) == key {
				s.appendLocked(u, rcpt, m)
			}
		}
	}
	return u
}

type literal struct {
	io.Reader
	size int64
}

func (l literal) Size() int64 { return l.size }

var errAuthFailed = &imap.Error{Type: imap.StatusResponseTypeNo, Text: "AUTHENTICATE failed."}

// imapSession is one connection; UserSession is set once authenticated.
type imapSession struct {
	s *imapServer
	*imapmemserver.UserSession
}

func (ss *imapSession) Close() error {
	if ss.UserSession == nil {
		return nil
	}
	return ss.UserSession.Close()
}

func (ss *imapSession) Login(string, string) error {
	return &imap.Error{Type: imap.StatusResponseTypeNo, Text: "LOGIN failed."}
}

// AuthenticateMechanisms lists what Exchange Online advertises: PLAIN and
// XOAUTH2 (no OAUTHBEARER; UNVERIFIED beyond client transcripts).
func (ss *imapSession) AuthenticateMechanisms() []string { return []string{"PLAIN", "XOAUTH2"} }

func (ss *imapSession) Authenticate(mech string) (sasl.Server, error) {
	if mech != "XOAUTH2" {
		return nil, errAuthFailed
	}
	return &imapXOAUTH2{ss: ss}, nil
}

// imapXOAUTH2 checks one XOAUTH2 initial response.
type imapXOAUTH2 struct {
	ss   *imapSession
	done bool
}

func (x *imapXOAUTH2) Next(resp []byte) ([]byte, bool, error) {
	if x.done {
		return nil, true, errAuthFailed
	}
	x.done = true
	if resp == nil {
		return []byte{}, false, nil // ask for the initial response
	}
	s := x.ss.s
	user, tok, ok := parseXOAUTH2(resp)
	if !ok {
		s.log.Debug("imap", "imap.stage", "auth", "reason", "malformed XOAUTH2 response")
		return nil, true, errAuthFailed
	}
	upn, err := s.checkIMAP(user, tok)
	if err != nil {
		s.log.Debug("imap", "imap.stage", "auth", "account", user, "reason", err.Error())
		return nil, true, errAuthFailed
	}
	s.mu.Lock()
	u := s.userLocked(upn)
	s.mu.Unlock()
	if u == nil {
		return nil, true, errAuthFailed
	}
	x.ss.UserSession = imapmemserver.NewUserSession(u)
	s.log.Debug("imap", "imap.stage", "auth", "account", upn)
	return nil, true, nil
}

// checkIMAP applies the checks of a delegated IMAP token: the emulator's
// signature, lifetime, audience https://outlook.office.com, the scope
// IMAP.AccessAsUser.All, and user= equal to the token's UPN. App-only
// tokens (IMAP.AccessAsApp) are not emulated.
func (s *imapServer) checkIMAP(user, tok string) (string, error) {
	var cl accessClaims
	if _, err := jwt.VerifyRS256(tok, &s.c.signKey.PublicKey, &cl); err != nil {
		return "", errTokenSignature
	}
	now := s.c.clock.Now().Unix()
	if now >= cl.Exp || now < cl.Nbf-300 {
		return "", errTokenExpired
	}
	if strings.TrimSuffix(cl.Aud, "/") != AudienceDelegated {
		return "", errTokenAudience
	}
	if !hasWord(strings.Fields(cl.Scp), "IMAP.AccessAsUser.All") {
		return "", errors.New("token lacks IMAP.AccessAsUser.All")
	}
	if cl.UPN == "" || !strings.EqualFold(user, cl.UPN) {
		return "", errors.New("user= is not the token's upn")
	}
	return cl.UPN, nil
}

type imapLog struct{ l *slog.Logger }

func (l imapLog) Printf(format string, v ...any) { l.l.Debug(fmt.Sprintf(format, v...)) }
func (l imapLog) Println(v ...any)               { l.l.Debug(fmt.Sprint(v...)) }

// IMAPAddr returns the IMAP server's address (implicit TLS, like
// outlook.office365.com:993). Its certificate is the emulator's, trusted by
// [Emulator.TLSConfig]. Each user's INBOX holds the mail the SMTP side
// accepted for that user.
func (e *Emulator) IMAPAddr() string { return e.imap.addr }

// IMAPAccessToken mints a delegated access token with the scope
// IMAP.AccessAsUser.All for upn, like [Emulator.AccessToken] does for SMTP.
func (e *Emulator) IMAPAccessToken(upn string) string {
	return e.token(upn, "IMAP.AccessAsUser.All")
}
