package main

import (
	"flag"
	"net"
	"strings"
	"time"

	"github.com/devicemail/devicemail/smtpx"
)

// smtpFlags are the flags that shape the SMTP connection, shared by send,
// send --queue, queue run/flush and status. They become the
// oauthmail.Config.Sender template.
type smtpFlags struct {
	addr, tls, localName *string
	connectTimeout       *time.Duration
}

func (f *smtpFlags) register(fs *flag.FlagSet, addrUsage string) {
	f.addr = fs.String("smtp", "", addrUsage)
	f.tls = fs.String("smtp-tls", "", "how the SMTP connection is secured: starttls or implicit (default: implicit on port 465, else starttls)")
	f.localName = fs.String("local-name", "", "host name the client gives in EHLO (default: localhost)")
	f.connectTimeout = fs.Duration("connect-timeout", 0, "limit on connecting to the SMTP server, TLS and AUTH, e.g. 20s (default 1m)")
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
