// Command report turns the output of the bench benchmarks and the binary-size
// builds of bench/run into the table of bench/RESULTS.md: the median of the runs of
// each figure, its ratio against the peer or floor, and whether the goal was
// met. It prints the table and writes it, with the machine, Go version and
// date, to the file named by -out.
//
// # Security
//
// It reads only benchmark output and /proc; it sees no tokens.
//
// # Testing
//
// bench/run is its only caller; its parsing is covered by report_test.go.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// samples maps benchmark name (without the -GOMAXPROCS suffix) and unit to the
// values of every run.
type samples map[string]map[string][]float64

var procSuffix = regexp.MustCompile(`-\d+$`)

// parse reads `go test -bench` output.
func parse(r io.Reader, into samples) error {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		name := procSuffix.ReplaceAllString(f[0], "")
		if into[name] == nil {
			into[name] = map[string][]float64{}
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			into[name][f[i+1]] = append(into[name][f[i+1]], v)
		}
	}
	return sc.Err()
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// get returns the median of a metric and whether it was measured.
func (s samples) get(name, unit string) (float64, bool) {
	v := s[name][unit]
	return median(v), len(v) > 0
}

func (s samples) runs(name, unit string) int { return len(s[name][unit]) }

type row struct{ figure, what, value, ratio, goal, verdict string }

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "**missed**"
}

func num(v float64) string {
	switch {
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

type size struct {
	target           string
	firmware, floor  int64
	keyringSyms      int
	firmwareBuildErr bool
	// pkgSyms counts the symbols of packages a firmware should link only if
	// it asks for them ("image/png:0,compress/zlib:0,..."), in that order.
	pkgSyms []pkgCount
	// baseRef and baseFirmware are the firmware size at an earlier commit,
	// built in the same run (bench/run with BASE=ref), 0 if none.
	baseRef      string
	baseFirmware int64
}

type pkgCount struct {
	pkg string
	n   int
}

func readSizes(path string) ([]size, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []size
	for l := range strings.Lines(string(b)) {
		f := strings.Fields(l)
		if len(f) < 4 {
			continue
		}
		var s size
		s.target = f[0]
		s.firmware, err = strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			s.firmwareBuildErr = true
		}
		s.floor, _ = strconv.ParseInt(f[2], 10, 64)
		s.keyringSyms, _ = strconv.Atoi(f[3])
		for _, x := range f[4:] {
			if ref, n, ok := strings.Cut(strings.TrimPrefix(x, "base="), ":"); ok && strings.HasPrefix(x, "base=") {
				s.baseRef = ref
				s.baseFirmware, _ = strconv.ParseInt(n, 10, 64)
				continue
			}
			for kv := range strings.SplitSeq(x, ",") {
				if k, v, ok := strings.Cut(kv, ":"); ok {
					n, _ := strconv.Atoi(v)
					s.pkgSyms = append(s.pkgSyms, pkgCount{k, n})
				}
			}
		}
		out = append(out, s)
	}
	return out, nil
}

func rows(s samples, sizes []size) []row {
	var rs []row
	add := func(r row) { rs = append(rs, r) }
	missing := "not measured"

	// 1. One message, fresh connection, 20 ms each way. ours and floor send
	// with BDAT (the emulator offers CHUNKING); ours-data, msmtp and
	// floor-data with DATA. Each is compared with the floor of its own path:
	// round trips with floor-rt or data-floor-rt, wall with the floor or
	// floor-data client.
	const one = "BenchmarkOneMessage/"
	msmtpWall, okMW := s.get(one+"msmtp", "ns/op")
	for _, who := range []string{"ours", "ours-data", "msmtp", "floor", "floor-data"} {
		rt, ok := s.get(one+who, "rt/op")
		wall, _ := s.get(one+who, "ns/op")
		if !ok {
			if who != "ours-data" && who != "floor-data" { // added with BDAT; older raw output lacks them
				add(row{"1 one message @20 ms", who, missing, "", "", ""})
			}
			continue
		}
		ref, unit := "floor", "floor-rt"
		if who == "ours-data" || who == "msmtp" || who == "floor-data" {
			ref, unit = "floor-data", "data-floor-rt"
		}
		refRT, okR := s.get(one+who, unit)
		if !okR { // raw output from before BDAT: one floor, with DATA
			ref = "floor"
			refRT, okR = s.get(one+who, "floor-rt")
		}
		refWall, okW := s.get(one+ref, "ns/op")
		r := row{figure: "1 one message @20 ms", what: who + " round trips / wall",
			value: fmt.Sprintf("%s RT / %s ms", num(rt), num(wall/1e6))}
		var ratio []string
		if okR {
			ratio = append(ratio, fmt.Sprintf("%s× %s RT", num(rt/refRT), ref))
		}
		if okW {
			ratio = append(ratio, fmt.Sprintf("%s× %s wall", num(wall/refWall), ref))
		}
		if who == "ours" {
			r.goal = fmt.Sprintf("RT = floor (%s); wall ≤ msmtp", num(refRT))
			ok := okR && rt <= refRT && (!okMW || wall <= msmtpWall)
			if okMW {
				ratio = append(ratio, fmt.Sprintf("%s× msmtp wall", num(wall/msmtpWall)))
			}
			r.verdict = verdict(ok)
		}
		r.ratio = strings.Join(ratio, ", ")
		add(r)
	}

	// 2. 100 messages on loopback.
	const batch = "BenchmarkBatch100/"
	msmtpRate, okM := s.get(batch+"msmtp-process-per-msg", "msg/s")
	for _, who := range []string{"ours-session", "msmtp-process-per-msg", "ours-conn-per-msg"} {
		v, ok := s.get(batch+who, "msg/s")
		if !ok {
			add(row{"2 100 messages", who, missing, "", "", ""})
			continue
		}
		r := row{figure: "2 100 messages", what: who, value: num(v) + " msg/s"}
		if okM {
			r.ratio = num(v/msmtpRate) + "× msmtp"
		}
		if who == "ours-session" {
			r.goal = "≥ 20× msmtp"
			r.verdict = verdict(okM && v/msmtpRate >= 20)
		}
		add(r)
	}

	// 3. 50 MB attachment.
	const att = "BenchmarkAttachment50MB/"
	ours, okO := s.get(att+"ours", "MB/s")
	cp, okC := s.get(att+"tls-copy", "MB/s")
	rss, _ := s.get(att+"ours", "peak-RSS-MB")
	cpRSS, _ := s.get(att+"tls-copy", "peak-RSS-MB")
	if okO {
		r := row{figure: "3 50 MB attachment", what: "ours throughput", value: num(ours) + " MB/s", goal: "≥ 0.8× copy"}
		if okC {
			r.ratio = num(ours/cp) + "× copy"
			r.verdict = verdict(ours/cp >= 0.8)
		}
		add(r)
		if c, ok := s.get(att+"ours", "child-cpu-s"); ok {
			w, _ := s.get(att+"ours", "child-wall-s")
			add(row{"3 50 MB attachment", "ours sender CPU / wall", fmt.Sprintf("%s s / %s s", num(c), num(w)), "", "", ""})
		}
		add(row{"3 50 MB attachment", "ours peak RSS", num(rss) + " MB", "", "≤ 32 MB", verdict(rss <= 32)})
	} else {
		add(row{"3 50 MB attachment", "ours", missing, "", "", ""})
	}
	for _, v := range []struct{ name, what string }{
		{"ours-to-discard-sink", "ours → go-smtp server that discards"},
		{"ours-to-raw-sink", "ours → raw sink (BDAT, binary)"},
		{"ours-base64-to-raw-sink", "ours, DisableChunking → raw sink (DATA, base64)"},
	} {
		if x, ok := s.get(att+v.name, "MB/s"); ok {
			c, _ := s.get(att+v.name, "child-cpu-s")
			w, _ := s.get(att+v.name, "child-wall-s")
			value := fmt.Sprintf("%s MB/s (sender CPU %s s / wall %s s", num(x), num(c), num(w))
			if mb, ok := s.get(att+v.name, "wire-MB"); ok {
				value += fmt.Sprintf("; %s MB of content on the wire", num(mb))
			}
			r := row{figure: "3 50 MB attachment", what: v.what, value: value + ")"}
			if okC {
				r.ratio = num(x/cp) + "× copy"
			}
			add(r)
		}
	}
	if okC {
		add(row{"3 50 MB attachment", "plain TLS copy", fmt.Sprintf("%s MB/s, peak RSS %s MB", num(cp), num(cpRSS)), "", "", ""})
	}

	// 4. Binary size.
	for _, z := range sizes {
		if z.firmwareBuildErr {
			add(row{"4 firmware size", z.target, "firmware build failed", "", "≤ 1.05× floor", "**missed**"})
			continue
		}
		ratio := float64(z.firmware) / float64(z.floor)
		add(row{"4 firmware size", z.target + " firmware / floor",
			fmt.Sprintf("%s / %s KiB", num(float64(z.firmware)/1024), num(float64(z.floor)/1024)),
			num(ratio) + "× floor", "≤ 1.05× floor", verdict(ratio <= 1.05)})
		if z.baseFirmware > 0 {
			add(row{"4 firmware size", z.target + " firmware at " + z.baseRef + " / floor",
				fmt.Sprintf("%s / %s KiB", num(float64(z.baseFirmware)/1024), num(float64(z.floor)/1024)),
				num(float64(z.baseFirmware)/float64(z.floor)) + "× floor", "", ""})
		}
		add(row{"4 firmware size", z.target + " keyring/godbus symbols", strconv.Itoa(z.keyringSyms), "", "0", verdict(z.keyringSyms == 0)})
		if len(z.pkgSyms) > 0 {
			var names, counts []string
			none := true
			for _, p := range z.pkgSyms {
				names = append(names, p.pkg)
				counts = append(counts, strconv.Itoa(p.n))
				none = none && p.n == 0
			}
			add(row{"4 firmware size", z.target + " " + strings.Join(names, ", ") + " symbols", strings.Join(counts, " / "), "", "0 each", verdict(none)})
		}
	}

	// 5. Refresh under load.
	const ref = "BenchmarkRefreshUnderLoad/expired"
	const base = "BenchmarkRefreshUnderLoad/valid-token"
	if tr, ok := s.get(ref, "token-requests"); ok {
		p50, _ := s.get(ref, "p50-ms")
		p99, _ := s.get(ref, "p99-ms")
		add(row{"5 refresh, 1,000 sends", "token requests", num(tr), "", "exactly 1", verdict(tr == 1)})
		r := row{figure: "5 refresh, 1,000 sends", what: "latency p50 / p99", value: fmt.Sprintf("%s / %s ms", num(p50), num(p99))}
		if b50, ok := s.get(base, "p50-ms"); ok {
			b99, _ := s.get(base, "p99-ms")
			r.ratio = fmt.Sprintf("%s× / %s× same load, valid token", num(p50/b50), num(p99/b99))
			add(r)
			add(row{"5 refresh, 1,000 sends", "same load, valid token p50 / p99", fmt.Sprintf("%s / %s ms", num(b50), num(b99)), "", "", ""})
		} else {
			add(r)
		}
	} else {
		add(row{"5 refresh, 1,000 sends", "", missing, "", "", ""})
	}

	// 6. Allocations per message.
	for _, who := range []string{"smtpx-session", "smtpx-send", "oauthmail-send"} {
		a, ok := s.get("BenchmarkAllocs/"+who, "allocs/op")
		by, _ := s.get("BenchmarkAllocs/"+who, "B/op")
		if !ok {
			add(row{"6 allocations", who, missing, "", "", ""})
			continue
		}
		add(row{"6 allocations", who, fmt.Sprintf("%s allocs, %s KiB per message", num(a), num(by/1024)), "", "", ""})
	}
	rs = append(rs, coldSendRows(s)...)
	rs = append(rs, graphRows(s)...)
	return rs
}

func table(rs []row) string {
	var b strings.Builder
	b.WriteString("| figure | what | median | ratio | goal | goal met |\n|---|---|---|---|---|---|\n")
	for _, r := range rs {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", r.figure, r.what, r.value, r.ratio, r.goal, r.verdict)
	}
	return b.String()
}

func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for l := range strings.Lines(string(b)) {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	mem := "unknown memory"
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for l := range strings.Lines(string(b)) {
			if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
				kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
				mem = fmt.Sprintf("%.1f GiB RAM", kb/(1<<20))
			}
		}
	}
	return fmt.Sprintf("%s, %d CPUs (nproc), %s, %s/%s", model, runtime.NumCPU(), mem, runtime.GOOS, runtime.GOARCH)
}

func main() {
	out := flag.String("out", "", "markdown file to write")
	sizesFile := flag.String("sizes", "", "binary sizes: lines of 'target firmware floor keyring-symbols'")
	runs := flag.Int("runs", 0, "runs per figure (for the header)")
	notes := flag.String("notes", "", "file with notes to append")
	commit := flag.String("commit", "", "commit of the tree that was measured")
	date := flag.String("date", "", "when it was measured; empty means now")
	remeasured := flag.String("remeasured", "", "file of lines saying which figures were re-measured after the full run (ONLY=...)")
	flag.Parse()
	s := samples{}
	for _, f := range flag.Args() {
		r, err := os.Open(f)
		if err != nil {
			fmt.Fprintln(os.Stderr, "report:", err)
			os.Exit(1)
		}
		err = parse(r, s)
		r.Close()
		if err != nil {
			fmt.Fprintln(os.Stderr, "report:", err)
			os.Exit(1)
		}
	}
	sizes, err := readSizes(*sizesFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
	t := table(rows(s, sizes))
	fmt.Print(t)
	if *out == "" {
		return
	}
	var b strings.Builder
	b.WriteString("# devicemail performance figures\n\n")
	b.WriteString("Written by `bench/run`; every number below was measured in that run.\n\n")
	if *date == "" {
		*date = time.Now().UTC().Format("2006-01-02 15:04 UTC")
	}
	fmt.Fprintf(&b, "- Machine: %s\n- Go: %s\n- Date: %s\n- Tree: commit %s (plus any uncommitted work)\n- Runs per figure: %d (median shown)\n\n",
		machine(), runtime.Version(), *date, *commit, *runs)
	if *remeasured != "" {
		if r, err := os.ReadFile(*remeasured); err == nil {
			for _, l := range strings.Split(strings.TrimSpace(string(r)), "\n") {
				if l != "" {
					fmt.Fprintf(&b, "- Re-measured: %s\n", l)
				}
			}
			if len(strings.TrimSpace(string(r))) > 0 {
				b.WriteString("\n")
			}
		}
	}
	b.WriteString(t)
	if *notes != "" {
		if n, err := os.ReadFile(*notes); err == nil {
			b.WriteString("\n")
			b.Write(n)
		}
	}
	if err := os.WriteFile(*out, []byte(b.String()), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
}
