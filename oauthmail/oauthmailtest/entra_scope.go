package oauthmailtest

import (
	"fmt"
	"strings"
)

// Resources the emulator knows. Scopes without a resource prefix are
// Microsoft Graph's (https://learn.microsoft.com/entra/identity-platform/scopes-oidc).
const (
	resourceGraph    = "https://graph.microsoft.com"
	resourceExchange = "exchange" // family of outlook.office.com, outlook.office365.com, ps.outlook.com
)

// exchangeScopes are the delegated permissions of the Office 365 Exchange
// Online resource, lower case: SMTP.Send, IMAP.AccessAsUser.All and
// POP.AccessAsUser.All (https://learn.microsoft.com/exchange/client-developer/legacy-protocols/how-to-authenticate-an-imap-pop-smtp-application-by-using-oauth),
// EWS.AccessAsUser.All and the Outlook REST permissions the resource also
// lists in the Entra admin center (that list is UNVERIFIED: the emulator
// refuses any other name as Entra refuses a scope that does not exist).
var exchangeScopes = func() map[string]bool {
	m := map[string]bool{}
	for _, s := range []string{".default", "SMTP.Send", "IMAP.AccessAsUser.All", "POP.AccessAsUser.All",
		"EWS.AccessAsUser.All", "EAS.AccessAsUser.All", "full_access_as_user", "User.Read", "User.ReadBasic.All",
		"Mail.Read", "Mail.ReadBasic", "Mail.ReadWrite", "Mail.Send", "Mail.Read.Shared", "Mail.ReadWrite.Shared", "Mail.Send.Shared",
		"Calendars.Read", "Calendars.ReadWrite", "Calendars.Read.Shared", "Calendars.ReadWrite.Shared",
		"Contacts.Read", "Contacts.ReadWrite", "Contacts.Read.Shared", "Contacts.ReadWrite.Shared",
		"Tasks.Read", "Tasks.ReadWrite", "Tasks.Read.Shared", "Tasks.ReadWrite.Shared",
		"MailboxSettings.Read", "MailboxSettings.ReadWrite", "People.Read", "Place.Read.All",
		"Notes.Read", "Notes.ReadWrite", "Group.Read.All", "Group.ReadWrite.All", "Exchange.Manage", "Organization.Read.All"} {
		m[strings.ToLower(s)] = true
	}
	return m
}()

// oidcScopes never need a resource (https://learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow).
var oidcScopes = map[string]bool{"openid": true, "profile": true, "email": true, "offline_access": true}

// scopeSet is a parsed scope parameter.
type scopeSet struct {
	raw      []string
	oidc     map[string]bool // lower-case OIDC scopes asked for
	resource string          // audience of the access token (first resource), "" if none
	family   string          // resourceExchange, resourceGraph, or the resource itself
	names    []string        // scope names under resource, e.g. "SMTP.Send", ".default"
	families []string        // every resource family named, in order
	pairs    [][2]string     // every {family, name} asked for, all resources
}

// has reports whether an OIDC scope was asked for.
func (s *scopeSet) has(name string) bool { return s.oidc[name] }

// resourceOf splits a scope into its resource and name.
func resourceOf(sc string) (resource, family, name string) {
	if i := strings.LastIndex(sc, "/"); i > 0 {
		resource, name = strings.TrimSuffix(sc[:i], "/"), sc[i+1:]
	} else {
		return resourceGraph, resourceGraph, sc
	}
	rl := strings.ToLower(resource)
	switch {
	case rl == "https://graph.microsoft.com" || rl == "00000003-0000-0000-c000-000000000000":
		return resourceGraph, resourceGraph, name
	case rl == "https://outlook.office.com" || rl == "https://outlook.office365.com" ||
		rl == "https://ps.outlook.com" || rl == "00000002-0000-0ff1-ce00-000000000000":
		if rl == "00000002-0000-0ff1-ce00-000000000000" {
			resource = AudienceDelegated
		}
		return strings.ToLower(resource), resourceExchange, name
	}
	return resource, rl, name
}

func errInvalidScope(msg string) *aadError {
	// AADSTS70011 as seen in Azure/azure-sdk-for-net#9076.
	return &aadError{status: 400, code: "invalid_scope", aadsts: 70011, msg: msg}
}

// parseScopes parses a scope parameter for a delegated flow. Several resources
// are allowed here (as /authorize allows them); callers that issue a token
// check multi() (AADSTS28000, AzureAD/microsoft-authentication-library-for-js#1487).
func parseScopes(param string) (*scopeSet, *aadError) {
	s := &scopeSet{oidc: map[string]bool{}}
	for _, sc := range strings.Fields(param) {
		s.raw = append(s.raw, sc)
		if oidcScopes[strings.ToLower(sc)] {
			s.oidc[strings.ToLower(sc)] = true
			continue
		}
		res, fam, name := resourceOf(sc)
		if name == "" {
			return nil, errInvalidScope(fmt.Sprintf("The provided value for the input parameter 'scope' is not valid. The scope %s is not valid. The scope format is invalid.", sc))
		}
		if fam == resourceExchange && strings.HasSuffix(strings.ToLower(name), "asapp") {
			// A delegated request for SMTP.SendAsApp "does not exist"
			// (https://learn.microsoft.com/answers/questions/1480316).
			return nil, errInvalidScope(fmt.Sprintf("The provided value for the input parameter 'scope' is not valid. The scope '%s' does not exist.", sc))
		}
		if fam == resourceExchange && !exchangeScopes[strings.ToLower(name)] {
			// A scope the resource does not publish (a typo such as
			// SMTP.Sned) is refused at /devicecode and /authorize, before
			// any sign-in, with AADSTS70011 "... does not exist"
			// (https://learn.microsoft.com/answers/questions/1480316 shows
			// the wording; https://learn.microsoft.com/entra/identity-platform/reference-error-codes
			// lists 70011 InvalidScope).
			return nil, errInvalidScope(fmt.Sprintf("The provided value for the input parameter 'scope' is not valid. The scope '%s' does not exist.", sc))
		}
		if fam != resourceGraph && fam != resourceExchange && !strings.HasPrefix(fam, "api://") && !guidRE.MatchString(fam) {
			// AADSTS500011 as seen in rootinc/laravel-azure-middleware#51.
			return nil, &aadError{status: 400, code: "invalid_resource", aadsts: 500011,
				msg: fmt.Sprintf("The resource principal named %s was not found in the tenant. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.", res)}
		}
		seen := false
		for _, f := range s.families {
			seen = seen || f == fam
		}
		if !seen {
			s.families = append(s.families, fam)
		}
		if s.resource == "" {
			s.resource, s.family = res, fam
		}
		if fam == s.family {
			s.names = append(s.names, name)
		}
		s.pairs = append(s.pairs, [2]string{fam, name})
	}
	if len(s.raw) == 0 {
		return nil, errMissing("scope")
	}
	hasDefault := false
	for _, n := range s.names {
		hasDefault = hasDefault || n == ".default"
	}
	if hasDefault && len(s.names) > 1 {
		// .default cannot be mixed with dynamic scopes (https://learn.microsoft.com/entra/identity-platform/scopes-oidc).
		return nil, errInvalidScope(fmt.Sprintf("The provided value for the input parameter 'scope' is not valid. The scope %s is not valid. static scope limit exceeded.", strings.Join(s.raw, " ")))
	}
	if s.has("profile") && !s.has("openid") && s.resource == "" {
		// profile without openid (seanfisher/passport-microsoft#6).
		return nil, errInvalidScope("The provided value for the input parameter 'scope' is not valid. openid scope is required.")
	}
	return s, nil
}

// multi returns the AADSTS28000 error if s spans more than one resource
// (AzureAD/microsoft-authentication-library-for-js#1487;
// https://learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow).
func (s *scopeSet) multi() *aadError {
	if len(s.families) <= 1 {
		return nil
	}
	return &aadError{status: 400, code: "invalid_scope", aadsts: 28000,
		msg: fmt.Sprintf("Provided value for the input parameter scope is not valid because it contains more than one resource. Scope %s is not valid.", strings.Join(s.raw, " "))}
}

// granted returns the audience and the scope names the access token carries
// for app: .default expands to the app's configured permissions.
func (s *scopeSet) granted(app *App) (aud string, names []string) {
	aud, names = s.resource, s.names
	if aud == "" {
		// Only OIDC scopes: Entra issues a Microsoft Graph token.
		return resourceGraph, []string{"User.Read"}
	}
	if len(names) == 1 && names[0] == ".default" {
		names = nil
		for _, p := range app.Permissions {
			if oidcScopes[strings.ToLower(p)] {
				continue
			}
			if _, fam, n := resourceOf(p); fam == s.family {
				names = append(names, n)
			}
		}
	}
	return aud, names
}

// fullNames returns names qualified with the resource, as the token response's
// scope field lists them (e.g. https://outlook.office.com/SMTP.Send in an
// Outlook.com answer; source UNVERIFIED).
func fullNames(aud string, names []string) []string {
	out := make([]string, 0, len(names))
	for _, n := range names {
		out = append(out, aud+"/"+n)
	}
	return out
}

// configured reports whether app has the delegated permission name of family.
func configured(app *App, family, name string) bool {
	for _, p := range app.Permissions {
		if oidcScopes[strings.ToLower(p)] {
			continue
		}
		if _, fam, n := resourceOf(p); fam == family && strings.EqualFold(n, name) {
			return true
		}
	}
	return false
}
