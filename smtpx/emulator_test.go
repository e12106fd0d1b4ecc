package smtpx_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
	"github.com/devicemail/devicemail/smtpx"
	"github.com/emersion/go-smtp"
)

func emuSender(e *oauthmailtest.Emulator, upn string) *smtpx.Sender {
	return &smtpx.Sender{
		Addr:        e.SMTPAddr(),
		TLSConfig:   e.TLSConfig(),
		Account:     upn,
		TokenSource: static(e.AccessToken(upn)),
	}
}

func TestEmulatorSend(t *testing.T) {
	e := oauthmailtest.Start(t, nil)
	m := simpleMessage()
	m.Subject = "スキャン"
	m.Bcc = []smtpx.Address{{Email: "carol@contoso.com"}}
	if err := emuSender(e, alice).Send(t.Context(), m); err != nil {
		t.Fatalf("Send() = %v", err)
	}
	msgs := e.Messages()
	if len(msgs) != 1 {
		t.Fatalf("emulator stored %d messages, want 1", len(msgs))
	}
	got := msgs[0]
	if got.From != alice || got.User != alice || strings.Join(got.To, ",") != "bob@contoso.com,carol@contoso.com" {
		t.Errorf("stored From %q User %q To %v", got.From, got.User, got.To)
	}
	if got.Header.Get("Bcc") != "" || strings.Contains(string(got.Data), "carol@contoso.com") {
		t.Errorf("Bcc leaked into the message")
	}
}

func TestEmulatorSendAsShared(t *testing.T) {
	e := oauthmailtest.Start(t, nil)
	s := emuSender(e, alice)
	s.SendAs = []string{"scanner@contoso.com"}
	m := simpleMessage()
	m.From.Email = "scanner@contoso.com"
	if err := s.Send(t.Context(), m); err != nil {
		t.Fatalf("Send() as scanner = %v", err)
	}
}

func TestEmulatorFailures(t *testing.T) {
	cases := []struct {
		name   string
		setup  func(e *oauthmailtest.Emulator, s *smtpx.Sender, m *smtpx.Message)
		stage  smtpx.Stage
		reason smtpx.Reason
	}{
		{"bad token", func(e *oauthmailtest.Emulator, s *smtpx.Sender, m *smtpx.Message) {
			s.TokenSource = static("canary-not-a-jwt")
		}, smtpx.StageAuth, smtpx.ReasonAuthFailed},
		{"token of another user", func(e *oauthmailtest.Emulator, s *smtpx.Sender, m *smtpx.Message) {
			s.TokenSource = static(e.AccessToken("bob@contoso.com"))
		}, smtpx.StageAuth, smtpx.ReasonAuthFailed},
		{"SMTP AUTH disabled for the mailbox", func(e *oauthmailtest.Emulator, s *smtpx.Sender, m *smtpx.Message) {
			e.Update(func(d *oauthmailtest.Directory) {
				for _, u := range d.Users {
					if u.UPN == alice {
						u.SMTPAuth = oauthmailtest.SMTPAuthDisabled
					}
				}
			})
		}, smtpx.StageAuth, smtpx.ReasonSMTPAuthDisabled},
		{"send as denied", func(e *oauthmailtest.Emulator, s *smtpx.Sender, m *smtpx.Message) {
			// The local policy is told the account may send as ceo@, the
			// server knows better.
			s.SendAs = []string{"ceo@contoso.com"}
			m.From.Email = "ceo@contoso.com"
		}, smtpx.StageData, smtpx.ReasonSendAsDenied},
		{"concurrency limit", func(e *oauthmailtest.Emulator, s *smtpx.Sender, m *smtpx.Message) {
			e.InjectSMTP(oauthmailtest.SMTPFault{Stage: oauthmailtest.StageDataEnd,
				Reply: "432 4.3.2 Concurrent connections limit exceeded. Visit https://aka.ms/concurrent_sending for more information. [Hostname=EM1PR01MB0001.EMUPRD01.PROD.OUTLOOK.COM]"})
		}, smtpx.StageData, smtpx.ReasonThrottled},
		{"transient at auth", func(e *oauthmailtest.Emulator, s *smtpx.Sender, m *smtpx.Message) {
			e.InjectSMTP(oauthmailtest.SMTPFault{Stage: oauthmailtest.StageAuth, Reply: "451 4.7.0 Temporary server error. Please try again later. PRX4"})
		}, smtpx.StageAuth, smtpx.ReasonThrottled},
		{"STARTTLS refused", func(e *oauthmailtest.Emulator, s *smtpx.Sender, m *smtpx.Message) {
			e.InjectSMTP(oauthmailtest.SMTPFault{Stage: oauthmailtest.StageStartTLS, Reply: "454 4.7.0 TLS not available"})
		}, smtpx.StageStartTLS, smtpx.ReasonTLS},
		{"untrusted certificate", func(e *oauthmailtest.Emulator, s *smtpx.Sender, m *smtpx.Message) {
			s.TLSConfig = nil // system roots do not know the emulator's CA
		}, smtpx.StageStartTLS, smtpx.ReasonCertificate},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := oauthmailtest.Start(t, nil)
			s := emuSender(e, alice)
			m := simpleMessage()
			tc.setup(e, s, m)
			err := s.Send(t.Context(), m)
			var se *smtpx.Error
			if !errors.As(err, &se) {
				t.Fatalf("Send() = %v, want *smtpx.Error", err)
			}
			if se.Stage != tc.stage || se.Reason != tc.reason {
				t.Errorf("Send() = %v: {Stage %q Reason %q}, want {%q %q}", err, se.Stage, se.Reason, tc.stage, tc.reason)
			}
			var raw *smtp.SMTPError
			if se.Code != 0 && !errors.As(err, &raw) {
				t.Errorf("errors.As(err, *smtp.SMTPError) = false for a server reply")
			}
			if strings.Contains(err.Error(), "canary-") || strings.Contains(err.Error(), "eyJ") {
				t.Errorf("error string carries a token: %v", err)
			}
			if n := len(e.Messages()); n != 0 {
				t.Errorf("emulator stored %d messages", n)
			}
		})
	}
}

func TestEmulatorSession(t *testing.T) {
	e := oauthmailtest.Start(t, nil)
	sess, err := emuSender(e, alice).Dial(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	for range 10 {
		if err := sess.Send(t.Context(), simpleMessage()); err != nil {
			t.Fatalf("Send() = %v", err)
		}
	}
	if n := len(e.Messages()); n != 10 {
		t.Errorf("emulator stored %d messages, want 10", n)
	}
}
