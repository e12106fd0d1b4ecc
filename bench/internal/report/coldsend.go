package main

import "fmt"

// coldSendRows are the rows of figure 7: a send with an expired token and no
// open connection, sequential (refresh, then send) against overlapped
// (refresh during the SMTP set-up) and the floor max(refresh, set-up) +
// AUTH + transaction; and an SMTP reconnect with and without TLS session
// resumption.
func coldSendRows(s samples) []row {
	var rs []row
	const cold = "BenchmarkColdSend/"
	links := []struct{ name, label string }{
		{"login20-smtp20", "7 cold send, login 20 / SMTP 20 ms"},
		{"login80-smtp20", "7 cold send, login 80 / SMTP 20 ms"},
	}
	for i, l := range links {
		p := cold + l.name + "/"
		floor, okF := s.get(p+"floor", "wall-ms")
		seq, okS := s.get(p+"sequential", "wall-ms")
		ovl, okO := s.get(p+"overlapped", "wall-ms")
		if !okF && !okS && !okO {
			rs = append(rs, row{l.label, "", "not measured", "", "", ""})
			continue
		}
		// Round trips on the critical path when both links have the same
		// delay; otherwise each link's count, which differ in length.
		value := func(who string) string {
			wall, _ := s.get(p+who, "wall-ms")
			if rt, ok := s.get(p+who, "cp-rt"); ok {
				return fmt.Sprintf("%s RT / %s ms", num(rt), num(wall))
			}
			l, _ := s.get(p+who, "login-rt")
			m, _ := s.get(p+who, "smtp-rt")
			return fmt.Sprintf("login %s + SMTP %s RT / %s ms", num(l), num(m), num(wall))
		}
		if okF {
			refresh, _ := s.get(p+"floor", "refresh-ms")
			setup, _ := s.get(p+"floor", "setup-ms")
			alone, _ := s.get(p+"floor", "smtp-ms")
			rs = append(rs, row{l.label, "floor: max(refresh, set-up) + AUTH + transaction", value("floor"),
				fmt.Sprintf("refresh %s ms, set-up %s ms, SMTP send alone %s ms", num(refresh), num(setup), num(alone)), "", ""})
		}
		if okS {
			r := row{figure: l.label, what: "sequential: refresh, then send", value: value("sequential")}
			if okF {
				r.ratio = num(seq/floor) + "× floor wall"
			}
			rs = append(rs, r)
		}
		if okO {
			r := row{figure: l.label, what: "overlapped: Mailer.Send", value: value("overlapped")}
			var ratio string
			if okF {
				ratio = num(ovl/floor) + "× floor wall"
			}
			if okS {
				ratio += fmt.Sprintf(", %s× faster than sequential", num(seq/ovl))
			}
			r.ratio = ratio
			if i == 0 {
				r.goal = "≤ 1.05× floor; ≥ 1.4× faster than sequential"
				r.verdict = verdict(okF && okS && ovl <= 1.05*floor && seq/ovl >= 1.4)
			}
			rs = append(rs, r)
		}
	}
	const re = cold + "reconnect/"
	full, okFull := s.get(re+"full-handshake", "rt")
	res, okRes := s.get(re+"resumed", "rt")
	if okFull && okRes {
		fullMS, _ := s.get(re+"full-handshake", "dial-ms")
		resMS, _ := s.get(re+"resumed", "dial-ms")
		share, _ := s.get(re+"resumed", "resumed")
		const fig = "7 SMTP reconnect @20 ms"
		rs = append(rs, row{fig, "full TLS handshake", fmt.Sprintf("%s RT / dial %s ms", num(full), num(fullMS)), "", "", ""})
		rs = append(rs, row{fig, fmt.Sprintf("TLS session resumed (%s of dials)", num(share)), fmt.Sprintf("%s RT / dial %s ms", num(res), num(resMS)),
			fmt.Sprintf("saves %s RT, %s× dial time", num(full-res), num(resMS/fullMS)), "kept only if it saves a round trip", keptIf(full-res >= 1)})
	}
	return rs
}

func keptIf(ok bool) string {
	if ok {
		return "kept"
	}
	return "not kept"
}
