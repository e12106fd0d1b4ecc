package smtpx

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

// Microsoft's worked example, from
// https://learn.microsoft.com/exchange/client-developer/legacy-protocols/how-to-authenticate-an-imap-pop-smtp-application-by-using-oauth
func TestXOAUTH2DocumentedVector(t *testing.T) {
	mech, ir, err := XOAUTH2("test@contoso.onmicrosoft.com", "EwBAAl3BAAUFFpUAo7J3Ve0bjLBWZWCclRC3EoAA").Start()
	if err != nil || mech != "XOAUTH2" {
		t.Fatalf("Start() = %q, %v", mech, err)
	}
	const want = "dXNlcj10ZXN0QGNvbnRvc28ub25taWNyb3NvZnQuY29tAWF1dGg9QmVhcmVyIEV3QkFBbDNCQUFVRkZwVUFvN0ozVmUwYmpMQldaV0NjbFJDM0VvQUEBAQ=="
	if got := base64.StdEncoding.EncodeToString(ir); got != want {
		t.Errorf("initial response = %s, want %s", got, want)
	}
}

func TestXOAUTH2ErrorChallenge(t *testing.T) {
	c := XOAUTH2("u@example.com", "tok")
	c.Start()
	resp, err := c.Next([]byte(`{"status":"401","schemes":"bearer"}`))
	if err != nil || resp == nil || len(resp) != 0 {
		t.Fatalf("Next(error challenge) = %q, %v, want an empty response", resp, err)
	}
	if _, err := c.Next(nil); err == nil {
		t.Errorf("second challenge accepted")
	}
}

func FuzzXOAUTH2(f *testing.F) {
	f.Add("test@contoso.onmicrosoft.com", "EwBAAl3BAAUFFpUAo7J3Ve0bjLBWZWCclRC3EoAA", []byte("user=a\x01auth=Bearer b\x01\x01"))
	f.Add("a=b@c", "eyJ0eXAi.eyJhdWQi.sig", []byte("junk"))
	f.Add("", "", []byte("\x01\x01"))
	f.Fuzz(func(t *testing.T, user, token string, junk []byte) {
		// Decoding arbitrary input never panics.
		if u, tk, err := decodeXOAUTH2(junk); err == nil && (u == "" || tk == "") {
			t.Fatalf("decodeXOAUTH2(%q) = %q, %q, nil", junk, u, tk)
		}
		_, ir, err := XOAUTH2(user, token).Start()
		if err != nil {
			return // refused input (control characters, empty)
		}
		u, tk, err := decodeXOAUTH2(ir)
		if err != nil || u != user || tk != token {
			t.Fatalf("round trip of (%q, %q) = (%q, %q, %v)", user, token, u, tk, err)
		}
		if strings.Contains((&Error{Stage: StageAuth, Message: "x", Err: errors.New("y")}).Error(), token) && len(token) > 3 {
			t.Fatalf("error string carries the token")
		}
	})
}

var knownReasons = map[Reason]bool{
	ReasonAuthFailed: true, ReasonSMTPAuthDisabled: true, ReasonSendAsDenied: true, ReasonNotAuthenticated: true,
	ReasonThrottled: true, ReasonTooLarge: true, ReasonTokenExpiring: true, ReasonTLS: true, ReasonCertificate: true,
	ReasonNetwork: true, ReasonRejected: true, ReasonTemporary: true,
}

func TestClassify(t *testing.T) {
	cases := []struct {
		code int
		enh  [3]int
		text string
		want Reason
	}{
		{535, [3]int{5, 7, 3}, "Authentication unsuccessful", ReasonAuthFailed},
		{535, [3]int{5, 7, 139}, "Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant.", ReasonSMTPAuthDisabled},
		{554, [3]int{5, 2, 252}, "SendAsDenied; a not allowed to send as b", ReasonSendAsDenied},
		{554, [3]int{5, 2, 0}, "STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied", ReasonSendAsDenied},
		{550, [3]int{5, 7, 60}, "SMTP; Client does not have permissions to send as this sender", ReasonSendAsDenied},
		{530, [3]int{5, 7, 57}, "Client not authenticated to send mail.", ReasonNotAuthenticated},
		{432, [3]int{4, 3, 2}, "Concurrent connections limit exceeded.", ReasonThrottled},
		{451, [3]int{4, 7, 0}, "Temporary server error. Please try again later. PRX4", ReasonThrottled},
		{421, [3]int{4, 4, 2}, "closing", ReasonThrottled},
		{421, [3]int{4, 7, 66}, "TLS 1.0 and 1.1 are not supported.", ReasonTLS},
		{552, [3]int{5, 3, 4}, "Message size exceeds fixed maximum message size", ReasonTooLarge},
		{552, [3]int{}, "too big", ReasonTooLarge},
		{554, [3]int{5, 2, 0}, "MapiExceptionMaxSubmissionExceeded; Message size exceeds maximum size limit.", ReasonTooLarge},
		{535, [3]int{5, 5, 127}, "token expiring", ReasonTokenExpiring},
		{554, [3]int{5, 2, 2}, "mailbox full", ReasonRejected},
		{452, [3]int{4, 5, 3}, "Too many recipients", ReasonTooManyRecipients},
		{452, [3]int{}, "Too many recipients", ReasonTooManyRecipients},
		{550, [3]int{5, 5, 3}, "RESOLVER.ADR.RecipLimit; too many recipients", ReasonTooManyRecipients},
		{452, [3]int{4, 3, 1}, "Insufficient system storage", ReasonTemporary},
		{554, [3]int{5, 2, 0}, "STOREDRV.Submission.Exception:SubmissionQuotaExceededException; Failed to process message due to a permanent exception", ReasonThrottled},
	}
	for _, tc := range cases {
		if got := Classify(StageData, tc.code, tc.enh, tc.text); got != tc.want {
			t.Errorf("Classify(%d, %v, %q) = %q, want %q", tc.code, tc.enh, tc.text, got, tc.want)
		}
	}
}

func FuzzClassify(f *testing.F) {
	f.Add(535, 5, 7, 3, "Authentication unsuccessful")
	f.Add(432, 4, 3, 2, "Concurrent connections limit exceeded.")
	f.Add(250, 2, 0, 0, "")
	f.Add(-1, -1, -1, -1, "SendAsDenied")
	f.Fuzz(func(t *testing.T, code, a, b, c int, text string) {
		for _, st := range []Stage{StageAuth, StageMail, StageData} {
			r := Classify(st, code, [3]int{a, b, c}, text)
			if !knownReasons[r] {
				t.Fatalf("Classify(%d, %d.%d.%d, %q) = unknown reason %q", code, a, b, c, text, r)
			}
			e := &Error{Stage: st, Reason: r, Code: code, EnhancedCode: [3]int{a, b, c}, Message: text}
			_ = e.Error()
			// A 4xx with a permanent reason must not be reported as
			// temporary unless its reason says so; a 5xx never is
			// temporary except through a transient reason.
			if code >= 500 && code < 600 && e.Temporary() && r != ReasonThrottled && r != ReasonTemporary {
				t.Fatalf("5xx %d classified %q reported temporary", code, r)
			}
		}
	})
}

func TestMaskWriter(t *testing.T) {
	var out bytes.Buffer
	w := newMaskWriter(&out, nil)
	for _, chunk := range []string{
		"EHLO localhost\r\n250-x\r\n250 AUTH XOAUTH2\r\n",
		"AUTH XOAUTH2 dXNlcj1jYW5hcnktc2VjcmV0\r\n",
		"334 eyJzdGF0dXMiOiI0MDEifQ==\r\n",
		"\r\n", // the empty reply to the error challenge
		"535 5.7.3 Authentication unsuccessful\r\n",
		"AUTH XOAUTH2\r\n334 \r\ndXNlcj1jYW5h", "cnktc2VjcmV0\r\n235 2.7.0 Authentication successful\r\n",
		"MAIL FROM:<a@b.c>\r\n",
	} {
		w.Write([]byte(chunk))
	}
	got := out.String()
	for _, secret := range []string{"dXNlcj1jYW5hcnktc2VjcmV0", "dXNlcj1jYW5h", "cnktc2VjcmV0", "eyJzdGF0dXMiOiI0MDEifQ"} {
		if strings.Contains(got, secret) {
			t.Errorf("transcript contains %q:\n%s", secret, got)
		}
	}
	for _, keep := range []string{"EHLO localhost", "AUTH XOAUTH2 [masked]", "535 5.7.3", "235 2.7.0", "MAIL FROM:<a@b.c>"} {
		if !strings.Contains(got, keep) {
			t.Errorf("transcript lacks %q:\n%s", keep, got)
		}
	}
}

func TestReplyCapConn(t *testing.T) {
	long := "554 5.2.252 " + strings.Repeat("x", 5000) + "\r\n250 ok\r\n"
	c := &replyCapConn{Conn: readConn{r: strings.NewReader(long)}}
	var out bytes.Buffer
	buf := make([]byte, 700)
	for {
		n, err := c.Read(buf)
		out.Write(buf[:n])
		if err != nil {
			break
		}
	}
	lines := strings.Split(out.String(), "\n")
	if len(lines[0]) != maxReplyLine || !strings.HasPrefix(lines[0], "554 5.2.252 xxx") || lines[1] != "250 ok\r" {
		t.Errorf("capped lines = %d bytes %q..., then %q", len(lines[0]), lines[0][:16], lines[1])
	}
}
