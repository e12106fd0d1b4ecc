package oauthmail_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/devicemail/devicemail/internal/testdir"
	"github.com/devicemail/devicemail/oauthmail"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
	"github.com/devicemail/devicemail/provider"
	"github.com/devicemail/devicemail/smtpx"
	"github.com/devicemail/devicemail/tokenstore"
)

// Local file failures have local codes: a store or spool failure is
// storage_failed, an untagged file error is internal, never network.
func TestErrorCodeLocalFailures(t *testing.T) {
	eacces := &fs.PathError{Op: "open", Path: "/var/lib/oauthmail/tokens", Err: syscall.EACCES}
	tests := []struct {
		name string
		err  error
		want oauthmail.Code
	}{
		{"tagged permission", &oauthmail.StorageError{Op: "save sign-in", Err: eacces}, oauthmail.StorageFailed},
		{"tagged not a directory", &oauthmail.StorageError{Op: "outbox", Err: &fs.PathError{Op: "mkdir", Path: "/x", Err: syscall.ENOTDIR}}, oauthmail.StorageFailed},
		{"read-only file system", &fs.PathError{Op: "open", Path: "/ro/x", Err: syscall.EROFS}, oauthmail.StorageFailed},
		{"untagged permission", eacces, oauthmail.Internal},
		{"untagged missing file", &fs.PathError{Op: "open", Path: "/nosuch", Err: syscall.ENOENT}, oauthmail.Internal},
	}
	if f, err := os.OpenFile("/dev/full", os.O_WRONLY, 0); err == nil {
		_, werr := f.Write([]byte("x"))
		f.Close()
		if werr == nil {
			t.Fatal("writing to /dev/full succeeded")
		}
		tests = append(tests, struct {
			name string
			err  error
			want oauthmail.Code
		}{"no space (a real write to /dev/full)", werr, oauthmail.StorageFailed})
	} else {
		t.Logf("no /dev/full (%v): the no-space case is not covered on this system", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := oauthmail.ErrorCode(tt.err); got != tt.want {
				t.Errorf("ErrorCode(%v) = %q, want %q", tt.err, got, tt.want)
			}
		})
	}
	if !oauthmail.StorageFailed.Retryable() || oauthmail.DefaultPanels().Panel(oauthmail.StorageFailed) != 397 {
		t.Errorf("storage_failed: retryable %v, panel %d; want true, 397",
			oauthmail.StorageFailed.Retryable(), oauthmail.DefaultPanels().Panel(oauthmail.StorageFailed))
	}
}

// A sign-in that cannot be saved (the store directory is under a regular
// file) fails with a *StorageError, code storage_failed.
func TestSignInStoreNotWritable(t *testing.T) {
	file := filepath.Join(testdir.New(t), "file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := newRig(t, nil, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID, func(c *oauthmail.Config) {
		c.Store = &tokenstore.File{Dir: filepath.Join(file, "tokens")}
	})
	_, err := r.m.SignIn(context.Background(), r.approve("alice@contoso.com"))
	var se *oauthmail.StorageError
	if !errors.As(err, &se) || !errors.Is(err, syscall.ENOTDIR) {
		t.Errorf("SignIn with the store under a file = %v, want a *StorageError wrapping ENOTDIR", err)
	}
	wantCode(t, "SignIn", err, oauthmail.StorageFailed)
}

// A header field name that the MIME writer would refuse (not printable
// US-ASCII) is bad input found before connecting, not a network failure.
func TestHeaderNameRefusedBeforeConnecting(t *testing.T) {
	r := newRig(t, nil, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID, nil)
	r.signIn(t, r.m, "alice@contoso.com")
	for _, k := range []string{"X-Ünicode", "X-\x7fdel", "X\x01"} {
		msg := msgTo("bob@contoso.com")
		msg.Header = map[string]string{k: "v"}
		err := r.m.Send(context.Background(), msg)
		wantCode(t, "Send with header "+k, err, oauthmail.BadInput)
		if !errors.Is(err, smtpx.ErrInvalidMessage) {
			t.Errorf("Send with header %q = %v, want smtpx.ErrInvalidMessage", k, err)
		}
	}
	if n := len(r.e.Messages()); n != 0 {
		t.Errorf("%d messages delivered", n)
	}
}

// The deprecated SMTP fields still feed the Sender template for one
// release: New checks them as it checks the template's own fields, and a
// template field that is set wins over them.
func TestNewDeprecatedSMTPFields(t *testing.T) {
	a, err := provider.Google(), error(nil)
	for _, tc := range []struct {
		name string
		cfg  oauthmail.Config
	}{
		{"no port", oauthmail.Config{SMTPAddr: "no-port"}},
		{"port 0", oauthmail.Config{SMTPAddr: "smtp.office365.com:0"}},
		{"port name", oauthmail.Config{SMTPAddr: "smtp.office365.com:submission"}},
		{"unknown mechanism", oauthmail.Config{SMTPMechanism: "PLAIN"}},
		{"negative limit", oauthmail.Config{MaxRecipients: -1}},
	} {
		tc.cfg.Authority, tc.cfg.ClientID = a, "client"
		_, err = oauthmail.New(tc.cfg)
		wantCode(t, "New, "+tc.name, err, oauthmail.BadInput)
	}
	for _, mech := range []string{"", "xoauth2", "OAUTHBEARER"} {
		if _, err := oauthmail.New(oauthmail.Config{Authority: a, ClientID: "client", SMTPMechanism: mech}); err != nil {
			t.Errorf("New with mechanism %q: %v", mech, err)
		}
	}
	m, err := oauthmail.New(oauthmail.Config{Authority: a, ClientID: "client",
		SMTPAddr: "old.example:587",
		Sender:   &smtpx.Sender{Addr: "new.example:465", TLS: smtpx.ImplicitTLS}})
	if err != nil {
		t.Fatal(err)
	}
	st, err := m.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.Server != "new.example" || st.Port != 465 || st.TLS != "implicit TLS" {
		t.Errorf("Status = %s:%d %s, want the template's new.example:465 implicit TLS", st.Server, st.Port, st.TLS)
	}
	m, err = oauthmail.New(oauthmail.Config{Authority: a, ClientID: "client", SMTPAddr: "old.example:2525"})
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := m.Status(t.Context()); st.Server != "old.example" || st.Port != 2525 || st.TLS != "STARTTLS" {
		t.Errorf("Status = %s:%d %s, want the deprecated field's old.example:2525 STARTTLS", st.Server, st.Port, st.TLS)
	}
}

// A store that cannot be read is reported once, by its operation: the error
// text says "load sign-in" a single time, however many layers pass it on.
func TestStoreLoadFailureSaidOnce(t *testing.T) {
	dir := filepath.Join(testdir.New(t), "tokens")
	r := newRig(t, nil, oauthmailtest.ContosoTenantID, oauthmailtest.DeviceAppClientID, func(c *oauthmail.Config) {
		c.Store = &tokenstore.File{Dir: dir}
	})
	r.signIn(t, r.m, "alice@contoso.com")
	names, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil || len(names) != 1 {
		t.Fatalf("store directory holds %v (%v), want one record", names, err)
	}
	// The record becomes a directory: reading it fails in the operating system.
	if err := os.Remove(names[0]); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(names[0], 0o700); err != nil {
		t.Fatal(err)
	}
	m, err := oauthmail.New(r.cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = m.Send(context.Background(), msgTo("bob@contoso.com"))
	wantCode(t, "Send", err, oauthmail.StorageFailed)
	if err == nil || strings.Count(err.Error(), "load sign-in") != 1 {
		t.Errorf("Send = %v, want an error that says \"load sign-in\" once", err)
	}
}
