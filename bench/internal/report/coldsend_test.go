package main

import (
	"strings"
	"testing"
)

// Figure 7's overlapped row is held to the floor and to the sequential path
// of its own link, and only the 20/20 ms link carries the goal.
func TestColdSendRows(t *testing.T) {
	const out = `BenchmarkColdSend/login20-smtp20/floor-2 5 1 ns/op 8.000 cp-rt 3.000 login-rt 150 refresh-ms 250 setup-ms 330 smtp-ms 8.000 smtp-rt 330 wall-ms
BenchmarkColdSend/login20-smtp20/sequential-2 5 1 ns/op 11.00 cp-rt 3.000 login-rt 8.000 smtp-rt 480 wall-ms
BenchmarkColdSend/login20-smtp20/overlapped-2 5 1 ns/op 8.000 cp-rt 3.000 login-rt 8.000 smtp-rt 340 wall-ms
BenchmarkColdSend/login80-smtp20/overlapped-2 5 1 ns/op 3.000 login-rt 8.000 smtp-rt 700 wall-ms
BenchmarkColdSend/graph-login20-graph20/floor-2 3 1 ns/op 4.000 cp-rt 147 graph-ms 3.000 graph-rt 3.000 login-rt 154 refresh-ms 105 setup-ms 195 wall-ms
BenchmarkColdSend/graph-login20-graph20/sequential-2 3 1 ns/op 6.000 cp-rt 3.000 graph-rt 3.000 login-rt 296 wall-ms
BenchmarkColdSend/graph-login20-graph20/overlapped-2 3 1 ns/op 4.000 cp-rt 3.000 graph-rt 3.000 login-rt 196 wall-ms
BenchmarkColdSend/reconnect/full-handshake-2 5 1 ns/op 300 dial-ms 0 resumed 9.000 rt
BenchmarkColdSend/reconnect/resumed-2 5 1 ns/op 300 dial-ms 1.000 resumed 9.000 rt
`
	s := samples{}
	if err := parse(strings.NewReader(out), s); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range coldSendRows(s) {
		got = append(got, r.figure+"|"+r.what+"|"+r.value+"|"+r.ratio+"|"+r.verdict)
	}
	want := []string{
		"7 cold send, login 20 / SMTP 20 ms|floor: max(refresh, set-up) + AUTH + transaction|8.00 RT / 330 ms|refresh 150 ms, set-up 250 ms, SMTP send alone 330 ms|",
		"7 cold send, login 20 / SMTP 20 ms|sequential: refresh, then send|11.0 RT / 480 ms|1.45× floor wall|",
		"7 cold send, login 20 / SMTP 20 ms|overlapped: Mailer.Send|8.00 RT / 340 ms|1.03× floor wall, 1.41× faster than sequential|met",
		"7 cold send, login 80 / SMTP 20 ms|overlapped: Mailer.Send|login 3.00 + SMTP 8.00 RT / 700 ms||",
		"7 cold send via Graph, login 20 / Graph 20 ms|floor: max(refresh, TCP+TLS to Graph) + sendMail|4.00 RT / 195 ms|refresh 154 ms, set-up 105 ms, Graph send alone 147 ms|",
		"7 cold send via Graph, login 20 / Graph 20 ms|sequential: refresh, then send|6.00 RT / 296 ms|1.52× floor wall|",
		"7 cold send via Graph, login 20 / Graph 20 ms|overlapped: Mailer.Send|4.00 RT / 196 ms|1.01× floor wall, 1.51× faster than sequential|met",
		"7 SMTP reconnect @20 ms|full TLS handshake|9.00 RT / dial 300 ms||",
		"7 SMTP reconnect @20 ms|TLS session resumed (1.00 of dials)|9.00 RT / dial 300 ms|saves 0.00 RT, 1.00× dial time|not kept",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("rows:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if rs := coldSendRows(samples{}); len(rs) != 3 || rs[0].value != "not measured" {
		t.Errorf("no figure 7 output: %+v, want three not-measured rows", rs)
	}
}
