package imapx

import (
	"errors"
	"strconv"
	"strings"

	"github.com/emersion/go-sasl"
)

// The SASL mechanism names, the values of Receiver.Mechanism.
const (
	MechanismXOAUTH2     = "XOAUTH2"     // Microsoft's and Google's XOAUTH2
	MechanismOAUTHBEARER = "OAUTHBEARER" // RFC 7628
)

var errChallenge = errors.New("imapx: unexpected second SASL challenge")

// xoauth2 is the XOAUTH2 client: initial response
// "user=<user>^Aauth=Bearer <token>^A^A"
// (https://learn.microsoft.com/exchange/client-developer/legacy-protocols/how-to-authenticate-an-imap-pop-smtp-application-by-using-oauth).
//
// The mechanism wants an error challenge (Google's and Dovecot's JSON
// status) answered with an empty line, but go-imap v2.0.0-beta.8 encodes an
// empty response as "=", which Dovecot refuses ("Invalid base64 data in
// continued response", BAD). So the challenge ends the exchange on our
// side: Next returns a *ChallengeError carrying the server's status, and
// the connection is dropped.
type xoauth2 struct {
	user, token string
}

func (c *xoauth2) Start() (string, []byte, error) {
	if c.user == "" || strings.ContainsAny(c.user, "\x01\r\n") {
		return "", nil, errors.New("imapx: xoauth2: user is empty or contains a control character")
	}
	if c.token == "" || strings.ContainsAny(c.token, "\x01\r\n ") {
		return "", nil, errors.New("imapx: xoauth2: token is empty or malformed")
	}
	return MechanismXOAUTH2, []byte("user=" + c.user + "\x01auth=Bearer " + c.token + "\x01\x01"), nil
}

func (c *xoauth2) Next(challenge []byte) ([]byte, error) {
	return nil, &ChallengeError{Status: printable(challenge)}
}

// ChallengeError is the server's refusal of a token sent as an XOAUTH2
// error challenge, typically JSON such as
// {"status":"401","schemes":"bearer","scope":"..."}
// (https://developers.google.com/workspace/gmail/imap/xoauth2-protocol).
// It never contains the token.
type ChallengeError struct {
	Status string // the challenge, control characters removed, at most 512 bytes
}

func (e *ChallengeError) Error() string {
	return "imapx: the server refused the token: " + e.Status
}

// printable keeps a server's challenge loggable.
func printable(b []byte) string {
	if len(b) > 512 {
		b = b[:512]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, string(b))
}

// oauthBearer is the RFC 7628 client. It answers the error challenge with
// the single %x01 of §3.2.3 (go-sasl's client aborts instead, and the
// server's final reply is lost).
type oauthBearer struct {
	user, token, host string
	port              int
	answered          bool
}

func (c *oauthBearer) Start() (string, []byte, error) {
	if strings.ContainsAny(c.token, "\x01\r\n ") || c.token == "" {
		return "", nil, errors.New("imapx: oauthbearer: token is empty or malformed")
	}
	var b strings.Builder
	b.WriteString("n,")
	if c.user != "" {
		b.WriteString("a=" + strings.NewReplacer("=", "=3D", ",", "=2C").Replace(c.user))
	}
	b.WriteString(",\x01host=" + c.host + "\x01port=" + strconv.Itoa(c.port) + "\x01auth=Bearer " + c.token + "\x01\x01")
	return MechanismOAUTHBEARER, []byte(b.String()), nil
}

func (c *oauthBearer) Next([]byte) ([]byte, error) {
	if c.answered {
		return nil, errChallenge
	}
	c.answered = true
	return []byte{0x01}, nil
}

var _ sasl.Client = (*xoauth2)(nil)
