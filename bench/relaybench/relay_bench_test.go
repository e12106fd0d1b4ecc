package relaybench

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/devicemail/devicemail/oauthmail/oauthmailtest"
	"github.com/devicemail/devicemail/smtpx"
)

const (
	clients   = 20
	attachLen = 100 << 10
	upn       = "alice@contoso.com"
	deviceIP  = "127.0.0.2"
)

func messageCount() int {
	if n, err := strconv.Atoi(os.Getenv("RELAYBENCH_MESSAGES")); err == nil && n > 0 {
		return n
	}
	if os.Getenv("CI") != "" {
		return 100 // CI runs every benchmark once so that none rots
	}
	return 1000
}

// message is an RFC 5322 message with a 100 KB PDF-like attachment, the
// kind a scanner sends.
func message(i int) []byte {
	att := make([]byte, attachLen)
	rand.Read(att)
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: Scanner <%s>\r\nTo: bob@contoso.com\r\nSubject: scan %d\r\nMIME-Version: 1.0\r\n", upn, i)
	b.WriteString("Content-Type: multipart/mixed; boundary=\"b0\"\r\n\r\n--b0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nScan attached.\r\n")
	b.WriteString("--b0\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"scan.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	enc := base64.StdEncoding.EncodeToString(att)
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n--b0--\r\n")
	return b.Bytes()
}

type result struct {
	accepted, delivered time.Duration // wall time to the last 250, to the last message at the emulator
	lat                 []time.Duration
	rssKB               int64
	cpu                 cpuTime // the relay's CPU time while the clients sent (zero: not measured)
	deliveredEarly      int     // messages at the emulator when the last client had its 250
}

func (r *result) report(b *testing.B, n int) {
	slices.Sort(r.lat)
	q := func(p float64) time.Duration { return r.lat[min(len(r.lat)-1, int(p*float64(len(r.lat))))] }
	b.ReportMetric(float64(n)/r.accepted.Seconds(), "accepted/s")
	b.ReportMetric(float64(n)/r.delivered.Seconds(), "delivered/s")
	b.ReportMetric(float64(q(0.50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(q(0.99).Microseconds())/1000, "p99-ms")
	if r.rssKB > 0 {
		b.ReportMetric(float64(r.rssKB)/1024, "peak-RSS-MB")
	}
	if r.cpu != (cpuTime{}) {
		ms := func(ticks int64) float64 { return float64(ticks) * 1000 / clockTicks / float64(n) }
		b.ReportMetric(ms(r.cpu.user), "user-ms/msg")
		b.ReportMetric(ms(r.cpu.sys), "sys-ms/msg")
		b.ReportMetric(float64(r.deliveredEarly), "delivered-while-sending")
	}
}

// load sends n messages over `clients` connections made by dial, and
// records each message's time from MAIL FROM to the 250 after the data.
func load(b *testing.B, n int, dial func() (*smtp.Client, error)) ([]time.Duration, time.Duration) {
	lat, wall, _ := loadMessages(b, n, clientMessages(), dial)
	return lat, wall
}

// clientMessages returns the message each client sends, again and again.
func clientMessages() [][]byte {
	msgs := make([][]byte, clients)
	for i := range msgs {
		msgs[i] = message(i)
	}
	return msgs
}

// loadMessages is load with the clients' messages given; it also returns
// how many messages each client sent.
func loadMessages(b *testing.B, n int, msgs [][]byte, dial func() (*smtp.Client, error)) ([]time.Duration, time.Duration, []int) {
	work := make(chan int, n)
	for i := range n {
		work <- i
	}
	close(work)
	var (
		mu   sync.Mutex
		lat  []time.Duration
		sent = make([]int, clients)
		wg   sync.WaitGroup
	)
	start := time.Now()
	for c := range clients {
		wg.Go(func() {
			cl, err := dial()
			if err != nil {
				b.Errorf("dial: %v", err)
				return
			}
			defer cl.Quit()
			for i := range work {
				t0 := time.Now()
				if err := cl.SendMail(upn, []string{"bob@contoso.com"}, bytes.NewReader(msgs[c])); err != nil {
					b.Errorf("message %d: %v", i, err)
					return
				}
				d := time.Since(t0)
				mu.Lock()
				lat = append(lat, d)
				sent[c]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return lat, time.Since(start), sent
}

func waitDelivered(b *testing.B, e *oauthmailtest.Emulator, n int, start time.Time) time.Duration {
	deadline := time.Now().Add(30 * time.Minute)
	for len(e.Messages()) < n {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d messages delivered after 30 minutes", len(e.Messages()), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

func emulator(b *testing.B) (*oauthmailtest.Emulator, string) {
	e := oauthmailtest.Start(b, &oauthmailtest.Options{SendRate: -1, MaxConcurrent: 100, RecipientRateLimit: -1,
		AutoApprove: upn, AccessTokenLifetime: 4 * time.Hour})
	ca := filepath.Join(b.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, e.CAPEM(), 0o600); err != nil {
		b.Fatal(err)
	}
	return e, ca
}

func dialFrom(src, addr string) (*smtp.Client, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: time.Minute}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	c := smtp.NewClient(conn)
	return c, c.Hello("scanner.example")
}

// BenchmarkRelay is figure 9 (see the package doc).
func BenchmarkRelay(b *testing.B) {
	n := messageCount()
	b.Run("direct", func(b *testing.B) {
		for range b.N {
			e, _ := emulator(b)
			tok := e.AccessToken(upn)
			start := time.Now()
			lat, wall := load(b, n, func() (*smtp.Client, error) {
				c, err := smtp.DialStartTLS(e.SMTPAddr(), e.TLSConfig())
				if err != nil {
					return nil, err
				}
				return c, c.Auth(smtpx.XOAUTH2(upn, tok))
			})
			r := result{accepted: wall, delivered: waitDelivered(b, e, n, start), lat: lat}
			r.report(b, n)
		}
	})
	b.Run("relay", func(b *testing.B) {
		bin := buildCommand(b)
		for range b.N {
			e, ca := emulator(b)
			dir := b.TempDir()
			store := "file:" + filepath.Join(dir, "tokens")
			if out, err := exec.Command(bin, "login", "--tenant", oauthmailtest.ContosoTenantID, "--client-id", oauthmailtest.DeviceAppClientID,
				"--authority", e.URL(), "--ca-file", ca, "--store", store, "--account", "alice", "--no-qr").CombinedOutput(); err != nil {
				b.Fatalf("login: %v\n%s", err, out)
			}
			cfg := filepath.Join(dir, "relay.json")
			os.WriteFile(cfg, fmt.Appendf(nil, `{"listen": "127.0.0.1:0", "state_dir": %q, "store": %q, "send_rate": -1,
  "max_connections_per_ip": 100,
  "devices": [{"name": "scanners", "account": "alice", "networks": [%q]}]}`, filepath.Join(dir, "state"), store, deviceIP+"/32"), 0o600)
			cmd := exec.Command(bin, "relay", "--config", cfg, "--smtp", e.SMTPAddr())
			stderr, _ := cmd.StderrPipe()
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			addr := listening(b, stderr)
			start := time.Now()
			cpu0 := procCPU(cmd.Process.Pid)
			lat, wall := load(b, n, func() (*smtp.Client, error) { return dialFrom(deviceIP, addr) })
			c1 := procCPU(cmd.Process.Pid)
			r := result{accepted: wall, lat: lat, cpu: c1.sub(cpu0), deliveredEarly: len(e.Messages())}
			r.delivered = waitDelivered(b, e, n, start)
			r.rssKB = vmHWM(cmd.Process.Pid)
			cmd.Process.Signal(os.Interrupt)
			cmd.Wait()
			r.report(b, n)
		}
	})
	b.Run("postfix", func(b *testing.B) { benchPostfix(b, n, false) })
	b.Run("postfix-tls-reuse", func(b *testing.B) { benchPostfix(b, n, true) })
}

var listeningRE = regexp.MustCompile(`relay listening on (\S+) \(STARTTLS\)`)

func listening(b *testing.B, r interface{ Read([]byte) (int, error) }) string {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if m := listeningRE.FindStringSubmatch(sc.Text()); m != nil {
			go func() {
				for sc.Scan() {
				}
			}()
			return m[1]
		}
	}
	b.Fatal("the relay exited before listening")
	return ""
}

// cpuTime is the CPU time a process has used, in clock ticks.
type cpuTime struct{ user, sys int64 }

func (c cpuTime) sub(d cpuTime) cpuTime { return cpuTime{c.user - d.user, c.sys - d.sys} }

// clockTicks is the unit of utime and stime in /proc/PID/stat
// (sysconf(_SC_CLK_TCK), 100 on Linux: proc(5)).
const clockTicks = 100

// procCPU reads utime and stime (fields 14 and 15) of /proc/PID/stat; the
// fields after the command name, which may hold spaces, start at field 3.
func procCPU(pid int) cpuTime {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	i := strings.LastIndexByte(string(b), ')')
	if err != nil || i < 0 || i+2 > len(b) {
		return cpuTime{}
	}
	f := strings.Fields(string(b[i+2:]))
	if len(f) < 13 {
		return cpuTime{}
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return cpuTime{u, s}
}

func buildCommand(b *testing.B) string {
	bin := filepath.Join(b.TempDir(), "oauthmail")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/oauthmail").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// vmHWM is a process's peak resident set size in KiB.
func vmHWM(pid int) int64 {
	return procStatusKB(pid, "VmHWM:")
}

func procStatusKB(pid int, field string) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, field) {
			f := strings.Fields(l)
			if len(f) >= 2 {
				n, _ := strconv.ParseInt(f[1], 10, 64)
				return n
			}
		}
	}
	return 0
}
