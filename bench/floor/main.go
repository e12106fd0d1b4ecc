// Command floor is the size floor for the firmware example: the least a device
// needs to sign in with the OAuth 2.0 device authorization grant (RFC 8628,
// golang.org/x/oauth2) and send one message over STARTTLS with SASL XOAUTH2
// (go-smtp plus a minimal XOAUTH2 client). It has no token store, no refresh,
// no typed errors and no MIME building; bench/run builds it stripped next to
// examples/firmware and reports the size ratio.
//
// It runs against the emulator or a real tenant:
//
//	floor -device-url URL -token-url URL -client-id ID -smtp HOST:PORT \
//	      [-ca FILE] -from ADDR -to ADDR
//
// # Security
//
// The access token is written only to the SMTP connection after STARTTLS;
// it never reaches the terminal or an error message.
//
// # Testing
//
// bench/run only builds it; the package test runs it against the emulator.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"golang.org/x/oauth2"
)

// xoauth2 is the SASL XOAUTH2 client: one initial response, and an empty
// reply to an error challenge (the server then answers 535).
type xoauth2 struct{ user, token string }

func (a xoauth2) Start() (string, []byte, error) {
	return "XOAUTH2", []byte("user=" + a.user + "\x01auth=Bearer " + a.token + "\x01\x01"), nil
}

func (a xoauth2) Next(challenge []byte) ([]byte, error) { return []byte{}, nil }

var _ sasl.Client = xoauth2{}

func main() {
	deviceURL := flag.String("device-url", "", "device authorization endpoint")
	tokenURL := flag.String("token-url", "", "token endpoint")
	clientID := flag.String("client-id", "", "application (client) ID")
	scope := flag.String("scope", "https://outlook.office.com/SMTP.Send offline_access", "scopes")
	smtpAddr := flag.String("smtp", "smtp.office365.com:587", "submission host:port")
	caFile := flag.String("ca", "", "PEM file of CAs to trust instead of the system roots")
	from := flag.String("from", "", "signed-in mailbox")
	to := flag.String("to", "", "recipient")
	flag.Parse()
	if err := run(*deviceURL, *tokenURL, *clientID, *scope, *smtpAddr, *caFile, *from, *to); err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(1)
	}
}

func run(deviceURL, tokenURL, clientID, scope, addr, caFile, from, to string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return err
		}
		tlsConf.RootCAs = x509.NewCertPool()
		if !tlsConf.RootCAs.AppendCertsFromPEM(pem) {
			return errors.New("no certificates in " + caFile)
		}
	}
	ctx = context.WithValue(ctx, oauth2.HTTPClient, &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConf}})
	conf := &oauth2.Config{
		ClientID: clientID,
		Scopes:   strings.Fields(scope),
		Endpoint: oauth2.Endpoint{DeviceAuthURL: deviceURL, TokenURL: tokenURL},
	}
	da, err := conf.DeviceAuth(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("To sign in, open %s and enter the code %s\n", da.VerificationURI, da.UserCode)
	tok, err := conf.DeviceAccessToken(ctx, da)
	if err != nil {
		return err
	}

	host, _, _ := strings.Cut(addr, ":")
	c, err := smtp.DialStartTLS(addr, &tls.Config{RootCAs: tlsConf.RootCAs, ServerName: host, MinVersion: tls.VersionTLS12})
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Auth(xoauth2{from, tok.AccessToken}); err != nil {
		return err
	}
	msg := "From: " + from + "\r\nTo: " + to + "\r\nSubject: scan\r\nDate: " +
		time.Now().Format(time.RFC1123Z) + "\r\n\r\nscan attached\r\n"
	if err := c.SendMail(from, []string{to}, strings.NewReader(msg)); err != nil {
		return err
	}
	return c.Quit()
}
