package tokenstore

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// The JSON format of a stored Record, shared by every store of this module
// (File, Encrypted's plaintext, keyringstore) and offered to other Store
// implementations through [MarshalRecord] and [UnmarshalRecord].
//
// Version 3 (current) is version 2 plus two optional objects: "pending", a
// sign-in started and not finished (the device code, or the paste-back
// request's state and PKCE verifier, which are secrets like the tokens), and
// "graph", when the sign-in moved its mail to Microsoft Graph ("since") and
// the scopes its Graph tokens are redeemed with ("scopes"), and what was
// found about the app's consent to send through Graph ("consent": "granted"
// or "missing", and when: "checked"). A record with
// neither is still written as version 2, so that an earlier build can read
// it; a record with either is version 3, which an earlier build refuses
// rather than silently dropping them on its next Save.
//
// Version 2 describes the sign-in: "version": 2, the account key it
// was saved under, and the objects "account", "provider" (kind, name, tenant,
// endpoints), "client" (ID, how it authenticates, the secret's expiry, never
// the secret), "mail" (the mail endpoint), "token" and the times.
//
// Version 1 held the account, provider name, client ID, token endpoint
// ("authority"), scopes, token and times; the file stores nested the account
// under "account", the keyring store kept its fields at the top level. Both
// are read.
//
// Version 0 is the legacy format: a bare JSON-encoded golang.org/x/oauth2 Token
// (access_token, token_type, refresh_token, expiry) with no "version" field, as
// written by programs that stored oauth2 tokens before devicemail.
//
// Older versions are migrated in memory (fields they lack are left zero); the
// next Save writes the current version. To add a version: bump formatVersion,
// add its decoder, and keep the older decoders so that old records still load;
// TestFormatReadsEveryVersion reads a fixture of every version.
const formatVersion = 3

// maxFileSize caps what Load reads and Save writes; records are a few KB.
const maxFileSize = 1 << 20

type accountJSON struct {
	UPN      string `json:"upn,omitempty"`
	Email    string `json:"email,omitempty"`
	Name     string `json:"name,omitempty"`
	TenantID string `json:"tenant_id,omitempty"`
	ObjectID string `json:"object_id,omitempty"`
}

type providerV2 struct {
	ID            string `json:"id,omitempty"`
	Name          string `json:"name,omitempty"`
	Tenant        string `json:"tenant,omitempty"`
	LoginURL      string `json:"login_url,omitempty"`
	Issuer        string `json:"issuer,omitempty"`
	DeviceAuthURL string `json:"device_auth_url,omitempty"`
	AuthURL       string `json:"auth_url,omitempty"`
	TokenURL      string `json:"token_url,omitempty"`
}

type clientV2 struct {
	ID            string    `json:"id,omitempty"`
	Auth          string    `json:"auth,omitempty"`
	SecretExpires time.Time `json:"secret_expires,omitzero"`
}

type mailV2 struct {
	Transport string `json:"transport,omitempty"`
	Host      string `json:"host,omitempty"`
	Port      int    `json:"port,omitempty"`
	TLS       string `json:"tls,omitempty"`
	CAFile    string `json:"ca_file,omitempty"`
}

type graphV3 struct {
	Since   time.Time `json:"since,omitzero"`
	Scopes  []string  `json:"scopes,omitempty"`
	Consent string    `json:"consent,omitempty"`
	Checked time.Time `json:"checked,omitzero"`
}

type tokenV2 struct {
	AccessToken  string    `json:"access_token,omitempty"`
	RefreshToken string    `json:"refresh_token,omitempty"`
	TokenType    string    `json:"token_type,omitempty"`
	Expiry       time.Time `json:"expiry,omitzero"`
}

type recordV2 struct {
	Version   int         `json:"version"`
	Key       string      `json:"key"`
	Account   accountJSON `json:"account"`
	Provider  providerV2  `json:"provider"`
	Client    clientV2    `json:"client"`
	Scopes    []string    `json:"scopes,omitempty"`
	Mail      mailV2      `json:"mail,omitzero"`
	Graph     *graphV3    `json:"graph,omitempty"` // version 3
	Token     tokenV2     `json:"token"`
	Obtained  time.Time   `json:"obtained,omitzero"`
	Refreshed time.Time   `json:"refreshed,omitzero"`
	Used      time.Time   `json:"used,omitzero"`
	Pending   *pendingV3  `json:"pending,omitempty"` // version 3
}

// recordV1 reads both layouts of version 1: the file stores' (account nested)
// and the keyring store's (account fields at the top level).
type recordV1 struct {
	Version int          `json:"version"`
	Key     string       `json:"key"`
	Account *accountJSON `json:"account"`
	accountJSON
	Provider     string    `json:"provider,omitempty"`
	ClientID     string    `json:"client_id,omitempty"`
	Authority    string    `json:"authority,omitempty"`
	Scopes       []string  `json:"scopes,omitempty"`
	AccessToken  string    `json:"access_token,omitempty"`
	RefreshToken string    `json:"refresh_token,omitempty"`
	TokenType    string    `json:"token_type,omitempty"`
	Expiry       time.Time `json:"expiry,omitzero"`
	Obtained     time.Time `json:"obtained,omitzero"`
	Refreshed    time.Time `json:"refreshed,omitzero"`
	Used         time.Time `json:"used,omitzero"`
}

// recordV0 is the legacy format: an oauth2.Token as encoding/json writes it.
type recordV0 struct {
	AccessToken  string    `json:"access_token"`
	TokenType    string    `json:"token_type,omitempty"`
	RefreshToken string    `json:"refresh_token,omitempty"`
	Expiry       time.Time `json:"expiry,omitzero"`
}

func graphJSON(g GraphState) *graphV3 {
	if graphUnset(g) {
		return nil
	}
	return &graphV3{Since: g.Since, Scopes: g.Scopes, Consent: g.Consent, Checked: g.Checked}
}

// graphUnset reports whether g holds nothing to store.
func graphUnset(g GraphState) bool {
	return g.Since.IsZero() && len(g.Scopes) == 0 && g.Consent == "" && g.Checked.IsZero()
}

func toAccount(a accountJSON) Account {
	return Account(a)
}

// MarshalRecord returns the encoding of r saved under key in the current
// version of the record format, ending in a newline. Its tokens are in the
// result: keep it where the store keeps secrets.
func MarshalRecord(key string, r *Record) ([]byte, error) {
	version := 2
	if r.Pending != nil || !graphUnset(r.Graph) {
		version = 3
	}
	f := recordV2{
		Version: version,
		Pending: encodePending(r.Pending),
		Key:     key,
		Account: accountJSON{
			UPN: r.Account.UPN, Email: r.Account.Email, Name: r.Account.Name,
			TenantID: r.Account.TenantID, ObjectID: r.Account.ObjectID,
		},
		Provider: providerV2{
			ID: r.ProviderID, Name: r.Provider, Tenant: r.Tenant,
			LoginURL: r.Endpoints.LoginURL, Issuer: r.Endpoints.Issuer,
			DeviceAuthURL: r.Endpoints.DeviceAuthURL, AuthURL: r.Endpoints.AuthURL, TokenURL: r.Authority,
		},
		Client: clientV2{ID: r.ClientID, Auth: r.ClientAuth, SecretExpires: r.SecretExpires},
		Scopes: r.Scopes,
		Mail: mailV2{Transport: r.Mail.Transport, Host: r.Mail.Host, Port: r.Mail.Port, TLS: r.Mail.TLS,
			CAFile: r.CAFile},
		Graph: graphJSON(r.Graph),
		Token: tokenV2{AccessToken: r.AccessToken, RefreshToken: r.RefreshToken, TokenType: r.TokenType,
			Expiry: r.Expiry},
		Obtained: r.Obtained, Refreshed: r.Refreshed, Used: r.Used,
	}
	b, err := json.Marshal(&f)
	if err != nil {
		// Only a time outside years 0-9999 gets here; the error names no secret.
		return nil, fmt.Errorf("tokenstore: encode %q: %w", key, err)
	}
	if len(b) > maxFileSize {
		return nil, fmt.Errorf("tokenstore: encode %q: record of %d bytes exceeds %d", key, len(b), maxFileSize)
	}
	return append(b, '\n'), nil
}

// UnmarshalRecord parses a record saved under key, in any version of the
// record format, migrating older versions. Every failure is a *CorruptError
// (with Key set and Path empty) whose text quotes none of data.
func UnmarshalRecord(key string, data []byte) (*Record, error) {
	corrupt := func(reason string) error { return &CorruptError{Key: key, Reason: reason} }
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, corrupt("empty file")
	}
	if len(data) > maxFileSize {
		return nil, corrupt(fmt.Sprintf("larger than %d bytes", maxFileSize))
	}
	// JSON error messages can quote bytes of the file, so they are not wrapped.
	if !json.Valid(data) {
		return nil, corrupt("not valid JSON (truncated or damaged)")
	}
	var probe struct {
		Version *json.RawMessage `json:"version"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, corrupt("not a JSON object")
	}
	if probe.Version == nil {
		return decodeV0(key, data)
	}
	var v int
	if err := json.Unmarshal(*probe.Version, &v); err != nil {
		return nil, corrupt("version is not an integer")
	}
	switch v {
	case 1:
		return decodeV1(key, data)
	case 2, 3:
		// Version 3 only adds "pending" and "graph", which version 2 lacks.
		return decodeV2(key, data)
	default:
		return nil, corrupt(fmt.Sprintf("unsupported version %d (this build reads 0 to %d)", v, formatVersion))
	}
}

func wrongKey(key, got string) error {
	return &CorruptError{Key: key, Reason: fmt.Sprintf("record belongs to account key %q", got)}
}

func decodeV2(key string, data []byte) (*Record, error) {
	var f recordV2
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, &CorruptError{Key: key, Reason: "version 2 or 3 fields have the wrong types"}
	}
	if f.Key != key {
		return nil, wrongKey(key, f.Key)
	}
	var graph GraphState
	if f.Graph != nil && f.Version >= 3 {
		graph = GraphState{Since: f.Graph.Since, Scopes: f.Graph.Scopes, Consent: f.Graph.Consent, Checked: f.Graph.Checked}
	}
	return &Record{
		Graph:      graph,
		Account:    toAccount(f.Account),
		Provider:   f.Provider.Name,
		ProviderID: f.Provider.ID,
		Tenant:     f.Provider.Tenant,
		ClientID:   f.Client.ID,
		ClientAuth: f.Client.Auth,
		Authority:  f.Provider.TokenURL,
		Endpoints: Endpoints{LoginURL: f.Provider.LoginURL, Issuer: f.Provider.Issuer,
			DeviceAuthURL: f.Provider.DeviceAuthURL, AuthURL: f.Provider.AuthURL},
		Scopes:        f.Scopes,
		SecretExpires: f.Client.SecretExpires,
		Mail:          MailEndpoint{Transport: f.Mail.Transport, Host: f.Mail.Host, Port: f.Mail.Port, TLS: f.Mail.TLS},
		CAFile:        f.Mail.CAFile,
		AccessToken:   f.Token.AccessToken, RefreshToken: f.Token.RefreshToken, TokenType: f.Token.TokenType,
		Expiry:   f.Token.Expiry,
		Obtained: f.Obtained, Refreshed: f.Refreshed, Used: f.Used,
		Pending: decodePending(f.Pending),
	}, nil
}

func decodeV1(key string, data []byte) (*Record, error) {
	var f recordV1
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, &CorruptError{Key: key, Reason: "version 1 fields have the wrong types"}
	}
	if f.Key != key {
		return nil, wrongKey(key, f.Key)
	}
	acct := f.accountJSON // the keyring layout
	if f.Account != nil {
		acct = *f.Account // the file layout
	}
	return &Record{
		Account:  toAccount(acct),
		Provider: f.Provider, ClientID: f.ClientID, Authority: f.Authority, Scopes: f.Scopes,
		AccessToken: f.AccessToken, RefreshToken: f.RefreshToken, TokenType: f.TokenType,
		Expiry: f.Expiry, Obtained: f.Obtained, Refreshed: f.Refreshed, Used: f.Used,
	}, nil
}

func decodeV0(key string, data []byte) (*Record, error) {
	var f recordV0
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, &CorruptError{Key: key, Reason: "version 0 fields have the wrong types"}
	}
	if f.AccessToken == "" && f.RefreshToken == "" {
		return nil, &CorruptError{Key: key, Reason: "version 0 file holds no token"}
	}
	return &Record{
		AccessToken: f.AccessToken, RefreshToken: f.RefreshToken,
		TokenType: f.TokenType, Expiry: f.Expiry,
	}, nil
}
