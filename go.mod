module github.com/devicemail/devicemail

go 1.26.0

require (
	github.com/emersion/go-imap/v2 v2.0.0-beta.8 // imapx (receiving) and the emulator's IMAP side
	github.com/emersion/go-message v0.18.2
	github.com/emersion/go-sasl v0.0.0-20241020182733-b788ff22d5a6
	github.com/emersion/go-smtp v0.25.1
	github.com/godbus/dbus/v5 v5.2.2 // go-keyring's Secret Service client; keyringstore's tests also talk to D-Bus directly
	github.com/jackc/pgx/v5 v5.12.0 // the PostgreSQL token store and outbox (tokenstore/pgstore, oauthmail/outbox/pgoutbox) only
	github.com/zalando/go-keyring v0.2.8
	golang.org/x/crypto v0.59.0 // bcrypt password hashes of relay devices (oauthmail/relay)
	golang.org/x/oauth2 v0.37.0
	golang.org/x/sys v0.50.0 // file locking on Windows (tokenstore)
	rsc.io/qr v0.2.0
)

// Test only: no package of the module imports these outside its tests.
require github.com/google/go-cmp v0.7.0 // test only: cmp.Diff in fuzz and table tests

require (
	github.com/danieljoos/wincred v1.2.3 // indirect
	github.com/jackc/pgpassfile v1.0.0 // indirect
	github.com/jackc/pgservicefile v0.0.0-20240606120523-5a60cdf6a761 // indirect
	github.com/jackc/puddle/v2 v2.2.3 // indirect
	golang.org/x/sync v0.25.0 // indirect
	golang.org/x/text v0.44.0 // indirect
)
