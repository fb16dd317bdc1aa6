package scrub

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/levee-dots/levee/divert"
	"github.com/levee-dots/levee/dots"
	node "github.com/levee-dots/levee/scrub"
)

// TestNamesNotDropped: the addresses of names in a scope with no port and
// no protocol are steered to the node and counted there, but no rule drops
// traffic to them unless names is drop-all; the status says so.
func TestNamesNotDropped(t *testing.T) {
	d := divert.Diversion{Key: divert.Key{CUID: "cuidA", MID: 3}, Domain: "alpha",
		Prefixes: pfx("203.0.113.10/32", "198.51.100.7/32"), FromNames: pfx("198.51.100.7/32")}
	cases := []struct {
		names      string
		wantDetail string
		wantIDs    []string
	}{
		{"", "scrubbing at node1; 198.51.100.7/32 from names: steered and counted, nothing dropped (names: scrub-only-named-ports)",
			[]string{"cuidA/3", "cuidA/3/names"}},
		{NamesScrubOnlyNamedPorts, "scrubbing at node1; 198.51.100.7/32 from names: steered and counted, nothing dropped (names: scrub-only-named-ports)",
			[]string{"cuidA/3", "cuidA/3/names"}},
		{NamesDropAll, "scrubbing at node1", []string{"cuidA/3"}},
	}
	for _, tc := range cases {
		t.Run("names="+tc.names, func(t *testing.T) {
			p := newPKI(t)
			n := p.startNode(t)
			cfg := p.config(n.srv.URL)
			cfg.Names = tc.names
			clk, rec := &clock{t: time.Unix(1e9, 0)}, newRecorder()
			b := newBackend(t, cfg, clk, rec)
			a, err := b.Apply(context.Background(), d)
			if err != nil || a.Status != dots.StatusMitigated || a.Detail != tc.wantDetail {
				t.Fatalf("apply: %+v %v\nwant detail %q", a, err, tc.wantDetail)
			}
			f := n.fake.Load()
			if ids := f.ids(); strings.Join(ids, " ") != strings.Join(tc.wantIDs, " ") {
				t.Fatalf("node state %v, want %v", ids, tc.wantIDs)
			}
			if m, ok := f.mitigation("cuidA/3/names"); ok && (len(m.Rules) != 0 || m.Targets[0] != pfx("198.51.100.7/32")[0]) {
				t.Errorf("names mitigation %+v", m)
			}
		})
	}
}

// TestNamesCounted: the traffic to the spared addresses counts toward the
// node's offered load, not toward what was dropped.
func TestNamesCounted(t *testing.T) {
	p := newPKI(t)
	n := p.startNode(t)
	cfg := p.config(n.srv.URL)
	cfg.Nodes[0].CapacityPPS = 1000
	clk, rec := &clock{t: time.Unix(1e9, 0)}, newRecorder()
	b := newBackend(t, cfg, clk, rec)
	d := divert.Diversion{Key: divert.Key{CUID: "cuidA", MID: 3}, Domain: "alpha", Prefixes: pfx("198.51.100.7/32"), FromNames: pfx("198.51.100.7/32")}
	ctx := context.Background()
	if _, err := b.Apply(ctx, d); err != nil {
		t.Fatal(err)
	}
	f := n.fake.Load()
	f.setSeen("cuidA/3/names", node.Count{}, node.Count{})
	b.Poll(ctx)
	clk.add(5 * time.Second)
	f.setSeen("cuidA/3/names", node.Count{Packets: 10_000, Bytes: 1_000_000}, node.Count{})
	b.Poll(ctx)
	if c, _ := rec.lastCounters(d.Key); !reflect.DeepEqual(c, divert.Counters{}) {
		t.Errorf("counters %+v, want nothing dropped", c)
	}
	if a := rec.lastApplied(d.Key); a.Status != dots.StatusExceededCapability || !strings.HasPrefix(a.Detail, "node1: 2 kpps offered, capacity 1 kpps; ") {
		t.Errorf("outcome %+v", a)
	}
	// With a protocol the address is filtered in the main mitigation; the
	// names mitigation's counter going away is no reset of the other.
	d.Protocols = []uint8{17}
	if _, err := b.Apply(ctx, d); err != nil {
		t.Fatal(err)
	}
	if ids := f.ids(); len(ids) != 1 || ids[0] != "cuidA/3" {
		t.Fatalf("node state %v", ids)
	}
	f.setSeen("cuidA/3", node.Count{Packets: 20_000, Bytes: 2_000_000}, node.Count{})
	f.mu.Lock()
	delete(f.counters.Mitigations, "cuidA/3/names")
	f.mu.Unlock()
	b.Poll(ctx)
	clk.add(5 * time.Second)
	f.setSeen("cuidA/3", node.Count{Packets: 22_500, Bytes: 2_250_000}, node.Count{})
	b.Poll(ctx)
	b.mu.Lock()
	l := b.nodes[0].load
	b.mu.Unlock()
	if l.pps != 500 {
		t.Errorf("offered %d pps, want 500", l.pps)
	}
	if a := current(b, d.Key); a.Status != dots.StatusExceededCapability {
		t.Errorf("one poll below 90%%: %+v", a)
	}
}

// TestCapacity: a node offered more than its capacity makes the
// mitigations with traffic there attack-exceeded-capability, reported with
// a growing Seq, and they are back to mitigated only after two polls below
// 90% of the capacity.
func TestCapacity(t *testing.T) {
	p := newPKI(t)
	n1, n2 := p.startNode(t), p.startNode(t)
	cfg := p.config(n1.srv.URL, n2.srv.URL)
	cfg.Nodes[0].CapacityBPS = 1_000_000_000
	clk, rec := &clock{t: time.Unix(1e9, 0)}, newRecorder()
	b := newBackend(t, cfg, clk, rec)
	ctx := context.Background()
	quiet := alpha
	quiet.Key.MID, quiet.Prefixes = 2, pfx("203.0.113.20/32")
	for _, d := range []divert.Diversion{alpha, quiet} {
		if _, err := b.Apply(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	var seen, seen2 uint64 // bytes offered so far at node1 and node2
	poll := func(gbps, gbps2 float64) {
		t.Helper()
		clk.add(5 * time.Second)
		seen += uint64(gbps * 1e9 / 8 * 5)
		seen2 += uint64(gbps2 * 1e9 / 8 * 5)
		n1.fake.Load().setSeen("cuidA/1", node.Count{Packets: seen / 1000, Bytes: seen}, node.Count{})
		n1.fake.Load().setSeen("cuidA/2", node.Count{}, node.Count{})
		n2.fake.Load().setSeen("cuidA/1", node.Count{Packets: seen2 / 1000, Bytes: seen2}, node.Count{})
		b.Poll(ctx)
	}
	poll(0, 0) // first read
	var lastSeq uint64
	steps := []struct {
		gbps, gbps2 float64
		want        dots.Status
		detail      string
	}{
		{0.5, 0, dots.StatusMitigated, "scrubbing at node1, node2; "},
		{1.2, 0, dots.StatusExceededCapability, "node1: 1.2 Gbps offered, capacity 1 Gbps; scrubbing at node1, node2; "},
		{0.95, 0, dots.StatusExceededCapability, "node1: 950 Mbps offered, capacity 1 Gbps; "},
		{0.8, 0, dots.StatusExceededCapability, "node1: 800 Mbps offered"}, // one calm poll
		{0.95, 0, dots.StatusExceededCapability, "node1: 950 Mbps"},        // not calm: counted again
		{0.8, 5, dots.StatusExceededCapability, "node1: 800 Mbps"},         // node2 has no capacity limit
		{0.8, 0, dots.StatusMitigated, "scrubbing at node1, node2; "},
		{0.99, 0, dots.StatusMitigated, "scrubbing at node1, node2; "}, // below capacity
	}
	for i, st := range steps {
		poll(st.gbps, st.gbps2)
		a := rec.lastApplied(alpha.Key)
		if a.Status != st.want {
			t.Errorf("step %d (%.2f Gbps): reported %+v, want %d", i, st.gbps, a, st.want)
		}
		if now := current(b, alpha.Key); now.Status != st.want || !strings.HasPrefix(now.Detail, st.detail) {
			t.Errorf("step %d (%.2f Gbps): %+v, want %d %q...", i, st.gbps, now, st.want, st.detail)
		}
		if a.Seq < lastSeq || (a.Seq == lastSeq && i > 0 && steps[i-1].want != st.want) {
			t.Errorf("step %d: Seq %d after %d", i, a.Seq, lastSeq)
		}
		lastSeq = a.Seq
		if q := rec.lastApplied(quiet.Key); q.Status != dots.StatusMitigated {
			t.Errorf("step %d: the mitigation without traffic at node1: %+v", i, q)
		}
	}
	// Apply while over capacity reports it without an error.
	poll(2, 0)
	if a, err := b.Apply(ctx, alpha); err != nil || a.Status != dots.StatusExceededCapability {
		t.Errorf("apply over capacity: %+v %v", a, err)
	}
}

// TestFiveMinuteAverage: the status note has the current drop rate and the
// average of the last five minutes; the counters keep the current rate.
func TestFiveMinuteAverage(t *testing.T) {
	p := newPKI(t)
	n := p.startNode(t)
	clk, rec := &clock{t: time.Unix(1e9, 0)}, newRecorder()
	b := newBackend(t, p.config(n.srv.URL), clk, rec)
	ctx := context.Background()
	if _, err := b.Apply(ctx, alpha); err != nil {
		t.Fatal(err)
	}
	var pkts uint64
	run := func(pps uint64, d time.Duration) {
		for e := time.Duration(0); e < d; e += 5 * time.Second {
			clk.add(5 * time.Second)
			pkts += pps * 5
			n.fake.Load().setDrop("cuidA/1", pkts, pkts*100)
			b.Poll(ctx)
		}
	}
	n.fake.Load().setDrop("cuidA/1", 0, 0)
	b.Poll(ctx)
	if a := rec.lastApplied(alpha.Key); strings.Contains(a.Detail, "dropping") {
		t.Errorf("rates after one read: %q", a.Detail)
	}
	steps := []struct {
		pps     uint64
		d       time.Duration
		detail  string
		current uint64
	}{
		{800_000, 5 * time.Second, "dropping 800 kpps (640 Mbps) now, 800 kpps (640 Mbps) 5-min avg", 800_000},
		{800_000, 5 * time.Minute, "dropping 800 kpps (640 Mbps) now, 800 kpps (640 Mbps) 5-min avg", 800_000},
		{500_000, 60 * time.Second, "dropping 500 kpps (400 Mbps) now, 740 kpps (592 Mbps) 5-min avg", 500_000},
		// The last 5 minutes: 90 s of 800 kpps, 60 s of 500 kpps, 150 s of nothing.
		{0, 150 * time.Second, "dropping 0 pps (0 bps) now, 340 kpps (272 Mbps) 5-min avg", 0},
		{0, 150 * time.Second, "dropping 0 pps (0 bps) now, 0 pps (0 bps) 5-min avg", 0},
	}
	for i, st := range steps {
		run(st.pps, st.d)
		a := current(b, alpha.Key)
		if a.Status != dots.StatusMitigated || a.Detail != "scrubbing at node1; "+st.detail {
			t.Errorf("step %d: %+v, want %q", i, a, st.detail)
		}
		if c, _ := rec.lastCounters(alpha.Key); c.PPSDropped != st.current || c.BPSDropped != st.current*800 {
			t.Errorf("step %d: counters %+v, want the current rate %d pps", i, c, st.current)
		}
	}
}

func TestFormatRate(t *testing.T) {
	cases := []struct {
		v    uint64
		unit string
		want string
	}{
		{0, "pps", "0 pps"},
		{999, "pps", "999 pps"},
		{1000, "pps", "1 kpps"},
		{1_250, "pps", "1.2 kpps"},
		{650_400, "pps", "650 kpps"},
		{1_200_000_000, "bps", "1.2 Gbps"},
		{12_000_000_000_000, "bps", "12 Tbps"},
	}
	for _, tc := range cases {
		if got := formatRate(tc.v, tc.unit); got != tc.want {
			t.Errorf("formatRate(%d, %s) = %q, want %q", tc.v, tc.unit, got, tc.want)
		}
	}
}

// current is k's outcome now, reported or not.
func current(b *Backend, k divert.Key) divert.Applied {
	b.mu.Lock()
	defer b.mu.Unlock()
	a, _ := b.outcomeLocked(k)
	return a
}

// TestMeasuredNoteInterval: an outcome whose note changed only in its
// measured rates is reported again at most every MeasuredNoteInterval; the
// first rates and a change of status are reported at once.
func TestMeasuredNoteInterval(t *testing.T) {
	p := newPKI(t)
	n := p.startNode(t)
	cfg := p.config(n.srv.URL)
	cfg.Nodes[0].CapacityPPS = 10_000
	clk, rec := &clock{t: time.Unix(1e9, 0)}, newRecorder()
	b := newBackend(t, cfg, clk, rec)
	ctx := context.Background()
	if _, err := b.Apply(ctx, alpha); err != nil {
		t.Fatal(err)
	}
	var pkts uint64
	updates := func() int { rec.mu.Lock(); defer rec.mu.Unlock(); return len(rec.applied[alpha.Key]) }
	poll := func(pps uint64) {
		clk.add(5 * time.Second)
		pkts += pps * 5
		n.fake.Load().setSeen("cuidA/1", node.Count{Packets: pkts, Bytes: pkts * 100}, node.Count{Packets: pkts, Bytes: pkts * 100})
		b.Poll(ctx)
	}
	n.fake.Load().setSeen("cuidA/1", node.Count{}, node.Count{})
	b.Poll(ctx)
	steps := []struct {
		pps     uint64
		updates int
		status  dots.Status
	}{
		{1000, 1, dots.StatusMitigated},           // the first rates
		{2000, 1, dots.StatusMitigated},           // 5 s later: held back
		{3000, 1, dots.StatusMitigated},           // 10 s
		{20000, 2, dots.StatusExceededCapability}, // status changed
		{30000, 2, dots.StatusExceededCapability}, // only rates changed
	}
	for i, st := range steps {
		poll(st.pps)
		if got, a := updates(), rec.lastApplied(alpha.Key); got != st.updates || a.Status != st.status {
			t.Errorf("step %d: %d updates, last %+v; want %d, status %d", i, got, a, st.updates, st.status)
		}
	}
	for range 12 { // a minute on: the rates are reported again
		poll(30000)
	}
	if got, a := updates(), rec.lastApplied(alpha.Key); got != 3 || !strings.Contains(a.Detail, "dropping 30 kpps (24 Mbps) now") {
		t.Errorf("a minute on: %d updates, last %+v", got, a)
	}
}
