package tokenstore

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// The kinds of [Pending] sign-in.
const (
	PendingDeviceCode = "device_code" // RFC 8628: a code shown on the panel, polled for
	PendingPaste      = "paste"       // authorization code + PKCE, the answer pasted back
)

// Pending is a sign-in that was started and has not finished: kept in the
// record so that it survives a restart of the device (the same code is shown
// again and polled for, or the pasted answer is accepted by a new process).
// DeviceCode, State and Verifier are secrets, stored as protected as the
// tokens; printing a Pending with fmt or slog never shows them.
type Pending struct {
	Flow     string // PendingDeviceCode or PendingPaste
	ClientID string // the application (client) ID it was started for
	Endpoint string // where it was started: the device authorization or authorization endpoint

	// The device authorization (RFC 8628 §3.2).
	DeviceCode              string // secret
	UserCode                string
	VerificationURI         string
	VerificationURIComplete string
	Message                 string
	Interval                time.Duration

	// The paste-back authorization request (RFC 6749 §4.1, RFC 7636).
	AuthURL     string // the URL the user opens
	RedirectURI string
	State       string // secret
	Verifier    string // secret

	Scopes  []string  // the scopes asked for
	Issued  time.Time // when the sign-in was started
	Expires time.Time // when its code or request stops being accepted
}

// Clone returns a deep copy of p (nil for nil).
func (p *Pending) Clone() *Pending {
	if p == nil {
		return nil
	}
	c := *p
	c.Scopes = slices.Clone(p.Scopes)
	return &c
}

// Format prints the pending sign-in without its secrets, for every verb.
func (p Pending) Format(f fmt.State, verb rune) {
	fmt.Fprintf(f, "tokenstore.Pending{Flow:%s UserCode:%s VerificationURI:%s RedirectURI:%s DeviceCode:%s State:%s Verifier:%s Issued:%s Expires:%s}",
		p.Flow, p.UserCode, p.VerificationURI, p.RedirectURI, redacted(p.DeviceCode), redacted(p.State), redacted(p.Verifier),
		fmtTime(p.Issued), fmtTime(p.Expires))
}

// MarshalJSON encodes the flow, user code and times, never the secrets;
// log/slog's JSONHandler shows a Pending so (its TextHandler uses Format).
// Stores write records with [MarshalRecord], not with this.
func (p Pending) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Flow     string    `json:"flow"`
		UserCode string    `json:"user_code"`
		Issued   time.Time `json:"issued"`
		Expires  time.Time `json:"expires"`
	}{p.Flow, p.UserCode, p.Issued, p.Expires})
}

type pendingV3 struct {
	Flow                    string    `json:"flow"`
	ClientID                string    `json:"client_id,omitempty"`
	Endpoint                string    `json:"endpoint,omitempty"`
	DeviceCode              string    `json:"device_code,omitempty"`
	UserCode                string    `json:"user_code,omitempty"`
	VerificationURI         string    `json:"verification_uri,omitempty"`
	VerificationURIComplete string    `json:"verification_uri_complete,omitempty"`
	Message                 string    `json:"message,omitempty"`
	IntervalSeconds         int64     `json:"interval,omitempty"`
	AuthURL                 string    `json:"auth_url,omitempty"`
	RedirectURI             string    `json:"redirect_uri,omitempty"`
	State                   string    `json:"state,omitempty"`
	Verifier                string    `json:"code_verifier,omitempty"`
	Scopes                  []string  `json:"scopes,omitempty"`
	Issued                  time.Time `json:"issued,omitzero"`
	Expires                 time.Time `json:"expires,omitzero"`
}

func encodePending(p *Pending) *pendingV3 {
	if p == nil {
		return nil
	}
	return &pendingV3{Flow: p.Flow, ClientID: p.ClientID, Endpoint: p.Endpoint, DeviceCode: p.DeviceCode, UserCode: p.UserCode, VerificationURI: p.VerificationURI,
		VerificationURIComplete: p.VerificationURIComplete, Message: p.Message,
		IntervalSeconds: int64(p.Interval / time.Second), AuthURL: p.AuthURL, RedirectURI: p.RedirectURI,
		State: p.State, Verifier: p.Verifier, Scopes: p.Scopes, Issued: p.Issued, Expires: p.Expires}
}

func decodePending(p *pendingV3) *Pending {
	if p == nil {
		return nil
	}
	return &Pending{Flow: p.Flow, ClientID: p.ClientID, Endpoint: p.Endpoint, DeviceCode: p.DeviceCode, UserCode: p.UserCode, VerificationURI: p.VerificationURI,
		VerificationURIComplete: p.VerificationURIComplete, Message: p.Message,
		Interval: time.Duration(p.IntervalSeconds) * time.Second, AuthURL: p.AuthURL, RedirectURI: p.RedirectURI,
		State: p.State, Verifier: p.Verifier, Scopes: p.Scopes, Issued: p.Issued, Expires: p.Expires}
}
