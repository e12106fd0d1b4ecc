package outbox

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/devicemail/devicemail/internal/atomicfile"
	"github.com/devicemail/devicemail/oauthmail"
	"github.com/devicemail/devicemail/smtpx"
)

// spoolVersion is the version of the spool entry format.
const spoolVersion = 1

// maxSpoolFile caps how much of a spool JSON file is read: bodies are text,
// attachments live in their own files.
const maxSpoolFile = 64 << 20

// spoolMessage is message.json of a spool entry.
type spoolMessage struct {
	Version     int               `json:"version"`
	Enqueued    time.Time         `json:"enqueued"`
	From        spoolAddress      `json:"from"`
	To          []spoolAddress    `json:"to,omitempty"`
	Cc          []spoolAddress    `json:"cc,omitempty"`
	Bcc         []spoolAddress    `json:"bcc,omitempty"`
	ReplyTo     []spoolAddress    `json:"reply_to,omitempty"`
	Subject     string            `json:"subject,omitempty"`
	Text        string            `json:"text,omitempty"`
	HTML        string            `json:"html,omitempty"`
	Header      map[string]string `json:"header,omitempty"`
	MessageID   string            `json:"message_id"`
	Date        time.Time         `json:"date"`
	Attachments []spoolAttachment `json:"attachments,omitempty"`
}

type spoolAddress struct {
	Name  string `json:"name,omitempty"`
	Email string `json:"email"`
}

type spoolAttachment struct {
	Name        string `json:"name"`
	ContentType string `json:"content_type,omitempty"`
	File        string `json:"file"` // "att-N" inside the entry directory
	Size        int64  `json:"size"`
}

// spoolState is state.json of a spool entry: delivery bookkeeping, rewritten
// atomically after every attempt.
type spoolState = State

// SpoolError is a spool entry that cannot be read: a damaged or foreign
// message.json. The outbox moves such entries to the dead-letter area.
type SpoolError struct {
	File   string // path of the file
	Reason string // what is wrong, e.g. "not JSON", "unknown version 7"
	Err    error  // underlying error, if any
}

func (e *SpoolError) Error() string {
	s := fmt.Sprintf("outbox: spool file %s: %s", e.File, e.Reason)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns Err.
func (e *SpoolError) Unwrap() error { return e.Err }

func toSpool(m *smtpx.Message, now time.Time, domain string) *spoolMessage {
	conv := func(as []smtpx.Address) []spoolAddress {
		if len(as) == 0 {
			return nil
		}
		out := make([]spoolAddress, len(as))
		for i, a := range as {
			out[i] = spoolAddress{a.Name, a.Email}
		}
		return out
	}
	sm := &spoolMessage{
		Version: spoolVersion, Enqueued: now,
		From: spoolAddress{m.From.Name, m.From.Email},
		To:   conv(m.To), Cc: conv(m.Cc), Bcc: conv(m.Bcc), ReplyTo: conv(m.ReplyTo),
		Subject: m.Subject, Text: m.Text, HTML: m.HTML, MessageID: m.MessageID, Date: m.Date,
	}
	if len(m.Header) > 0 {
		sm.Header = make(map[string]string, len(m.Header))
		for k, v := range m.Header {
			sm.Header[k] = v
		}
	}
	if sm.MessageID == "" {
		var b [16]byte
		rand.Read(b[:])
		sm.MessageID = hex.EncodeToString(b[:]) + "@" + domain
	}
	if sm.Date.IsZero() {
		sm.Date = now
	}
	return sm
}

// message rebuilds the smtpx.Message of an entry; attachment i is opened
// with open(i) at upload time (open may be nil for a message that is only
// checked).
func (sm *spoolMessage) message(open func(i int) (io.ReadCloser, error)) *smtpx.Message {
	conv := func(as []spoolAddress) []smtpx.Address {
		if len(as) == 0 {
			return nil
		}
		out := make([]smtpx.Address, len(as))
		for i, a := range as {
			out[i] = smtpx.Address{Name: a.Name, Email: a.Email}
		}
		return out
	}
	m := &smtpx.Message{
		From: smtpx.Address{Name: sm.From.Name, Email: sm.From.Email},
		To:   conv(sm.To), Cc: conv(sm.Cc), Bcc: conv(sm.Bcc), ReplyTo: conv(sm.ReplyTo),
		Subject: sm.Subject, Text: sm.Text, HTML: sm.HTML, Header: sm.Header,
		MessageID: sm.MessageID, Date: sm.Date,
	}
	for i, a := range sm.Attachments {
		m.Attachments = append(m.Attachments, smtpx.Attachment{
			Name: a.Name, ContentType: a.ContentType, Size: a.Size,
			Open: func() (io.ReadCloser, error) {
				if open == nil {
					return nil, errors.New("outbox: attachment not stored yet")
				}
				return open(i)
			},
		})
	}
	return m
}

func encodeSpool(sm *spoolMessage) ([]byte, error) { return json.MarshalIndent(sm, "", "\t") }

// decodeSpool parses message.json strictly: known version, no unknown
// fields, attachment files only of the form att-N.
func decodeSpool(name string, b []byte) (*spoolMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var sm spoolMessage
	if err := dec.Decode(&sm); err != nil {
		return nil, &SpoolError{File: name, Reason: "not a spool message", Err: err}
	}
	if dec.More() {
		return nil, &SpoolError{File: name, Reason: "trailing data"}
	}
	if sm.Version != spoolVersion {
		return nil, &SpoolError{File: name, Reason: "unknown version " + strconv.Itoa(sm.Version)}
	}
	if len(sm.To)+len(sm.Cc)+len(sm.Bcc) == 0 {
		return nil, &SpoolError{File: name, Reason: "no recipients"}
	}
	for _, l := range [][]spoolAddress{sm.To, sm.Cc, sm.Bcc, sm.ReplyTo} {
		for _, a := range l {
			if a.Email == "" {
				return nil, &SpoolError{File: name, Reason: "empty address"}
			}
		}
	}
	if len(sm.Header) == 0 {
		sm.Header = nil // "header":{} and no header are the same message
	}
	// Likewise "cc":[] and no cc (found by FuzzDecodeSpool: an empty list
	// did not survive a round trip, which omits it).
	if len(sm.Cc) == 0 {
		sm.Cc = nil
	}
	if len(sm.Bcc) == 0 {
		sm.Bcc = nil
	}
	if len(sm.ReplyTo) == 0 {
		sm.ReplyTo = nil
	}
	if len(sm.Attachments) == 0 {
		sm.Attachments = nil
	}
	for i, a := range sm.Attachments {
		if a.File != "att-"+strconv.Itoa(i) || a.Size < 0 {
			return nil, &SpoolError{File: name, Reason: fmt.Sprintf("attachment %d: bad file reference", i)}
		}
	}
	return &sm, nil
}

func encodeState(st spoolState) ([]byte, error) { return json.Marshal(st) }

// decodeState parses state.json; a damaged state is a fresh one (the
// message itself is what must not be lost).
func decodeState(b []byte) (spoolState, error) {
	var st spoolState
	if err := json.Unmarshal(b, &st); err != nil {
		return spoolState{}, &SpoolError{File: fileSt, Reason: "not a spool state", Err: err}
	}
	if st.Attempts < 0 {
		return spoolState{}, &SpoolError{File: fileSt, Reason: "negative attempts"}
	}
	return st, nil
}

// readState reads the state file at path; a missing or damaged one is a
// fresh state.
func readState(path string) spoolState {
	f, err := atomicfile.OpenShared(context.Background(), path)
	if err != nil {
		return spoolState{}
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		return spoolState{}
	}
	st, _ := decodeState(b)
	return st
}

// storageErr tags err as an [oauthmail.StorageError] (code storage_failed)
// if it comes from the operating system: a full or read-only disk, no
// permission, a path that is not a directory. Other errors (a cancelled
// context, a damaged spool file) keep their own codes.
func storageErr(err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var (
		pe *fs.PathError
		le *os.LinkError
		se *os.SyscallError
		en syscall.Errno
		sg *oauthmail.StorageError
	)
	if errors.As(err, &sg) {
		return err
	}
	if errors.As(err, &pe) || errors.As(err, &le) || errors.As(err, &se) || errors.As(err, &en) {
		return &oauthmail.StorageError{Op: "outbox", Err: err}
	}
	return err
}

// replaceSync atomically replaces path with b (temp file, sync, rename,
// directory sync).
func replaceSync(path string, b []byte) error {
	return storageErr(atomicfile.Replace(path, b, 0o600))
}

// syncDir makes the directory entries of dir (a rename into it) durable.
func syncDir(dir string) error { return storageErr(atomicfile.SyncDir(dir)) }

// lockSpool takes the spool's delivery lock without waiting (flock on Unix,
// LockFileEx on Windows; the system releases it if the process dies). It
// returns ErrBusy if another process holds it. Where the platform has no
// file locks (js, wasip1, plan9) it does not lock: run one delivering
// process per spool there.
func lockSpool(path string) (func(), error) {
	unlock, err := atomicfile.TryLock(path)
	if errors.Is(err, atomicfile.ErrBusy) {
		return nil, ErrBusy
	}
	if errors.Is(err, errors.ErrUnsupported) {
		return func() {}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("outbox: lock: %w", storageErr(err))
	}
	return func() { unlock() }, nil
}

// removeAll removes an entry directory and its files (atomicfile.RemoveAll:
// os.RemoveAll, entry by entry where that fails, as under Wine).
func removeAll(path string) error { return atomicfile.RemoveAll(path) }
