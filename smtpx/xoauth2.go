package smtpx

import (
	"errors"
	"strings"

	"github.com/emersion/go-sasl"
)

// The SASL mechanism names, the values of Sender.Mechanism.
const (
	MechanismXOAUTH2     = "XOAUTH2"     // [XOAUTH2]
	MechanismOAUTHBEARER = "OAUTHBEARER" // [OAUTHBEARER], RFC 7628
)

// XOAUTH2 returns a [sasl.Client] for the XOAUTH2 mechanism, which go-sasl
// no longer ships. It sends the initial response
//
//	user=<user>\x01auth=Bearer <token>\x01\x01
//
// (https://learn.microsoft.com/exchange/client-developer/legacy-protocols/how-to-authenticate-an-imap-pop-smtp-application-by-using-oauth)
// and answers a 334 error challenge (Google's
// JSON status) with an empty response, as the mechanism requires, so that
// the server ends the exchange with its final failure reply.
//
// The returned client never includes the token in an error string.
func XOAUTH2(user, token string) sasl.Client {
	return &xoauth2Client{user: user, token: token}
}

type xoauth2Client struct {
	user, token string
	challenged  bool
}

func (c *xoauth2Client) Start() (string, []byte, error) {
	if c.user == "" || strings.ContainsAny(c.user, "\x01\r\n") {
		return "", nil, errors.New("smtpx: xoauth2: user is empty or contains a control character")
	}
	if c.token == "" || strings.ContainsAny(c.token, "\x01\r\n ") {
		return "", nil, errors.New("smtpx: xoauth2: token is empty or malformed")
	}
	return MechanismXOAUTH2, encodeXOAUTH2(c.user, c.token), nil
}

func (c *xoauth2Client) Next(challenge []byte) ([]byte, error) {
	// The only challenge XOAUTH2 knows is the error challenge; the reply
	// to it must be empty, after which the server sends its final reply.
	if c.challenged {
		return nil, sasl.ErrUnexpectedServerChallenge
	}
	c.challenged = true
	return []byte{}, nil
}

// Microsoft's encoding: "user=" + userName + "^Aauth=Bearer " + accessToken + "^A^A"
func encodeXOAUTH2(user, token string) []byte {
	b := make([]byte, 0, len(user)+len(token)+20)
	b = append(b, "user="...)
	b = append(b, user...)
	b = append(b, "\x01auth=Bearer "...)
	b = append(b, token...)
	b = append(b, "\x01\x01"...)
	return b
}
