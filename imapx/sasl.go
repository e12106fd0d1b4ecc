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
// (https://learn.microsoft.com/exchange/client-developer/legacy-protocols/how-to-authenticate-an-imap-pop-smtp-application-by-using-oauth);
// an error challenge is answered with an empty line so that the server
// sends its final NO.
type xoauth2 struct {
	user, token string
	answered    bool
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

func (c *xoauth2) Next([]byte) ([]byte, error) {
	if c.answered {
		return nil, errChallenge
	}
	c.answered = true
	return []byte{}, nil
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
