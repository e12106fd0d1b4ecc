package relaybench

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"golang.org/x/oauth2"

	"github.com/devicemail/devicemail/internal/testpeer"
	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
)

// envPlugin names the directory that holds an already built
// libsasl-xoauth2.so (https://github.com/tarickb/sasl-xoauth2, the Cyrus
// SASL XOAUTH2 client plugin Postfix needs; Debian 12 does not package it).
// RESULTS.md says how to build it. Without it the Postfix row is skipped.
const envPlugin = "RELAYBENCH_SASL_XOAUTH2_PLUGIN_DIR"

// pluginSO is the file name sasl-xoauth2's "make install" gives the plugin.
const pluginSO = "libsasl-xoauth2.so"

// benchPostfix is the Postfix row of figure 9: the same load as the other
// rows, sent to a private Postfix instance that relays to the emulator with
// STARTTLS (the emulator's CA trusted, its name checked) and XOAUTH2
// through sasl-xoauth2, which gets its access token by redeeming a refresh
// token at the emulator's token endpoint. After the measurement it checks
// that the emulator holds each message exactly once, byte for byte, sent
// by a session that authenticated as the user with a token the emulator
// issued to the app Postfix signed in as.
func benchPostfix(b *testing.B, n int, reuse bool) {
	pluginDir := saslXOAUTH2(b)
	postfix, err := exec.LookPath("postfix")
	if err != nil {
		missing(b, "postfix not installed (%v)", err)
	}
	if os.Geteuid() != 0 {
		missing(b, "postfix needs root to start its private instance (the master drops to the postfix user)")
	}
	if _, err := user.Lookup("postfix"); err != nil {
		missing(b, "no postfix user: %v", err)
	}
	for range b.N {
		e, _ := emulator(b)
		pf := startPostfix(b, postfix, pluginDir, e, reuse)
		msgs := clientMessages()
		stop := make(chan struct{})
		peak := make(chan [2]int64)
		go func() {
			rss, pss := samplePostfixMemory(pf.pidFile, stop)
			peak <- [2]int64{rss, pss}
		}()
		start := time.Now()
		lat, wall, sent := loadMessages(b, n, msgs, func() (*smtp.Client, error) { return dialFrom(deviceIP, pf.addr) })
		delivered := waitDelivered(b, e, n, start)
		close(stop)
		mem := <-peak
		r := result{accepted: wall, delivered: delivered, lat: lat, rssKB: mem[0]}
		pf.waitQueueEmpty(b)
		checkReceived(b, e, msgs, sent)
		pf.checkToken(b, e)
		pf.logSummary(b)
		r.report(b, n)
		b.ReportMetric(float64(mem[1])/1024, "peak-PSS-MB")
	}
}

// saslXOAUTH2 returns the plugin directory named by envPlugin, or skips.
// sasl-xoauth2 also reads a configuration file whose path is fixed when it
// is built (CMAKE_INSTALL_SYSCONFDIR); it must exist, or the plugin refuses
// to load and Postfix finds no XOAUTH2 mechanism.
func saslXOAUTH2(b *testing.B) string {
	dir := os.Getenv(envPlugin)
	if dir == "" {
		// Opt-in, like building the plugin: not a missing peer.
		msg := fmt.Sprintf("%s is not set; it names the directory of an already built %s "+
			"(sasl-xoauth2, not packaged in Debian 12; bench/relaybench/RESULTS.md says how to build it)", envPlugin, pluginSO)
		printSkip(b, msg)
		b.Skip(msg)
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		b.Fatal(err)
	}
	so, err := os.ReadFile(filepath.Join(dir, pluginSO))
	if err != nil {
		b.Fatalf("%s: %v", envPlugin, err)
	}
	conf := builtInConfig(so)
	if conf == "" {
		b.Fatalf("%s: no path of sasl-xoauth2.conf in %s; is it sasl-xoauth2?", envPlugin, pluginSO)
	}
	if _, err := os.Stat(conf); err != nil {
		b.Fatalf("sasl-xoauth2 reads its configuration from %s, fixed when it was built, and cannot: %v "+
			"(\"make install\" puts it there; client_id and client_secret may be placeholders, the token file overrides them)", conf, err)
	}
	return dir
}

// missing skips (or fails, under DEVICEMAIL_REQUIRE_PEERS=1) for a
// missing peer, printing the reason.
func missing(b *testing.B, format string, args ...any) {
	b.Helper()
	printSkip(b, fmt.Sprintf(format, args...))
	testpeer.Missing(b, format, args...)
}

// printSkip prints why a sub-benchmark is skipped: without -v the testing
// package prints nothing for a skipped benchmark.
func printSkip(b *testing.B, msg string) {
	if !testing.Verbose() {
		fmt.Printf("--- SKIP: %s: %s\n", b.Name(), msg)
	}
}

// builtInConfig finds the absolute path ending in /sasl-xoauth2.conf among
// the NUL-terminated strings of the plugin.
func builtInConfig(so []byte) string {
	const name = "/sasl-xoauth2.conf\x00"
	for rest, off := so, 0; ; {
		i := bytes.Index(rest, []byte(name))
		if i < 0 {
			return ""
		}
		end := off + i + len(name) - 1
		begin := bytes.LastIndexByte(so[:end], 0) + 1
		if s := string(so[begin:end]); strings.HasPrefix(s, "/") {
			return s
		}
		off += i + len(name)
		rest = so[off:]
	}
}

type postfixInstance struct {
	addr, conf, pidFile, tokenFile, maillog string
	postfix                                 string
}

// startPostfix runs a private Postfix instance (its own configuration and
// queue directories, no chroot) that accepts mail from 127.0.0.0/8 on a
// free loopback port and relays everything to the emulator with STARTTLS
// and XOAUTH2. The SASL "password" is the path of sasl-xoauth2's token
// file, which holds only a refresh token, the emulator's token endpoint and
// CA; the plugin redeems it for an access token and writes that back. The
// instance is stopped when the benchmark ends.
func startPostfix(b *testing.B, postfix, pluginDir string, e *oauthmailtest.Emulator, reuse bool) *postfixInstance {
	pfUser, err := user.Lookup("postfix")
	if err != nil {
		b.Fatal(err)
	}
	uid, _ := strconv.Atoi(pfUser.Uid)
	gid, _ := strconv.Atoi(pfUser.Gid)
	dir, err := os.MkdirTemp("", "relaybench-postfix")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	must := func(err error) {
		b.Helper()
		if err != nil {
			b.Fatal(err)
		}
	}
	must(os.Chmod(dir, 0o755))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(err)
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	_, emuPort, _ := net.SplitHostPort(e.SMTPAddr())
	// "localhost" is the name in the emulator's certificate; Postfix checks it.
	relayhost := "[localhost]:" + emuPort
	conf := filepath.Join(dir, "etc")
	tokens := filepath.Join(dir, "tokens")
	for _, d := range []string{conf, filepath.Join(dir, "spool"), filepath.Join(dir, "data"), tokens} {
		must(os.MkdirAll(d, 0o755))
	}
	// The master locks a file in data_directory as the postfix user, and
	// the plugin, in the smtp processes, replaces the token file (write and
	// rename) as that user.
	must(os.Chown(filepath.Join(dir, "data"), uid, gid))
	must(os.Chown(tokens, uid, gid))
	must(os.Chmod(tokens, 0o700))
	must(os.WriteFile(filepath.Join(conf, "ca.pem"), e.CAPEM(), 0o644))

	tokenFile := filepath.Join(tokens, upn)
	tf, err := json.Marshal(map[string]string{
		"refresh_token":  refreshToken(b, e),
		"client_id":      oauthmailtest.DeviceAppClientID,
		"client_secret":  "", // a public client
		"token_endpoint": e.Endpoint(oauthmailtest.ContosoTenantID).TokenURL,
		"ca_bundle_file": filepath.Join(conf, "ca.pem"),
	})
	must(err)
	must(os.WriteFile(tokenFile, tf, 0o600))
	must(os.Chown(tokenFile, uid, gid))
	// texthash: needs no postmap. user:password, the password being the token file.
	must(os.WriteFile(filepath.Join(conf, "sasl_passwd"), []byte(relayhost+" "+upn+":"+tokenFile+"\n"), 0o600))
	mainCF := strings.Join([]string{
		"compatibility_level = 3.6",
		"queue_directory = " + filepath.Join(dir, "spool"),
		"data_directory = " + filepath.Join(dir, "data"),
		"mail_owner = postfix",
		"setgid_group = postdrop",
		"myhostname = relay.bench.example",
		"inet_interfaces = 127.0.0.1",
		"inet_protocols = ipv4",
		"mynetworks = 127.0.0.0/8",
		"mydestination =",
		"local_recipient_maps =",
		"alias_maps =",
		"alias_database =",
		"relayhost = " + relayhost,
		// /etc/hosts, not DNS, for "localhost".
		"smtp_host_lookup = native",
		// Cyrus SASL looks for plugins in SASL_PATH; Postfix daemons keep
		// only the environment listed here.
		"import_environment = MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C POSTLOG_SERVICE POSTLOG_HOSTNAME SASL_PATH=" + pluginDir,
		"smtp_sasl_auth_enable = yes",
		"smtp_sasl_password_maps = texthash:" + filepath.Join(conf, "sasl_passwd"),
		"smtp_sasl_security_options = noanonymous",
		"smtp_sasl_tls_security_options = noanonymous",
		"smtp_sasl_mechanism_filter = xoauth2",
		// STARTTLS required, the certificate verified against the
		// emulator's CA and matched to the next-hop name.
		"smtp_tls_security_level = secure",
		"smtp_tls_CAfile = " + filepath.Join(conf, "ca.pem"),
		"smtp_tls_loglevel = 1",
		fmt.Sprintf("smtp_tls_connection_reuse = %v", map[bool]string{false: "no", true: "yes"}[reuse]),
		// Exchange Online takes at most 3 concurrent connections per mailbox.
		"default_destination_concurrency_limit = 3",
		"smtp_destination_concurrency_limit = 3",
		"message_size_limit = 36700160",
		"smtpd_client_connection_count_limit = 100",
		"maillog_file = " + filepath.Join(dir, "maillog"),
		"maillog_file_prefixes = " + dir,
		"",
	}, "\n")
	must(os.WriteFile(filepath.Join(conf, "main.cf"), []byte(mainCF), 0o644))
	mc, err := os.ReadFile("/etc/postfix/master.cf")
	if err != nil {
		missing(b, "no /etc/postfix/master.cf: %v", err)
	}
	var out []string
	for _, l := range strings.Split(string(mc), "\n") {
		f := strings.Fields(l)
		if len(f) >= 8 && !strings.HasPrefix(l, "#") && !strings.HasPrefix(l, " ") {
			if f[0] == "smtp" && f[1] == "inet" {
				f[0] = fmt.Sprintf("127.0.0.1:%d", port)
			}
			f[4] = "n" // no chroot: the private queue has no copy of /etc
			l = strings.Join(f, " ")
		}
		out = append(out, l)
	}
	// Connection reuse over TLS goes through tlsproxy, which Debian's
	// master.cf leaves out.
	out = append(out, "tlsproxy unix - - n - 0 tlsproxy", "")
	must(os.WriteFile(filepath.Join(conf, "master.cf"), []byte(strings.Join(out, "\n")), 0o644))
	pf := &postfixInstance{addr: fmt.Sprintf("127.0.0.1:%d", port), conf: conf, postfix: postfix,
		pidFile: filepath.Join(dir, "spool", "pid", "master.pid"), tokenFile: tokenFile,
		maillog: filepath.Join(dir, "maillog")}
	logTail := func() string {
		log, err := os.ReadFile(filepath.Join(dir, "maillog"))
		if err != nil {
			return err.Error()
		}
		return tail(log, 6000)
	}
	if o, err := exec.Command(postfix, "-c", conf, "start").CombinedOutput(); err != nil {
		b.Fatalf("postfix start: %v\n%s\npostfix log:\n%s", err, o, logTail())
	}
	b.Cleanup(func() {
		exec.Command(postfix, "-c", conf, "stop").Run()
		if b.Failed() {
			b.Logf("postfix log:\n%s", logTail())
		}
	})
	deadline := time.Now().Add(time.Minute)
	for {
		if c, err := net.Dial("tcp", pf.addr); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("postfix not listening on %s after a minute", pf.addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return pf
}

// refreshToken signs the user in with the device code flow (the emulator
// approves it) and returns the refresh token.
func refreshToken(b *testing.B, e *oauthmailtest.Emulator) string {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ctx = context.WithValue(ctx, oauth2.HTTPClient, e.Client())
	cfg := &oauth2.Config{
		ClientID: oauthmailtest.DeviceAppClientID,
		Endpoint: e.Endpoint(oauthmailtest.ContosoTenantID),
		Scopes:   []string{"https://outlook.office.com/SMTP.Send", "offline_access"},
	}
	da, err := cfg.DeviceAuth(ctx)
	if err != nil {
		b.Fatalf("device code: %v", err)
	}
	da.Interval = 1
	tok, err := cfg.DeviceAccessToken(ctx, da)
	if err != nil {
		b.Fatalf("device code sign-in: %v", err)
	}
	if tok.RefreshToken == "" {
		b.Fatal("device code sign-in gave no refresh token")
	}
	return tok.RefreshToken
}

// waitQueueEmpty waits until Postfix has removed every message from its
// queue: delivered, none deferred.
func (pf *postfixInstance) waitQueueEmpty(b *testing.B) {
	deadline := time.Now().Add(5 * time.Minute)
	for {
		out, err := exec.Command(filepath.Join(filepath.Dir(pf.postfix), "postqueue"), "-c", pf.conf, "-p").CombinedOutput()
		if err == nil && strings.Contains(string(out), "Mail queue is empty") {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("postfix queue not empty after the emulator had every message: %v\n%s", err, tail(out, 4000))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkReceived checks that the emulator holds exactly the messages sent:
// per client as many as it sent, each body byte for byte what it sent (the
// headers differ: Postfix adds a Received line, the emulator replaces the
// Message-ID), each from a session that authenticated with XOAUTH2 as the
// user, with a token of the app Postfix signed in as. The emulator accepts
// only tokens it signed.
func checkReceived(b *testing.B, e *oauthmailtest.Emulator, msgs [][]byte, sent []int) {
	want := make(map[[32]byte]int, len(msgs))
	client := make(map[[32]byte]int, len(msgs))
	for c, m := range msgs {
		h := sha256.Sum256(body(m))
		want[h] += sent[c]
		client[h] = c
	}
	got := e.Messages()
	total := 0
	for _, n := range sent {
		total += n
	}
	if len(got) != total {
		b.Errorf("the emulator holds %d messages, %d were sent", len(got), total)
	}
	for i, m := range got {
		if m.Transport != "smtp" || m.User != upn || m.ClientID != oauthmailtest.DeviceAppClientID || m.AppOnly {
			b.Errorf("message %d: transport %q, user %q, client %q, app-only %v; want smtp, %s, %s, delegated",
				i, m.Transport, m.User, m.ClientID, m.AppOnly, upn, oauthmailtest.DeviceAppClientID)
		}
		h := sha256.Sum256(body(m.Data))
		c, ok := client[h]
		if !ok {
			b.Errorf("message %d (%s): body is none of the bodies sent", i, m.Header.Get("Subject"))
			continue
		}
		if s := m.Header.Get("Subject"); s != fmt.Sprintf("scan %d", c) {
			b.Errorf("message %d: subject %q with the body of \"scan %d\"", i, s, c)
		}
		want[h]--
	}
	for h, left := range want {
		if left != 0 {
			b.Errorf("scan %d: %d more sent than received (negative: duplicates)", client[h], left)
		}
	}
}

// body is a message without its header.
func body(m []byte) []byte {
	if i := bytes.Index(m, []byte("\r\n\r\n")); i >= 0 {
		return m[i+4:]
	}
	return nil
}

// checkToken checks that sasl-xoauth2 got its access token from the
// emulator: the token endpoint answered refresh token grants for the app,
// and the plugin wrote the access token back to its token file.
func (pf *postfixInstance) checkToken(b *testing.B, e *oauthmailtest.Emulator) {
	refreshed := 0
	for _, r := range e.Requests() {
		if strings.HasSuffix(r.Path, "/token") && r.GrantType == "refresh_token" && r.Status == 200 && r.ClientID == oauthmailtest.DeviceAppClientID {
			refreshed++
		}
	}
	if refreshed == 0 {
		b.Error("the emulator's token endpoint answered no refresh token grant: sasl-xoauth2 did not get its token there")
	}
	data, err := os.ReadFile(pf.tokenFile)
	if err != nil {
		b.Fatal(err)
	}
	var tf struct {
		Access string `json:"access_token"`
		Expiry string `json:"expiry"`
	}
	if err := json.Unmarshal(data, &tf); err != nil {
		b.Fatalf("sasl-xoauth2's token file is not JSON: %v", err)
	}
	if tf.Access == "" || tf.Expiry == "" {
		b.Error("sasl-xoauth2 did not write an access token and its expiry back to its token file")
	}
	b.Logf("sasl-xoauth2 redeemed the refresh token %d times at the emulator", refreshed)
}

// logSummary logs what Postfix's log says about the deliveries: how many
// messages it sent to the emulator, over how many verified TLS sessions.
func (pf *postfixInstance) logSummary(b *testing.B) {
	log, err := os.ReadFile(pf.maillog)
	if err != nil {
		b.Logf("postfix log: %v", err)
		return
	}
	var sent, verified, other int
	for _, l := range strings.Split(string(log), "\n") {
		switch {
		case strings.Contains(l, "relay=localhost[127.0.0.1]") && strings.Contains(l, "status=sent"):
			sent++
		case strings.Contains(l, "Verified TLS connection established to localhost[127.0.0.1]"):
			verified++
		case strings.Contains(l, "status=") || strings.Contains(l, "SASL authentication failed"):
			other++
		}
	}
	b.Logf("postfix log: %d messages status=sent to localhost[127.0.0.1], %d verified TLS sessions to it, %d other delivery lines", sent, verified, other)
}

// samplePostfixMemory returns the largest sum of VmRSS and the largest sum
// of Pss (KiB) over the Postfix master and its children, sampled every
// 100 ms until stop closes. The RSS sum counts pages the processes share
// (libraries, Postfix's own code) once per process; the PSS sum divides
// them among the sharers.
func samplePostfixMemory(pidFile string, stop <-chan struct{}) (rss, pss int64) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		if b, err := os.ReadFile(pidFile); err == nil {
			if master, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				pids := []int{master}
				ents, _ := os.ReadDir("/proc")
				for _, d := range ents {
					if pid, err := strconv.Atoi(d.Name()); err == nil && ppid(pid) == master {
						pids = append(pids, pid)
					}
				}
				var r, p int64
				for _, pid := range pids {
					r += procStatusKB(pid, "VmRSS:")
					p += pssKB(pid)
				}
				rss, pss = max(rss, r), max(pss, p)
			}
		}
		select {
		case <-stop:
			return rss, pss
		case <-t.C:
		}
	}
}

// pssKB is a process's proportional set size in KiB.
func pssKB(pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "Pss:" {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return 0
}

func ppid(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
