package oauthmailtest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// graphDo sends one request to the emulator's Graph side and returns the
// status, the Graph error code (if any) and the body.
func graphDo(t *testing.T, e *Emulator, method, url, token, ctype string, body []byte, hdr map[string]string) (int, string, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := e.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var eb struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal(b, &eb)
	return resp.StatusCode, eb.Error.Code, b, resp.Header
}

func mimeB64(from, to string) []byte {
	m := fmt.Sprintf("From: %s\r\nTo: %s\r\nSubject: hi\r\n\r\nhello\r\n", from, to)
	return []byte(base64.StdEncoding.EncodeToString([]byte(m)))
}

func TestGraphSendMailChecksTokens(t *testing.T) {
	e := Start(t, nil)
	alice := "alice@contoso.com"
	url := e.GraphURL() + "/me/sendMail"
	body := mimeB64(alice, "bob@contoso.com")
	for _, tc := range []struct {
		name, token string
		status      int
		code        string
	}{
		{"no token", "", 401, "InvalidAuthenticationToken"},
		{"Outlook token", e.AccessToken(alice), 401, "InvalidAuthenticationToken"},
		{"no Mail.Send", e.GraphAccessToken(alice, "User.Read"), 403, "ErrorAccessDenied"},
		{"app-only on /me", appGraphToken(t, e, "Mail.Send"), 400, "BadRequest"},
		{"ok", e.GraphAccessToken(alice, "Mail.Send"), 202, ""},
	} {
		st, code, b, _ := graphDo(t, e, "POST", url, tc.token, "text/plain", body, nil)
		if st != tc.status || code != tc.code {
			t.Errorf("%s: %d %s (%s), want %d %s", tc.name, st, code, b, tc.status, tc.code)
		}
	}
	// app-only on /users/{upn}/sendMail with the Mail.Send application permission.
	st, code, _, _ := graphDo(t, e, "POST", e.GraphURL()+"/users/scanner@contoso.com/sendMail",
		appGraphToken(t, e, "Mail.Send"), "text/plain", mimeB64("scanner@contoso.com", "bob@contoso.com"), nil)
	if st != 202 {
		t.Errorf("app-only users/{upn}/sendMail: %d %s", st, code)
	}
	msgs := e.Messages()
	if len(msgs) != 2 || msgs[0].Transport != "graph" || !msgs[1].AppOnly || msgs[1].User != "scanner@contoso.com" {
		t.Errorf("Messages() = %+v", msgs)
	}
	// A Graph token is refused by the SMTP side with 535.
	c := dialTLS(t, e)
	err := c.Auth(&xoauth2{user: alice, token: e.GraphAccessToken(alice, "Mail.Send")})
	wantCode(t, "SMTP AUTH with a Graph token", err, 535, smtp.EnhancedCode{5, 7, 3})
}

func appGraphToken(t *testing.T, e *Emulator, roles ...string) string {
	t.Helper()
	now := e.core.clock.Now()
	tok, err := e.core.sign(accessClaims{
		Aud: AudienceGraph, Iss: "https://sts.windows.net/" + ContosoTenantID + "/",
		Iat: now.Unix(), Nbf: now.Unix(), Exp: now.Add(time.Hour).Unix(),
		AppID: DaemonAppClientID, Roles: roles, Oid: newGUID(), Sub: newGUID(), Tid: ContosoTenantID, Ver: "1.0", Uti: newGUID(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestGraphRequestLimits(t *testing.T) {
	e := Start(t, &Options{GraphRequestLimit: 2})
	tok := e.GraphAccessToken("alice@contoso.com", "Mail.Send")
	url := e.GraphURL() + "/me/sendMail"
	// 413 above 4 MB.
	big := bytes.Repeat([]byte("A"), GraphMaxRequest+4)
	if st, code, _, _ := graphDo(t, e, "POST", url, tok, "text/plain", big, nil); st != 413 {
		t.Errorf("5 MB sendMail: %d %s, want 413", st, code)
	}
	// Per app per mailbox: the third request in 10 minutes gets 429 with Retry-After.
	for range 2 {
		graphDo(t, e, "POST", url, tok, "text/plain", mimeB64("alice@contoso.com", "bob@contoso.com"), nil)
	}
	st, code, _, h := graphDo(t, e, "POST", url, tok, "text/plain", mimeB64("alice@contoso.com", "bob@contoso.com"), nil)
	if st != 429 || code != "ApplicationThrottled" || h.Get("Retry-After") == "" {
		t.Errorf("third request: %d %s Retry-After %q, want 429 with Retry-After", st, code, h.Get("Retry-After"))
	}
	e.Clock().Advance(10 * time.Minute)
	if st, code, _, _ := graphDo(t, e, "POST", url, tok, "text/plain", mimeB64("alice@contoso.com", "bob@contoso.com"), nil); st != 202 {
		t.Errorf("after 10 minutes: %d %s, want 202", st, code)
	}
}

func TestGraphUploadSessionRules(t *testing.T) {
	e := Start(t, nil)
	tok := e.GraphAccessToken("alice@contoso.com", "Mail.Send Mail.ReadWrite")
	st, _, b, _ := graphDo(t, e, "POST", e.GraphURL()+"/me/messages", tok, "application/json",
		[]byte(`{"subject":"s","body":{"contentType":"text","content":"x"},"toRecipients":[{"emailAddress":{"address":"bob@contoso.com"}}]}`), nil)
	var draft struct{ ID string }
	if st != 201 || json.Unmarshal(b, &draft) != nil {
		t.Fatalf("draft: %d %s", st, b)
	}
	msgURL := e.GraphURL() + "/me/messages/" + draft.ID
	st, _, b, _ = graphDo(t, e, "POST", msgURL+"/attachments/createUploadSession", tok, "application/json",
		[]byte(`{"AttachmentItem":{"attachmentType":"file","name":"f.bin","size":10}}`), nil)
	var sess struct {
		UploadURL string `json:"uploadUrl"`
		Expires   string `json:"expirationDateTime"`
	}
	if st != 201 || json.Unmarshal(b, &sess) != nil || sess.UploadURL == "" || sess.Expires == "" {
		t.Fatalf("createUploadSession: %d %s", st, b)
	}
	put := func(rng string, body string, auth string) (int, string, []byte) {
		st, code, b, _ := graphDo(t, e, "PUT", sess.UploadURL, auth, "application/octet-stream", []byte(body),
			map[string]string{"Content-Range": rng})
		return st, code, b
	}
	if st, code, _ := put("bytes 0-3/10", "0123", tok); st != 401 {
		t.Errorf("upload with Authorization: %d %s, want 401", st, code)
	}
	if st, _, _ := put("bytes 0-3/11", "0123", ""); st != 400 {
		t.Errorf("wrong total: %d, want 400", st)
	}
	if st, _, b := put("bytes 0-3/10", "0123", ""); st != 200 || !strings.Contains(string(b), `"4-"`) {
		t.Errorf("first chunk: %d %s, want 200 with nextExpectedRanges 4-", st, b)
	}
	if st, _, _ := put("bytes 2-5/10", "2345", ""); st != 416 {
		t.Errorf("overlapping chunk: %d, want 416", st)
	}
	if st, _, b := put("bytes 4-9/10", "456789", ""); st != 201 {
		t.Errorf("last chunk: %d %s, want 201", st, b)
	}
	if st, _, _, _ := graphDo(t, e, "POST", msgURL+"/send", tok, "", nil, nil); st != 202 {
		t.Fatalf("send: %d", st)
	}
	if m := e.Messages(); len(m) != 1 || !strings.Contains(string(m[0].Data), base64.StdEncoding.EncodeToString([]byte("0123456789"))) {
		t.Errorf("delivered message lacks the uploaded attachment")
	}
	// An upload URL expires.
	graphDo(t, e, "POST", e.GraphURL()+"/me/messages", tok, "application/json", []byte(`{"subject":"t"}`), nil)
	st, _, b, _ = graphDo(t, e, "POST", msgURL+"/attachments/createUploadSession", tok, "application/json",
		[]byte(`{"AttachmentItem":{"attachmentType":"file","name":"f.bin","size":10}}`), nil)
	if st != 404 { // the draft was sent: it is gone
		t.Errorf("upload session on a sent draft: %d %s, want 404", st, b)
	}
}

func TestGraphUploadURLExpires(t *testing.T) {
	e := Start(t, &Options{Clock: NewClock(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))})
	tok := e.GraphAccessToken("alice@contoso.com", "Mail.Send Mail.ReadWrite")
	_, _, b, _ := graphDo(t, e, "POST", e.GraphURL()+"/me/messages", tok, "application/json", []byte(`{"subject":"s"}`), nil)
	var draft struct{ ID string }
	_ = json.Unmarshal(b, &draft)
	_, _, b, _ = graphDo(t, e, "POST", e.GraphURL()+"/me/messages/"+draft.ID+"/attachments/createUploadSession", tok,
		"application/json", []byte(`{"AttachmentItem":{"attachmentType":"file","name":"f.bin","size":4}}`), nil)
	var sess struct {
		UploadURL string `json:"uploadUrl"`
	}
	_ = json.Unmarshal(b, &sess)
	e.Clock().Advance(GraphUploadLifetime + time.Second)
	st, code, _, _ := graphDo(t, e, "PUT", sess.UploadURL, "", "", []byte("abcd"), map[string]string{"Content-Range": "bytes 0-3/4"})
	if st != 404 || code != "ErrorItemNotFound" {
		t.Errorf("upload after expiry: %d %s, want 404 ErrorItemNotFound", st, code)
	}
}
