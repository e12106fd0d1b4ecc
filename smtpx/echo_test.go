package smtpx_test

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/devicemail/devicemail/smtpx"
)

// echoServer is a plaintext SMTP server on loopback that repeats the SASL
// initial response it got (base64, decoded, and the bare token) in its
// reply to AUTH (authOK false: a 535) or, after accepting AUTH, in its
// reply to MAIL FROM.
func echoServer(t *testing.T, authOK bool) string {
	t.Helper()
	return scripted(t, func(c net.Conn) {
		r := bufio.NewReader(c)
		fmt.Fprintf(c, "220 echo.test ESMTP\r\n")
		var echo string
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			f := strings.Fields(line)
			if len(f) == 0 {
				continue
			}
			switch strings.ToUpper(f[0]) {
			case "EHLO":
				fmt.Fprintf(c, "250-echo.test\r\n250 AUTH XOAUTH2 OAUTHBEARER\r\n")
			case "AUTH":
				ir := f[len(f)-1]
				dec, _ := base64.StdEncoding.DecodeString(ir)
				_, tok, _ := strings.Cut(string(dec), "Bearer ")
				tok, _, _ = strings.Cut(tok, "\x01")
				echo = fmt.Sprintf("%s %s token=%s\x1b]0;owned\x07", ir, dec, tok)
				if authOK {
					fmt.Fprintf(c, "235 2.7.0 ok\r\n")
				} else {
					fmt.Fprintf(c, "535 5.7.3 Authentication unsuccessful %s\r\n", echo)
				}
			case "MAIL":
				fmt.Fprintf(c, "550 5.7.1 refused %s\r\n", echo)
			case "QUIT":
				fmt.Fprintf(c, "221 bye\r\n")
				return
			default:
				fmt.Fprintf(c, "250 ok\r\n")
			}
		}
	})
}

// A reply that repeats the token or the SASL string that carried it (raw or
// base64) reaches neither the *smtpx.Error, the wrapped *smtp.SMTPError, the
// error string nor the Debug transcript; Error() escapes control characters.
func TestRepliesMaskEchoedToken(t *testing.T) {
	const tok = "eyJ0eXAiOiJKV1Qi.canary-echo-token-4b1d"
	for _, tc := range []struct {
		name   string
		authOK bool
		mech   string
		stage  smtpx.Stage
	}{
		{"auth xoauth2", false, smtpx.MechanismXOAUTH2, smtpx.StageAuth},
		{"auth oauthbearer", false, smtpx.MechanismOAUTHBEARER, smtpx.StageAuth},
		{"mail", true, smtpx.MechanismXOAUTH2, smtpx.StageMail},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var debug bytes.Buffer
			s := &smtpx.Sender{Addr: echoServer(t, tc.authOK), Account: alice, TokenSource: static(tok),
				Mechanism: tc.mech, InsecureAllowPlaintextAuth: true, Debug: &debug}
			err := s.Send(t.Context(), &smtpx.Message{From: smtpx.Address{Email: alice}, To: []smtpx.Address{{Email: "bob@example.com"}}, Text: "hi"})
			var se *smtpx.Error
			var re *smtp.SMTPError
			if !errors.As(err, &se) || !errors.As(err, &re) || se.Stage != tc.stage {
				t.Fatalf("Send = %v, want an *smtpx.Error at %s wrapping *smtp.SMTPError", err, tc.stage)
			}
			ir := "user=" + alice + "\x01auth=Bearer " + tok + "\x01\x01"
			b64 := base64.StdEncoding.EncodeToString([]byte(ir))
			for where, text := range map[string]string{"Error()": err.Error(), "%+v": fmt.Sprintf("%+v", err),
				"Message": se.Message, "SMTPError": re.Message, "Debug": debug.String()} {
				for _, leak := range []string{tok, "canary-echo", b64[40:80], "Y2FuYXJ5LWVjaG8", "ZWNoby10b2tlbi"} {
					if strings.Contains(text, leak) {
						t.Errorf("%s holds %q:\n%q", where, leak, text)
					}
				}
			}
			if strings.ContainsAny(err.Error(), "\x1b\x07\x01") {
				t.Errorf("Error() = %q, holds control characters", err.Error())
			}
			if !strings.Contains(se.Message, "REDACTED") {
				t.Errorf("Message = %q, want REDACTED in it", se.Message)
			}
		})
	}
}
