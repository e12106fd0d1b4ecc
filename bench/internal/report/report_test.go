package main

import (
	"os"
	"strings"
	"testing"
)

const sample = `goos: linux
BenchmarkOneMessage/ours-2    	       1	 501804057 ns/op	         9.000 floor-rt	        12.00 rt/op
BenchmarkOneMessage/ours-2    	       1	 401804057 ns/op	         9.000 floor-rt	        12.00 rt/op
BenchmarkOneMessage/ours-2    	       1	 601804057 ns/op	         9.000 floor-rt	        12.00 rt/op
BenchmarkOneMessage/floor-2   	       1	 491882096 ns/op	         9.000 floor-rt	         9.000 rt/op
BenchmarkRefreshUnderLoad/expired-2   	       1	  61137814 ns/op	        48.80 p50-ms	        60.84 p99-ms	         1.000 token-requests
BenchmarkAllocs/smtpx-session-2	 200	    385398 ns/op	   10688 B/op	     146 allocs/op
`

func TestParseMedian(t *testing.T) {
	s := samples{}
	if err := parse(strings.NewReader(sample), s); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.get("BenchmarkOneMessage/ours", "ns/op"); got != 501804057 {
		t.Errorf("median ns/op = %v, want 501804057", got)
	}
	if n := s.runs("BenchmarkOneMessage/ours", "rt/op"); n != 3 {
		t.Errorf("runs = %d, want 3", n)
	}
	if got, _ := s.get("BenchmarkAllocs/smtpx-session", "allocs/op"); got != 146 {
		t.Errorf("allocs/op = %v, want 146", got)
	}
	rs := rows(s, []size{{target: "linux/arm64", firmware: 105, floor: 100}})
	var verdicts []string
	for _, r := range rs {
		if r.verdict != "" {
			verdicts = append(verdicts, r.what+"="+r.verdict)
		}
	}
	want := "ours round trips / wall=**missed**|linux/arm64 firmware / floor=met|linux/arm64 keyring/godbus symbols=met|token requests=met"
	if got := strings.Join(verdicts, "|"); got != want {
		t.Errorf("verdicts:\n got %s\nwant %s", got, want)
	}
}

func TestMedianEven(t *testing.T) {
	if got := median([]float64{4, 1, 3, 2}); got != 2.5 {
		t.Errorf("median(4,1,3,2) = %v, want 2.5", got)
	}
}

// TestOneMessageRows checks that each client of figure 1 is compared with the
// floor of its own path: BDAT for ours, DATA for ours-data.
func TestOneMessageRows(t *testing.T) {
	const out = `BenchmarkOneMessage/ours-2 1 320000000 ns/op 8.000 floor-rt 8.000 rt/op
BenchmarkOneMessage/ours-data-2 1 360000000 ns/op 9.000 data-floor-rt 8.000 floor-rt 9.000 rt/op
BenchmarkOneMessage/msmtp-2 1 640000000 ns/op 9.000 data-floor-rt 8.000 floor-rt 11.00 rt/op
BenchmarkOneMessage/floor-2 1 320000000 ns/op 8.000 floor-rt 8.000 rt/op
BenchmarkOneMessage/floor-data-2 1 360000000 ns/op 9.000 data-floor-rt 8.000 floor-rt 9.000 rt/op
`
	s := samples{}
	if err := parse(strings.NewReader(out), s); err != nil {
		t.Fatal(err)
	}
	got := map[string]row{}
	for _, r := range rows(s, nil) {
		if strings.HasPrefix(r.figure, "1 ") {
			got[r.what] = r
		}
	}
	for what, want := range map[string]string{
		"ours round trips / wall":       "1.00× floor RT, 1.00× floor wall, 0.50× msmtp wall",
		"ours-data round trips / wall":  "1.00× floor-data RT, 1.00× floor-data wall",
		"msmtp round trips / wall":      "1.22× floor-data RT, 1.78× floor-data wall",
		"floor-data round trips / wall": "1.00× floor-data RT, 1.00× floor-data wall",
	} {
		if r, ok := got[what]; !ok || r.ratio != want {
			t.Errorf("%s: ratio %q, want %q", what, r.ratio, want)
		}
	}
	if v := got["ours round trips / wall"].verdict; v != "met" {
		t.Errorf("ours verdict %q, want met", v)
	}
}

// A sizes line may carry the symbol counts of packages the firmware should
// not link and the firmware size at an earlier commit of the same run.
func TestSizesExtras(t *testing.T) {
	path := t.TempDir() + "/sizes.txt"
	const lines = "linux/arm64 1040 1000 0 image/png:0,compress/zlib:0,os/exec:0,log/slog:101 base=166f763:1097\nlinux/arm 1000 1000 0\n"
	if err := os.WriteFile(path, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	sizes, err := readSizes(path)
	if err != nil || len(sizes) != 2 {
		t.Fatalf("readSizes = %v, %v", sizes, err)
	}
	got := map[string]row{}
	for _, r := range rows(samples{}, sizes) {
		got[r.what] = r
	}
	if r := got["linux/arm64 image/png, compress/zlib, os/exec, log/slog symbols"]; r.value != "0 / 0 / 0 / 101" || r.verdict != "**missed**" {
		t.Errorf("package symbols row = %+v", r)
	}
	if r := got["linux/arm64 firmware at 166f763 / floor"]; r.ratio != "1.10× floor" {
		t.Errorf("base row = %+v", r)
	}
	if _, ok := got["linux/arm package symbols"]; ok {
		t.Error("a line without extras has a package symbols row")
	}
}
