package smtpx

import (
	"errors"
	"strconv"
	"strings"

	"github.com/emersion/go-sasl"
)

// OAUTHBEARER returns a SASL client for the OAUTHBEARER mechanism (RFC 7628)
// that sends token as a bearer token for user, naming the server's host and
// port as §3.1 asks.
//
// go-sasl has an OAUTHBEARER client, but it ends the exchange with an error
// when the server answers a rejected token with its JSON error challenge, so
// the client cancels with "*" and the server's final 535 is never read (a
// Dovecot submission server then answers 501 and the failure looks like a
// protocol error). This one answers the challenge with the single %x01 that
// RFC 7628 §3.2.3 prescribes, so the server's failure reply arrives intact.
func OAUTHBEARER(user, token, host string, port int) sasl.Client {
	return &oauthBearer{user: user, token: token, host: host, port: port}
}

type oauthBearer struct {
	user, token, host string
	port              int
	answered          bool
}

func (c *oauthBearer) Start() (mech string, ir []byte, err error) {
	// gs2-header "n,a=<saslname>," then kvpairs separated by %x01 (RFC 7628 §3.1).
	var b strings.Builder
	b.WriteString("n,")
	if c.user != "" {
		b.WriteString("a=")
		b.WriteString(gs2Escape(c.user))
	}
	b.WriteString(",\x01")
	if c.host != "" {
		b.WriteString("host=" + c.host + "\x01")
	}
	if c.port != 0 {
		b.WriteString("port=" + strconv.Itoa(c.port) + "\x01")
	}
	b.WriteString("auth=Bearer " + c.token + "\x01\x01")
	return MechanismOAUTHBEARER, []byte(b.String()), nil
}

// errOAuthBearerChallenge is returned if the server challenges twice.
var errOAuthBearerChallenge = errors.New("smtpx: oauthbearer: unexpected second server challenge")

func (c *oauthBearer) Next(challenge []byte) ([]byte, error) {
	if c.answered {
		return nil, errOAuthBearerChallenge
	}
	// The only challenge after the initial response is the server's error
	// status (RFC 7628 §3.2.2); the client must answer it with %x01 and then
	// read the failure reply (§3.2.3).
	c.answered = true
	return []byte{0x01}, nil
}

// gs2Escape encodes a saslname: "=" as "=3D" and "," as "=2C" (RFC 5801 §4).
func gs2Escape(s string) string {
	return strings.NewReplacer("=", "=3D", ",", "=2C").Replace(s)
}
