package oauthmail

import (
	"context"
	"fmt"
	"time"

	"github.com/devicemail/devicemail/devicecode"
)

// DefaultLapseWarnDays is the warning period of [Status.LapseWarning] when
// Config.LapseWarnDays is zero.
const DefaultLapseWarnDays = 14

// LapseWarning says that a sign-in lapses soon: Microsoft ends a refresh
// token unused for 90 days ([Inactivity]), after which an administrator must
// sign in again ([SignInExpired]). Sending mail or [Mailer.KeepAlive]
// refreshes it and clears the warning.
type LapseWarning struct {
	Days     int       `json:"days"`      // whole days left; 0 means less than a day
	LapsesAt time.Time `json:"lapses_at"` // when the sign-in lapses
}

// Message returns the warning for an operator in English (lang "en" or "")
// or Japanese ("ja").
func (w *LapseWarning) Message(lang string) string {
	date := w.LapsesAt.UTC().Format("2006-01-02")
	if lang == "ja" {
		if w.Days == 0 {
			return fmt.Sprintf("メールサービスとの連携は1日以内（%s）に失効します。メールを送信するか接続を確認して、連携を更新してください。", date)
		}
		return fmt.Sprintf("メールサービスとの連携はあと%d日（%s）で失効します。メールを送信するか接続を確認して、連携を更新してください。", w.Days, date)
	}
	if w.Days == 0 {
		return fmt.Sprintf("The sign-in lapses in less than a day (%s). Send a mail or check the connection so that it is renewed.", date)
	}
	unit := "days"
	if w.Days == 1 {
		unit = "day"
	}
	return fmt.Sprintf("The sign-in lapses in %d %s (%s). Send a mail or check the connection so that it is renewed.", w.Days, unit, date)
}

// lapseWarning returns the warning for a sign-in lapsing at, or nil when
// more than the warning period is left or it has lapsed already (Status.Lapsed).
func (m *Mailer) lapseWarning(at time.Time) *LapseWarning {
	days := m.cfg.LapseWarnDays
	if days == 0 {
		days = DefaultLapseWarnDays
	}
	left := at.Sub(m.cfg.Clock.Now())
	if days < 0 || left <= 0 || left > time.Duration(days)*24*time.Hour {
		return nil
	}
	return &LapseWarning{Days: int(left / (24 * time.Hour)), LapsesAt: at}
}

// logLapse logs the account's lapse warning, if it has one.
func (m *Mailer) logLapse(ctx context.Context) {
	st, err := m.Status(ctx)
	if err != nil || st.LapseWarning == nil {
		return
	}
	if lg := m.cfg.Logger; lg != nil {
		lg.WarnContext(ctx, "the sign-in lapses soon", "account", m.key, "lapse.days", st.LapseWarning.Days, "lapse.at", st.LapseWarning.LapsesAt, "message", st.LapseWarning.Message("en"))
	}
}

// certificateStatus fills st.ClientCertificate from Config.ClientCertificate.
func (m *Mailer) certificateStatus(st *Status) {
	c := m.cfg.ClientCertificate
	if c == nil || c.Certificate == nil {
		return
	}
	s := devicecode.CheckCertificateExpiry(c.Certificate, m.cfg.SecretWarnDays, m.cfg.Clock.Now())
	st.ClientCertificate = &s
}
