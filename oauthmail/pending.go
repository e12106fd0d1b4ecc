package oauthmail

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/devicemail/devicemail/devicecode"
	"github.com/devicemail/devicemail/tokenstore"
)

// PendingSignIn describes a sign-in that was started and has not finished,
// for a status page: the code to show again, or that a pasted answer is
// awaited. It holds no secret.
type PendingSignIn struct {
	Flow            string    `json:"flow"`                       // "device_code" or "paste"
	UserCode        string    `json:"user_code,omitempty"`        // device code flow: the code to type
	VerificationURI string    `json:"verification_uri,omitempty"` // device code flow: where to type it
	Message         string    `json:"message,omitempty"`          // the server's instruction text
	URL             string    `json:"url,omitempty"`              // paste-back: the address to open
	Expires         time.Time `json:"expires"`                    // when the code or request stops working
}

// errNoPaste is returned by FinishPasteSignIn when no paste-back sign-in is
// pending for the account ([PasteRejected]).
var errNoPaste = errors.New("oauthmail: no paste-back sign-in is pending for this account (start one first)")

// signedIn reports whether rec holds a sign-in, not only a pending one.
func signedIn(rec *tokenstore.Record) bool {
	return rec.AccessToken != "" || rec.RefreshToken != ""
}

// savePending stores p in the account's record, keeping any sign-in it holds.
func (m *Mailer) savePending(ctx context.Context, p *tokenstore.Pending) error {
	unlock, err := m.lockRecord(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	rec, err := m.cfg.Store.Load(ctx, m.key)
	switch {
	case ErrorCode(err) == NotSignedIn:
		// A record of only a pending sign-in still names its provider,
		// client and endpoints, so that New can resume from it.
		rec = &tokenstore.Record{Authority: m.cfg.Authority.TokenURL, Scopes: slices.Clone(m.cfg.Scopes)}
		m.describe(rec, "")
	case err != nil:
		return loadErr(err)
	}
	rec.Pending = p
	if err := m.cfg.Store.Save(ctx, m.key, rec); err != nil {
		return fmt.Errorf("oauthmail: save pending sign-in: %w", err)
	}
	m.setCache(rec)
	return nil
}

// loadPending returns the account's pending sign-in of flow if it was
// started for this Mailer's client, endpoint and scopes and has not expired;
// nil otherwise.
func (m *Mailer) loadPending(ctx context.Context, flow, endpoint string) *tokenstore.Pending {
	rec, err := m.cfg.Store.Load(ctx, m.key)
	if err != nil || rec.Pending == nil {
		return nil
	}
	p := rec.Pending
	if p.Flow != flow || p.ClientID != m.cfg.ClientID || p.Endpoint != endpoint || !slices.Equal(p.Scopes, m.cfg.Scopes) {
		return nil
	}
	// Leave at least one polling interval (or a minute) to use it.
	if !m.cfg.Clock.Now().Add(max(p.Interval, time.Minute)).Before(p.Expires) {
		return nil
	}
	return p
}

// clearPending removes the account's pending sign-in if it is still the
// one matched by same; a record that then holds nothing is deleted.
func (m *Mailer) clearPending(ctx context.Context, same func(*tokenstore.Pending) bool) {
	unlock, err := m.lockRecord(ctx)
	if err != nil {
		return
	}
	defer unlock()
	rec, err := m.cfg.Store.Load(ctx, m.key)
	if err != nil || rec.Pending == nil || !same(rec.Pending) {
		return
	}
	rec.Pending = nil
	if !signedIn(rec) {
		m.shared.mu.Lock()
		delete(m.shared.cache, m.key)
		m.shared.mu.Unlock()
		_ = m.cfg.Store.Delete(ctx, m.key)
		return
	}
	if err := m.cfg.Store.Save(ctx, m.key, rec); err == nil {
		m.setCache(rec)
	}
}

// signInDevice is SignIn: it resumes a device code saved by an earlier
// process when one is still valid, else asks for a new one and saves it
// before showing it.
func (m *Mailer) signInDevice(ctx context.Context, show func(*devicecode.Prompt) error) (*devicecode.Identity, error) {
	dc := m.deviceConfig()
	var p *devicecode.Prompt
	if pd := m.loadPending(ctx, tokenstore.PendingDeviceCode, m.cfg.Authority.DeviceAuthURL); pd != nil {
		p = &devicecode.Prompt{UserCode: pd.UserCode, VerificationURI: pd.VerificationURI,
			VerificationURIComplete: pd.VerificationURIComplete, Message: pd.Message,
			Issued: pd.Issued, Expires: pd.Expires, Interval: pd.Interval, DeviceCode: devicecode.DeviceCode(pd.DeviceCode)}
		if lg := m.cfg.Logger; lg != nil {
			lg.InfoContext(ctx, "resuming the device code sign-in started before", "account", m.key, "user_code", pd.UserCode, "expires", pd.Expires)
		}
	} else {
		var err error
		if p, err = dc.Start(ctx); err != nil {
			return nil, err
		}
		if p.Message == "" {
			p.Message = fallbackMessage(m.cfg.Locale, p)
		}
		err = m.savePending(ctx, &tokenstore.Pending{Flow: tokenstore.PendingDeviceCode, ClientID: m.cfg.ClientID,
			Endpoint: m.cfg.Authority.DeviceAuthURL, DeviceCode: string(p.DeviceCode), UserCode: p.UserCode,
			VerificationURI: p.VerificationURI, VerificationURIComplete: p.VerificationURIComplete, Message: p.Message,
			Interval: p.Interval, Scopes: slices.Clone(m.cfg.Scopes), Issued: p.Issued, Expires: p.Expires})
		if err != nil {
			return nil, err
		}
	}
	if show != nil {
		if err := show(p); err != nil {
			return nil, err
		}
	}
	tok, err := dc.Wait(ctx, p)
	if err == nil || (ctx.Err() == nil && !ErrorCode(err).Retryable()) {
		// Redeemed, declined, expired, blocked: this code is finished with.
		m.clearPending(ctx, func(pd *tokenstore.Pending) bool { return pd.DeviceCode == string(p.DeviceCode) })
	}
	if err != nil {
		return nil, err
	}
	id, err := devicecode.IdentityFromToken(tok)
	if err != nil {
		return nil, fmt.Errorf("oauthmail: sign-in: %w", err)
	}
	if id.UPN == "" { // an ID token with email but without profile claims
		id.UPN = id.Email
	}
	// One prompt asks for one resource; whether the app may also send
	// through Graph is found with the new refresh token (consent.go).
	graph, rt := m.probeGraph(ctx, tok.RefreshToken)
	tok.RefreshToken = rt
	if err := m.saveSignIn(ctx, id, tok, m.cfg.Authority.TokenURL, m.cfg.Scopes, "", graph); err != nil {
		return nil, err
	}
	return id, nil
}

// fallbackMessage is the instruction text when the server sent none
// (RFC 8628 §3.2 makes it optional), in the language of locale.
func fallbackMessage(locale string, p *devicecode.Prompt) string {
	if lang(locale) == "ja" {
		return fmt.Sprintf("サインインするには、Web ブラウザーで %s を開き、コード %s を入力して認証してください。", p.VerificationURI, p.UserCode)
	}
	return fmt.Sprintf("To sign in, use a web browser to open the page %s and enter the code %s to authenticate.", p.VerificationURI, p.UserCode)
}

// lang returns the [Code.Message] language of a locale: "ja" for Japanese
// ("ja", "ja-JP", "ja_JP.UTF-8"), "en" otherwise.
func lang(locale string) string {
	if len(locale) >= 2 && (locale[:2] == "ja" || locale[:2] == "JA") && (len(locale) == 2 || !isLetter(locale[2])) {
		return "ja"
	}
	return "en"
}

func isLetter(b byte) bool { return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' }

// pendingStatus fills st.Pending from rec.
func pendingStatus(st *Status, rec *tokenstore.Record) {
	p := rec.Pending
	if p == nil {
		return
	}
	st.Pending = &PendingSignIn{Flow: p.Flow, UserCode: p.UserCode, VerificationURI: p.VerificationURI,
		Message: p.Message, URL: p.AuthURL, Expires: p.Expires}
}
