package main

import "fmt"

// graphRows are the rows of figure 8: one small message through Microsoft
// Graph against the one-request floor, and a 50 MB attachment through an
// upload session against a plain HTTPS PUT of the same file to the same
// server, which keeps it as it keeps an upload session's attachment, both
// sent by a child process.
func graphRows(s samples) []row {
	const missing = "not measured"
	const fig = "8 Graph"
	var rs []row
	const small = "BenchmarkGraph/small"
	if reqs, ok := s.get(small, "requests/op"); ok {
		up, _ := s.get(small, "wire-up-B/op")
		down, _ := s.get(small, "wire-down-B/op")
		ratio, _ := s.get(small, "base64-ratio")
		rs = append(rs, row{fig, "small message: requests", num(reqs), "floor 1", "1 request", verdict(reqs == 1)})
		rs = append(rs, row{fig, "small message: bytes on the wire (TLS included)", fmt.Sprintf("%s up / %s down", num(up), num(down)),
			fmt.Sprintf("body is base64 of the MIME: %s×", num(ratio)), "", ""})
	} else {
		rs = append(rs, row{fig + " small message", "", missing, "", "", ""})
	}
	upl, okU := s.get("BenchmarkGraph/upload-50MB", "MB/s")
	put, okP := s.get("BenchmarkGraph/https-put", "MB/s")
	if !okU {
		return append(rs, row{fig + " 50 MB upload", "", missing, "", "", ""})
	}
	rss, _ := s.get("BenchmarkGraph/upload-50MB", "peak-RSS-MB")
	cpu, _ := s.get("BenchmarkGraph/upload-50MB", "child-cpu-s")
	wall, _ := s.get("BenchmarkGraph/upload-50MB", "child-wall-s")
	r := row{figure: fig, what: "50 MB upload session: throughput",
		value: fmt.Sprintf("%s MB/s (sender CPU %s s of %s s)", num(upl), num(cpu), num(wall))}
	if okP {
		r.ratio = fmt.Sprintf("%s× plain HTTPS PUT kept the same way (%s MB/s)", num(upl/put), num(put))
		r.goal, r.verdict = "≥ 0.8× plain PUT", verdict(upl/put >= 0.8)
	}
	rs = append(rs, r)
	rs = append(rs, row{fig, "50 MB upload session: sender peak RSS", fmt.Sprintf("%s MB", num(rss)), "", "≤ 32 MB", verdict(rss <= 32)})
	if okP {
		pcpu, _ := s.get("BenchmarkGraph/https-put", "child-cpu-s")
		pwall, _ := s.get("BenchmarkGraph/https-put", "child-wall-s")
		prss, _ := s.get("BenchmarkGraph/https-put", "peak-RSS-MB")
		rs = append(rs, row{fig, "floor: plain HTTPS PUT of the same file, kept the same way",
			fmt.Sprintf("%s MB/s (sender CPU %s s of %s s, peak RSS %s MB)", num(put), num(pcpu), num(pwall), num(prss)), "", "", ""})
	}
	return rs
}
