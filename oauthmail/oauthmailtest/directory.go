package oauthmailtest

import (
	"strings"
	"time"
)

// ConsumerTenantID is the tenant GUID of personal Microsoft accounts (Outlook.com),
// the tenant that "consumers" stands for (https://learn.microsoft.com/entra/identity-platform/v2-protocols-oidc).
const ConsumerTenantID = "9188040d-6c67-4c5b-b112-36a304b66dad"

// Directory declares the tenants, app registrations and users the emulator knows.
// Build one in a test, or load one from JSON for the emulator command; fields are
// read when the emulator starts and through its setter methods afterwards.
type Directory struct {
	Tenants []*Tenant `json:"tenants"`
	Apps    []*App    `json:"apps"`
	Users   []*User   `json:"users"`
}

// Tenant is an Entra ID tenant and its Exchange Online organisation.
type Tenant struct {
	// ID is the tenant GUID (the tid claim).
	ID string `json:"id"`
	// Name is a display name, for pages only.
	Name string `json:"name,omitempty"`
	// Domains are the verified domains; the first is the initial
	// "<name>.onmicrosoft.com" domain by convention. Any may stand in the URL.
	Domains []string `json:"domains"`
	// SMTPAuthDisabled is the organisation switch
	// Set-TransportConfig -SmtpClientAuthenticationDisabled (https://learn.microsoft.com/exchange/clients-and-mobile-in-exchange-online/authenticated-client-smtp-submission).
	SMTPAuthDisabled bool `json:"smtp_auth_disabled,omitempty"`
	// BlockDeviceCodeFlow is a Conditional Access policy that blocks the device code
	// flow for every user of the tenant (AADSTS53003 at sign-in).
	BlockDeviceCodeFlow bool `json:"block_device_code_flow,omitempty"`
	// Consumer marks the personal-account (Outlook.com) tenant.
	Consumer bool `json:"consumer,omitempty"`
	// ExternalRecipientRateLimit is the tenant external recipient rate limit:
	// how many recipients outside the tenant's domains all its mailboxes
	// together may send to in a rolling 24 hours. Microsoft computes the
	// tenant's value from its licences; the emulator takes it as given. Zero
	// means no limit. Over it, a message is refused after its final dot with
	// "550 5.7.233" (the reply text is UNVERIFIED, FIDELITY.md).
	ExternalRecipientRateLimit int `json:"external_recipient_rate_limit,omitempty"`
}

// App is an app registration with its service principal's grants.
type App struct {
	// ClientID is the application (client) ID GUID.
	ClientID string `json:"client_id"`
	// Name is the display name shown on consent pages.
	Name string `json:"name,omitempty"`
	// HomeTenant is the ID of the tenant that owns the registration.
	HomeTenant string `json:"home_tenant"`
	// MultiTenant allows sign-ins from other tenants (after consent there).
	MultiTenant bool `json:"multi_tenant,omitempty"`
	// PersonalAccounts allows personal Microsoft accounts (the consumers tenant).
	PersonalAccounts bool `json:"personal_accounts,omitempty"`
	// PublicClient is "Allow public client flows"; the device code flow needs it
	// for an app without a client secret (AADSTS7000218 otherwise).
	PublicClient bool `json:"public_client,omitempty"`
	// Secrets are the client secrets; an expired one answers AADSTS7000222.
	Secrets []Secret `json:"secrets,omitempty"`
	// Certificates are the certificate credentials: client assertions
	// signed with their keys authenticate the app (private_key_jwt).
	Certificates []Certificate `json:"certificates,omitempty"`
	// RedirectURIs are the registered redirect URIs. "http://localhost" matches any
	// port on loopback, as Microsoft allows for native apps.
	RedirectURIs []string `json:"redirect_uris,omitempty"`
	// Permissions are the delegated permissions configured, as full scope strings
	// ("https://outlook.office.com/SMTP.Send") or OIDC scopes ("offline_access").
	Permissions []string `json:"permissions,omitempty"`
	// AppRoles are the application permissions granted, e.g. "SMTP.SendAsApp".
	AppRoles []string `json:"app_roles,omitempty"`
	// ConsentedTenants lists the tenants whose admin consented for all users.
	// Without it a user of another tenant (or of the home tenant, when
	// UserConsent is false) gets consent_required (AADSTS65001).
	ConsentedTenants []string `json:"consented_tenants,omitempty"`
	// UserConsent lets a user consent for themselves on the consent page.
	UserConsent bool `json:"user_consent,omitempty"`
	// Mailboxes are the mailboxes the app's service principal may send as in
	// app-only (client credentials) SMTP: Add-MailboxPermission for the service principal.
	Mailboxes []string `json:"mailboxes,omitempty"`
}

// Secret is one client secret of an app registration.
type Secret struct {
	ID      string    `json:"id,omitempty"`
	Value   string    `json:"value"`
	Expires time.Time `json:"expires"`
}

// MailboxSMTPAuth is a mailbox's SMTP AUTH setting
// (Set-CASMailbox -SmtpClientAuthenticationDisabled $true/$false/$null).
type MailboxSMTPAuth string

// Mailbox SMTP AUTH settings. The mailbox setting takes precedence over the
// organisation's (https://learn.microsoft.com/exchange/clients-and-mobile-in-exchange-online/authenticated-client-smtp-submission).
const (
	SMTPAuthFollowTenant MailboxSMTPAuth = ""         // $null: use the tenant switch
	SMTPAuthEnabled      MailboxSMTPAuth = "enabled"  // $false
	SMTPAuthDisabled     MailboxSMTPAuth = "disabled" // $true
)

// User is a user account and its mailbox.
type User struct {
	// UPN is the user principal name (the sign-in name).
	UPN string `json:"upn"`
	// TenantID is the user's home tenant.
	TenantID string `json:"tenant_id"`
	// ObjectID is the oid claim; generated when empty.
	ObjectID string `json:"object_id,omitempty"`
	// DisplayName is the name claim.
	DisplayName string `json:"display_name,omitempty"`
	// PrimaryAddress is the mailbox's primary SMTP address; empty means the UPN.
	// It may differ from the UPN.
	PrimaryAddress string `json:"primary_address,omitempty"`
	// Aliases are further proxy addresses of the mailbox. Sending from an alias
	// needs a send-as grant like any other address.
	Aliases []string `json:"aliases,omitempty"`
	// SendAs lists the addresses this user may send as (shared mailboxes,
	// delegated mailboxes).
	SendAs []string `json:"send_as,omitempty"`
	// SMTPAuth is the mailbox SMTP AUTH setting.
	SMTPAuth MailboxSMTPAuth `json:"smtp_auth,omitempty"`
	// MFARequired makes the device code and authorization code sign-ins fail
	// with AADSTS50076 (interaction required) unless MFA is satisfied on the page.
	MFARequired bool `json:"mfa_required,omitempty"`
	// Password is what the emulator's login page expects; empty accepts any.
	Password string `json:"password,omitempty"`
	// Roles are the user's Entra directory roles, e.g. "Global Administrator".
	// Admin consent needs Global Administrator, Privileged Role
	// Administrator, Cloud Application Administrator or Application
	// Administrator; anyone else is told to ask an admin.
	Roles []string `json:"roles,omitempty"`
	// GraphRESTDisabled makes Microsoft Graph refuse the mailbox with 404
	// MailboxNotEnabledForRESTAPI, as for a mailbox hosted on-premises or
	// unlicensed (https://learn.microsoft.com/graph/api/resources/mail-api-overview).
	GraphRESTDisabled bool `json:"graph_rest_disabled,omitempty"`
	// NoMailbox marks an account without an Exchange mailbox.
	NoMailbox bool `json:"no_mailbox,omitempty"`
	// MaxSendSize is the mailbox's MaxSendSize in bytes (Set-Mailbox
	// -MaxSendSize): a larger message it submits is refused after the final
	// dot. Zero means Options.MaxSendSize, whose zero means Exchange Online's
	// default of 35 MB (36,700,160 bytes); negative means no limit. The size
	// is that of the message as sent, after any base64 encoding, so a 30 MB
	// scan does not fit in 35 MB.
	MaxSendSize int64 `json:"max_send_size,omitempty"`
	// MaxReceiveSize is the mailbox's MaxReceiveSize in bytes: a larger
	// message addressed to it is accepted from the sender but not delivered
	// to it (see Message.NotDelivered). Zero means 36 MB (37,748,736 bytes),
	// Exchange Online's default; negative means no limit.
	MaxReceiveSize int64 `json:"max_receive_size,omitempty"`
	// RecipientLimits is the most recipients one message from this mailbox
	// may have (Set-Mailbox -RecipientLimits, 1 to 1000); zero means 500,
	// Exchange Online's default, and values above 1000 count as 1000.
	RecipientLimits int `json:"recipient_limits,omitempty"`
}

// Address returns the mailbox's primary SMTP address.
func (u *User) Address() string {
	if u.PrimaryAddress != "" {
		return u.PrimaryAddress
	}
	return u.UPN
}

// Exchange Online's defaults for mailbox limits (Set-Mailbox and
// Set-MailboxPlan in https://learn.microsoft.com/powershell/module/exchangepowershell/).
// Exchange's "MB" is 2^20 bytes.
const (
	DefaultMaxSendSize     = 35 << 20
	DefaultMaxReceiveSize  = 36 << 20
	DefaultRecipientLimits = 500
	// MaxRecipientLimits is the organisation limit RecipientLimits cannot exceed.
	MaxRecipientLimits = 1000
	// DefaultRecipientRateLimit is the recipients a mailbox may send to in a
	// rolling 24 hours.
	DefaultRecipientRateLimit = 10000
)

// Identifiers of the default directory, so tests and examples can name them.
const (
	ContosoTenantID    = "6a3b9c1e-4f2d-4e8a-9b7c-1d2e3f405162"
	ContosoDomain      = "contoso.com"
	FabrikamTenantID   = "0f1e2d3c-4b5a-4968-8778-695a4b3c2d1e"
	DeviceAppClientID  = "5f0c7a42-3e1b-4c9d-8a6f-2b7e1d9c0a31" // public client, device code
	DesktopAppClientID = "8b2e4d61-7a3c-4f05-9e8d-6c1b3a5f7e92" // web app with a client secret
	VendorAppClientID  = "c3d9e7f1-2a4b-4c6d-8e0f-1a2b3c4d5e6f" // multi-tenant vendor app
	DaemonAppClientID  = "e1f2a3b4-c5d6-4e7f-8091-a2b3c4d5e6f7" // app-only SMTP.SendAsApp
	DesktopAppSecret   = "emulator-desktop-secret-value"        // client secret of DesktopAppClientID
	DaemonAppSecret    = "emulator-daemon-secret-value"         // client secret of DaemonAppClientID
)

// DefaultDirectory returns a new copy of the built-in directory: tenant contoso
// (alice, its Global Administrator, bob, a shared mailbox scanner@contoso.com that alice may send as),
// tenant fabrikam (for the multi-tenant vendor app), the four apps named by the
// *ClientID constants, and one Outlook.com user, carol@outlook.com.
func DefaultDirectory() *Directory {
	far := time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)
	delegated := []string{"https://outlook.office.com/SMTP.Send", "https://outlook.office.com/IMAP.AccessAsUser.All", "offline_access", "openid", "profile", "email", "User.Read"}
	return &Directory{
		Tenants: []*Tenant{
			{ID: ContosoTenantID, Name: "Contoso", Domains: []string{"contoso.onmicrosoft.com", ContosoDomain}},
			{ID: FabrikamTenantID, Name: "Fabrikam", Domains: []string{"fabrikam.onmicrosoft.com", "fabrikam.com"}},
			{ID: ConsumerTenantID, Name: "Microsoft Accounts", Domains: []string{"outlook.com", "hotmail.com"}, Consumer: true},
		},
		Apps: []*App{
			{
				ClientID: DeviceAppClientID, Name: "Contoso Printers", HomeTenant: ContosoTenantID,
				PublicClient: true, PersonalAccounts: true, Permissions: delegated,
				RedirectURIs:     []string{"https://login.microsoftonline.com/common/oauth2/nativeclient", "http://localhost"},
				ConsentedTenants: []string{ContosoTenantID}, UserConsent: true,
			},
			{
				ClientID: DesktopAppClientID, Name: "Contoso Scan Desktop", HomeTenant: ContosoTenantID,
				Secrets:          []Secret{{ID: "s1", Value: DesktopAppSecret, Expires: far}},
				RedirectURIs:     []string{"http://localhost"},
				Permissions:      delegated,
				ConsentedTenants: []string{ContosoTenantID},
			},
			{
				ClientID: VendorAppClientID, Name: "Vendor Print Cloud", HomeTenant: FabrikamTenantID,
				MultiTenant: true, PublicClient: true, PersonalAccounts: true, Permissions: delegated,
				RedirectURIs:     []string{"https://login.microsoftonline.com/common/oauth2/nativeclient", "http://localhost"},
				ConsentedTenants: []string{FabrikamTenantID},
			},
			{
				ClientID: DaemonAppClientID, Name: "Contoso Mail Daemon", HomeTenant: ContosoTenantID,
				Secrets:          []Secret{{ID: "d1", Value: DaemonAppSecret, Expires: far}},
				AppRoles:         []string{"SMTP.SendAsApp"},
				ConsentedTenants: []string{ContosoTenantID},
				Mailboxes:        []string{"scanner@" + ContosoDomain},
			},
		},
		Users: []*User{
			{UPN: "alice@" + ContosoDomain, TenantID: ContosoTenantID, DisplayName: "Alice Example",
				SendAs: []string{"scanner@" + ContosoDomain}, SMTPAuth: SMTPAuthEnabled, Roles: []string{"Global Administrator"}},
			{UPN: "bob@" + ContosoDomain, TenantID: ContosoTenantID, DisplayName: "Bob Example", SMTPAuth: SMTPAuthEnabled},
			{UPN: "scanner@" + ContosoDomain, TenantID: ContosoTenantID, DisplayName: "Scanner (shared)", SMTPAuth: SMTPAuthEnabled},
			{UPN: "dave@fabrikam.onmicrosoft.com", TenantID: FabrikamTenantID, DisplayName: "Dave Fabrikam",
				PrimaryAddress: "dave@fabrikam.com", SMTPAuth: SMTPAuthEnabled},
			{UPN: "carol@outlook.com", TenantID: ConsumerTenantID, DisplayName: "Carol Consumer"},
		},
	}
}

// tenantByName finds a tenant by GUID or verified domain (case-insensitive).
func (d *Directory) tenantByName(name string) *Tenant {
	name = strings.ToLower(name)
	for _, t := range d.Tenants {
		if strings.ToLower(t.ID) == name {
			return t
		}
		for _, dom := range t.Domains {
			if strings.ToLower(dom) == name {
				return t
			}
		}
	}
	return nil
}

func (d *Directory) tenantByID(id string) *Tenant {
	for _, t := range d.Tenants {
		if strings.EqualFold(t.ID, id) {
			return t
		}
	}
	return nil
}

func (d *Directory) app(clientID string) *App {
	for _, a := range d.Apps {
		if strings.EqualFold(a.ClientID, clientID) {
			return a
		}
	}
	return nil
}

// user finds a user by UPN (case-insensitive).
func (d *Directory) user(upn string) *User {
	for _, u := range d.Users {
		if strings.EqualFold(u.UPN, upn) {
			return u
		}
	}
	return nil
}

// mailboxOwner finds the user whose mailbox has addr as its UPN, primary address or alias.
func (d *Directory) mailboxOwner(addr string) *User {
	for _, u := range d.Users {
		if strings.EqualFold(u.UPN, addr) || strings.EqualFold(u.Address(), addr) {
			return u
		}
		for _, a := range u.Aliases {
			if strings.EqualFold(a, addr) {
				return u
			}
		}
	}
	return nil
}
