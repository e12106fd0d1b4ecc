package oauthmail

import (
	"net"
	"strconv"
	"strings"

	"github.com/devicemail/devicemail/smtpx"
)

// checkSMTP refuses a submission server address that is not host:port with
// a port number, and a SASL mechanism smtpx does not implement, before any
// connection is tried (they would otherwise look like network failures).
func checkSMTP(addr, mechanism string) error {
	if addr != "" {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return badInput("config: SMTP server " + strconv.Quote(addr) + " is not host:port (for example smtp.office365.com:587)")
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || host == "" {
			return badInput("config: SMTP server " + strconv.Quote(addr) + " needs a host and a port number from 1 to 65535")
		}
	}
	switch strings.ToUpper(mechanism) {
	case "", smtpx.MechanismXOAUTH2, smtpx.MechanismOAUTHBEARER:
		return nil
	}
	return badInput("config: unknown SMTP mechanism " + strconv.Quote(mechanism) + " (XOAUTH2 or OAUTHBEARER)")
}
