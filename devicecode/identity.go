package devicecode

import (
	"github.com/devicemail/devicemail/internal/jwt"
	"golang.org/x/oauth2"
)

// Identity is the signed-in account, read from the ID token.
type Identity struct {
	UPN      string // sign-in name: preferred_username, else upn (entra-id.md §4.3)
	Email    string // email claim; empty when the account has none or the scope lacked "email"
	Name     string // display name
	TenantID string // tid: the account's tenant GUID (9188040d-6c67-4c5b-b112-36a304b66dad for Outlook.com)
	ObjectID string // oid: the account's object GUID
}

// idClaims are the ID-token claims Identity reads (entra-id.md §4.3).
type idClaims struct {
	PreferredUsername string `json:"preferred_username"`
	UPN               string `json:"upn"`
	UniqueName        string `json:"unique_name"` // v1 tokens
	Email             string `json:"email"`
	Name              string `json:"name"`
	TID               string `json:"tid"`
	OID               string `json:"oid"`
}

// IdentityFromToken returns the account named by the ID token ("id_token"
// extra value) of a token from Wait, Refresh or the authorization-code flow.
// Without an ID token it returns ErrNoIDToken: the account is unknown. A
// malformed ID token gives an [*Error] with ReasonProtocol.
//
// The ID token's signature is not checked. That is allowed here because the
// token came straight from the token endpoint over TLS, in the response to this
// client's own request (OpenID Connect Core 1.0 §3.1.3.7, item 6: "the TLS
// server validation MAY be used to validate the issuer in place of checking the
// token signature"). Do not use IdentityFromToken on a token from anywhere else.
func IdentityFromToken(t *oauth2.Token) (*Identity, error) {
	if t == nil {
		return nil, ErrNoIDToken
	}
	raw, _ := t.Extra("id_token").(string)
	if raw == "" {
		return nil, ErrNoIDToken
	}
	return identityFromIDToken(raw)
}

func identityFromIDToken(raw string) (*Identity, error) {
	var c idClaims
	if err := jwt.DecodeClaims(raw, &c); err != nil {
		return nil, protocolError("id_token is not a JWT with a JSON payload", nil)
	}
	id := &Identity{
		UPN:      c.PreferredUsername,
		Email:    c.Email,
		Name:     c.Name,
		TenantID: c.TID,
		ObjectID: c.OID,
	}
	if id.UPN == "" {
		id.UPN = c.UPN
	}
	if id.UPN == "" {
		id.UPN = c.UniqueName
	}
	return id, nil
}
