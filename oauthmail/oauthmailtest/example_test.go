package oauthmailtest_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
	"golang.org/x/oauth2"
)

// A device signs in with x/oauth2's device flow against the emulator; the test
// plays the user who enters the code, and reads the signed-in UPN from the ID token.
func Example() {
	e := oauthmailtest.New(nil)
	defer e.Close()
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, e.Client())

	cfg := &oauth2.Config{
		ClientID: oauthmailtest.DeviceAppClientID,
		Endpoint: e.Endpoint(oauthmailtest.ContosoTenantID),
		Scopes:   []string{"https://outlook.office.com/SMTP.Send", "offline_access", "openid", "profile"},
	}
	da, err := cfg.DeviceAuth(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	// A person would open da.VerificationURI and type da.UserCode.
	if err := e.Approve(da.UserCode, "alice@contoso.com"); err != nil {
		fmt.Println(err)
		return
	}
	da.Interval = 1 // already approved: let x/oauth2 poll after 1 s instead of 5
	tok, err := cfg.DeviceAccessToken(ctx, da)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(idTokenUPN(tok))
	// Output: alice@contoso.com
}

// idTokenUPN reads preferred_username from the token's ID token (no signature
// check: the client got it straight from the token endpoint over TLS).
func idTokenUPN(tok *oauth2.Token) string {
	idt, _ := tok.Extra("id_token").(string)
	parts := strings.Split(idt, ".")
	if len(parts) != 3 {
		return ""
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var c struct {
		PreferredUsername string `json:"preferred_username"`
	}
	json.Unmarshal(payload, &c)
	return c.PreferredUsername
}

// A test makes the token endpoint fail, then checks what the client did.
func ExampleEmulator_InjectHTTP() {
	e := oauthmailtest.New(&oauthmailtest.Options{})
	defer e.Close()
	e.InjectHTTP(oauthmailtest.HTTPFault{Path: "/token", Status: 503})

	resp, err := e.Client().PostForm(e.Endpoint("organizations").TokenURL, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	for _, r := range e.Requests() {
		fmt.Println(r.Method, r.Path, r.Status, r.Error)
	}
	// Output: POST /organizations/oauth2/v2.0/token 503 temporarily_unavailable
}
