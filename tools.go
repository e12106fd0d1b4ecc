//go:build tools

// This file pins the module's direct dependencies while the packages that use
// them are being written; `go mod tidy` keeps what it imports. It is never built.
package devicemail

import (
	_ "github.com/emersion/go-message"
	_ "github.com/emersion/go-sasl"
	_ "github.com/emersion/go-smtp"
	_ "github.com/google/go-cmp/cmp"
	_ "github.com/zalando/go-keyring"
	_ "golang.org/x/oauth2"
	_ "rsc.io/qr"
)
