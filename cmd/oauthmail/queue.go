package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/devicemail/devicemail/oauthmail"
	"github.com/devicemail/devicemail/oauthmail/outbox"
)

// hasQueueFlag reports whether a send command line asks for the outbox.
func hasQueueFlag(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		if a == "-queue" || a == "--queue" || a == "-queue=true" || a == "--queue=true" {
			return true
		}
	}
	return false
}

// defaultSpool is the outbox directory of an account when --spool is empty.
func defaultSpool(account string) string {
	dir, err := os.UserConfigDir()
	if err != nil {
		dir = "."
	}
	return filepath.Join(dir, "oauthmail", "outbox", account)
}

// sendQueued is "oauthmail send --queue": the message is written to the
// account's outbox, then one delivery attempt is made. Exit status 0 means
// the message is safe in the outbox (delivered or not); what happened to
// the attempt is printed.
func (e *env) sendQueued(ctx context.Context, args []string) error {
	fs := newFlags(e, "send")
	var f sendFlags
	f.register(fs)
	fs.Bool("queue", true, "write the message to the outbox first (this mode); attachments are copied into it")
	spool := fs.String("spool", "", "outbox directory (default: the user config directory's oauthmail/outbox/ACCOUNT)")
	noDeliver := fs.Bool("no-deliver", false, "only queue; leave delivery to \"oauthmail queue run\"")
	if err := parse(fs, args); err != nil {
		return err
	}
	c := &f.c
	e.json = c.json
	msg, err := f.message(ctx, e)
	if err != nil {
		return err
	}
	cfg, err := f.config()
	if err != nil {
		return err
	}
	m, _, err := e.mailerFor(ctx, c, cfg)
	if err != nil {
		return err
	}
	o, err := outbox.New(outbox.Config{Dir: spoolDir(*spool, c.account), Mailer: m})
	if err != nil {
		return err
	}
	id, err := o.Enqueue(ctx, msg)
	if err != nil {
		return err
	}
	delivered, note := false, "queued; deliver with \"oauthmail queue run\""
	if !*noDeliver {
		n, ferr := o.Flush(ctx)
		switch {
		case ferr == outbox.ErrBusy:
			note = "queued; another process is delivering this outbox"
		case ferr != nil:
			return ferr
		case n > 0 && !queuedID(ctx, o, id):
			delivered, note = true, "sent"
		default:
			note = "queued; the delivery attempt failed and will be retried"
		}
	}
	st, _ := o.Status(ctx)
	if e.json {
		out := map[string]any{"queued": !delivered, "sent": delivered, "id": id, "account": c.account}
		if st != nil {
			out["outbox"] = st
		}
		e.printJSON(out)
		return nil
	}
	fmt.Fprintf(e.stdout, "%s (message %s)\n", note, id)
	if !delivered && st != nil && st.LastCode != "" {
		fmt.Fprintf(e.stdout, "last error:   %s (panel %d): %s\n", st.LastCode, oauthmail.PanelTable(nil).Panel(st.LastCode), st.LastCode.Message("en"))
	}
	return nil
}

func queuedID(ctx context.Context, o *outbox.Outbox, id string) bool {
	es, err := o.List(ctx)
	if err != nil {
		return true
	}
	for _, e := range es {
		if e.ID == id {
			return true
		}
	}
	return false
}

func spoolDir(flagValue, account string) string {
	if flagValue != "" {
		return flagValue
	}
	return defaultSpool(account)
}

const queueUsage = `usage: oauthmail queue <list|status|retry|drop|run|flush> [flags] [ID...]

  list          queued and dead messages
  status        queue depth, oldest message age, last error
  retry ID...   put dead messages back in the queue (or --all); make queued ones due now
  drop ID...    delete messages from the outbox
  flush         one delivery pass over what is due
  run           deliver until interrupted
`

// queue is "oauthmail queue".
func (e *env) queue(ctx context.Context, args []string) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprint(e.stderr, queueUsage)
		return usagef("queue: a subcommand is required")
	}
	sub, rest := args[0], args[1:]
	fs := newFlags(e, "queue "+sub)
	var c common
	c.register(fs, true)
	spool := fs.String("spool", "", "outbox directory (default: the user config directory's oauthmail/outbox/ACCOUNT)")
	var sf smtpFlags
	sf.register(fs, "SMTP server host:port (default: the provider's)")
	secretFile := fs.String("client-secret-file", "", "run, flush: client secret of an authcode or client-credentials sign-in (for renewing its token)")
	all := fs.Bool("all", false, "retry: every dead message")
	var cert certFlags
	cert.register(fs)
	if err := fs.Parse(rest); err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return usagef("queue %s: %v", sub, err)
	}
	e.json = c.json
	if err := checkFlags(fs); err != nil {
		return err
	}
	ids := fs.Args()
	dir := spoolDir(*spool, c.account)
	var m *oauthmail.Mailer
	if sub == "run" || sub == "flush" {
		var err error
		cfg, err := sf.config("")
		if err != nil {
			return err
		}
		secret, err := readSecret(*secretFile)
		if err != nil {
			return err
		}
		e.secrets.Add(secret)
		cc, err := cert.load()
		if err != nil {
			return err
		}
		cfg.ClientSecret, cfg.ClientCertificate = secret, cc
		if m, _, err = e.mailerFor(ctx, &c, cfg); err != nil {
			return err
		}
	}
	o, err := outbox.New(outbox.Config{Dir: dir, Mailer: m})
	if err != nil {
		return err
	}
	switch sub {
	case "list":
		es, err := o.List(ctx)
		if err != nil {
			return err
		}
		if e.json {
			if es == nil {
				es = []outbox.Entry{}
			}
			e.printJSON(es)
			return nil
		}
		if len(es) == 0 {
			fmt.Fprintln(e.stdout, "outbox is empty")
		}
		for _, en := range es {
			fmt.Fprintf(e.stdout, "%s  %-6s  %s  to %s  %q  attempts %d", en.ID, en.State, en.Enqueued.Local().Format(time.DateTime),
				strings.Join(en.To, ","), en.Subject, en.Attempts)
			if en.LastCode != "" {
				fmt.Fprintf(e.stdout, "  last %s", en.LastCode)
			}
			fmt.Fprintln(e.stdout)
		}
	case "status":
		st, err := o.Status(ctx)
		if err != nil {
			return err
		}
		if e.json {
			e.printJSON(st)
			return nil
		}
		fmt.Fprintf(e.stdout, "queued:       %d\ndead:         %d\nheld:         %s\n", st.Queued, st.Dead, yesNo(st.Held))
		if st.Held {
			fmt.Fprintf(e.stdout, "held for:     %s (panel %d)\n", st.HeldCode, oauthmail.PanelTable(nil).Panel(st.HeldCode))
		}
		if st.Queued > 0 {
			fmt.Fprintf(e.stdout, "oldest:       %s (%s ago)\n", when(st.Oldest), st.OldestAge.Round(time.Second))
		}
		if st.LastCode != "" {
			fmt.Fprintf(e.stdout, "last error:   %s (panel %d) at %s\n  detail: %s\n", st.LastCode,
				oauthmail.PanelTable(nil).Panel(st.LastCode), when(st.LastErrorAt), e.clean(st.LastError))
		}
	case "retry":
		if *all {
			es, err := o.List(ctx)
			if err != nil {
				return err
			}
			for _, en := range es {
				if en.State == "dead" {
					ids = append(ids, en.ID)
				}
			}
		}
		if len(ids) == 0 && !*all {
			return usagef("queue retry: message IDs or --all are required")
		}
		for _, id := range ids {
			if err := o.Retry(ctx, id); err != nil {
				return usagef("queue retry %s: %v", id, err)
			}
		}
		fmt.Fprintf(e.stdout, "%d message(s) back in the queue\n", len(ids))
	case "drop":
		if len(ids) == 0 {
			return usagef("queue drop: message IDs are required")
		}
		for _, id := range ids {
			if err := o.Drop(ctx, id); err != nil {
				return usagef("queue drop %s: %v", id, err)
			}
		}
		fmt.Fprintf(e.stdout, "%d message(s) dropped\n", len(ids))
	case "flush":
		n, err := o.Flush(ctx)
		if err != nil {
			return err
		}
		st, _ := o.Status(ctx)
		if e.json {
			e.printJSON(map[string]any{"delivered": n, "outbox": st})
			return nil
		}
		fmt.Fprintf(e.stdout, "delivered %d; %d still queued, %d dead\n", n, st.Queued, st.Dead)
	case "run":
		fmt.Fprintf(e.stderr, "oauthmail: delivering from %s until interrupted\n", dir)
		if err := o.Run(ctx); err != nil && ctx.Err() == nil {
			return err
		}
	default:
		fmt.Fprint(e.stderr, queueUsage)
		return usagef("queue: unknown subcommand %q", sub)
	}
	return nil
}
