package oauthmailtest

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/textproto"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

// Message is a message the Exchange side accepted: the reply to its final dot
// was "250 2.0.0 OK <MessageID> [Hostname=...]".
type Message struct {
	// From is the envelope sender (MAIL FROM).
	From string `json:"from"`
	// To are the envelope recipients (RCPT TO), in order.
	To []string `json:"to"`
	// User is the UPN of the mailbox the session authenticated as with
	// XOAUTH2: the token's user, or for an app-only token the user= mailbox.
	User string `json:"user"`
	// ClientID is the appid of the access token that authenticated the session.
	ClientID string `json:"client_id"`
	// AppOnly reports that the session used an app-only (client credentials) token.
	AppOnly bool `json:"app_only,omitempty"`
	// MessageID is the Message-ID the server assigned, with its angle brackets,
	// as the success reply carries it. Like Exchange, the server replaces the
	// client's Message-ID header with it and keeps the client's value in
	// X-Microsoft-Original-Message-ID (see the git send-email patch at
	// https://lore.kernel.org/git/PN3PR01MB9597A491CB14F4DC5DA6AA69B8BB2@PN3PR01MB9597.INDPRD01.PROD.OUTLOOK.COM/).
	MessageID string `json:"message_id"`
	// Received is the emulated time the message was accepted.
	Received time.Time `json:"received"`
	// Header is the parsed header of Data (empty if it could not be parsed).
	Header textproto.MIMEHeader `json:"header"`
	// Data is the message as stored: the client's bytes with the Message-ID
	// header replaced.
	Data []byte `json:"data"`
	// NotDelivered lists the recipients the message was accepted for but not
	// delivered to, with the status Exchange puts in the non-delivery report
	// it sends the sender later (for example a mailbox whose MaxReceiveSize
	// the message exceeds).
	NotDelivered []NonDelivery `json:"not_delivered,omitempty"`
	// Transport is how the message was submitted: "smtp", or "graph" for
	// Microsoft Graph's sendMail or a sent draft.
	Transport string `json:"transport"`
}

// stored is an accepted message as the emulator keeps it. parts, for a
// message the Graph side composed, is the message kept as its parts; its
// Data is then nil and composed from parts in every copy handed out
// (clone) and for the IMAP INBOX (content).
type stored struct {
	Message
	parts *lazyMIME
}

// NonDelivery is one recipient of an accepted message that a non-delivery
// report would name.
type NonDelivery struct {
	Recipient string `json:"recipient"`
	// Status is the reply in the report, e.g.
	// "550 5.2.3 RESOLVER.RST.RecipSizeLimit; message too large for this recipient".
	Status string `json:"status"`
}

// SMTPStage is a point of an SMTP session where [SMTPFault] acts.
type SMTPStage int

// Stages for [SMTPFault]. "Drop" means SMTPFault.Reply is empty.
const (
	// StageBanner: Drop closes the connection right after the banner; a Reply
	// is sent instead of the banner.
	StageBanner SMTPStage = iota + 1
	// StageStartTLS: Drop closes the connection right after the TLS handshake;
	// a Reply is sent instead of "220 2.0.0 SMTP server ready" and no TLS starts.
	StageStartTLS
	// StageAuth: Drop closes the connection right after
	// "235 2.7.0 Authentication successful"; a Reply is sent instead of the
	// AUTH outcome (the session stays unauthenticated).
	StageAuth
	// StageData: mid-DATA, once the first bytes of the message arrived. Drop
	// closes the connection; a Reply is sent and then the connection is closed.
	StageData
	// StageDataEnd: after the final dot, before the reply. Drop closes the
	// connection without a reply; a Reply is sent instead of the 250. Either
	// way the message is not stored.
	StageDataEnd
)

func (st SMTPStage) String() string {
	switch st {
	case StageBanner:
		return "banner"
	case StageStartTLS:
		return "starttls"
	case StageAuth:
		return "auth"
	case StageData:
		return "data"
	case StageDataEnd:
		return "data-end"
	}
	return fmt.Sprintf("SMTPStage(%d)", int(st))
}

// SMTPFault makes the Exchange side misbehave at a stage, for tests of a
// client's retry and error handling. Faults are used in the order injected.
type SMTPFault struct {
	// Stage is where the fault acts.
	Stage SMTPStage
	// Reply is the reply line to send instead of the normal one, without CRLF,
	// for example "451 4.7.0 Temporary server error. Please try again later. PRX4"
	// or "421 4.3.2 Service not available". After a 421 reply the connection
	// is closed. Empty means drop the connection (see the stage constants).
	Reply string
	// Count is how many times the fault acts; zero means once.
	Count int
}

// Names the Exchange side uses for itself. They have the shape of Exchange
// Online's (front ends end in CA + 4 digits, mailbox servers in MB + 4 digits,
// as in the captures FIDELITY.md cites as [T1] and [T2]) but are obviously
// not Microsoft's.
const (
	exoFrontEnd      = "EM1PR01CA0001"
	exoRegion        = "EMUPRD01"
	exoMailboxServer = "EM1PR01MB0001"
	exoBannerHost    = exoFrontEnd + ".outlook.office365.com"
	exoFrontEndFQDN  = exoFrontEnd + "." + exoRegion + ".PROD.OUTLOOK.COM"
	exoMailboxFQDN   = exoMailboxServer + "." + exoRegion + ".PROD.OUTLOOK.COM"

	// defaultMaxMessageSize is the SIZE Exchange Online advertises: 150 MiB
	// (FIDELITY.md [T1], [T2]).
	defaultMaxMessageSize = 157286400
	// maxLineLength bounds a command line (and a DATA line). Exchange accepts
	// AUTH lines carrying long JWTs (FIDELITY.md [T1]); its real limit is not known.
	maxLineLength = 32 * 1024
)

// Tarpit is how long Exchange Online waits before an SMTP error reply: about
// 5 s in captures, and the default TarpitInterval of Exchange Server.
const Tarpit = 5 * time.Second

// smtpServer is the Exchange Online side: a go-smtp server whose replies are
// rewritten into Exchange's (see exoConn).
type smtpServer struct {
	c       *core
	o       *Options
	log     *slog.Logger
	srv     *smtp.Server
	addr    string
	tlsConf *tls.Config
	ctx     context.Context
	cancel  context.CancelFunc
	ln      net.Listener
	served  chan struct{} // closed when srv.Serve has returned

	maxSize    int64
	maxConc    int
	rate       int
	errorDelay time.Duration

	mu      sync.Mutex
	msgs    []stored
	changed chan struct{} // closed and replaced whenever msgs grows
	faults  []SMTPFault
	active  map[string]int         // mailbox UPN (lower case) -> connections in a mail transaction
	sent    map[string][]time.Time // mailbox UPN (lower case) -> recent submission times
	rcpts   map[string][]rcptCount // mailbox UPN (lower case) -> recipients sent, last 24 h
	extern  map[string][]rcptCount // tenant ID (lower case) -> external recipients, last 24 h
	conns   map[*exoConn]struct{}  // open client connections
}

// startSMTP listens on o.SMTPAddr (default 127.0.0.1:0) and serves the
// Exchange side in a goroutine. It panics if it cannot listen, like httptest.
func startSMTP(c *core, o *Options) *smtpServer {
	addr := o.SMTPAddr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		panic(fmt.Sprintf("oauthmailtest: SMTP listen on %s: %v", addr, err))
	}
	s := &smtpServer{
		c: c, o: o, log: o.Logger, addr: ln.Addr().String(),
		maxSize: o.MaxMessageSize, maxConc: o.MaxConcurrent, rate: o.SendRate,
		changed: make(chan struct{}),
		active:  map[string]int{},
		sent:    map[string][]time.Time{},
		rcpts:   map[string][]rcptCount{},
		extern:  map[string][]rcptCount{},
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.maxSize <= 0 {
		s.maxSize = defaultMaxMessageSize
	}
	if s.maxConc <= 0 {
		s.maxConc = 3
	}
	s.errorDelay = o.ErrorDelay
	if s.errorDelay == 0 && o.Realistic {
		s.errorDelay = Tarpit
	}
	if s.rate == 0 {
		s.rate = 30
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	// Accept TLS 1.0 and 1.1 handshakes so that such clients get Exchange's
	// "421 4.7.66" reply rather than a handshake failure (zehm/sendEmail#1).
	s.tlsConf = c.serverTLS()
	s.tlsConf.MinVersion = tls.VersionTLS10

	srv := smtp.NewServer(smtp.BackendFunc(s.newSession))
	srv.Domain = exoBannerHost
	srv.MaxMessageBytes = s.maxSize
	srv.MaxLineLength = maxLineLength
	// go-smtp never sees TLS: exoConn does STARTTLS underneath it, and the
	// session refuses AUTH before STARTTLS as Exchange does.
	srv.AllowInsecureAuth = true
	srv.ReadTimeout = 5 * time.Minute
	srv.WriteTimeout = time.Minute
	srv.EnableSMTPUTF8 = true
	srv.EnableBINARYMIME = true
	srv.EnableDSN = true
	srv.ErrorLog = errorLog{s.log}
	s.srv = srv
	s.ln, s.served = ln, make(chan struct{})
	go func() {
		defer close(s.served)
		_ = srv.Serve(&exoListener{Listener: ln, s: s})
	}()
	return s
}

// close stops the listener and every connection. The listener is closed
// and Serve let to return first: in go-smtp v0.25.1, Serve adds each
// accepted connection to the WaitGroup that Shutdown waits on, a data race
// when a client connects just as the emulator closes. Then the sockets are
// closed and go-smtp's handlers are let to return before srv.Close:
// Server.Close racing with a BDAT upload in progress is a data race inside
// go-smtp too (Conn.Close clears the BDAT pipe that the handler is copying
// into).
func (s *smtpServer) close() {
	s.cancel()
	_ = s.ln.Close()
	<-s.served
	s.mu.Lock()
	conns := make([]*exoConn, 0, len(s.conns))
	for x := range s.conns {
		conns = append(conns, x)
	}
	s.mu.Unlock()
	for _, x := range conns {
		_ = x.raw.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
	_ = s.srv.Close()
}

func (s *smtpServer) track(x *exoConn, open bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !open {
		delete(s.conns, x)
		return
	}
	if s.conns == nil {
		s.conns = make(map[*exoConn]struct{})
	}
	s.conns[x] = struct{}{}
}

// ServeHTTP answers GET with the accepted messages as a JSON array of [Message].
func (s *smtpServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	msgs := s.messages()
	if msgs == nil {
		msgs = []Message{}
	}
	_ = json.NewEncoder(w).Encode(msgs)
}

func (s *smtpServer) messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.msgs) == 0 {
		return nil
	}
	out := make([]Message, len(s.msgs))
	for i, m := range s.msgs {
		out[i] = m.clone()
	}
	return out
}

func (sm stored) clone() Message {
	m := sm.Message
	m.To = append([]string(nil), m.To...)
	if sm.parts != nil {
		m.Data = sm.parts.Bytes()
	} else {
		m.Data = append([]byte(nil), m.Data...)
	}
	h := make(textproto.MIMEHeader, len(m.Header))
	for k, v := range m.Header {
		h[k] = append([]string(nil), v...)
	}
	m.Header = h
	m.NotDelivered = append([]NonDelivery(nil), m.NotDelivered...)
	return m
}

// rcptCount is n recipients sent at t.
type rcptCount struct {
	t time.Time
	n int
}

// inWindow returns the recipients of log sent in the 24 hours before now,
// dropping older entries from it.
func inWindow(log map[string][]rcptCount, key string, now time.Time) int {
	entries := log[key]
	i := 0
	for i < len(entries) && !entries[i].t.After(now.Add(-24*time.Hour)) {
		i++
	}
	entries = entries[i:]
	log[key] = entries
	total := 0
	for _, e := range entries {
		total += e.n
	}
	return total
}

// quota checks, and on success records, n recipients of which ext are
// external for mailbox in tenant tid at now. It returns the reply refusing the
// message, or nil. limit is the mailbox's rolling 24-hour recipient limit
// (negative: none), extLimit the tenant's external one (zero: none).
func (s *smtpServer) quota(mailbox, tid string, now time.Time, n, ext, limit, extLimit int) (refuse string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	tid = strings.ToLower(tid)
	// "After the recipient rate limit is reached, messages can't be sent from
	// the mailbox until the number of recipients that were sent messages in
	// the past 24 hours drops below the limit"
	// (https://learn.microsoft.com/office365/servicedescriptions/exchange-online-service-description/exchange-online-limits#sending-limits):
	// a message is refused once the count has reached the limit, not because
	// its own recipients would pass it.
	if limit >= 0 && inWindow(s.rcpts, mailbox, now) >= limit {
		return "quota"
	}
	if extLimit > 0 && ext > 0 && inWindow(s.extern, tid, now) >= extLimit {
		return "external"
	}
	s.rcpts[mailbox] = append(s.rcpts[mailbox], rcptCount{now, n})
	if ext > 0 {
		s.extern[tid] = append(s.extern[tid], rcptCount{now, ext})
	}
	return ""
}

// content returns a reader of the stored message's bytes, and their number.
func (m *stored) content() (io.Reader, int64) {
	if m.parts != nil {
		return m.parts.Reader(), m.parts.Len()
	}
	return bytes.NewReader(m.Data), int64(len(m.Data))
}

// store keeps an accepted message; parts, if not nil, is its content
// (m.Data is then nil).
func (s *smtpServer) store(m Message, parts *lazyMIME) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = append(s.msgs, stored{m, parts})
	close(s.changed)
	s.changed = make(chan struct{})
}

// takeFault returns the first injected fault for stage, using up one count.
func (s *smtpServer) takeFault(stage SMTPStage) (SMTPFault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.faults {
		if f.Stage != stage {
			continue
		}
		f.Count--
		if f.Count <= 0 {
			s.faults = append(s.faults[:i], s.faults[i+1:]...)
		} else {
			s.faults[i] = f
		}
		return f, true
	}
	return SMTPFault{}, false
}

// enter records that a connection of mailbox started a mail transaction.
func (s *smtpServer) enter(mailbox string) {
	s.mu.Lock()
	s.active[mailbox]++
	s.mu.Unlock()
}

func (s *smtpServer) leave(mailbox string) {
	s.mu.Lock()
	if s.active[mailbox]--; s.active[mailbox] <= 0 {
		delete(s.active, mailbox)
	}
	s.mu.Unlock()
}

func (s *smtpServer) concurrent(mailbox string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.active[mailbox]
}

// schedule returns when a submission of mailbox made at now may complete under
// the per-minute rate: the excess is carried over to the following minutes
// (https://learn.microsoft.com/exchange/troubleshoot/send-emails/smtp-submission-improvements),
// so the n-th message within any minute waits until the (n-rate)-th is a
// minute old.
func (s *smtpServer) schedule(mailbox string, now time.Time) time.Time {
	if s.rate < 0 {
		return now
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	times := s.sent[mailbox]
	at := now
	if len(times) >= s.rate {
		if t := times[len(times)-s.rate].Add(time.Minute); t.After(at) {
			at = t
		}
	}
	times = append(times, at)
	if len(times) > s.rate {
		times = append([]time.Time(nil), times[len(times)-s.rate:]...)
	}
	s.sent[mailbox] = times
	return at
}

// SMTPAddr returns the Exchange side's address, "127.0.0.1:PORT". It speaks
// SMTP with STARTTLS (the emulator's certificate) like smtp.office365.com:587.
func (e *Emulator) SMTPAddr() string { return e.smtp.addr }

// Messages returns a copy of the messages accepted so far, oldest first.
func (e *Emulator) Messages() []Message { return e.smtp.messages() }

// WaitMessages waits until at least n messages were accepted and returns them
// all, or returns ctx.Err() with those accepted so far.
func (e *Emulator) WaitMessages(ctx context.Context, n int) ([]Message, error) {
	for {
		e.smtp.mu.Lock()
		got, ch := len(e.smtp.msgs), e.smtp.changed
		e.smtp.mu.Unlock()
		if got >= n {
			return e.smtp.messages(), nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return e.smtp.messages(), ctx.Err()
		}
	}
}

// InjectSMTP queues a fault for the Exchange side; it acts on the next
// sessions that reach its stage, Count times.
func (e *Emulator) InjectSMTP(f SMTPFault) {
	if f.Count <= 0 {
		f.Count = 1
	}
	f.Reply = strings.NewReplacer("\r", "", "\n", "").Replace(f.Reply)
	e.smtp.mu.Lock()
	e.smtp.faults = append(e.smtp.faults, f)
	e.smtp.mu.Unlock()
}

// errorLog sends go-smtp's internal error messages to the emulator's logger.
type errorLog struct{ l *slog.Logger }

func (l errorLog) Printf(format string, v ...any) {
	l.l.Debug("smtp server", "error", fmt.Sprintf(format, v...))
}

func (l errorLog) Println(v ...any) {
	l.l.Debug("smtp server", "error", strings.TrimSuffix(fmt.Sprintln(v...), "\n"))
}
