package provider

// Google returns Gmail and Google Workspace: sign-in by authorization code
// with a loopback redirect (Google does not allow the mail scope in its
// device flow), scope https://mail.google.com/ plus openid and email to name
// the account, and SMTP at smtp.gmail.com:587 with STARTTLS and XOAUTH2
// (https://developers.google.com/gmail/imap/xoauth2-protocol). The client is a
// Google "Desktop app" OAuth client, whose secret Google documents as not
// confidential. Google issues a refresh token only with access_type=offline,
// and again only with prompt=consent
// (https://developers.google.com/identity/protocols/oauth2/web-server#offline),
// so AuthParams asks for both.
func Google() Provider {
	return Provider{
		ID:            IDGoogle,
		Name:          "Google",
		AuthURL:       "https://accounts.google.com/o/oauth2/auth",
		TokenURL:      "https://oauth2.googleapis.com/token",
		DeviceAuthURL: "https://oauth2.googleapis.com/device/code",
		Scopes:        []string{"https://mail.google.com/", "openid", "email"},
		AuthParams:    map[string]string{"access_type": "offline", "prompt": "consent"},
		SMTP:          smtpAt("smtp.gmail.com", 587),
	}
}
