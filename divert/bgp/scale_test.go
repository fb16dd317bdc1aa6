package bgp

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/levee-dots/levee/lab"
)

// TestSyncAtScaleRealRouters is the restart path with many FlowSpec rules:
// Sync puts 2,400 rules with one action into the RIB before the sessions
// come up, so the routers get them all at once. Every rule must reach FRR,
// BIRD and ExaBGP, and no session may be reset afterwards. FRR 8.4
// refuses an UPDATE whose FlowSpec NLRI field is 4,096 octets or more and
// resets the session, which GoBGP's packing over the Extended Message
// capability produced without the update buckets (see maxNLRIBytes).
func TestSyncAtScaleRealRouters(t *testing.T) {
	if testing.Short() {
		t.Skip("starts FRR, BIRD and ExaBGP and announces 2,400 rules")
	}
	const n = 2400
	frr := lab.StartFRR(t, lab.Options{Families: []string{lab.IPv4FlowSpec}})
	bird := lab.StartBIRD(t, lab.Options{Families: []string{lab.IPv4FlowSpec}})
	exa := lab.StartExaBGP(t, lab.Options{Families: []string{lab.IPv4FlowSpec}})
	cfg := Config{LocalAS: 65001, RouterID: "192.0.2.254", MaxRoutesPerDomain: n, Domains: map[string]DomainPolicy{"beta": {}}}
	for _, p := range []lab.Peer{frr, bird, exa} {
		cfg.Neighbors = append(cfg.Neighbors, Neighbor{Name: p.Name(), Address: p.Addr().Addr().String(), Port: uint32(p.Addr().Port()),
			PeerAS: lab.PeerAS, LocalAddress: "127.0.0.1", Families: []string{"ipv4-flowspec"}, FlowSpecBudget: n})
	}
	b, _ := newSpeaker(t, cfg)
	ds := flowDiversions(n)
	start := time.Now()
	if err := b.Sync(context.Background(), ds); err != nil {
		t.Fatal(err)
	}
	t.Logf("Sync of %d FlowSpec diversions took %v", n, time.Since(start).Round(time.Millisecond))

	ctx := context.Background()
	counts := map[string]func() (int, error){
		"frr":    func() (int, error) { return frrFlowCount(ctx, frr) },
		"bird":   func() (int, error) { return birdFlowCount(ctx, bird) },
		"exabgp": func() (int, error) { return len(exa.Routes()), nil },
	}
	for _, name := range []string{"frr", "bird", "exabgp"} {
		err := lab.WaitFor(ctx, 90*time.Second, func() (bool, string) {
			got, err := counts[name]()
			return err == nil && got == n, fmt.Sprintf("%s holds %d of %d rules (%v); neighbors %+v", name, got, n, err, b.Neighbors())
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s holds all %d rules %v after Sync began", name, n, time.Since(start).Round(time.Millisecond))
	}
	// FRR reset the session every few seconds when it refused an UPDATE:
	// watch for longer than that.
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
		for _, ns := range b.Neighbors() {
			if !ns.Established || ns.Sessions != 1 {
				t.Fatalf("neighbor %s: established %v after %d sessions, want one session that stays up", ns.Name, ns.Established, ns.Sessions)
			}
		}
	}
	if got, err := frrFlowCount(ctx, frr); err != nil || got != n {
		t.Fatalf("frr holds %d of %d rules at the end (%v)", got, n, err)
	}
	// Withdrawing them all is as large a burst of MP_UNREACH_NLRI.
	start = time.Now()
	for _, d := range ds {
		_ = b.Withdraw(ctx, d.Key)
	}
	for _, name := range []string{"frr", "bird", "exabgp"} {
		err := lab.WaitFor(ctx, 60*time.Second, func() (bool, string) {
			got, err := counts[name]()
			return err == nil && got == 0, fmt.Sprintf("%s holds %d rules after the withdrawal (%v)", name, got, err)
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s holds no rule %v after the withdrawal began", name, time.Since(start).Round(time.Millisecond))
	}
	for _, ns := range b.Neighbors() {
		if !ns.Established || ns.Sessions != 1 {
			t.Fatalf("neighbor %s after the withdrawal: established %v after %d sessions, want one session that stays up", ns.Name, ns.Established, ns.Sessions)
		}
	}
	if log, err := os.ReadFile(filepath.Join(frr.Dir(), "frr.out")); err == nil && strings.Contains(string(log), "maximum reached") {
		t.Fatalf("frr refused an UPDATE:\n%s", grepLines(string(log), "flowspec"))
	}
}

// frrFlowCount is the number of IPv4 FlowSpec rules FRR accepted from the speaker.
func frrFlowCount(ctx context.Context, f *lab.FRR) (int, error) {
	out, err := f.Vtysh(ctx, "show bgp ipv4 flowspec summary json")
	if err != nil {
		return 0, err
	}
	var sum struct {
		Peers map[string]struct {
			PfxRcd int    `json:"pfxRcd"`
			State  string `json:"state"`
		} `json:"peers"`
	}
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		return 0, fmt.Errorf("frr summary: %w: %.200s", err, out)
	}
	return sum.Peers["127.0.0.1"].PfxRcd, nil
}

var birdCountRE = regexp.MustCompile(`(\d+) of \d+ routes`)

// birdFlowCount is the number of rules in BIRD's flowtab4.
func birdFlowCount(ctx context.Context, b *lab.BIRD) (int, error) {
	out, err := b.Birdc(ctx, "show", "route", "table", "flowtab4", "count")
	if err != nil {
		return 0, err
	}
	m := birdCountRE.FindStringSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("bird count: %.200s", out)
	}
	return strconv.Atoi(m[1])
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	if len(out) > 20 {
		out = out[:20]
	}
	return strings.Join(out, "\n")
}
