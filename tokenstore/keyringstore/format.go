package keyringstore

import (
	"encoding/json"
	"time"

	"github.com/devicemail/devicemail/tokenstore"
)

// record is the JSON form of a tokenstore.Record in the keyring (version 1).
type record struct {
	Version      int       `json:"version"`
	Key          string    `json:"key"`
	UPN          string    `json:"upn,omitempty"`
	Email        string    `json:"email,omitempty"`
	Name         string    `json:"name,omitempty"`
	TenantID     string    `json:"tenant_id,omitempty"`
	ObjectID     string    `json:"object_id,omitempty"`
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

func encode(key string, r *tokenstore.Record) (string, error) {
	b, err := json.Marshal(&record{
		Version: 1, Key: key,
		UPN: r.Account.UPN, Email: r.Account.Email, Name: r.Account.Name,
		TenantID: r.Account.TenantID, ObjectID: r.Account.ObjectID,
		Provider: r.Provider, ClientID: r.ClientID, Authority: r.Authority, Scopes: r.Scopes,
		AccessToken: r.AccessToken, RefreshToken: r.RefreshToken, TokenType: r.TokenType,
		Expiry: r.Expiry, Obtained: r.Obtained, Refreshed: r.Refreshed, Used: r.Used,
	})
	return string(b), err
}

func decode(key, data string) (*tokenstore.Record, error) {
	var f record
	// The JSON error is not wrapped: its text can quote bytes of the value.
	if err := json.Unmarshal([]byte(data), &f); err != nil {
		return nil, &tokenstore.CorruptError{Key: key, Reason: "keyring value is not a version 1 record"}
	}
	if f.Version != 1 {
		return nil, &tokenstore.CorruptError{Key: key, Reason: "unsupported version"}
	}
	if f.Key != key {
		return nil, &tokenstore.CorruptError{Key: key, Reason: "value belongs to another key"}
	}
	return &tokenstore.Record{
		Account:  tokenstore.Account{UPN: f.UPN, Email: f.Email, Name: f.Name, TenantID: f.TenantID, ObjectID: f.ObjectID},
		Provider: f.Provider, ClientID: f.ClientID, Authority: f.Authority, Scopes: f.Scopes,
		AccessToken: f.AccessToken, RefreshToken: f.RefreshToken, TokenType: f.TokenType,
		Expiry: f.Expiry, Obtained: f.Obtained, Refreshed: f.Refreshed, Used: f.Used,
	}, nil
}
