package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsclient"
	"github.com/levee-dots/levee/lab"
	"github.com/levee-dots/levee/pki"
)

// exaEvent is one FlowSpec NLRI in an UPDATE as ExaBGP received it.
type exaEvent struct {
	update   int // index of the UPDATE among those read
	withdraw bool
	dest     string // destination prefix
}

func (e exaEvent) String() string {
	verb := "announce"
	if e.withdraw {
		verb = "withdraw"
	}
	return fmt.Sprintf("update %d: %s %s", e.update, verb, e.dest)
}

// exaFlowEvents reads the FlowSpec announcements and withdrawals ExaBGP
// received, in the order it received them, from the file its API helper
// appends every message to (received.jsonl in its directory).
func exaFlowEvents(t *testing.T, exa *lab.ExaBGP) []exaEvent {
	t.Helper()
	f, err := os.Open(filepath.Join(exa.Dir(), "received.jsonl"))
	if err != nil {
		t.Fatalf("ExaBGP's message log: %v", err)
	}
	defer f.Close()
	type flow struct {
		Dest4 []string `json:"destination-ipv4"`
		Dest6 []string `json:"destination-ipv6"`
	}
	var msg struct {
		Type     string `json:"type"`
		Neighbor struct {
			Message struct {
				Update *struct {
					Announce map[string]map[string][]flow `json:"announce"`
					Withdraw map[string][]flow            `json:"withdraw"`
				} `json:"update"`
			} `json:"message"`
		} `json:"neighbor"`
	}
	dest := func(f flow) string { return strings.Join(append(f.Dest4, f.Dest6...), " ") }
	var out []exaEvent
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for n := 0; sc.Scan(); {
		msg.Type, msg.Neighbor.Message.Update = "", nil
		if err := json.Unmarshal(sc.Bytes(), &msg); err != nil {
			t.Fatalf("ExaBGP's message log: %v: %.200s", err, sc.Text())
		}
		if msg.Type != "update" || msg.Neighbor.Message.Update == nil {
			continue
		}
		n++
		u := msg.Neighbor.Message.Update
		// ExaBGP lists an UPDATE's withdrawals and announcements apart; in
		// one UPDATE they reach the router together, so their order within
		// it does not matter here.
		for fam, flows := range u.Withdraw {
			if strings.HasSuffix(fam, " flow") {
				for _, f := range flows {
					out = append(out, exaEvent{update: n, withdraw: true, dest: dest(f)})
				}
			}
		}
		for fam, byNH := range u.Announce {
			if strings.HasSuffix(fam, " flow") {
				for _, flows := range byNH {
					for _, f := range flows {
						out = append(out, exaEvent{update: n, dest: dest(f)})
					}
				}
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("ExaBGP's message log: %v", err)
	}
	return out
}

// TestMakeBeforeBreak: when a client's new request supersedes its older
// ones ("higher mid wins", RFC 9132 §4.4.1) the router must receive the new
// rule before any of the old ones is withdrawn, or the target is exposed in
// between. Six mitigations for six /32s, then one for the covering /29: at
// ExaBGP the /29's announcement comes before (or in the same UPDATE as) the
// first of the six withdrawals, and the 2.01 names the superseded mids in
// its levee:note ("supersedes mids 1, 2, 3, 4, 5, 6").
func TestMakeBeforeBreak(t *testing.T) {
	bin := buildDotsd(t)
	exa := lab.StartExaBGP(t, lab.Options{})
	dir, port := t.TempDir(), freePort(t)
	if _, err := pki.Dev(dir, []string{"alpha"}); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`signal: {listen: ["127.0.0.1:%d"]}
tls: {certificate: server/cert.pem, key: server/key.pem, client-cas: [ca.pem]}
store: {path: levee.db}
policy: {active-but-terminating: 1s}
log: {level: debug}
clients:
  - {name: alpha, prefixes: ["203.0.113.0/24"], match: {common-names: [alpha]}}
divert:
  bgp:
    local-as: 65001
    router-id: 192.0.2.254
    domains: {alpha: {countermeasure: flowspec}}
    neighbors:
      - {name: exabgp, address: %q, port: %d, peer-as: 65000, local-address: 127.0.0.1}
`, port, exa.Addr().Addr(), exa.Addr().Port())
	path := filepath.Join(dir, "dotsd.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	startDotsd(t, bin, "--config", path)
	alpha := dialAs(t, dir, "alpha", fmt.Sprintf("127.0.0.1:%d", port))
	waitUntil(t, "exabgp established", func() (bool, string) { return exa.Established(), "exabgp not established" })

	// Three rounds (/29s at .8, .16 and .24): a server that announces and
	// withdraws concurrently may get the order right by chance once.
	var held []string // the coverings of the rounds done
	for round := range 3 {
		held = append(held, supersede(t, exa, alpha, uint32(7*round+1), 8+8*round, held))
	}
}

// exaHolds reports whether ExaBGP holds exactly FlowSpec rules for dests.
func exaHolds(exa *lab.ExaBGP, dests ...string) func() (bool, string) {
	want := slices.Sorted(slices.Values(dests))
	return func() (bool, string) {
		var got []string
		for _, r := range exa.Routes() {
			if r.FlowSpec != nil {
				got = append(got, r.FlowSpec["destination"])
			}
		}
		slices.Sort(got)
		return slices.Equal(got, want), fmt.Sprintf("ExaBGP holds FlowSpec rules for %v, want %v", got, want)
	}
}

// supersede runs one round of TestMakeBeforeBreak: mids mid … mid+5 for the
// six /32s from 203.0.113.<first>, then mid+6 for their /29, while ExaBGP
// also holds held. It returns the /29.
func supersede(t *testing.T, exa *lab.ExaBGP, alpha *dotsclient.Client, mid uint32, first int, held []string) string {
	var small, mids []string
	for i := range 6 {
		small = append(small, fmt.Sprintf("203.0.113.%d/32", first+i))
		mids = append(mids, fmt.Sprint(mid+uint32(i)))
		expectCode(t, fmt.Sprintf("mid %d", mid+uint32(i)), dots.Created)(alpha.Mitigate(reqCtx(t), mid+uint32(i),
			dots.Scope{TargetPrefix: []string{small[i]}, Lifetime: dots.Ptr[int64](3600)}))
	}
	waitUntil(t, "the six /32 rules at ExaBGP", exaHolds(exa, append(slices.Clone(held), small...)...))
	before := len(exaFlowEvents(t, exa))

	covering, top := fmt.Sprintf("203.0.113.%d/29", first), mid+6
	r := expectCode(t, fmt.Sprintf("mid %d for the covering /29", top), dots.Created)(alpha.Mitigate(reqCtx(t), top,
		dots.Scope{TargetPrefix: []string{covering}, Lifetime: dots.Ptr[int64](3600)}))
	note := ""
	if r.Body != nil && r.Body.MitigationScope != nil && len(r.Body.MitigationScope.Scope) == 1 {
		note = r.Body.MitigationScope.Scope[0].Note
	}
	if want := "supersedes mids " + strings.Join(mids, ", "); !strings.Contains(note, want) {
		t.Errorf("the 2.01 to mid %d has levee:note %q; want it to contain %q", top, note, want)
	}
	waitUntil(t, "only the /29 rule at ExaBGP", exaHolds(exa, append(slices.Clone(held), covering)...))

	events := exaFlowEvents(t, exa)[before:]
	announce, firstWithdraw := -1, -1
	var seq []string
	for _, e := range events {
		switch {
		case !e.withdraw && e.dest == covering && announce < 0:
			announce = e.update
		case e.withdraw && slices.Contains(small, e.dest) && firstWithdraw < 0:
			firstWithdraw = e.update
		}
		seq = append(seq, e.String())
	}
	if announce < 0 || firstWithdraw < 0 {
		t.Fatalf("ExaBGP did not receive the announcement of %s and the withdrawals of the six /32s; after mid %d it received:\n  %s",
			covering, top, strings.Join(seq, "\n  "))
	}
	if announce > firstWithdraw {
		t.Errorf("break before make: ExaBGP received a withdrawal of a superseded /32 (update %d) before the announcement of %s (update %d), "+
			"so the target was exposed in between; after mid %d it received, in order:\n  %s",
			firstWithdraw, covering, announce, top, strings.Join(seq, "\n  "))
	}
	return covering
}
