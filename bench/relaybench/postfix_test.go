package relaybench

import (
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

	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
)

type postfixInstance struct {
	addr    string
	pidFile string
}

// startPostfix runs a private Postfix instance (its own configuration and
// queue directories, no chroot) that accepts mail from 127.0.0.0/8 on a
// free loopback port and relays everything to the emulator with STARTTLS
// and XOAUTH2 (the access token as the SASL password). It is stopped when
// the benchmark ends.
func startPostfix(b *testing.B, postfix string, e *oauthmailtest.Emulator, ca string) *postfixInstance {
	dir, err := os.MkdirTemp("", "relaybench-postfix")
	if err != nil {
		b.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	b.Cleanup(func() { os.RemoveAll(dir) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	emuHost, emuPort, _ := net.SplitHostPort(e.SMTPAddr())
	relayhost := fmt.Sprintf("[%s]:%s", emuHost, emuPort)
	conf := filepath.Join(dir, "etc")
	for _, d := range []string{conf, filepath.Join(dir, "spool"), filepath.Join(dir, "data")} {
		os.MkdirAll(d, 0o755)
	}
	// Postfix's master locks a file in data_directory as the postfix user.
	if u, err := user.Lookup("postfix"); err == nil {
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		os.Chown(filepath.Join(dir, "data"), uid, gid)
	}
	os.WriteFile(filepath.Join(conf, "ca.pem"), e.CAPEM(), 0o644)
	// texthash: needs no postmap; the token is the "password".
	os.WriteFile(filepath.Join(conf, "sasl_passwd"), []byte(relayhost+" "+upn+":"+e.AccessToken(upn)+"\n"), 0o600)
	main := strings.Join([]string{
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
		"smtp_sasl_auth_enable = yes",
		"smtp_sasl_password_maps = texthash:" + filepath.Join(conf, "sasl_passwd"),
		"smtp_sasl_security_options =",
		"smtp_sasl_tls_security_options =",
		"smtp_sasl_mechanism_filter = xoauth2",
		"smtp_tls_security_level = encrypt",
		"smtp_tls_CAfile = " + filepath.Join(conf, "ca.pem"),
		// Exchange Online takes at most 3 concurrent connections per mailbox.
		"default_destination_concurrency_limit = 3",
		"smtp_destination_concurrency_limit = 3",
		"message_size_limit = 36700160",
		"smtpd_client_connection_count_limit = 100",
		"maillog_file = " + filepath.Join(dir, "maillog"),
		"maillog_file_prefixes = " + dir,
		"",
	}, "\n")
	os.WriteFile(filepath.Join(conf, "main.cf"), []byte(main), 0o644)
	mc, err := os.ReadFile("/etc/postfix/master.cf")
	if err != nil {
		testMissing(b, "no /etc/postfix/master.cf: %v", err)
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
	os.WriteFile(filepath.Join(conf, "master.cf"), []byte(strings.Join(out, "\n")), 0o644)
	run := func(args ...string) {
		if o, err := exec.Command(postfix, append([]string{"-c", conf}, args...)...).CombinedOutput(); err != nil {
			if log, err := os.ReadFile(filepath.Join(dir, "maillog")); err == nil {
				b.Logf("postfix log:\n%s", tail(log, 4000))
			}
			b.Fatalf("postfix %v: %v\n%s", args, err, o)
		}
	}
	run("start")
	dumpLog := func() {
		if log, err := os.ReadFile(filepath.Join(dir, "maillog")); err == nil {
			b.Logf("postfix log:\n%s", tail(log, 4000))
		}
	}
	_ = dumpLog
	b.Cleanup(func() {
		exec.Command(postfix, "-c", conf, "stop").Run()
		if b.Failed() {
			if log, err := os.ReadFile(filepath.Join(dir, "maillog")); err == nil {
				b.Logf("postfix log:\n%s", tail(log, 4000))
			}
		}
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(time.Minute)
	for {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("postfix not listening on %s after a minute", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return &postfixInstance{addr: addr, pidFile: filepath.Join(dir, "spool", "pid", "master.pid")}
}

func testMissing(b *testing.B, format string, args ...any) {
	b.Helper()
	b.Skipf(format, args...)
}

// samplePostfixRSS returns the largest sum of VmRSS (KiB) of the Postfix
// master and its children, sampled every 100 ms until stop closes.
func samplePostfixRSS(pidFile string, stop <-chan struct{}) int64 {
	var peak int64
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		if b, err := os.ReadFile(pidFile); err == nil {
			if master, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				sum := procStatusKB(master, "VmRSS:")
				ents, _ := os.ReadDir("/proc")
				for _, d := range ents {
					pid, err := strconv.Atoi(d.Name())
					if err != nil {
						continue
					}
					if ppid(pid) == master {
						sum += procStatusKB(pid, "VmRSS:")
					}
				}
				peak = max(peak, sum)
			}
		}
		select {
		case <-stop:
			return peak
		case <-t.C:
		}
	}
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
