package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/devicemail/devicemail/imapx"
	"github.com/devicemail/devicemail/oauthmail"
)

// receiverFor is the Config.Receiver of "login --receive": the IMAP scope is
// asked for at sign-in only when receiving is wanted.
func receiverFor(receive bool) *imapx.Receiver {
	if !receive {
		return nil
	}
	return &imapx.Receiver{}
}

// receive prints a summary of each new message, saves its attachments to
// --save-dir, and marks it handled only after that; without --once it
// waits for more until interrupted.
func (e *env) receive(ctx context.Context, args []string) error {
	fs := newFlags(e, "receive")
	var c common
	c.register(fs, true)
	addr := fs.String("imap", "", "IMAP server host:port, implicit TLS (default: outlook.office365.com:993 for Microsoft sign-ins)")
	mailbox := fs.String("mailbox", "", "folder to receive from (default INBOX)")
	moveTo := fs.String("move-to", "", "move handled messages to this existing folder (default: flag them read)")
	saveDir := fs.String("save-dir", "", "save attachments in this directory as UID-NAME")
	once := fs.Bool("once", false, "handle what is new, then exit")
	poll := fs.Duration("poll", 0, "poll interval for servers without IDLE (default 1m)")
	secretFile := fs.String("client-secret-file", "", "client secret of an authcode sign-in (for renewing its token)")
	if err := parse(fs, args); err != nil {
		return err
	}
	e.json = c.json
	if *poll < 0 {
		return usagef("receive: --poll must not be negative")
	}
	if *saveDir != "" {
		if st, err := os.Stat(*saveDir); err != nil || !st.IsDir() {
			return usagef("receive: --save-dir %q is not a directory", *saveDir)
		}
	}
	secret, err := readSecret(*secretFile)
	if err != nil {
		return err
	}
	tmpl := &imapx.Receiver{Addr: *addr, Mailbox: *mailbox, MoveTo: *moveTo, PollInterval: *poll}
	m, _, err := e.mailerFor(ctx, &c, oauthmail.Config{ClientSecret: secret, Receiver: tmpl})
	if err != nil {
		return err
	}
	handle := func(ctx context.Context, msg *imapx.Message) error { return e.handleMessage(msg, *saveDir) }
	if *once {
		n, err := m.ReceiveOnce(ctx, handle)
		if err != nil {
			return secretHint(err, secret)
		}
		if !e.json {
			fmt.Fprintf(e.stderr, "oauthmail: %d new message(s)\n", n)
		}
		return nil
	}
	if !e.json {
		fmt.Fprintln(e.stderr, "oauthmail: waiting for new mail; Ctrl-C stops")
	}
	return secretHint(m.Receive(ctx, handle), secret)
}

// received is the JSON line printed per message.
type received struct {
	UID         uint32     `json:"uid"`
	MessageID   string     `json:"message_id,omitempty"`
	From        string     `json:"from,omitempty"`
	To          []string   `json:"to,omitempty"`
	Subject     string     `json:"subject"`
	Date        time.Time  `json:"date,omitzero"`
	Size        int64      `json:"size"`
	Attachments []savedAtt `json:"attachments,omitempty"`
}

type savedAtt struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
	Path string `json:"path,omitempty"`
}

// handleMessage streams the attachments to dir (if set) and prints the
// summary; a write failure returns an error, so the message stays new.
func (e *env) handleMessage(msg *imapx.Message, dir string) error {
	r := received{UID: msg.UID, MessageID: msg.MessageID, From: msg.From, To: msg.To,
		Subject: msg.Subject, Date: msg.Date, Size: msg.Size}
	for {
		p, err := msg.NextPart()
		if err == io.EOF || errors.Is(err, imapx.ErrNotMIME) {
			break
		}
		if err != nil {
			return fmt.Errorf("receive: message %d: %w", msg.UID, err)
		}
		if !p.Attachment {
			continue
		}
		a := savedAtt{Name: p.Filename}
		if dir == "" {
			a.Size, err = io.Copy(io.Discard, p.Body)
		} else {
			a.Path, a.Size, err = saveAttachment(dir, msg.UID, p.Filename, p.Body)
		}
		if err != nil {
			return err
		}
		r.Attachments = append(r.Attachments, a)
	}
	if e.json {
		e.printJSON(r)
		return nil
	}
	fmt.Fprintf(e.stdout, "uid %d  from %s  subject %q  %d bytes\n", r.UID, r.From, r.Subject, r.Size)
	for _, a := range r.Attachments {
		if a.Path != "" {
			fmt.Fprintf(e.stdout, "  attachment %q (%d bytes) saved to %s\n", a.Name, a.Size, a.Path)
		} else {
			fmt.Fprintf(e.stdout, "  attachment %q (%d bytes)\n", a.Name, a.Size)
		}
	}
	return nil
}

// safeName turns a sender-chosen file name into one path element: no
// directories, no control characters, no leading dots.
func safeName(name string) string {
	name = filepath.Base(strings.ReplaceAll(name, "\\", "/"))
	name = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '/' || r == ':' {
			return '_'
		}
		return r
	}, name)
	name = strings.TrimLeft(name, ".")
	if name == "" || name == "_" {
		name = "attachment"
	}
	if len(name) > 200 {
		name = name[len(name)-200:]
	}
	return name
}

// saveAttachment streams body to dir/UID-NAME through a temporary file and
// a rename, so that a crash never leaves a half file under the final name.
// An existing file is never overwritten: a message handed over twice
// (see imapx) gets a second name.
func saveAttachment(dir string, uid uint32, name string, body io.Reader) (string, int64, error) {
	f, err := os.CreateTemp(dir, ".receiving-*")
	if err != nil {
		return "", 0, storageErr("save attachment", err)
	}
	defer os.Remove(f.Name())
	n, err := io.Copy(f, body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			return "", 0, storageErr("save attachment", err)
		}
		return "", 0, fmt.Errorf("receive: message %d: attachment %q: %w", uid, name, err)
	}
	base := fmt.Sprintf("%d-%s", uid, safeName(name))
	for i := 0; ; i++ {
		target := filepath.Join(dir, base)
		if i > 0 {
			ext := filepath.Ext(base)
			target = filepath.Join(dir, fmt.Sprintf("%s.%d%s", strings.TrimSuffix(base, ext), i, ext))
		}
		if err := os.Link(f.Name(), target); err == nil {
			return target, n, nil
		} else if !errors.Is(err, os.ErrExist) {
			return "", 0, storageErr("save attachment", err)
		}
	}
}
