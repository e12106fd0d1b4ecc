package main

import "fmt"

// coldSendRows are the rows of figure 7: a send with an expired token and no
// open connection, sequential (refresh, then send) against overlapped
// (refresh during the SMTP set-up) and the floor max(refresh, set-up) +
// AUTH + transaction, for SMTP and for Microsoft Graph (the connection to
// the Graph host opened during the refresh); and an SMTP reconnect with and without TLS session
// resumption.
func coldSendRows(s samples) []row {
	var rs []row
	const cold = "BenchmarkColdSend/"
	links := []struct {
		name, label string
		peer        string // the metric prefix of the send link: smtp or graph
		floor       string // what the floor row says
		goal        string // the goal of the overlapped row, if any
	}{
		{"login20-smtp20", "7 cold send, login 20 / SMTP 20 ms", "smtp", "floor: max(refresh, set-up) + AUTH + transaction",
			"≤ 1.05× floor; ≥ 1.4× faster than sequential"},
		{"login80-smtp20", "7 cold send, login 80 / SMTP 20 ms", "smtp", "floor: max(refresh, set-up) + AUTH + transaction", ""},
		{"graph-login20-graph20", "7 cold send via Graph, login 20 / Graph 20 ms", "graph",
			"floor: max(refresh, TCP+TLS to Graph) + sendMail", "≤ 1.05× floor"},
	}
	for _, l := range links {
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
			lrt, _ := s.get(p+who, "login-rt")
			m, _ := s.get(p+who, l.peer+"-rt")
			return fmt.Sprintf("login %s + %s %s RT / %s ms", num(lrt), peerName(l.peer), num(m), num(wall))
		}
		if okF {
			refresh, _ := s.get(p+"floor", "refresh-ms")
			setup, _ := s.get(p+"floor", "setup-ms")
			alone, _ := s.get(p+"floor", l.peer+"-ms")
			rs = append(rs, row{l.label, l.floor, value("floor"),
				fmt.Sprintf("refresh %s ms, set-up %s ms, %s send alone %s ms", num(refresh), num(setup), peerName(l.peer), num(alone)), "", ""})
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
			switch l.goal {
			case "≤ 1.05× floor; ≥ 1.4× faster than sequential":
				r.goal, r.verdict = l.goal, verdict(okF && okS && ovl <= 1.05*floor && seq/ovl >= 1.4)
			case "≤ 1.05× floor":
				r.goal, r.verdict = l.goal, verdict(okF && ovl <= 1.05*floor)
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

// peerName is how a row names the send link.
func peerName(peer string) string {
	if peer == "graph" {
		return "Graph"
	}
	return "SMTP"
}

func keptIf(ok bool) string {
	if ok {
		return "kept"
	}
	return "not kept"
}
