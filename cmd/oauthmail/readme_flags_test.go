package main

import (
	"bufio"
	"os"
	"regexp"
	"strings"
	"testing"
)

// readmeUsage is one documented command line of README.md: the command (and
// for queue its subcommands), and the flags with their alternative values.
type readmeUsage struct {
	line  int
	cmd   []string            // e.g. ["login"], ["queue", "list"]
	flags map[string][]string // flag name -> values written a|b|c ("" for none)
}

var (
	readmeCommand = regexp.MustCompile(`^\s{4}oauthmail ([a-z]+)\s*(.*)$`)
	readmeFlag    = regexp.MustCompile(`--([a-z][a-z0-9-]*)(?:[ =]([a-z0-9-]+(?:\|[a-z0-9-]+)+))?`)
)

// readmeUsages reads the indented usage lines ("    oauthmail CMD ...",
// continued by deeper-indented lines) of README.md.
func readmeUsages(t *testing.T) []readmeUsage {
	t.Helper()
	f, err := os.Open("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		out []readmeUsage
		cur *readmeUsage
	)
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		l := sc.Text()
		if m := readmeCommand.FindStringSubmatch(l); m != nil {
			out = append(out, readmeUsage{line: n, cmd: []string{m[1]}, flags: map[string][]string{}})
			cur = &out[len(out)-1]
			rest := m[2]
			if m[1] == "queue" {
				sub, _, _ := strings.Cut(rest, " ")
				cur.cmd = append(cur.cmd, strings.Split(sub, "|")[0])
			}
			if m[1] == "relay" { // relay [run] | status | hash-password
				sub, _, _ := strings.Cut(strings.TrimSpace(rest), " ")
				if sub = strings.Trim(sub, "[]"); sub != "" && !strings.HasPrefix(sub, "-") {
					cur.cmd = append(cur.cmd, sub)
				}
			}
			cur.addFlags(rest)
			continue
		}
		if cur != nil && strings.HasPrefix(l, "      ") && strings.Contains(l, "--") {
			cur.addFlags(l)
			continue
		}
		cur = nil
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func (u *readmeUsage) addFlags(s string) {
	s, _, _ = strings.Cut(s, "#") // a trailing comment
	for _, m := range readmeFlag.FindAllStringSubmatch(s, -1) {
		var vals []string
		if m[2] != "" {
			vals = strings.Split(m[2], "|")
		}
		u.flags[m[1]] = append(u.flags[m[1]], vals...)
	}
}

// Every flag README.md documents in a usage line is in "oauthmail CMD -h",
// with every value it lists as a|b|c named in the flag's help.
func TestREADMEFlagsInHelp(t *testing.T) {
	usages := readmeUsages(t)
	if len(usages) < 10 {
		t.Fatalf("found %d usage lines in README.md; the parser no longer matches its layout", len(usages))
	}
	for _, u := range usages {
		r := runCmd(t, nil, append(u.cmd, "-h")...)
		help := r.stdout + r.stderr
		if r.status != exitOK {
			t.Errorf("README.md:%d: oauthmail %s -h: exit %d\n%s", u.line, strings.Join(u.cmd, " "), r.status, help)
			continue
		}
		for name, vals := range u.flags {
			re := regexp.MustCompile(`(?m)^\s+-` + regexp.QuoteMeta(name) + `(\s.*)?$\n?(\s{4,}.*)?`)
			m := re.FindString(help)
			if m == "" {
				t.Errorf("README.md:%d documents --%s, which \"oauthmail %s -h\" does not list", u.line, name, strings.Join(u.cmd, " "))
				continue
			}
			for _, v := range vals {
				if !strings.Contains(m, v) {
					t.Errorf("README.md:%d documents --%s %s, which the help of --%s does not name:\n%s", u.line, name, v, name, m)
				}
			}
		}
	}
}
