package relay

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"golang.org/x/crypto/bcrypt"

	"github.com/devicemail/devicemail/oauthmail"
	"github.com/devicemail/devicemail/smtpx"
)

// Replies of the relay's own refusals.
var (
	errUnknownDevice = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Relaying denied: authenticate, or connect from a configured device address"}
	errAuthFailed    = &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "Authentication credentials invalid"}
	errNeedTLS       = &smtp.SMTPError{Code: 538, EnhancedCode: smtp.EnhancedCode{5, 7, 11}, Message: "Encryption required for requested authentication mechanism (use STARTTLS)"}
	errBadMechanism  = &smtp.SMTPError{Code: 504, EnhancedCode: smtp.EnhancedCode{5, 5, 4}, Message: "Unsupported authentication mechanism"}
	errQueueDown     = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Message not queued (local storage failed); try again later"}
)

// dummyHash is compared against when a user name is unknown, so that an
// unknown name takes as long to refuse as a wrong password.
var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("relay-unknown-user"), bcrypt.DefaultCost)

type backend struct{ r *Relay }

func (b *backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	s := &session{r: b.r, conn: c, remote: remoteAddr(c.Conn())}
	return s, nil
}

func remoteAddr(c net.Conn) netip.Addr {
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// session is one device connection.
type session struct {
	r      *Relay
	conn   *smtp.Conn
	remote netip.Addr
	authed *Device // after a successful AUTH
	dev    *Device // the device of the current transaction
	from   string
	rcpts  []string
	inTx   bool // counted in Relay.active
}

// endTx ends the count of a transaction begun by MAIL.
func (s *session) endTx() {
	if s.inTx {
		s.inTx = false
		s.r.active.Add(-1)
	}
}

func (s *session) isTLS() bool {
	_, ok := s.conn.TLSConnectionState()
	return ok
}

// device is the device this connection speaks for: the authenticated one,
// else the password-less device whose networks hold the source address
// most specifically.
func (s *session) device() *Device {
	if s.authed != nil {
		return s.authed
	}
	var best *Device
	bits := -1
	for i := range s.r.cfg.Devices {
		d := &s.r.cfg.Devices[i]
		if d.Username != "" {
			continue
		}
		for _, p := range d.Networks {
			if p.Contains(s.remote) && p.Bits() > bits {
				best, bits = d, p.Bits()
			}
		}
	}
	return best
}

func (s *session) AuthMechanisms() []string { return []string{sasl.Plain, sasl.Login} }

func (s *session) Auth(mech string) (sasl.Server, error) {
	switch strings.ToUpper(mech) {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, username, password string) error {
			if identity != "" && identity != username {
				s.r.refuse(s.remote, "", "AUTH PLAIN with an authorization identity other than the user", errAuthFailed)
				return errAuthFailed
			}
			return s.authenticate(username, password)
		}), nil
	case sasl.Login:
		return &loginServer{auth: s.authenticate}, nil
	}
	return nil, errBadMechanism
}

// authenticate checks a device's user name and password.
func (s *session) authenticate(username, password string) error {
	r := s.r
	d := r.byUser[username]
	tls := s.isTLS()
	if !tls && (d == nil || !d.InsecureAllowPlaintextAuth) {
		r.refuse(s.remote, deviceName(d), "AUTH without TLS", errNeedTLS)
		return errNeedTLS
	}
	if d == nil {
		bcrypt.CompareHashAndPassword(dummyHash, []byte(password))
		r.refuse(s.remote, "", fmt.Sprintf("unknown user name %q", username), errAuthFailed)
		return errAuthFailed
	}
	if len(d.Networks) > 0 && !slices.ContainsFunc(d.Networks, func(p netip.Prefix) bool { return p.Contains(s.remote) }) {
		r.refuse(s.remote, d.Name, "AUTH from an address outside the device's networks", errAuthFailed)
		return errAuthFailed
	}
	if !r.checkPassword(d, password) {
		r.refuse(s.remote, d.Name, "wrong password", errAuthFailed)
		return errAuthFailed
	}
	s.authed = d
	r.seen(d.Name)
	if !tls {
		r.log.LogAttrs(context.Background(), slog.LevelWarn, "relay: AUTH in clear (insecure_allow_plaintext_auth)",
			slog.String("device", d.Name), slog.String("remote", s.remote.String()))
	} else {
		r.log.LogAttrs(context.Background(), slog.LevelDebug, "relay: device authenticated", slog.String("device", d.Name), slog.String("remote", s.remote.String()))
	}
	return nil
}

// checkPassword compares with bcrypt, remembering (in memory only) a
// SHA-256 of each password that matched, so that a device that connects
// for every message pays bcrypt's cost once per process.
func (r *Relay) checkPassword(d *Device, password string) bool {
	sum := sha256.Sum256([]byte(d.PasswordHash + "\x00" + password))
	r.mu.Lock()
	known, ok := r.authCache[d.Name]
	r.mu.Unlock()
	if ok && subtle.ConstantTimeCompare(known[:], sum[:]) == 1 {
		return true
	}
	if bcrypt.CompareHashAndPassword([]byte(d.PasswordHash), []byte(password)) != nil {
		return false
	}
	r.mu.Lock()
	if r.authCache == nil {
		r.authCache = map[string][32]byte{}
	}
	r.authCache[d.Name] = sum
	r.mu.Unlock()
	return true
}

func deviceName(d *Device) string {
	if d == nil {
		return ""
	}
	return d.Name
}

func (s *session) Mail(from string, opts *smtp.MailOptions) error {
	d := s.device()
	if d == nil {
		s.r.refuse(s.remote, "", "unknown device (no AUTH, and the address is in no device's networks)", errUnknownDevice)
		return errUnknownDevice
	}
	if d.FromPolicy == Enforce && from != "" && !s.allowed(d, from) {
		err := senderRefused(from)
		s.r.refuse(s.remote, d.Name, fmt.Sprintf("envelope sender %q is not allowed (from_policy enforce)", from), err)
		return err
	}
	s.dev, s.from, s.rcpts = d, from, nil
	if !s.inTx {
		s.inTx = true
		s.r.active.Add(1)
	}
	return nil
}

func senderRefused(addr string) *smtp.SMTPError {
	return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1},
		Message: fmt.Sprintf("Sender %s is not allowed for this device; use the account's address", addr)}
}

// allowed reports whether addr is the account's UPN or one of the device's
// senders.
func (s *session) allowed(d *Device, addr string) bool {
	if upn := s.r.upn(d.Account); upn != "" && strings.EqualFold(upn, addr) {
		return true
	}
	return slices.ContainsFunc(d.Senders, func(x string) bool { return strings.EqualFold(x, addr) })
}

// upnEntry is an account's UPN as last read from its store.
type upnEntry struct {
	upn  string
	read time.Time
}

// upnTTL is how long the relay trusts the UPN it read from an account's
// store: a new sign-in as another user shows within a second, and delivery
// checks the sender again against the account it signs in as.
const upnTTL = time.Second

// upn is the signed-in account's UPN from the store ("" when not signed
// in), read at most once per upnTTL: reading the store for each message
// costs a file read and a decryption per message.
func (r *Relay) upn(account string) string {
	now := time.Now()
	r.mu.Lock()
	e, ok := r.upns[account]
	r.mu.Unlock()
	if ok && now.Sub(e.read) < upnTTL {
		return e.upn
	}
	e = upnEntry{read: now}
	if st, err := r.cfg.Mailboxes[account].Mailer.Status(context.Background()); err == nil && st.SignedIn {
		e.upn = st.UPN
	}
	r.mu.Lock()
	r.upns[account] = e
	r.mu.Unlock()
	return e.upn
}

func (s *session) Rcpt(to string, opts *smtp.RcptOptions) error {
	if s.dev == nil {
		return &smtp.SMTPError{Code: 503, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "MAIL first"}
	}
	if err := (&smtpx.Message{From: smtpx.Address{Email: "x@example.com"}, To: []smtpx.Address{{Email: to}}}).Validate(); err != nil {
		e := &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 1, 3}, Message: "Recipient address syntax not accepted"}
		s.r.refuse(s.remote, s.dev.Name, fmt.Sprintf("recipient %q: %v", to, err), e)
		return e
	}
	s.rcpts = append(s.rcpts, to)
	return nil
}

func (s *session) Data(rd io.Reader) error {
	d := s.dev
	if d == nil || len(s.rcpts) == 0 {
		io.Copy(io.Discard, rd)
		return &smtp.SMTPError{Code: 503, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "RCPT first"}
	}
	buf := getBuf()
	defer putBuf(buf)
	data, err := readAll((*buf)[:0], rd)
	*buf = data
	if err != nil {
		var se *smtp.SMTPError
		if errors.As(err, &se) && se.Code == 552 {
			s.r.refuse(s.remote, d.Name, fmt.Sprintf("message larger than %d bytes", s.r.cfg.MaxMessageSize), se)
			return se
		}
		return err
	}
	msg, dropped, err := toMessage(data, s.rcpts)
	if err != nil {
		e := &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "Message content not accepted: the header cannot be parsed"}
		s.r.refuse(s.remote, d.Name, err.Error(), e)
		return e
	}
	if err := s.applyPolicy(d, msg); err != nil {
		return err
	}
	q := s.r.cfg.Mailboxes[d.Account].Queue
	ctx, cancel := context.WithTimeout(context.Background(), s.r.cfg.Timeout)
	id, err := q.Enqueue(ctx, msg)
	cancel()
	if err != nil {
		e := replyFor(err)
		s.r.refuse(s.remote, d.Name, "not queued: "+err.Error(), e)
		return e
	}
	s.r.accepted(d.Name)
	s.r.log.LogAttrs(context.Background(), slog.LevelInfo, "relay: message queued", slog.String("device", d.Name),
		slog.String("account", d.Account), slog.String("outbox.id", id), slog.Int("size", len(data)),
		slog.Int("recipients", len(s.rcpts)), slog.Int("header_recipients_dropped", dropped))
	return nil
}

// applyPolicy enforces or rewrites the header From.
func (s *session) applyPolicy(d *Device, msg *smtpx.Message) error {
	from := msg.From.Email
	if from == "" || s.allowed(d, from) {
		return nil
	}
	if d.FromPolicy == Enforce {
		e := senderRefused(from)
		s.r.refuse(s.remote, d.Name, fmt.Sprintf("header From %q is not allowed (from_policy enforce)", from), e)
		return e
	}
	orig := msg.From
	msg.From = smtpx.Address{Name: orig.Name, Email: s.r.upn(d.Account)} // "" = the account's sender at delivery
	if len(msg.ReplyTo) == 0 {
		msg.ReplyTo = []smtpx.Address{orig}
	}
	s.r.log.LogAttrs(context.Background(), slog.LevelInfo, "relay: header From rewritten to the account's address",
		slog.String("device", d.Name), slog.String("from", orig.Email))
	return nil
}

// replyFor is the SMTP reply for a queue failure.
func replyFor(err error) *smtp.SMTPError {
	switch oauthmail.ErrorCode(err) {
	case oauthmail.MessageTooLarge:
		return &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4}, Message: "Message too big for the account's mailbox"}
	case oauthmail.TooManyRecipients:
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 5, 3}, Message: "Too many recipients"}
	case oauthmail.SenderMismatch, oauthmail.SendAsDenied:
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Sender not allowed for the account"}
	case oauthmail.BadInput:
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "Message content not accepted"}
	}
	return errQueueDown
}

func (s *session) Reset() {
	s.dev, s.from, s.rcpts = nil, "", nil
	s.endTx()
}

func (s *session) Logout() error {
	s.endTx()
	return nil
}

// loginServer is the server side of AUTH LOGIN (draft-murchison-sasl-login):
// "Username:", then "Password:", each base64 on the wire.
type loginServer struct {
	auth     func(username, password string) error
	username string
	step     int
}

func (l *loginServer) Next(response []byte) ([]byte, bool, error) {
	switch l.step {
	case 0:
		l.step = 1
		if response != nil { // initial response: the user name
			l.username, l.step = string(response), 2
			return []byte("Password:"), false, nil
		}
		return []byte("Username:"), false, nil
	case 1:
		l.username, l.step = string(response), 2
		return []byte("Password:"), false, nil
	case 2:
		l.step = 3
		return nil, true, l.auth(l.username, string(response))
	}
	return nil, true, errAuthFailed
}

// limitListener refuses connections beyond MaxConnsPerIP from one address
// with 421 4.7.0 before go-smtp greets them.
type limitListener struct {
	net.Listener
	r *Relay
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := remoteAddr(c)
		r := l.r
		r.mu.Lock()
		over := r.conns[ip] >= r.cfg.MaxConnsPerIP
		if !over {
			r.conns[ip]++
		}
		r.mu.Unlock()
		if over {
			e := &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Too many connections from your address; try again later"}
			r.refuse(ip, "", fmt.Sprintf("more than %d connections", r.cfg.MaxConnsPerIP), e)
			go func() {
				c.SetWriteDeadline(time.Now().Add(10 * time.Second))
				fmt.Fprintf(c, "%d %d.%d.%d %s\r\n", e.Code, e.EnhancedCode[0], e.EnhancedCode[1], e.EnhancedCode[2], e.Message)
				c.Close()
			}()
			continue
		}
		return &countedConn{Conn: c, release: func() {
			r.mu.Lock()
			if r.conns[ip]--; r.conns[ip] <= 0 {
				delete(r.conns, ip)
			}
			r.mu.Unlock()
		}}, nil
	}
}

type countedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *countedConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}
