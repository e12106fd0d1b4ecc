package devicecode

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/devicemail/devicemail/internal/jwt"
	"golang.org/x/oauth2"
)

// Identity is the signed-in account, read from the ID token.
type Identity struct {
	UPN      string // sign-in name: preferred_username, else upn (https://learn.microsoft.com/entra/identity-platform/id-token-claims-reference)
	Email    string // email claim; empty when the account has none or the scope lacked "email"
	Name     string // display name
	TenantID string // tid: the account's tenant GUID (9188040d-6c67-4c5b-b112-36a304b66dad for Outlook.com)
	ObjectID string // oid: the account's object GUID
}

// idClaims are the ID-token claims Identity reads (https://learn.microsoft.com/entra/identity-platform/id-token-claims-reference).
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
// malformed ID token gives an [*Error] with ReasonProtocol, and one that names
// no address (none of preferred_username, upn, unique_name or email) an
// [*Error] with ReasonNoAddress (ReasonNoAddress) whose Description lists the
// names, never the values, of the claims it has.
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
	if strings.TrimSpace(id.UPN) == "" && strings.TrimSpace(id.Email) == "" {
		return nil, noAddressError(raw)
	}
	return id, nil
}

// noAddressError reports an ID token without an address claim. Entra sends
// preferred_username only with the "profile" scope and email only with the
// "email" scope
// (https://learn.microsoft.com/entra/identity-platform/id-token-claims-reference),
// so that is the usual cause. The error lists the claim names present, which
// tells an administrator what the server did send; values are left out,
// because they may identify a person.
func noAddressError(raw string) *Error {
	var all map[string]json.RawMessage
	_ = jwt.DecodeClaims(raw, &all)
	names := make([]string, 0, len(all))
	for k := range all {
		if k != "" && len(k) <= 64 && !strings.ContainsFunc(k, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	present := "none"
	if len(names) > 0 {
		present = strings.Join(names, ", ")
	}
	if len(present) > 120 { // keep the description to one readable line
		cut := strings.LastIndex(present[:120], ", ")
		present = present[:max(cut, 0)] + ", ..."
	}
	return &Error{Reason: ReasonNoAddress, Description: fmt.Sprintf(
		"the ID token names no account: no preferred_username, upn, unique_name or email claim has a value (claims present: %s); request the \"openid\", \"profile\" and \"email\" scopes",
		present)}
}
