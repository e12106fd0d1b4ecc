// Command oauthmail signs a mailbox in to Microsoft Exchange Online or
// Outlook.com with the OAuth 2.0 device code flow and sends mail through SMTP
// with XOAUTH2, keeping the sign-in in a token store.
//
// Usage:
//
//	oauthmail login  --client-id C [--provider exchange|outlook|google|generic] [--tenant T] [--scope S]... [--authority URL] [--account NAME] [--store SPEC] [--ca-file F] [--no-qr]
//	                 [--flow device|authcode|client-credentials] [--client-secret-file F] [--client-secret-expires YYYY-MM-DD]
//	oauthmail status [--account NAME] [--json] [--smtp HOST:PORT] [--client-secret-expires YYYY-MM-DD] [--secret-warn-days N]
//	oauthmail send   --to A [--to B] [--cc C] [--from F] [--subject S] [--body TEXT | --body-file F] [--attach FILE]... [--smtp HOST:PORT] [--ca-file F] [--account NAME] [--client-secret-file F]
//	oauthmail send --queue [send flags] [--spool DIR] [--no-deliver]
//	oauthmail queue list|status|retry|drop|flush|run [--spool DIR] [--account NAME] [--client-secret-file F] [ID...]
//	oauthmail token  [--account NAME] [--client-secret-file F]
//	oauthmail logout [--account NAME]
//	oauthmail relay [run] --config FILE [--listen ADDR] [--listen-tls ADDR] [--smtp HOST:PORT] [--verbose]
//	oauthmail relay status --config FILE [--json]
//	oauthmail relay hash-password < password
//	oauthmail emulator [flags]   run the Entra ID + Exchange Online emulator
//	oauthmail demo [--interactive]
//
// Every subcommand takes --store SPEC (file:DIR, encrypted-file:DIR, keyring,
// memory; the default is the keyring when one is usable, else a file in the
// user's configuration directory), --key-file F (the key of encrypted-file,
// else the environment variable OAUTHMAIL_STORE_KEY) and --json.
//
// login stores the provider, its endpoints, the SMTP server (--smtp, else the
// provider's) and the CA file (--ca-file) with the sign-in; status, send,
// token and queue resume it and take --smtp or --ca-file only to override
// them. The client secret of an
// authcode or client-credentials sign-in is never stored: pass
// --client-secret-file to every command that may renew the token.
//
// On failure oauthmail prints the stable error code, the panel number and what
// the operator should do (in Japanese too when LANG starts with "ja"), and
// exits with a status that tells the class of failure:
//
//	0  success
//	1  internal error
//	2  usage or input error (bad_input)
//	3  sign in again (not_signed_in, sign_in_expired, reauth_required, code_expired, declined, mfa_required,
//	   paste_rejected)
//	4  an administrator must change a setting (consent_required, conditional_access,
//	   device_flow_blocked, invalid_client, client_secret_expired, app_not_found,
//	   tenant_not_found, invalid_scope, smtp_auth_disabled, graph_permission,
//	   graph_not_enabled, graph_draft_permission, auth_failed, send_as_denied,
//	   sender_mismatch, certificate_rejected, certificate_expired,
//	   imap_auth_failed, mailbox_not_found)
//	5  temporary: try again later (throttled, network, server_unavailable)
//	6  the message was refused (message_too_large, too_many_recipients)
//	7  TLS or certificate problem (tls_failure, certificate_invalid)
//	8  the token store is unreadable (store_corrupt)
//	9  the disk or store could not be written (storage_failed)
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/devicemail/devicemail/internal/redact"
	"github.com/devicemail/devicemail/oauthmail"
)

func main() {
	// SIGTERM (kill, systemd, docker stop) ends a command as Ctrl-C does, so
	// that the emulator removes its CA file and queue run stops cleanly.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

const usage = `usage: oauthmail <command> [flags]

commands:
  login     sign a mailbox in with a device code
  status    show the sign-in of an account (or of all accounts)
  send      send a message (--queue: through the durable outbox)
  queue     list, retry, drop or deliver outbox messages
  token     print a fresh access token (for msmtp passwordeval)
  receive   receive new mail over IMAP, save attachments (login --receive first)
  logout    forget an account's sign-in
  relay     SMTP relay for devices without OAuth (password or address), through the outbox
  emulator  run the Entra ID + Exchange Online emulator
  demo      sign in and send through an in-process emulator

Run "oauthmail <command> -h" for the flags of a command.
`

// Exit statuses, one per class of failure (see the package comment).
const (
	exitOK       = 0
	exitInternal = 1
	exitUsage    = 2
	exitSignIn   = 3
	exitAdmin    = 4
	exitTemp     = 5
	exitMessage  = 6
	exitTLS      = 7
	exitStore    = 8
	exitStorage  = 9
)

// exitStatus returns the exit status for an error code.
func exitStatus(c oauthmail.Code) int {
	switch c {
	case "":
		return exitOK
	case oauthmail.BadInput:
		return exitUsage
	case oauthmail.NotSignedIn, oauthmail.SignInExpired, oauthmail.ReauthRequired,
		oauthmail.CodeExpired, oauthmail.Declined, oauthmail.MFARequired, oauthmail.PasteRejected:
		return exitSignIn
	case oauthmail.ConsentRequired, oauthmail.ConditionalAccess, oauthmail.DeviceFlowBlocked,
		oauthmail.InvalidClient, oauthmail.ClientSecretExpired, oauthmail.AppNotFound,
		oauthmail.TenantNotFound, oauthmail.InvalidScope, oauthmail.SMTPAuthDisabled,
		oauthmail.GraphPermission, oauthmail.GraphNotEnabled, oauthmail.GraphDraftPermission,
		oauthmail.AuthFailed, oauthmail.SendAsDenied, oauthmail.SenderMismatch,
		oauthmail.CertificateRejected, oauthmail.CertificateExpired,
		oauthmail.IMAPAuthFailed, oauthmail.MailboxNotFound:
		return exitAdmin
	case oauthmail.Throttled, oauthmail.Network, oauthmail.ServerUnavailable:
		return exitTemp
	case oauthmail.MessageTooLarge, oauthmail.TooManyRecipients:
		return exitMessage
	case oauthmail.TLSFailure, oauthmail.CertificateInvalid:
		return exitTLS
	case oauthmail.StoreCorrupt:
		return exitStore
	case oauthmail.StorageFailed:
		return exitStorage
	}
	return exitInternal
}

// env is one invocation's surroundings.
type env struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	stdin          io.Reader // --body-file -
	json           bool
	quiet          bool // no notes on stderr (token)
	// secrets holds the tokens and client secret this invocation has read,
	// masked in every error detail and --json output as a second defence
	// (the library masks them where server text enters an error).
	secrets *redact.Masker
}

// clean returns server-supplied text fit for the terminal: the invocation's
// secrets masked and control characters escaped.
func (e *env) clean(s string) string {
	return redact.Terminal(e.secrets.String(s))
}

// run runs the command line args (without the program name) and returns the
// exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	return runIO(ctx, args, os.Stdin, stdout, stderr, getenv)
}

// runIO is run with the standard input given.
func runIO(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	e := &env{stdout: stdout, stderr: stderr, getenv: getenv, stdin: stdin, secrets: &redact.Masker{}}
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	cmd, rest := args[0], args[1:]
	var err error
	switch cmd {
	case "login":
		err = e.login(ctx, rest)
	case "status":
		err = e.status(ctx, rest)
	case "send":
		if hasQueueFlag(rest) {
			err = e.sendQueued(ctx, rest)
		} else {
			err = e.send(ctx, rest)
		}
	case "queue":
		err = e.queue(ctx, rest)
	case "token":
		err = e.token(ctx, rest)
	case "receive":
		err = e.receive(ctx, rest)
	case "logout":
		err = e.logout(ctx, rest)
	case "demo":
		err = e.demo(ctx, rest)
	case "relay":
		err = e.relay(ctx, rest)
	case "emulator":
		return runEmulator(ctx, rest, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "oauthmail: unknown command %q\n%s", cmd, usage)
		return exitUsage
	}
	return e.fail(err)
}

// usageError is a command-line mistake.
type usageError struct{ msg string }

func (u *usageError) Error() string { return u.msg }

func usagef(format string, a ...any) error { return &usageError{fmt.Sprintf(format, a...)} }

// errorReport is the --json form of a failure.
type errorReport struct {
	Error struct {
		Code      oauthmail.Code `json:"code"`
		Panel     int            `json:"panel"`
		Retryable bool           `json:"retryable"`
		Exit      int            `json:"exit"`
		Message   string         `json:"message"`
		MessageJA string         `json:"message_ja"`
		Detail    string         `json:"detail"`
	} `json:"error"`
}

// fail prints err (if any) and returns the exit status.
func (e *env) fail(err error) int {
	if err == nil {
		return exitOK
	}
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(e.stderr, "oauthmail: %s\n", ue.msg)
		if e.json || errors.As(err, new(*jsonUsage)) {
			var r errorReport
			r.Error.Code, r.Error.Panel, r.Error.Exit = oauthmail.BadInput, oauthmail.PanelTable(nil).Panel(oauthmail.BadInput), exitUsage
			r.Error.Message, r.Error.MessageJA = oauthmail.BadInput.Message("en"), oauthmail.BadInput.Message("ja")
			r.Error.Detail = ue.msg
			e.printJSON(r)
		}
		return exitUsage
	}
	code := oauthmail.ErrorCode(err)
	if errors.Is(err, context.Canceled) {
		fmt.Fprintln(e.stderr, "oauthmail: interrupted")
		return exitInternal
	}
	status := exitStatus(code)
	panel := oauthmail.PanelTable(nil).Panel(code)
	if e.json {
		var r errorReport
		r.Error.Code, r.Error.Panel, r.Error.Retryable, r.Error.Exit = code, panel, code.Retryable(), status
		r.Error.Message, r.Error.MessageJA = code.Message("en"), code.Message("ja")
		r.Error.Detail = e.clean(err.Error())
		e.printJSON(r)
	}
	fmt.Fprintf(e.stderr, "oauthmail: error %s (panel %d): %s\n", code, panel, code.Message("en"))
	if strings.HasPrefix(e.getenv("LANG"), "ja") {
		fmt.Fprintf(e.stderr, "oauthmail: エラー %s (パネル %d): %s\n", code, panel, code.Message("ja"))
	}
	fmt.Fprintf(e.stderr, "  detail: %s\n", e.clean(err.Error()))
	if hint := hintFor(code, err); hint != "" {
		fmt.Fprintf(e.stderr, "  %s\n", hint)
	}
	return status
}

// printJSON writes v as indented JSON on stdout, with the invocation's
// secrets masked.
func (e *env) printJSON(v any) {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
	io.WriteString(e.stdout, e.secrets.String(b.String()))
}
