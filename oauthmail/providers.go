package oauthmail

import (
	"net/url"
	"strings"

	"golang.org/x/oauth2"

	"github.com/devicemail/devicemail/devicecode"
	"github.com/devicemail/devicemail/tokenstore"
)

// GoogleName is the Authority.Name of [Google].
const GoogleName = "Google"

// Google returns the authority of Gmail and Google Workspace: sign in with
// [Mailer.SignInBrowser] (authorization code with a loopback redirect; Google
// does not allow the mail scope in its device flow), scope
// https://mail.google.com/ plus openid and email to name the account, and SMTP
// at smtp.gmail.com:587 with XOAUTH2. The client is a Google "Desktop app"
// OAuth client, whose secret Google documents as not confidential. The
// endpoints are golang.org/x/oauth2/endpoints.Google.
func Google() devicecode.Authority {
	return devicecode.Authority{
		Name:          GoogleName,
		AuthURL:       "https://accounts.google.com/o/oauth2/auth",
		TokenURL:      "https://oauth2.googleapis.com/token",
		DeviceAuthURL: "https://oauth2.googleapis.com/device/code",
		Scopes:        []string{"https://mail.google.com/", "openid", "email"},
		SMTPAddr:      "smtp.gmail.com:587",
	}
}

// Generic returns the authority of any OAuth 2.0 provider with its SMTP
// submission server smtpAddr (host:port, STARTTLS): ep needs TokenURL, and
// AuthURL for [Mailer.SignInBrowser] or DeviceAuthURL for [Mailer.SignIn].
// Set Config.Sender.Mechanism to "OAUTHBEARER" when the server offers only that.
// The URLs must be https (http only on loopback).
func Generic(name string, ep oauth2.Endpoint, smtpAddr string, scopes ...string) (devicecode.Authority, error) {
	if ep.DeviceAuthURL == "" {
		// devicecode.Generic requires a device endpoint; check the others alone.
		probe := ep
		probe.DeviceAuthURL = ep.TokenURL
		a, err := devicecode.Generic(name, probe, scopes...)
		if err != nil {
			return devicecode.Authority{}, err
		}
		a.DeviceAuthURL = ""
		a.SMTPAddr = smtpAddr
		return a, nil
	}
	a, err := devicecode.Generic(name, ep, scopes...)
	if err != nil {
		return devicecode.Authority{}, err
	}
	a.SMTPAddr = smtpAddr
	return a, nil
}

// authParams are the provider-specific authorization parameters: Google
// issues a refresh token only with access_type=offline, and again only with
// prompt=consent (Google's OAuth 2.0 for web server applications guide).
func authParams(a devicecode.Authority) map[string]string {
	if u, err := url.Parse(a.AuthURL); err == nil && u.Host == "accounts.google.com" {
		return map[string]string{"access_type": "offline", "prompt": "consent"}
	}
	return nil
}

// consumerTenantID is the tenant ID of personal Microsoft accounts
// (Outlook.com), the tid claim of their tokens
// (https://learn.microsoft.com/en-us/entra/identity-platform/id-token-claims-reference).
const consumerTenantID = "9188040d-6c67-4c5b-b112-36a304b66dad"

// SMTPServerFor returns the SMTP submission server (host:port, STARTTLS) of
// a stored sign-in, from what the record says: its provider name when that is
// one of the presets (devicecode's Microsoft clouds, [Google]), else the host
// of its token endpoint (login.microsoftonline.com, oauth2.googleapis.com).
// A personal Microsoft account (tenant 9188040d-6c67-4c5b-b112-36a304b66dad)
// signed in through tenant "common" gets smtp-mail.outlook.com:587, the
// server Microsoft documents for Outlook.com
// ("POP, IMAP, and SMTP settings for Outlook.com",
// https://support.microsoft.com/office/pop-imap-and-smtp-settings-8361e398-8af4-4e97-b147-6c6c4ac95353).
// It returns "" when neither is known (a generic provider): the caller must
// then name the server.
func SMTPServerFor(rec *tokenstore.Record) string {
	if rec == nil {
		return ""
	}
	outlook := devicecode.OutlookCom().SMTPAddr
	consumer := strings.EqualFold(rec.Account.TenantID, consumerTenantID)
	presets := []devicecode.Authority{Google(), devicecode.OutlookCom(), devicecode.Common()}
	for _, f := range []func(string) (devicecode.Authority, error){
		devicecode.ExchangeOnline, devicecode.USGovGCCHigh, devicecode.USGovDoD, devicecode.China21Vianet,
	} {
		if a, err := f("organizations"); err == nil {
			presets = append(presets, a)
		}
	}
	for _, a := range presets {
		if a.Name != rec.Provider {
			continue
		}
		if consumer && a.Name == devicecode.Common().Name {
			return outlook
		}
		return a.SMTPAddr
	}
	u, err := url.Parse(rec.Authority)
	if err != nil {
		return ""
	}
	switch strings.ToLower(u.Hostname()) {
	case "oauth2.googleapis.com", "accounts.google.com":
		return Google().SMTPAddr
	case "login.microsoftonline.com":
		if consumer || strings.HasPrefix(strings.TrimPrefix(u.Path, "/"), "consumers/") {
			return outlook
		}
		a, _ := devicecode.ExchangeOnline("organizations")
		return a.SMTPAddr
	}
	return ""
}
