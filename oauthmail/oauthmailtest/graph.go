package oauthmailtest

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/mail"
	"net/textproto"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/devicemail/devicemail/internal/jwt"
)

// The Microsoft Graph side: the mail-sending part of https://graph.microsoft.com/v1.0
// served under the emulator's HTTPS address (GraphURL). Sources are named at
// each rule and in FIDELITY.md.

// AudienceGraph is the audience of Microsoft Graph access tokens.
const AudienceGraph = "https://graph.microsoft.com"

// Graph limits the emulator applies.
const (
	// GraphMaxRequest is the largest request body Graph takes: 4 MB, above
	// which it answers 413 (https://learn.microsoft.com/graph/outlook-large-attachments
	// says to use an upload session from 3 MB; the 4 MB cut is what
	// Microsoft Q&A 1824204 reports).
	GraphMaxRequest = 4 << 20
	// GraphMaxChunk is the largest upload-session request (4 MB, same page).
	GraphMaxChunk = 4 << 20
	// GraphMaxAttachment is the largest attachment of an upload session (150 MB, same page).
	GraphMaxAttachment = 150 << 20
	// GraphUploadLifetime is how long an upload URL stays valid in the
	// emulator (Graph states an expirationDateTime; its length is UNVERIFIED).
	GraphUploadLifetime = 15 * time.Minute
	// DefaultGraphRequestLimit is Outlook's limit of requests per app per
	// mailbox in 10 minutes (https://learn.microsoft.com/graph/throttling-limits#outlook-service-limits).
	DefaultGraphRequestLimit = 10000
)

// GraphFault makes the Graph side answer the next Count requests whose
// path contains Path ("" = any Graph request, upload URLs included) with
// Status and a Graph error of Code. Status 429 and 503 carry Retry-After.
type GraphFault struct {
	Path       string        // e.g. "/sendmail", "/upload/"; lower case
	Status     int           // e.g. 429, 503, 403
	Code       string        // Graph error code, e.g. "ErrorAccessDenied"; "" picks one for Status
	RetryAfter time.Duration // Retry-After for 429 and 503; zero means 1 s
	Count      int           // zero means once
	// Mailbox, if set, limits the fault to requests for that mailbox (its
	// UPN), checked once the token names it: Outlook throttles per app and
	// mailbox (https://learn.microsoft.com/graph/throttling-limits#outlook-service-limits).
	Mailbox string
}

// InjectGraph queues a fault for the Graph side.
func (e *Emulator) InjectGraph(f GraphFault) {
	if f.Count <= 0 {
		f.Count = 1
	}
	g := e.graph
	g.mu.Lock()
	g.faults = append(g.faults, f)
	g.mu.Unlock()
}

// GraphURL returns the Graph v1.0 root of the emulator, for
// graphmail.Sender.BaseURL: "https://127.0.0.1:PORT/v1.0".
func (e *Emulator) GraphURL() string { return e.entra.base + "/v1.0" }

// GraphAccessToken mints a delegated Graph token (audience
// https://graph.microsoft.com) for upn with the space-separated scopes scp,
// e.g. "Mail.Send Mail.ReadWrite". It panics if upn is unknown.
func (e *Emulator) GraphAccessToken(upn, scp string) string {
	e.core.mu.Lock()
	u := e.core.dir.user(upn)
	e.core.mu.Unlock()
	if u == nil {
		panic("oauthmailtest: GraphAccessToken: unknown user " + upn)
	}
	now := e.core.clock.Now()
	tok, err := e.core.sign(accessClaims{
		Aud: AudienceGraph, Iss: "https://sts.windows.net/" + u.TenantID + "/",
		Iat: now.Unix(), Nbf: now.Unix(), Exp: now.Add(e.opts.AccessTokenLifetime).Unix(),
		AppID: DeviceAppClientID, Scp: scp, UPN: u.UPN, UniqueName: u.UPN, Name: u.DisplayName,
		Oid: u.ObjectID, Sub: u.ObjectID, Tid: u.TenantID, Ver: "1.0", Uti: newGUID(),
	})
	if err != nil {
		panic("oauthmailtest: GraphAccessToken: " + err.Error())
	}
	return tok
}

type graphAttachment struct {
	name, ctype string
	data        *blob
}

type graphDraft struct {
	owner   string // mailbox UPN
	auth    *authResult
	msg     graphMessage
	atts    []graphAttachment
	created time.Time
}

type graphUpload struct {
	mu      sync.Mutex // held while a chunk is read into data
	draft   string
	key     string // the pre-authentication part of the URL
	name    string
	ctype   string
	size    int64
	data    blob // the chunks received, kept as they came
	expires time.Time
}

type graphServer struct {
	e      *Emulator
	mu     sync.Mutex
	faults []GraphFault
	drafts map[string]*graphDraft
	ups    map[string]*graphUpload
	hits   map[string][]time.Time // appid|mailbox -> request times, last 10 minutes
	kept   []*blob                // bodies of PUT /_emulator/store, kept until Close
}

func newGraph(e *Emulator) *graphServer {
	return &graphServer{e: e, drafts: map[string]*graphDraft{}, ups: map[string]*graphUpload{}, hits: map[string][]time.Time{}}
}

// graphError writes Graph's error body (https://learn.microsoft.com/graph/errors).
func graphError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("request-id", newGUID())
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{
		"code": code, "message": msg, "innerError": map[string]string{"request-id": newGUID()}}})
}

var defaultGraphCodes = map[int]string{
	400: "BadRequest", 401: "InvalidAuthenticationToken", 403: "ErrorAccessDenied", 404: "ResourceNotFound",
	413: "ErrorRequestEntityTooLarge", 429: "ApplicationThrottled", 503: "ServiceUnavailable",
}

// takeFault takes the first fault for path: with mbx "" one for any
// mailbox, else one for mailbox mbx.
func (g *graphServer) takeFault(path, mbx string) (GraphFault, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for i, f := range g.faults {
		if f.Path != "" && !strings.Contains(path, f.Path) || !strings.EqualFold(f.Mailbox, mbx) {
			continue
		}
		if f.Count--; f.Count <= 0 {
			g.faults = append(g.faults[:i], g.faults[i+1:]...)
		} else {
			g.faults[i] = f
		}
		return f, true
	}
	return GraphFault{}, false
}

func writeFault(w http.ResponseWriter, f GraphFault) {
	code := f.Code
	if code == "" {
		code = defaultGraphCodes[f.Status]
	}
	if f.Status == 429 || f.Status == 503 {
		ra := f.RetryAfter
		if ra <= 0 {
			ra = time.Second
		}
		w.Header().Set("Retry-After", strconv.Itoa(int((ra+time.Second-1)/time.Second)))
	}
	graphError(w, f.Status, code, "Injected by the emulator.")
}

var (
	reSendMail = regexp.MustCompile(`^/v1\.0/(me|users/[^/]+)/sendmail$`)
	reMessages = regexp.MustCompile(`^/v1\.0/(me|users/[^/]+)/messages$`)
	reMessage  = regexp.MustCompile(`^/v1\.0/(me|users/[^/]+)/messages/([a-z0-9-]+)(/send|/attachments|/attachments/createuploadsession)?$`)
	reUpload   = regexp.MustCompile(`^/upload/([a-z0-9-]+)$`)
)

// ServeHTTP serves the Graph paths (/v1.0/...) and upload URLs (/upload/...).
func (g *graphServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := strings.ToLower(r.URL.Path)
	if path == "/_emulator/store" {
		g.store(w, r)
		return
	}
	if f, ok := g.takeFault(path, ""); ok {
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, GraphMaxChunk+1))
		writeFault(w, f)
		return
	}
	if m := reUpload.FindStringSubmatch(path); m != nil {
		g.upload(w, r, m[1])
		return
	}
	// 413 above the request limit (upload URLs have their own, per chunk).
	r.Body = http.MaxBytesReader(w, r.Body, GraphMaxRequest)
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			graphError(w, http.StatusRequestEntityTooLarge, "ErrorRequestEntityTooLarge",
				"The maximum request length supported is 4MB.")
			return
		}
		graphError(w, http.StatusBadRequest, "BadRequest", "Could not read the request body.")
		return
	}
	var user string
	switch {
	case reSendMail.MatchString(path):
		user = reSendMail.FindStringSubmatch(path)[1]
	case reMessages.MatchString(path):
		user = reMessages.FindStringSubmatch(path)[1]
	case reMessage.MatchString(path):
		user = reMessage.FindStringSubmatch(path)[1]
	default:
		graphError(w, http.StatusBadRequest, "BadRequest", "Resource not found for the segment '"+r.URL.Path+"'.")
		return
	}
	auth, mbx, ok := g.authorise(w, r, user)
	if !ok {
		return
	}
	if f, ok := g.takeFault(path, mbx); ok {
		writeFault(w, f)
		return
	}
	if !g.admit(w, auth.clientID, mbx) {
		return
	}
	switch {
	case reSendMail.MatchString(path):
		if r.Method != http.MethodPost {
			graphError(w, http.StatusMethodNotAllowed, "Request_BadRequest", "Method not allowed.")
			return
		}
		g.sendMail(w, r, auth, body)
	case reMessages.MatchString(path):
		g.createDraft(w, r, auth, body)
	default:
		m := reMessage.FindStringSubmatch(path)
		g.onMessage(w, r, auth, m[2], m[3], body)
	}
}

// authorise checks the bearer token as Graph does: signature, lifetime,
// audience (https://graph.microsoft.com; an Outlook token is refused with
// 401), then the mailbox: /me needs a delegated token, /users/{upn} a
// delegated token of that user or an app-only one.
func (g *graphServer) authorise(w http.ResponseWriter, r *http.Request, seg string) (*authResult, string, bool) {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || tok == "" {
		graphError(w, 401, "InvalidAuthenticationToken", "Access token is empty.")
		return nil, "", false
	}
	var cl accessClaims
	c := g.e.core
	if _, err := jwt.VerifyRS256(tok, &c.signKey.PublicKey, &cl); err != nil {
		graphError(w, 401, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience.")
		return nil, "", false
	}
	now := c.clock.Now().Unix()
	if now >= cl.Exp || now < cl.Nbf-300 {
		graphError(w, 401, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired.")
		return nil, "", false
	}
	if strings.TrimSuffix(cl.Aud, "/") != AudienceGraph && cl.Aud != "00000003-0000-0000-c000-000000000000" {
		graphError(w, 401, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience.")
		return nil, "", false
	}
	appOnly := cl.UPN == ""
	auth := &authResult{upn: cl.UPN, clientID: cl.AppID, appOnly: appOnly}
	if seg == "me" {
		if appOnly {
			graphError(w, 400, "BadRequest", "/me request is only valid with delegated authentication flow.")
			return nil, "", false
		}
	} else {
		upn, _ := url.PathUnescape(strings.TrimPrefix(seg, "users/"))
		if !appOnly && !strings.EqualFold(upn, cl.UPN) {
			// Another user's mailbox needs the .Shared permissions (not emulated).
			graphError(w, 403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
			return nil, "", false
		}
		auth.upn = upn
	}
	c.mu.Lock()
	u := c.dir.user(auth.upn)
	if u == nil {
		u = c.dir.mailboxOwner(auth.upn)
	}
	var restOff bool
	if u != nil {
		auth.upn = u.UPN
		restOff = u.NoMailbox || u.GraphRESTDisabled
	}
	c.mu.Unlock()
	if u == nil {
		graphError(w, 404, "ErrorInvalidUser", "The requested user '"+auth.upn+"' is invalid.")
		return nil, "", false
	}
	if restOff {
		// A mailbox that is on-premises, inactive, soft-deleted or unlicensed
		// (https://learn.microsoft.com/graph/api/resources/mail-api-overview).
		graphError(w, 404, "MailboxNotEnabledForRESTAPI", "The mailbox is either inactive, soft-deleted, or is hosted on-premise.")
		return nil, "", false
	}
	need := "Mail.Send"
	if !strings.HasSuffix(strings.ToLower(r.URL.Path), "/sendmail") && !strings.HasSuffix(strings.ToLower(r.URL.Path), "/send") {
		// Drafts and their attachments need Mail.ReadWrite
		// (https://learn.microsoft.com/graph/api/user-post-messages).
		need = "Mail.ReadWrite"
	}
	has := false
	for _, s := range strings.Fields(cl.Scp) {
		has = has || strings.EqualFold(s, need) || (need == "Mail.Send" && strings.EqualFold(s, "Mail.Send"))
	}
	for _, s := range cl.Roles {
		has = has || strings.EqualFold(s, need)
	}
	if !has {
		graphError(w, 403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
		return nil, "", false
	}
	return auth, strings.ToLower(auth.upn), true
}

// admit applies Outlook's per-app-per-mailbox request limit with 429 and
// Retry-After (https://learn.microsoft.com/graph/throttling-limits#outlook-service-limits).
func (g *graphServer) admit(w http.ResponseWriter, app, mbx string) bool {
	limit := g.e.opts.GraphRequestLimit
	if limit == 0 {
		limit = DefaultGraphRequestLimit
	}
	if limit < 0 {
		return true
	}
	now := g.e.core.clock.Now()
	key := strings.ToLower(app) + "|" + mbx
	g.mu.Lock()
	defer g.mu.Unlock()
	times := g.hits[key]
	for len(times) > 0 && now.Sub(times[0]) >= 10*time.Minute {
		times = times[1:]
	}
	if len(times) >= limit {
		wait := times[0].Add(10 * time.Minute).Sub(now)
		w.Header().Set("Retry-After", strconv.Itoa(int((wait+time.Second-1)/time.Second)))
		graphError(w, http.StatusTooManyRequests, "ApplicationThrottled", "Application is over its MailboxConcurrency limit.")
		g.hits[key] = times
		return false
	}
	g.hits[key] = append(times, now)
	return true
}

// graphMessage is the part of the message resource the emulator reads.
type graphMessage struct {
	Subject string `json:"subject"`
	Body    struct {
		ContentType string `json:"contentType"`
		Content     string `json:"content"`
	} `json:"body"`
	From        *graphRecipient  `json:"from"`
	To          []graphRecipient `json:"toRecipients"`
	Cc          []graphRecipient `json:"ccRecipients"`
	Bcc         []graphRecipient `json:"bccRecipients"`
	Attachments []graphAttJSON   `json:"attachments"`
}

type graphRecipient struct {
	EmailAddress struct {
		Name    string `json:"name"`
		Address string `json:"address"`
	} `json:"emailAddress"`
}

type graphAttJSON struct {
	Type         string `json:"@odata.type"`
	Name         string `json:"name"`
	ContentType  string `json:"contentType"`
	ContentBytes []byte `json:"contentBytes"`
}

func addrs(rs []graphRecipient) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.EmailAddress.Address)
	}
	return out
}

// sendMail answers POST /me/sendMail and /users/{upn}/sendMail: JSON, or
// MIME base64-encoded with Content-Type text/plain
// (https://learn.microsoft.com/graph/api/user-sendmail).
func (g *graphServer) sendMail(w http.ResponseWriter, r *http.Request, auth *authResult, body []byte) {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ct {
	case "text/plain":
		raw, err := base64.StdEncoding.DecodeString(string(bytes.TrimSpace(body)))
		if err != nil {
			graphError(w, 400, "ErrorMimeContentInvalidBase64String", "Invalid base64 string for MIME content.")
			return
		}
		hdr, err := readHeader(raw)
		if err != nil {
			graphError(w, 400, "ErrorMimeContentInvalid", "The MIME content is invalid.")
			return
		}
		var rcpts []string
		for _, k := range []string{"To", "Cc", "Bcc"} {
			rcpts = append(rcpts, headerAddrs(hdr.Get(k))...)
		}
		from := ""
		if f := headerAddrs(hdr.Get("From")); len(f) > 0 {
			from = f[0]
		}
		g.deliver(w, auth, from, rcpts, raw, nil, "")
	case "application/json":
		var req struct {
			Message         *graphMessage `json:"message"`
			SaveToSentItems *bool         `json:"saveToSentItems"`
		}
		if err := json.Unmarshal(body, &req); err != nil || req.Message == nil {
			graphError(w, 400, "ErrorInvalidRequest", "Cannot read the request body.")
			return
		}
		var atts []graphAttachment
		for _, a := range req.Message.Attachments {
			atts = append(atts, graphAttachment{a.Name, a.ContentType, blobOf(a.ContentBytes)})
		}
		g.deliverJSON(w, auth, req.Message, atts)
	default:
		graphError(w, 415, "UnsupportedMediaType", "Content-Type must be application/json or text/plain.")
	}
}

func (g *graphServer) deliverJSON(w http.ResponseWriter, auth *authResult, m *graphMessage, atts []graphAttachment) {
	from := auth.upn
	if m.From != nil && m.From.EmailAddress.Address != "" {
		from = m.From.EmailAddress.Address
	}
	id := newExoMessageID()
	msg := composeMIME(from, m, atts, g.e.core.clock.Now(), id)
	rcpts := append(append(addrs(m.To), addrs(m.Cc)...), addrs(m.Bcc)...)
	g.deliver(w, auth, from, rcpts, nil, msg, id)
}

// deliver puts an accepted message into the same mailbox view SMTP
// delivers to, after Send As, size and recipient checks; it answers 202.
// The message is raw, the MIME the client sent, which is stamped with a
// Message-ID like SMTP's; or msg, composed here with its Message-ID id,
// which is kept as its parts.
func (g *graphServer) deliver(w http.ResponseWriter, auth *authResult, from string, rcpts []string, raw []byte, msg *lazyMIME, id string) {
	head, size := raw, int64(len(raw))
	if msg != nil {
		head, size = msg.header(), msg.Len()
	}
	if len(rcpts) == 0 {
		graphError(w, 400, "ErrorInvalidRecipients", "At least one recipient is not valid., A message can't be sent because it contains no recipients.")
		return
	}
	smtp := g.e.smtp
	ss := &exoSession{s: smtp}
	if denied := ss.sendAsDenied(auth, from, head); denied != "" {
		graphError(w, 403, "ErrorSendAsDenied", "The user account which was used to submit this request does not have the right to send mail on behalf of the specified sending account., Cannot submit message.")
		return
	}
	lim := ss.limitsFor(auth.upn, rcpts, size)
	if lim.maxSend >= 0 && size > lim.maxSend {
		graphError(w, 400, "ErrorMessageSizeExceeded", "The message exceeds the maximum supported size., Cannot save changes made to an item to store.")
		return
	}
	ss.mailbox = auth.upn
	if n := len(rcpts); n > ss.recipientLimit() {
		graphError(w, 400, "ErrorTooManyRecipients", "The message has too many recipients.")
		return
	}
	clock := g.e.core.clock
	now := clock.Now()
	switch smtp.quota(strings.ToLower(auth.upn), lim.tenant, now, len(rcpts), lim.external, lim.rateLimit, lim.extLimit) {
	case "quota", "external":
		graphError(w, 403, "ErrorQuotaExceeded", "The sender has exceeded its sending limits.")
		return
	}
	// Exchange's 30 messages a minute apply to Graph as to SMTP: the excess
	// is delayed in emulated time.
	_ = smtp.schedule(strings.ToLower(auth.upn), now)
	data, hdr := raw, textproto.MIMEHeader{}
	if msg == nil {
		id = newExoMessageID()
		data, hdr = stampMessageID(raw, id)
	} else if h, err := readHeader(head); err == nil {
		hdr = h
	}
	smtp.store(Message{From: from, To: rcpts, User: auth.upn, ClientID: auth.clientID, AppOnly: auth.appOnly,
		MessageID: id, Received: clock.Now(), Header: hdr, Data: data, NotDelivered: lim.notDelivered,
		Transport: "graph"}, msg)
	w.Header().Set("request-id", newGUID())
	w.WriteHeader(http.StatusAccepted)
}

// createDraft answers POST /me/messages (https://learn.microsoft.com/graph/api/user-post-messages).
func (g *graphServer) createDraft(w http.ResponseWriter, r *http.Request, auth *authResult, body []byte) {
	if r.Method != http.MethodPost {
		graphError(w, 405, "Request_BadRequest", "Method not allowed.")
		return
	}
	var m graphMessage
	if err := json.Unmarshal(body, &m); err != nil {
		graphError(w, 400, "ErrorInvalidRequest", "Cannot read the request body.")
		return
	}
	id := strings.ToLower(newGUID())
	d := &graphDraft{owner: auth.upn, auth: auth, msg: m, created: g.e.core.clock.Now()}
	for _, a := range m.Attachments {
		d.atts = append(d.atts, graphAttachment{a.Name, a.ContentType, blobOf(a.ContentBytes)})
	}
	g.mu.Lock()
	g.drafts[id] = d
	g.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(map[string]any{"id": id, "isDraft": true, "subject": m.Subject})
}

func (g *graphServer) onMessage(w http.ResponseWriter, r *http.Request, auth *authResult, id, sub string, body []byte) {
	g.mu.Lock()
	d := g.drafts[id]
	g.mu.Unlock()
	if d == nil || !strings.EqualFold(d.owner, auth.upn) {
		graphError(w, 404, "ErrorItemNotFound", "The specified object was not found in the store.")
		return
	}
	switch {
	case sub == "" && r.Method == http.MethodDelete:
		g.mu.Lock()
		delete(g.drafts, id)
		g.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	case sub == "/attachments" && r.Method == http.MethodPost:
		var a graphAttJSON
		if err := json.Unmarshal(body, &a); err != nil || a.Name == "" {
			graphError(w, 400, "ErrorInvalidRequest", "Cannot read the request body.")
			return
		}
		g.mu.Lock()
		d.atts = append(d.atts, graphAttachment{a.Name, a.ContentType, blobOf(a.ContentBytes)})
		g.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(map[string]any{"id": newGUID(), "name": a.Name})
	case sub == "/attachments/createuploadsession" && r.Method == http.MethodPost:
		// https://learn.microsoft.com/graph/api/attachment-createuploadsession
		var req struct {
			Item struct {
				Type        string `json:"attachmentType"`
				Name        string `json:"name"`
				Size        int64  `json:"size"`
				ContentType string `json:"contentType"`
			} `json:"AttachmentItem"`
		}
		if err := json.Unmarshal(body, &req); err != nil || req.Item.Name == "" || req.Item.Size <= 0 {
			graphError(w, 400, "ErrorInvalidRequest", "AttachmentItem needs attachmentType, name and size.")
			return
		}
		if req.Item.Size > GraphMaxAttachment {
			graphError(w, 400, "ErrorAttachmentSizeShouldNotBeLessThanMinimumSize", "The attachment is larger than 150 MB.")
			return
		}
		sid := strings.ToLower(newGUID())
		u := &graphUpload{draft: id, key: randomToken("", 24), name: req.Item.Name, ctype: req.Item.ContentType,
			size: req.Item.Size, expires: g.e.core.clock.Now().Add(GraphUploadLifetime)}
		g.mu.Lock()
		g.ups[sid] = u
		g.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(map[string]any{
			"uploadUrl":          g.e.entra.base + "/upload/" + sid + "?authtoken=" + url.QueryEscape(u.key),
			"expirationDateTime": u.expires.UTC().Format(time.RFC3339Nano),
			"nextExpectedRanges": []string{"0-"},
		})
	case sub == "/send" && r.Method == http.MethodPost:
		// https://learn.microsoft.com/graph/api/message-send
		g.mu.Lock()
		delete(g.drafts, id)
		g.mu.Unlock()
		g.deliverJSON(w, d.auth, &d.msg, d.atts)
	default:
		graphError(w, 405, "Request_BadRequest", "Method not allowed.")
	}
}

// upload answers PUT on an upload URL: pre-authenticated (a request that
// carries an Authorization header is refused with 401; the exact reply is
// UNVERIFIED), Content-Range "bytes a-b/N" with a the next expected byte, N
// the declared size and at most 4 MB per request; 200 with
// nextExpectedRanges, 201 when complete
// (https://learn.microsoft.com/graph/outlook-large-attachments).
func (g *graphServer) upload(w http.ResponseWriter, r *http.Request, sid string) {
	g.mu.Lock()
	u := g.ups[sid]
	g.mu.Unlock()
	if u == nil || r.URL.Query().Get("authtoken") != u.key {
		graphError(w, 404, "ErrorItemNotFound", "The upload session was not found.")
		return
	}
	if r.Header.Get("Authorization") != "" {
		graphError(w, 401, "InvalidAuthenticationToken", "The upload URL is pre-authenticated; do not send an Authorization header.")
		return
	}
	if !g.e.core.clock.Now().Before(u.expires) {
		graphError(w, 404, "ErrorItemNotFound", "The upload session has expired.")
		return
	}
	if r.Method != http.MethodPut {
		graphError(w, 405, "Request_BadRequest", "Method not allowed.")
		return
	}
	var a, b, n int64
	if _, err := fmt.Sscanf(r.Header.Get("Content-Range"), "bytes %d-%d/%d", &a, &b, &n); err != nil || b < a || n != u.size || b >= n {
		graphError(w, 400, "InvalidContentRange", "The Content-Range header is missing or malformed.")
		return
	}
	if b-a+1 > GraphMaxChunk {
		graphError(w, 413, "ErrorRequestEntityTooLarge", "Each upload request may carry at most 4 MB.")
		return
	}
	if r.ContentLength >= 0 && r.ContentLength != b-a+1 {
		graphError(w, 400, "InvalidContentRange", "Content-Length does not match Content-Range.")
		return
	}
	u.mu.Lock()
	kept, next := len(u.data.chunks), u.data.Len()
	if a != next {
		u.mu.Unlock()
		graphError(w, 416, "InvalidRange", fmt.Sprintf("The expected range starts at %d.", next))
		return
	}
	// Read straight into the session's new chunk; a short or long body is undone.
	err := u.data.readFrom(r.Body, b-a+1)
	if err == nil {
		var one [1]byte
		if m, _ := r.Body.Read(one[:]); m > 0 { // longer than Content-Range
			err = errors.New("body longer than Content-Range")
			u.data.truncate(kept)
		}
	}
	if err != nil {
		u.mu.Unlock()
		graphError(w, 400, "InvalidContentRange", "The body does not match Content-Range.")
		return
	}
	done := u.data.Len() == u.size
	u.mu.Unlock()
	g.mu.Lock()
	if done {
		delete(g.ups, sid)
		if d := g.drafts[u.draft]; d != nil {
			d.atts = append(d.atts, graphAttachment{u.name, u.ctype, &u.data})
		}
	}
	g.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if done {
		w.WriteHeader(http.StatusCreated)
		return
	}
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"expirationDateTime": u.expires.UTC().Format(time.RFC3339Nano),
		"nextExpectedRanges": []string{strconv.FormatInt(b+1, 10) + "-"},
	})
}

// readHeader parses the header block of a MIME message.
func readHeader(raw []byte) (textproto.MIMEHeader, error) {
	return textproto.NewReader(bufio.NewReader(bytes.NewReader(raw))).ReadMIMEHeader()
}

// headerAddrs returns the addresses of an address-list header value.
func headerAddrs(v string) []string {
	if strings.TrimSpace(v) == "" {
		return nil
	}
	list, err := (&mail.AddressParser{WordDecoder: &mime.WordDecoder{}}).ParseList(v)
	if err != nil {
		return nil
	}
	var out []string
	for _, a := range list {
		out = append(out, a.Address)
	}
	return out
}

// composeMIME returns the message Exchange stores for a JSON message: the
// header (Bcc left out, as in what recipients see), the body, and each
// attachment base64-encoded. The field X-Emulator-Transport: graph marks it.
// It is kept as its parts: the base64 is written when the message is read.
func composeMIME(from string, m *graphMessage, atts []graphAttachment, now time.Time, id string) *lazyMIME {
	var b strings.Builder
	list := func(rs []graphRecipient) string {
		var parts []string
		for _, r := range rs {
			parts = append(parts, (&mail.Address{Name: r.EmailAddress.Name, Address: r.EmailAddress.Address}).String())
		}
		return strings.Join(parts, ", ")
	}
	fmt.Fprintf(&b, "Message-ID: %s\r\nFrom: %s\r\n", id, (&mail.Address{Address: from}).String())
	if len(m.To) > 0 {
		fmt.Fprintf(&b, "To: %s\r\n", list(m.To))
	}
	if len(m.Cc) > 0 {
		fmt.Fprintf(&b, "Cc: %s\r\n", list(m.Cc))
	}
	fmt.Fprintf(&b, "Subject: %s\r\n", mime.QEncoding.Encode("utf-8", m.Subject))
	fmt.Fprintf(&b, "Date: %s\r\n", now.UTC().Format(time.RFC1123Z))
	b.WriteString("MIME-Version: 1.0\r\nX-Emulator-Transport: graph\r\n")
	ctype := "text/plain"
	if strings.EqualFold(m.Body.ContentType, "html") {
		ctype = "text/html"
	}
	boundary := "emulator-" + strings.ToLower(newGUID())
	if len(atts) > 0 {
		fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=%q\r\n\r\n--%s\r\n", boundary, boundary)
	}
	fmt.Fprintf(&b, "Content-Type: %s; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n", ctype)
	msg := &lazyMIME{}
	msg.text(b.String())
	msg.base64(blobOf([]byte(m.Body.Content)))
	for _, a := range atts {
		ct := a.ctype
		if ct == "" {
			ct = "application/octet-stream"
		}
		msg.text(fmt.Sprintf("--%s\r\nContent-Type: %s\r\nContent-Disposition: attachment; filename=%q\r\nContent-Transfer-Encoding: base64\r\n\r\n",
			boundary, ct, a.name))
		msg.base64(a.data)
	}
	if len(atts) > 0 {
		msg.text(fmt.Sprintf("--%s--\r\n", boundary))
	}
	return msg
}

// store answers PUT /_emulator/store, which is not Graph: it keeps a body
// of any size (Content-Length required) as an upload session keeps an
// attachment, in the same chunks, until the emulator is closed, and
// answers 201 with X-Stored: the byte count. It is the floor of the
// benchmarks' upload session: the same bytes kept the same way, in one
// request.
func (g *graphServer) store(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPut {
		graphError(w, 405, "Request_BadRequest", "Method not allowed.")
		return
	}
	if r.ContentLength < 0 {
		graphError(w, 411, "LengthRequired", "Content-Length is required.")
		return
	}
	b := &blob{}
	if err := b.readFrom(r.Body, r.ContentLength); err != nil {
		graphError(w, 400, "BadRequest", "The body is shorter than Content-Length.")
		return
	}
	g.mu.Lock()
	g.kept = append(g.kept, b)
	g.mu.Unlock()
	w.Header().Set("X-Stored", strconv.FormatInt(b.Len(), 10))
	w.WriteHeader(http.StatusCreated)
}
