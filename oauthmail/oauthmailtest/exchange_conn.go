package oauthmailtest

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// How the Exchange side is built on go-smtp.
//
// go-smtp's server parses commands, keeps the SMTP state machine, reads DATA
// and BDAT and enforces the size and line limits; the session (exchange_session.go)
// makes every decision and answers with Exchange's replies as *smtp.SMTPError.
// What go-smtp writes by itself (banner, EHLO list, "Roger, accepting mail",
// "Go ahead", ...) has go-smtp's wording, so the net.Conn that go-smtp writes to
// is an exoConn, which rewrites those lines into Exchange's, line by line.
//
// TLS happens underneath go-smtp, in exoConn, so that exoConn always sees
// plaintext: go-smtp runs without a TLSConfig and answers STARTTLS with
// "502 5.5.1 TLS not supported"; exoConn replaces that line with Exchange's
// "220 2.0.0 SMTP server ready", does the handshake on the socket and from then
// on reads and writes through the TLS connection.

// exoListener hands go-smtp exoConns.
type exoListener struct {
	net.Listener
	s *smtpServer
}

func (l *exoListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	x := newExoConn(l.s, c)
	l.s.track(x, true)
	return x, nil
}

// exoConn is one client connection as go-smtp sees it.
type exoConn struct {
	s   *smtpServer
	raw net.Conn
	sid string // session id: in the banner and in every error suffix
	ip  string // client IP, for the EHLO greeting

	closeOnce sync.Once
	wmu       sync.Mutex // serialises writes to the client

	mu            sync.Mutex // guards the fields below
	cur           net.Conn   // raw, or the TLS connection after STARTTLS
	isTLS         bool
	needHelo      bool        // after STARTTLS until the next EHLO/HELO
	auth          *authResult // nil until AUTH succeeded
	lastAuthReply string      // last failed AUTH reply line, echoed by 530 5.7.57
	override      string      // replaces the next reply line (faults)
	dropAfter     bool        // close after the next reply line (faults)

	// Used only by Read, which go-smtp calls from one goroutine at a time,
	// and by Write for the reply to an unknown command, which go-smtp writes
	// after reading that command and before reading on.
	lastLine []byte // the last complete line read, at most maxEcho bytes
	readTail []byte // the incomplete line after it, at most maxEcho bytes

	// Used only by Write, which go-smtp calls from one goroutine at a time.
	pending  []byte
	greeted  bool
	inEHLO   bool
	ehloBad  bool
	legacyTL bool // TLS 1.0/1.1 negotiated: answer the next command with 421 4.7.66
}

func newExoConn(s *smtpServer, c net.Conn) *exoConn {
	x := &exoConn{s: s, raw: c, cur: c, sid: newSessionID()}
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		x.ip = a.IP.String()
	} else {
		x.ip = c.RemoteAddr().String()
	}
	return x
}

// newSessionID returns 16 upper-case hex digits, like Exchange's session ids
// (the 2025 captures FIDELITY.md cites as [T1] and [T2]); the 08DE prefix is
// what 2025-2026 ids share.
func newSessionID() string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return "08DE" + strings.ToUpper(hex.EncodeToString(b[:]))
}

// suffix is the "[<FE> <TS> <SID>]" tail of Exchange's error replies
// (e.g. simonrob/email-oauth2-proxy#193), with the emulated time.
func (x *exoConn) suffix() string {
	ts := x.s.c.clock.Now().UTC().Format("2006-01-02T15:04:05.000Z")
	return "[" + exoFrontEndFQDN + " " + ts + " " + x.sid + "]"
}

func (x *exoConn) current() net.Conn {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.cur
}

// Read reads for go-smtp and remembers the last line read, so that the reply
// to an unknown command can name it.
func (x *exoConn) Read(b []byte) (int, error) {
	n, err := x.current().Read(b)
	x.noteRead(b[:n])
	return n, err
}

// maxEcho bounds what is kept of a line for the unknown-command reply.
const maxEcho = 512

func (x *exoConn) noteRead(chunk []byte) {
	i := bytes.LastIndexByte(chunk, '\n')
	if i < 0 {
		if room := maxEcho - len(x.readTail); room > 0 {
			x.readTail = append(x.readTail, chunk[:min(len(chunk), room)]...)
		}
		return
	}
	var line []byte
	if j := bytes.LastIndexByte(chunk[:i], '\n'); j >= 0 {
		line = chunk[j+1 : i]
	} else {
		line = append(x.readTail, chunk[:i]...)
	}
	x.lastLine = append(x.lastLine[:0], line[:min(len(line), maxEcho)]...)
	x.readTail = append(x.readTail[:0], chunk[i+1:][:min(len(chunk)-i-1, maxEcho)]...)
}

// unknownVerb is the command word of the last line read, as the client sent
// it, for "500 5.3.3 Unrecognized command '<verb>'"; "unknown" if there is none
// or it is not printable ASCII.
func (x *exoConn) unknownVerb() string {
	f := strings.Fields(string(x.lastLine))
	if len(f) == 0 || len(f[0]) > 64 {
		return "unknown"
	}
	for _, r := range f[0] {
		if r < 0x21 || r > 0x7e || r == '\'' {
			return "unknown"
		}
	}
	return f[0]
}
func (x *exoConn) LocalAddr() net.Addr                { return x.raw.LocalAddr() }
func (x *exoConn) RemoteAddr() net.Addr               { return x.raw.RemoteAddr() }
func (x *exoConn) SetDeadline(t time.Time) error      { return x.raw.SetDeadline(t) }
func (x *exoConn) SetReadDeadline(t time.Time) error  { return x.raw.SetReadDeadline(t) }
func (x *exoConn) SetWriteDeadline(t time.Time) error { return x.raw.SetWriteDeadline(t) }

// Close ends the connection, with a TLS close_notify when TLS is up.
func (x *exoConn) Close() error {
	var err error
	x.closeOnce.Do(func() {
		x.s.track(x, false)
		if tc, ok := x.current().(*tls.Conn); ok {
			_ = x.raw.SetWriteDeadline(time.Now().Add(time.Second))
			_ = tc.Close()
		}
		err = x.raw.Close()
	})
	return err
}

// Write receives go-smtp's replies and sends Exchange's instead.
func (x *exoConn) Write(p []byte) (int, error) {
	x.pending = append(x.pending, p...)
	for {
		i := bytes.Index(x.pending, []byte("\r\n"))
		if i < 0 {
			break
		}
		line := string(x.pending[:i])
		x.pending = x.pending[i+2:]
		if err := x.reply(line); err != nil {
			x.pending = nil
			return 0, err
		}
	}
	if len(x.pending) == 0 {
		x.pending = nil
	}
	return len(p), nil
}

// send writes lines to the client, after Options.ErrorDelay for an error
// reply: Exchange answers errors after a tarpit of about 5 s (captures in
// nodemailer/nodemailer#1484 and simonrob/email-oauth2-proxy#234; Exchange
// Server's TarpitInterval "default value is 00:00:05",
// https://learn.microsoft.com/powershell/module/exchangepowershell/set-receiveconnector).
func (x *exoConn) send(lines ...string) error {
	if len(lines) == 0 {
		return nil
	}
	if last := lines[len(lines)-1]; x.s.errorDelay > 0 && len(last) > 0 && (last[0] == '4' || last[0] == '5') {
		t := time.NewTimer(x.s.errorDelay)
		select {
		case <-t.C:
		case <-x.s.ctx.Done():
			t.Stop()
		}
	}
	var b bytes.Buffer
	for _, l := range lines {
		b.WriteString(l)
		b.WriteString("\r\n")
	}
	x.wmu.Lock()
	defer x.wmu.Unlock()
	_, err := x.current().Write(b.Bytes())
	return err
}

// sendAndClose sends line and closes the connection (faults, 421 replies).
func (x *exoConn) sendAndClose(line string) error {
	_ = x.send(line)
	_ = x.Close()
	return net.ErrClosed
}

// setOverride makes the next reply line line instead (an injected fault).
func (x *exoConn) setOverride(line string) {
	x.mu.Lock()
	x.override = line
	x.mu.Unlock()
}

func (x *exoConn) setDropAfter() {
	x.mu.Lock()
	x.dropAfter = true
	x.mu.Unlock()
}

func (x *exoConn) takeOverride() (override string, drop bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	override, drop = x.override, x.dropAfter
	x.override, x.dropAfter = "", false
	return override, drop
}

func (x *exoConn) tlsActive() bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.isTLS
}

// reply translates one reply line written by go-smtp.
func (x *exoConn) reply(line string) error {
	if !x.greeted {
		x.greeted = true
		return x.banner()
	}
	if x.inEHLO { // swallow go-smtp's capability lines up to the last one
		if len(line) < 4 || line[3] != '-' {
			x.inEHLO = false
			if x.ehloBad {
				return x.send("501 5.5.4 Invalid domain name " + x.suffix())
			}
			return x.send(x.ehloLines()...)
		}
		return nil
	}
	if x.legacyTL {
		// As in zehm/sendEmail#1 (stage UNVERIFIED: the first reply after the handshake).
		x.legacyTL = false
		return x.sendAndClose("421 4.7.66 TLS 1.0 and 1.1 are not supported. Please upgrade/update your client to support TLS 1.2. Visit https://aka.ms/smtp_auth_tls. [" + exoFrontEndFQDN + "]")
	}
	if o, drop := x.takeOverride(); o != "" || drop {
		if o != "" {
			line = o
		} else {
			line = x.rewrite(line)
		}
		if drop || strings.HasPrefix(line, "421") {
			return x.sendAndClose(line)
		}
		return x.send(line)
	}

	switch {
	case strings.HasPrefix(line, "250-Hello "): // EHLO, first line
		x.inEHLO = true
		x.ehloBad = !validHeloDomain(strings.TrimPrefix(line, "250-Hello "))
		x.heloDone(!x.ehloBad)
		return nil
	case strings.HasPrefix(line, "250 2.0.0 Hello "): // HELO
		if !validHeloDomain(strings.TrimPrefix(line, "250 2.0.0 Hello ")) {
			return x.send("501 5.5.4 Invalid domain name " + x.suffix())
		}
		x.heloDone(true)
		return x.send("250 " + exoBannerHost + " Hello [" + x.ip + "]") // UNVERIFIED for HELO
	case line == "502 5.5.1 TLS not supported": // STARTTLS, see the comment at the top
		return x.startTLS()
	}
	line = x.rewrite(line)
	if strings.HasPrefix(line, "421") {
		return x.sendAndClose(line)
	}
	return x.send(line)
}

// rewrite maps go-smtp's fixed reply texts to Exchange's. Replies the session
// produced are Exchange's already and pass unchanged.
func (x *exoConn) rewrite(line string) string {
	switch {
	// The replies of a 2025 capture (FIDELITY.md [T2]).
	case strings.HasPrefix(line, "250 2.0.0 Roger, accepting mail from "):
		return "250 2.1.0 Sender OK"
	case strings.HasPrefix(line, "250 2.0.0 I'll make sure "):
		return "250 2.1.5 Recipient OK"
	case line == "354 Go ahead. End your data with <CR><LF>.<CR><LF>":
		return "354 Start mail input; end with <CRLF>.<CRLF>"
	// Microsoft's XOAUTH2 page and FIDELITY.md [T1]:
	// https://learn.microsoft.com/exchange/client-developer/legacy-protocols/how-to-authenticate-an-imap-pop-smtp-application-by-using-oauth
	case line == "235 2.0.0 Authentication succeeded":
		return "235 2.7.0 Authentication successful"
	// Seen in one public JavaMail log (secondary source, UNVERIFIED).
	case line == "221 2.0.0 Bye":
		return "221 2.0.0 Service closing transmission channel"
	// RSET -> 250 2.0.0 Resetting, captured in jstedfast/MailKit#904.
	case line == "250 2.0.0 Session reset":
		return "250 2.0.0 Resetting"
	case line == "250 2.0.0 I have successfully done nothing":
		return "250 2.0.0 OK" // UNVERIFIED
	// Unknown commands (simonrob/email-oauth2-proxy#234, #251).
	// The reply echoes the command word as the client sent it (go-smtp's
	// reply has it upper-cased, or not at all for a line it cannot parse);
	// what Exchange echoes for lines without a command word is UNVERIFIED.
	case strings.HasPrefix(line, "500 5.5.2 Syntax errors, ") && strings.HasSuffix(line, " command unrecognized"):
		cmd := strings.TrimSuffix(strings.TrimPrefix(line, "500 5.5.2 Syntax errors, "), " command unrecognized")
		if v := x.unknownVerb(); strings.EqualFold(v, cmd) {
			cmd = v
		}
		return "500 5.3.3 Unrecognized command '" + cmd + "' " + x.suffix()
	case line == "501 5.5.2 Bad command", line == "500 5.5.2 Error: bad syntax":
		return "500 5.3.3 Unrecognized command '" + x.unknownVerb() + "' " + x.suffix()
	// AUTH without a mechanism: 504 5.7.4 as for a mechanism not offered
	// (maxisam/mgob#52; UNVERIFIED for this case).
	case line == "502 5.5.4 Missing parameter":
		return "504 5.7.4 Unrecognized authentication type " + x.suffix()
	// A SASL response that is not base64: Exchange's reply to a malformed
	// XOAUTH2 blob (tarickb/sasl-xoauth2#110, seen on smtp-hve; UNVERIFIED for
	// smtp.office365.com).
	case line == "454 4.7.0 Invalid base64 data":
		l := "501 5.5.124 Invalid XOAUTH2 auth data " + x.suffix()
		x.authFailed(l)
		return l
	// SASL cancel "*": Office 365 answers 535 (a comment in
	// simonrob/email-oauth2-proxy emailproxy.py).
	case line == "501 5.0.0 Negotiation cancelled":
		l := "535 5.7.3 Authentication unsuccessful " + x.suffix()
		x.authFailed(l)
		return l
	// Sequence errors and size: Exchange Server's wording (UNVERIFIED for Exchange Online).
	case line == "502 5.5.1 Please introduce yourself first.":
		return "503 5.5.2 Send hello first " + x.suffix()
	case line == "502 5.5.1 Missing MAIL FROM command.":
		return "503 5.5.2 Need mail command " + x.suffix()
	case line == "502 5.5.1 Missing RCPT TO command.":
		return "503 5.5.2 Need rcpt command " + x.suffix()
	case line == "552 5.3.4 Max message size exceeded", line == "552 5.3.4 Maximum message size exceeded":
		return msgTooLarge(x)
	}
	return line
}

func msgTooLarge(x *exoConn) string {
	return "552 5.3.4 Message size exceeds fixed maximum message size " + x.suffix() // UNVERIFIED
}

func (x *exoConn) heloDone(ok bool) {
	x.mu.Lock()
	if ok {
		x.needHelo = false
	}
	x.mu.Unlock()
}

func (x *exoConn) authFailed(line string) {
	x.mu.Lock()
	x.lastAuthReply = line
	x.mu.Unlock()
}

// banner sends Exchange's greeting (FIDELITY.md [T1], [T2]), or acts
// on a StageBanner fault.
func (x *exoConn) banner() error {
	f, faulted := x.s.takeFault(StageBanner)
	if faulted && f.Reply != "" {
		if strings.HasPrefix(f.Reply, "421") {
			return x.sendAndClose(f.Reply)
		}
		return x.send(f.Reply)
	}
	date := x.s.c.clock.Now().UTC().Format("Mon, 2 Jan 2006 15:04:05 -0700")
	err := x.send("220 " + exoBannerHost + " Microsoft ESMTP MAIL Service ready at " + date + " [" + x.sid + "]")
	if faulted {
		_ = x.Close()
		return net.ErrClosed
	}
	return err
}

// ehloLines is Exchange's EHLO reply before and after STARTTLS
// (the transcripts https://lore.kernel.org/git/PN3PR01MB95971B8A202ADEA412010B35B88E2@PN3PR01MB9597.INDPRD01.PROD.OUTLOOK.COM/
// and https://github.com/adiityapratap/Bizadmin/blob/5023a74d/application/logs/log-2025-11-23.php),
// in Exchange's order.
func (x *exoConn) ehloLines() []string {
	tlsCap := "250-STARTTLS"
	if x.tlsActive() {
		tlsCap = "250-AUTH LOGIN XOAUTH2"
	}
	return []string{
		"250-" + exoBannerHost + " Hello [" + x.ip + "]",
		"250-SIZE " + strconv.FormatInt(x.s.maxSize, 10),
		"250-PIPELINING",
		"250-DSN",
		"250-ENHANCEDSTATUSCODES",
		tlsCap,
		"250-8BITMIME",
		"250-BINARYMIME",
		"250-CHUNKING",
		"250 SMTPUTF8",
	}
}

// startTLS answers STARTTLS and upgrades the connection underneath go-smtp.
func (x *exoConn) startTLS() error {
	if x.tlsActive() {
		// Exchange does not offer STARTTLS once TLS is up (FIDELITY.md [T1],
		// [T2]); its reply to a second STARTTLS is not known (UNVERIFIED).
		return x.send("500 5.3.3 Unrecognized command 'STARTTLS' " + x.suffix())
	}
	f, faulted := x.s.takeFault(StageStartTLS)
	if faulted && f.Reply != "" {
		if strings.HasPrefix(f.Reply, "421") {
			return x.sendAndClose(f.Reply)
		}
		return x.send(f.Reply)
	}
	if err := x.send("220 2.0.0 SMTP server ready"); err != nil {
		return err
	}
	// A bound on the handshake, generous enough for a test that opens a
	// thousand TLS sessions at once under the race detector on a loaded
	// 2-core machine (30 s was not: the server hung up mid-handshake and
	// the client saw a broken pipe at STARTTLS).
	_ = x.raw.SetDeadline(time.Now().Add(2 * time.Minute))
	tc := tls.Server(x.raw, x.s.tlsConf)
	if err := tc.HandshakeContext(x.s.ctx); err != nil {
		x.s.log.Debug("smtp", "smtp.session", x.sid, "smtp.stage", "starttls", "error", err.Error())
		_ = x.raw.Close()
		return fmt.Errorf("oauthmailtest: TLS handshake: %w", err)
	}
	_ = x.raw.SetDeadline(time.Time{})
	x.mu.Lock()
	x.cur, x.isTLS, x.needHelo = tc, true, true
	x.mu.Unlock()
	x.legacyTL = tc.ConnectionState().Version < tls.VersionTLS12
	if faulted {
		_ = x.Close()
		return net.ErrClosed
	}
	return nil
}

// validHeloDomain reports whether an EHLO/HELO argument is a plausible domain
// or address literal. Exchange answers "501 5.5.4 Invalid domain name" to
// "MacBook.." (FIDELITY.md [T1]); the exact rule is not known.
func validHeloDomain(d string) bool {
	if strings.HasPrefix(d, "[") && strings.HasSuffix(d, "]") {
		lit := strings.TrimPrefix(d[1:len(d)-1], "IPv6:")
		return net.ParseIP(lit) != nil
	}
	d = strings.TrimSuffix(d, ".")
	if d == "" || len(d) > 255 {
		return false
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	return true
}
