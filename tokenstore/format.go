package tokenstore

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// On-disk format of File (and the plaintext inside Encrypted).
//
// Version 1 (current) is a JSON object with "version": 1, the account key it was
// saved under, and the record's fields in snake_case.
//
// Version 0 is the legacy format: a bare JSON-encoded golang.org/x/oauth2 Token
// (access_token, token_type, refresh_token, expiry) with no "version" field, as
// written by programs that stored oauth2 tokens before devicemail. Load migrates it
// in memory (Obtained and the account fields are left zero); the next Save writes
// version 1. To add version 2: bump formatVersion, add a decodeV1→v2 step in
// decodeRecord, and keep the older decoders so that old files still load.
const formatVersion = 1

// maxFileSize caps what Load reads and Save writes; records are a few KB.
const maxFileSize = 1 << 20

type accountV1 struct {
	UPN      string `json:"upn,omitempty"`
	Email    string `json:"email,omitempty"`
	Name     string `json:"name,omitempty"`
	TenantID string `json:"tenant_id,omitempty"`
	ObjectID string `json:"object_id,omitempty"`
}

type fileV1 struct {
	Version      int       `json:"version"`
	Key          string    `json:"key"`
	Account      accountV1 `json:"account"`
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

// fileV0 is the legacy format: an oauth2.Token as encoding/json writes it.
type fileV0 struct {
	AccessToken  string    `json:"access_token"`
	TokenType    string    `json:"token_type,omitempty"`
	RefreshToken string    `json:"refresh_token,omitempty"`
	Expiry       time.Time `json:"expiry,omitzero"`
}

// encodeRecord returns the version-1 encoding of r saved under key.
func encodeRecord(key string, r *Record) ([]byte, error) {
	f := fileV1{
		Version: formatVersion,
		Key:     key,
		Account: accountV1{
			UPN: r.Account.UPN, Email: r.Account.Email, Name: r.Account.Name,
			TenantID: r.Account.TenantID, ObjectID: r.Account.ObjectID,
		},
		Provider: r.Provider, ClientID: r.ClientID, Authority: r.Authority, Scopes: r.Scopes,
		AccessToken: r.AccessToken, RefreshToken: r.RefreshToken, TokenType: r.TokenType,
		Expiry: r.Expiry, Obtained: r.Obtained, Refreshed: r.Refreshed, Used: r.Used,
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

// decodeRecord parses a file saved under key, migrating older versions. Every
// failure is a *CorruptError (with Key set and Path empty).
func decodeRecord(key string, data []byte) (*Record, error) {
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
	default:
		return nil, corrupt(fmt.Sprintf("unsupported version %d (this build reads 0 to %d)", v, formatVersion))
	}
}

func decodeV1(key string, data []byte) (*Record, error) {
	var f fileV1
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, &CorruptError{Key: key, Reason: "version 1 fields have the wrong types"}
	}
	if f.Key != key {
		return nil, &CorruptError{Key: key, Reason: fmt.Sprintf("file belongs to account key %q", f.Key)}
	}
	return &Record{
		Account: Account{
			UPN: f.Account.UPN, Email: f.Account.Email, Name: f.Account.Name,
			TenantID: f.Account.TenantID, ObjectID: f.Account.ObjectID,
		},
		Provider: f.Provider, ClientID: f.ClientID, Authority: f.Authority, Scopes: f.Scopes,
		AccessToken: f.AccessToken, RefreshToken: f.RefreshToken, TokenType: f.TokenType,
		Expiry: f.Expiry, Obtained: f.Obtained, Refreshed: f.Refreshed, Used: f.Used,
	}, nil
}

func decodeV0(key string, data []byte) (*Record, error) {
	var f fileV0
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
