package imapx

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"github.com/devicemail/devicemail/internal/logx"
	"github.com/devicemail/devicemail/logging"
	"io"
	"net"
	"strconv"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
	"golang.org/x/oauth2"
)

// Defaults of the zero Receiver fields (documented on the fields).
const (
	defaultPollInterval = time.Minute
	defaultIdleInterval = 10 * time.Minute
	defaultTimeout      = 2 * time.Minute
)

// TokenSource supplies the OAuth 2.0 access token for AUTHENTICATE. It is
// asked once per connection, with the context of the call that connects.
type TokenSource interface {
	Token(ctx context.Context) (*oauth2.Token, error)
}

// Refresher is an optional add-on to [TokenSource]. When the server refuses
// a token from a Refresher, the Receiver calls Refresh once with the
// rejected token and authenticates once more, on a new connection.
type Refresher interface {
	TokenSource
	Refresh(ctx context.Context, rejected *oauth2.Token) (*oauth2.Token, error)
}

// Handler is called with each new message, one at a time. The message's
// parts can be read only during the call. A nil return marks the message
// handled (Receiver.MoveTo); an error leaves it new on the server and ends
// the receive call with that error.
type Handler func(ctx context.Context, m *Message) error

// Receiver receives the new messages of one mailbox over IMAP (RFC 9051,
// RFC 3501) with implicit TLS, authenticating with SASL XOAUTH2 or
// OAUTHBEARER (RFC 7628). Fields may be changed until the first method
// call; a Receiver is then safe for concurrent use, though each call opens
// its own connection.
//
// Delivery is at least once: a message is fetched with BODY.PEEK[] (which
// leaves it unread), handed to the Handler, and only after the Handler
// returns nil is it flagged \Seen or moved. A crash, power cut or lost
// connection between the two hands the same message over again on the
// next run: at worst twice, never lost. Handlers that print or forward
// should tolerate a repeat (the Message-ID tells them apart).
type Receiver struct {
	// Addr is the server's host:port with implicit TLS, e.g.
	// "outlook.office365.com:993". Required.
	Addr string
	// Username is the mailbox to authenticate as (user= of XOAUTH2).
	// Required.
	Username string
	// TokenSource gives the access token. Required.
	TokenSource TokenSource
	// TLSConfig is cloned for the connection; nil means the system roots.
	// ServerName defaults to Addr's host. The certificate is always
	// checked unless TLSConfig.InsecureSkipVerify is set.
	TLSConfig *tls.Config
	// Mechanism is MechanismXOAUTH2 or MechanismOAUTHBEARER; "" means
	// XOAUTH2 if the server offers it, else OAUTHBEARER if offered, else
	// XOAUTH2.
	Mechanism string
	// Mailbox is the folder to receive from; "" means INBOX.
	Mailbox string
	// MoveTo, if set, is the folder handled messages are moved to (MOVE,
	// RFC 6851, or COPY and expunge without it); every message in Mailbox
	// is then new. Empty means handled messages are flagged \Seen, and
	// only unseen ones are new.
	MoveTo string
	// PollInterval is how often a server without IDLE (RFC 2177) is asked
	// for new mail; zero means one minute.
	PollInterval time.Duration
	// IdleInterval is how long one IDLE lasts before the Receiver checks
	// the mailbox anyway and idles again; zero means 10 minutes.
	// RFC 2177 asks clients to re-issue IDLE at least every 29 minutes.
	IdleInterval time.Duration
	// Timeout is how long the server may stay silent while a command is
	// under way before the connection is given up (ReasonNetwork); zero
	// means 2 minutes. It also bounds the TLS dial and how long any
	// command but FETCH may take in all.
	Timeout time.Duration
	// Dialer dials the TCP connection; nil means a net.Dialer.
	Dialer *net.Dialer
	// Logger receives Debug records of the steps; nil discards. Tokens are
	// never logged.
	Logger logging.Logger
}

// ReceiveOnce connects, hands every new message to handle, marks each
// after handle returns nil, and disconnects. It returns how many messages
// were handled.
func (r *Receiver) ReceiveOnce(ctx context.Context, handle Handler) (int, error) {
	n := 0
	err := r.run(ctx, handle, &n, true)
	return n, err
}

// Receive connects and then handles new messages as they arrive, waiting
// with IDLE where the server offers it and polling every PollInterval
// otherwise, until ctx ends (it then returns nil) or a failure. It does not
// reconnect: callers that should survive a dropped connection call it again
// after a pause when the error is [Error.Temporary] (the oauthmail facade
// does).
func (r *Receiver) Receive(ctx context.Context, handle Handler) error {
	var n int
	err := r.run(ctx, handle, &n, false)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func (r *Receiver) logger() logging.Logger {
	return logx.Or(r.Logger)
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

func (r *Receiver) check() error {
	switch {
	case r.Addr == "":
		return errors.New("imapx: Receiver.Addr is empty")
	case r.Username == "":
		return errors.New("imapx: Receiver.Username is empty")
	case r.TokenSource == nil:
		return errors.New("imapx: Receiver.TokenSource is nil")
	case r.Mechanism != "" && r.Mechanism != MechanismXOAUTH2 && r.Mechanism != MechanismOAUTHBEARER:
		return fmt.Errorf("imapx: unknown Receiver.Mechanism %q", r.Mechanism)
	}
	if _, _, err := net.SplitHostPort(r.Addr); err != nil {
		return fmt.Errorf("imapx: Receiver.Addr %q: %v", r.Addr, err)
	}
	return nil
}

// session is one authenticated connection.
type session struct {
	r      *Receiver
	c      *imapclient.Client
	conn   *guardConn
	notify chan struct{} // the mailbox grew (EXISTS)
	caps   imap.CapSet   // after authentication
	stop   func() bool   // unregisters the close-on-cancel of the connection
	log    logging.Logger
}

func (r *Receiver) run(ctx context.Context, handle Handler, n *int, once bool) error {
	if err := r.check(); err != nil {
		return err
	}
	s, err := r.connect(ctx, false)
	var e *Error
	if errors.As(err, &e) && e.Reason == ReasonAuthFailed {
		if _, ok := r.TokenSource.(Refresher); ok && ctx.Err() == nil {
			s, err = r.connect(ctx, true)
		}
	}
	if err != nil {
		return ctxErr(ctx, err)
	}
	defer s.close()
	return ctxErr(ctx, s.loop(ctx, handle, n, once))
}

// ctxErr prefers the context's error over the I/O error its cancellation caused.
func ctxErr(ctx context.Context, err error) error {
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// connect dials, authenticates and selects the mailbox. With refresh it
// first replaces the token (the server refused the current one).
func (r *Receiver) connect(ctx context.Context, refresh bool) (*session, error) {
	log := r.logger()
	tok, err := r.TokenSource.Token(ctx)
	if err != nil {
		return nil, err
	}
	if refresh {
		if log != nil {
			log.DebugContext(ctx, "imap token refused; refreshing", "account", r.Username)
		}
		if tok, err = r.TokenSource.(Refresher).Refresh(ctx, tok); err != nil {
			return nil, err
		}
	}
	timeout := orDefault(r.Timeout, defaultTimeout)
	host, portStr, _ := net.SplitHostPort(r.Addr)
	port, _ := strconv.Atoi(portStr)
	conf := &tls.Config{}
	if r.TLSConfig != nil {
		conf = r.TLSConfig.Clone()
	}
	if conf.ServerName == "" {
		conf.ServerName = host
	}
	if conf.NextProtos == nil {
		conf.NextProtos = []string{"imap"}
	}
	nd := r.Dialer
	if nd == nil {
		nd = &net.Dialer{}
	}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	raw, err := (&tls.Dialer{NetDialer: nd, Config: conf}).DialContext(dctx, "tcp", r.Addr)
	cancel()
	if err != nil {
		return nil, classify("dial", err)
	}
	gc := &guardConn{Conn: raw, g: guard{max: maxLine}}
	gc.allow(timeout)
	s := &session{r: r, conn: gc, notify: make(chan struct{}, 1), log: log}
	s.c = imapclient.New(gc, &imapclient.Options{
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{
			Mailbox: func(d *imapclient.UnilateralDataMailbox) {
				if d.NumMessages != nil {
					select {
					case s.notify <- struct{}{}:
					default:
					}
				}
			},
		},
	})
	// Ending ctx closes the connection, whatever the session is waiting for.
	s.stop = context.AfterFunc(ctx, func() { raw.Close() })
	ok := false
	defer func() {
		if !ok {
			s.stop()
		}
	}()
	if err := s.within(timeout, s.c.WaitGreeting); err != nil {
		s.close()
		return nil, s.fail("dial", err)
	}
	mech := r.Mechanism
	if mech == "" {
		var caps imap.CapSet
		if err := s.within(timeout, func() error { caps = s.c.Caps(); return nil }); err != nil {
			s.c.Close()
			return nil, s.fail("dial", err)
		}
		switch {
		case caps.Has(imap.AuthCap(MechanismXOAUTH2)):
			mech = MechanismXOAUTH2
		case caps.Has(imap.AuthCap(MechanismOAUTHBEARER)):
			mech = MechanismOAUTHBEARER
		default:
			mech = MechanismXOAUTH2
		}
	}
	var sc sasl.Client = &xoauth2{user: r.Username, token: tok.AccessToken}
	if mech == MechanismOAUTHBEARER {
		sc = &oauthBearer{user: r.Username, token: tok.AccessToken, host: host, port: port}
	}
	if log != nil {
		log.DebugContext(ctx, "imap authenticate", "account", r.Username, "imap.mechanism", mech, "server", r.Addr)
	}
	if err := s.within(timeout, func() error { return s.c.Authenticate(sc) }); err != nil {
		// No LOGOUT: after a challenge the server still waits for the
		// SASL exchange.
		s.c.Close()
		return nil, s.fail("auth", err)
	}
	mbox := r.Mailbox
	if mbox == "" {
		mbox = "INBOX"
	}
	if err := s.within(timeout, func() error { _, err := s.c.Select(mbox, nil).Wait(); return err }); err != nil {
		s.close()
		return nil, s.fail("select", err)
	}
	if err := s.within(timeout, func() error { s.caps = s.c.Caps(); return nil }); err != nil {
		s.close()
		return nil, s.fail("select", err)
	}
	ok = true
	return s, nil
}

// fail classifies err from stage; when the guard cut the connection, its
// ErrLimit is the cause (go-imap reports it only as text).
func (s *session) fail(stage string, err error) error {
	if err == nil {
		return nil
	}
	if g := s.conn.failed.Load(); g != nil && !errors.Is(err, ErrLimit) {
		err = fmt.Errorf("%w (%v)", *g, err)
	}
	return classify(stage, err)
}

func (s *session) close() {
	defer s.stop()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.c.Logout().Wait()
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
	s.c.Close()
}

// loop handles what is new, then waits for more.
func (s *session) loop(ctx context.Context, handle Handler, n *int, once bool) error {
	r := s.r
	timeout := orDefault(r.Timeout, defaultTimeout)
	for {
		if err := s.drain(ctx, handle, n); err != nil {
			return err
		}
		if once || ctx.Err() != nil {
			return nil
		}
		if s.caps.Has(imap.CapIdle) || s.caps.Has(imap.CapIMAP4rev2) {
			if err := s.idle(ctx, orDefault(r.IdleInterval, defaultIdleInterval), timeout); err != nil {
				return err
			}
			continue
		}
		every := orDefault(r.PollInterval, defaultPollInterval)
		s.conn.allow(every + timeout)
		t := time.NewTimer(every)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-s.c.Closed():
			t.Stop()
			return s.fail("poll", errors.New("connection closed by the server"))
		case <-t.C:
		}
		s.conn.allow(timeout)
		if err := s.within(timeout, s.c.Noop().Wait); err != nil {
			return s.fail("poll", err)
		}
	}
}

// idle waits in IDLE until the mailbox grows, the interval passes or ctx ends.
func (s *session) idle(ctx context.Context, interval, timeout time.Duration) error {
	s.conn.allow(interval + timeout)
	cmd, err := s.c.Idle()
	if err != nil {
		return s.fail("idle", err)
	}
	t := time.NewTimer(interval)
	defer t.Stop()
	closed := false
	select {
	case <-ctx.Done():
	case <-s.notify:
	case <-t.C:
	case <-s.c.Closed():
		closed = true
	}
	s.conn.allow(timeout)
	if closed {
		return s.fail("idle", errors.New("connection closed by the server"))
	}
	if err := cmd.Close(); err != nil {
		return s.fail("idle", err)
	}
	return s.fail("idle", s.within(timeout, cmd.Wait))
}

// within runs wait, giving up (and closing the connection) if it has not
// returned after d: a server that keeps talking without ever completing
// the command (an endless IDLE, say) cannot hold the Receiver.
func (s *session) within(d time.Duration, wait func() error) error {
	done := make(chan error, 1)
	go func() { done <- wait() }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		s.c.Close() // wait returns soon after; its result no longer matters
		return fmt.Errorf("%w: no completion within %v", errSilent, d)
	}
}

// errSilent is the cause of a command that did not complete in time.
var errSilent = errors.New("imapx: server did not complete the command")

// drain hands over every new message, oldest first.
func (s *session) drain(ctx context.Context, handle Handler, n *int) error {
	for ctx.Err() == nil {
		crit := &imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagSeen, imap.FlagDeleted}}
		if s.r.MoveTo != "" {
			crit = &imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagDeleted}}
		}
		var data *imap.SearchData
		err := s.within(orDefault(s.r.Timeout, defaultTimeout), func() (err error) {
			data, err = s.c.UIDSearch(crit, nil).Wait()
			return err
		})
		if err != nil {
			return s.fail("search", err)
		}
		uids := data.AllUIDs()
		if len(uids) == 0 {
			return nil
		}
		for _, uid := range uids {
			if ctx.Err() != nil {
				return nil
			}
			if err := s.one(ctx, uid, handle); err != nil {
				return err
			}
			*n++
		}
		// Search again: more may have arrived while these were handled.
	}
	return nil
}

// one fetches, hands over and marks the message uid.
func (s *session) one(ctx context.Context, uid imap.UID, handle Handler) error {
	set := imap.UIDSetNum(uid)
	cmd := s.c.Fetch(set, &imap.FetchOptions{
		UID: true, RFC822Size: true,
		BodySection: []*imap.FetchItemBodySection{{Peek: true}},
	})
	herr := error(nil)
	seen := false
	for {
		msg := cmd.Next()
		if msg == nil {
			break
		}
		m := &Message{}
		var body imap.LiteralReader
		for {
			item := msg.Next()
			if item == nil {
				break
			}
			switch it := item.(type) {
			case imapclient.FetchItemDataUID:
				m.UID = uint32(it.UID)
			case imapclient.FetchItemDataRFC822Size:
				m.Size = it.Size
			case imapclient.FetchItemDataBodySection:
				body = it.Literal
			}
			if body != nil {
				break
			}
		}
		if body == nil || seen {
			continue // an unsolicited FETCH (flags of another message)
		}
		if m.UID == 0 { // UID came after the body; only uid was asked for
			m.UID = uint32(uid)
		}
		seen = true
		herr = s.hand(ctx, m, body, handle)
		_, _ = io.Copy(io.Discard, body) // what the handler left unread
		for msg.Next() != nil {
		}
	}
	if err := cmd.Close(); err != nil {
		return s.fail("fetch", err)
	}
	if herr != nil {
		return fmt.Errorf("imapx: message uid %d not marked: %w", uid, herr)
	}
	if !seen {
		return nil // gone meanwhile (expunged elsewhere)
	}
	return s.within(orDefault(s.r.Timeout, defaultTimeout), func() error { return s.mark(ctx, set) })
}

func (s *session) hand(ctx context.Context, m *Message, body io.Reader, handle Handler) error {
	if err := m.open(body); err != nil {
		// An unparsable message is still handed over, as raw bytes.
		if s.log != nil {
			s.log.DebugContext(ctx, "imap message header unparsable", "uid", uint64(m.UID))
		}
	}
	if s.log != nil {
		s.log.DebugContext(ctx, "imap message", "uid", uint64(m.UID), "size", m.Size)
	}
	return handle(ctx, m)
}

// mark flags the handled message \Seen, or moves it to MoveTo.
func (s *session) mark(ctx context.Context, set imap.UIDSet) error {
	if s.r.MoveTo == "" {
		err := s.c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagSeen}}, nil).Close()
		return s.fail("mark", err)
	}
	if s.caps.Has(imap.CapMove) || s.caps.Has(imap.CapIMAP4rev2) {
		_, err := s.c.Move(set, s.r.MoveTo).Wait()
		return s.fail("mark", err)
	}
	if _, err := s.c.Copy(set, s.r.MoveTo).Wait(); err != nil {
		return s.fail("mark", err)
	}
	if err := s.c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		return s.fail("mark", err)
	}
	if s.caps.Has(imap.CapUIDPlus) {
		return s.fail("mark", s.c.UIDExpunge(set).Close())
	}
	return s.fail("mark", s.c.Expunge().Close())
}
