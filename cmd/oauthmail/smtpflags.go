package main

import (
	"errors"
	"flag"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/devicemail/devicemail/oauthmail"
	"github.com/devicemail/devicemail/smtpx"
)

// smtpFlags are the flags that shape the SMTP connection, shared by send,
// send --queue, queue run/flush and status. They become the
// oauthmail.Config.Sender template.
type smtpFlags struct {
	addr, tls, localName *string
	connectTimeout       *time.Duration
	transport, maxSize   *string
}

func (f *smtpFlags) register(fs *flag.FlagSet, addrUsage string) {
	f.addr = fs.String("smtp", "", addrUsage)
	f.tls = fs.String("smtp-tls", "", "how the SMTP connection is secured: starttls or implicit (default: implicit on port 465, else starttls)")
	f.localName = fs.String("local-name", "", "host name the client gives in EHLO (default: localhost)")
	f.connectTimeout = fs.Duration("connect-timeout", 0, "limit on connecting to the SMTP server, TLS and AUTH, e.g. 20s (default 1m)")
	f.maxSize = fs.String("max-size", "", "largest message to send, attachments counted base64-encoded, e.g. 100MB (default: Exchange Online's 35MB; set the mailbox's MaxSendSize if an administrator raised it)")
	f.transport = fs.String("transport", "auto", "how mail is sent: auto (SMTP, and Microsoft Graph from when SMTP AUTH is found switched off), smtp or graph")
}

// config returns the Config the flags describe: the sender template (with
// the SASL mechanism, "" but for send) and the transport.
func (f *smtpFlags) config(mechanism string) (oauthmail.Config, error) {
	s, err := f.sender(mechanism)
	if err != nil {
		return oauthmail.Config{}, err
	}
	t, err := oauthmail.ParseTransport(*f.transport)
	if err != nil {
		return oauthmail.Config{}, usagef("--transport must be auto, smtp or graph, not %q", *f.transport)
	}
	if *f.maxSize != "" {
		n, err := parseSize(*f.maxSize)
		if err != nil {
			return oauthmail.Config{}, usagef("--max-size %q: %v", *f.maxSize, err)
		}
		s.MaxSize = n
	}
	return oauthmail.Config{Sender: s, Transport: t}, nil
}

// parseSize parses a byte count with an optional KB or MB suffix (2^10 and
// 2^20, as Exchange counts).
func parseSize(v string) (int64, error) {
	u := strings.ToUpper(strings.TrimSpace(v))
	mul := int64(1)
	switch {
	case strings.HasSuffix(u, "MB"):
		mul, u = 1<<20, strings.TrimSuffix(u, "MB")
	case strings.HasSuffix(u, "KB"):
		mul, u = 1<<10, strings.TrimSuffix(u, "KB")
	}
	n, err := strconv.ParseInt(strings.TrimSpace(u), 10, 64)
	if err != nil || n <= 0 || n > (1<<40)/mul {
		return 0, errors.New("want a positive number of bytes, KB or MB")
	}
	return n * mul, nil
}

// sender returns the sender template the flags describe, with the SASL
// mechanism (the send flag --mechanism; "" otherwise).
func (f *smtpFlags) sender(mechanism string) (*smtpx.Sender, error) {
	s := &smtpx.Sender{Addr: *f.addr, Mechanism: mechanism, LocalName: *f.localName, ConnectTimeout: *f.connectTimeout}
	switch strings.ToLower(*f.tls) {
	case "starttls":
		s.TLS = smtpx.StartTLS
	case "implicit":
		s.TLS = smtpx.ImplicitTLS
	case "":
		// Port 465 is submission over implicit TLS (RFC 8314 §3.3); a
		// STARTTLS client would wait there for a greeting that never comes.
		if _, port, err := net.SplitHostPort(*f.addr); err == nil && port == "465" {
			s.TLS = smtpx.ImplicitTLS
		}
	default:
		return nil, usagef("--smtp-tls must be starttls or implicit, not %q", *f.tls)
	}
	if *f.localName != "" && (strings.ContainsAny(*f.localName, " \t\r\n") || strings.HasPrefix(*f.localName, "-")) {
		return nil, usagef("--local-name %q is not a host name", *f.localName)
	}
	if *f.connectTimeout < 0 {
		return nil, usagef("--connect-timeout must not be negative")
	}
	return s, nil
}
