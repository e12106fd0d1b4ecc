package oauthmail

import (
	"net/url"

	"golang.org/x/oauth2"

	"github.com/devicemail/devicemail/devicecode"
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
// Set Config.SMTPMechanism to "OAUTHBEARER" when the server offers only that.
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
