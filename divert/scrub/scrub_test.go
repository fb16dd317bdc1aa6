package scrub

import (
	"context"
	"net"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/levee-dots/levee/divert"
	"github.com/levee-dots/levee/dots"
	node "github.com/levee-dots/levee/scrub"
)

func pfx(s ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range s {
		out = append(out, netip.MustParsePrefix(p))
	}
	return out
}

func TestMitigationMapping(t *testing.T) {
	k := divert.Key{CUID: "c1", MID: 7}
	drop := func(targets ...string) node.Mitigation {
		return node.Mitigation{ID: "c1/7", Targets: pfx(targets...), Rules: []node.Rule{{Name: "scope", Action: "drop"}}}
	}
	spared := func(targets ...string) node.Mitigation {
		return node.Mitigation{ID: "c1/7/names", Targets: pfx(targets...), Rules: []node.Rule{}}
	}
	named := divert.Diversion{Key: k, Prefixes: pfx("203.0.113.10/32", "198.51.100.7/32", "2001:db8:6401::7/128"),
		FromNames: pfx("198.51.100.7/32", "2001:db8:6401::7/128")}
	with := func(d divert.Diversion, edit func(*divert.Diversion)) divert.Diversion { edit(&d); return d }
	cases := []struct {
		name  string
		d     divert.Diversion
		names string
		want  []node.Mitigation
	}{
		{"no ports or protocols: drop all", divert.Diversion{Key: k, Prefixes: pfx("203.0.113.10/32", "2001:db8:6401::/48")}, "",
			[]node.Mitigation{drop("203.0.113.10/32", "2001:db8:6401::/48")}},
		{"protocols only", divert.Diversion{Key: k, Prefixes: pfx("203.0.113.0/28"), Protocols: []uint8{17, 1}}, "",
			[]node.Mitigation{{ID: "c1/7", Targets: pfx("203.0.113.0/28"), Rules: []node.Rule{{Name: "scope", Protocols: []uint8{17, 1}, Action: "drop"}}}}},
		{"ports and protocol", divert.Diversion{Key: k, Prefixes: pfx("203.0.113.10/32"), Protocols: []uint8{6},
			Ports: []dots.PortRange{{LowerPort: 443}, {LowerPort: 8000, UpperPort: dots.Ptr[uint16](8080)}}}, "",
			[]node.Mitigation{{ID: "c1/7", Targets: pfx("203.0.113.10/32"), Rules: []node.Rule{{Name: "scope", Protocols: []uint8{6},
				DstPorts: []node.PortRange{{Low: 443, High: 443}, {Low: 8000, High: 8080}}, Action: "drop"}}}}},
		{"ports only", divert.Diversion{Key: k, Prefixes: pfx("203.0.113.9/24"), Ports: []dots.PortRange{{LowerPort: 53}}}, "",
			[]node.Mitigation{{ID: "c1/7", Targets: pfx("203.0.113.0/24"), Rules: []node.Rule{{Name: "scope", DstPorts: []node.PortRange{{Low: 53, High: 53}}, Action: "drop"}}}}},
		{"names spared by default", named, "",
			[]node.Mitigation{drop("203.0.113.10/32"), spared("198.51.100.7/32", "2001:db8:6401::7/128")}},
		{"names spared, named explicitly", named, NamesScrubOnlyNamedPorts,
			[]node.Mitigation{drop("203.0.113.10/32"), spared("198.51.100.7/32", "2001:db8:6401::7/128")}},
		{"names only: no drop rule at all", with(named, func(d *divert.Diversion) { d.Prefixes = d.FromNames }), "",
			[]node.Mitigation{spared("198.51.100.7/32", "2001:db8:6401::7/128")}},
		{"names drop-all", named, NamesDropAll,
			[]node.Mitigation{drop("203.0.113.10/32", "198.51.100.7/32", "2001:db8:6401::7/128")}},
		{"names with a protocol are filtered like the rest", with(named, func(d *divert.Diversion) { d.Protocols = []uint8{17} }), "",
			[]node.Mitigation{{ID: "c1/7", Targets: named.Prefixes, Rules: []node.Rule{{Name: "scope", Protocols: []uint8{17}, Action: "drop"}}}}},
		{"names with ports are filtered like the rest", with(named, func(d *divert.Diversion) { d.Ports = []dots.PortRange{{LowerPort: 53}} }), "",
			[]node.Mitigation{{ID: "c1/7", Targets: named.Prefixes, Rules: []node.Rule{{Name: "scope", DstPorts: []node.PortRange{{Low: 53, High: 53}}, Action: "drop"}}}}},
		{"a name inside a named prefix stays with it", divert.Diversion{Key: k, Prefixes: pfx("203.0.113.0/24", "203.0.113.10/32", "198.51.100.7/32"),
			FromNames: pfx("203.0.113.10/32", "198.51.100.7/32")}, "",
			[]node.Mitigation{drop("203.0.113.0/24", "203.0.113.10/32"), spared("198.51.100.7/32")}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Mitigations(tc.d, tc.names); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestDesiredLeavesOverlapsOut(t *testing.T) {
	all := []divert.Diversion{
		{Key: divert.Key{CUID: "b", MID: 1}, Prefixes: pfx("203.0.113.10/32")},    // inside a/2
		{Key: divert.Key{CUID: "a", MID: 2}, Prefixes: pfx("203.0.113.0/24")},     // first
		{Key: divert.Key{CUID: "a", MID: 3}, Prefixes: pfx("198.51.100.0/24")},    // disjoint
		{Key: divert.Key{CUID: "c", MID: 1}, Prefixes: pfx("203.0.0.0/16")},       // contains a/2
		{Key: divert.Key{CUID: "c", MID: 2}, Prefixes: pfx("2001:db8:6401::/48")}, // other family
	}
	d, skipped := Desired(all, "")
	var ids []string
	for _, m := range d.Mitigations {
		ids = append(ids, m.ID)
	}
	if want := []string{"a/2", "a/3", "c/2"}; !slices.Equal(ids, want) {
		t.Errorf("ids %v, want %v", ids, want)
	}
	if len(skipped) != 2 || !strings.Contains(skipped[divert.Key{CUID: "b", MID: 1}], "overlaps 203.0.113.0/24 of mitigation a/2") ||
		!strings.Contains(skipped[divert.Key{CUID: "c", MID: 1}], "mitigation a/2") {
		t.Errorf("skipped %v", skipped)
	}
}

func TestConfigValidate(t *testing.T) {
	good := Config{Domains: []string{"alpha"}, Certificate: "c.pem", Key: "k.pem",
		Nodes: []NodeConfig{{Name: "node1", URL: "https://192.0.2.5:4680", CA: "ca.pem"}}}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"no domains", func(c *Config) { c.Domains = nil }, "scrub: domains:"},
		{"no nodes", func(c *Config) { c.Nodes = nil }, "scrub: nodes:"},
		{"http", func(c *Config) { c.Nodes[0].URL = "http://192.0.2.5:4680" }, "scrub: nodes[0].url:"},
		{"path", func(c *Config) { c.Nodes[0].URL = "https://192.0.2.5:4680/v1" }, "scrub: nodes[0].url:"},
		{"no ca", func(c *Config) { c.Nodes[0].CA = "" }, "scrub: nodes[0].ca:"},
		{"dup name", func(c *Config) { c.Nodes = append(c.Nodes, c.Nodes[0]) }, "scrub: nodes[1].name:"},
		{"no certificate", func(c *Config) { c.Certificate = "" }, "scrub: certificate:"},
		{"no key", func(c *Config) { c.Key = "" }, "scrub: key:"},
		{"negative poll", func(c *Config) { c.PollInterval = -time.Second }, "scrub: poll-interval:"},
		{"unknown names", func(c *Config) { c.Names = "rtbh" }, "scrub: names: \"rtbh\": must be scrub-only-named-ports or drop-all"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			c.Nodes = slices.Clone(good.Nodes)
			tc.edit(&c)
			if err := c.Validate(); err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("got %v, want %q...", err, tc.want)
			}
		})
	}
}

var alpha = divert.Diversion{Key: divert.Key{CUID: "cuidA", MID: 1}, Domain: "alpha", Prefixes: pfx("203.0.113.10/32"),
	Protocols: []uint8{17}, Ports: []dots.PortRange{{LowerPort: 123}}}

func newBackend(t *testing.T, cfg Config, clk *clock, rec *recorder) *Backend {
	t.Helper()
	b, err := New(cfg, Options{NoPoll: true, Now: clk.now, Updates: rec.update, Measurements: rec.measure})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestApplyPollRates(t *testing.T) {
	p := newPKI(t)
	n := p.startNode(t)
	clk, rec := &clock{t: time.Unix(1e9, 0)}, newRecorder()
	b := newBackend(t, p.config(n.srv.URL), clk, rec)
	ctx := context.Background()

	beta := alpha
	beta.Key, beta.Domain = divert.Key{CUID: "cuidB", MID: 1}, "beta"
	if b.Handles(beta) {
		t.Error("beta is not a scrubbed domain")
	}
	if a, err := b.Apply(ctx, beta); err != nil || a.Status != 0 {
		t.Errorf("beta: %+v %v", a, err)
	}
	a, err := b.Apply(ctx, alpha)
	if err != nil || a.Status != dots.StatusMitigated || a.Detail != "scrubbing at node1" {
		t.Fatalf("apply: %+v %v", a, err)
	}
	f := n.fake.Load()
	if ids := f.ids(); !slices.Equal(ids, []string{"cuidA/1"}) {
		t.Fatalf("node state %v", ids)
	}
	f.setDrop("cuidA/1", 1000, 100_000)
	b.Poll(ctx)
	if c, _ := rec.lastCounters(alpha.Key); !reflect.DeepEqual(c, divert.Counters{PktsDropped: 1000, BytesDropped: 100_000}) {
		t.Errorf("first sample %+v", c)
	}
	clk.add(2 * time.Second)
	f.setDrop("cuidA/1", 3000, 300_000)
	b.Poll(ctx)
	want := divert.Counters{PktsDropped: 3000, BytesDropped: 300_000, PPSDropped: 1000, BPSDropped: 800_000}
	if c, _ := rec.lastCounters(alpha.Key); !reflect.DeepEqual(c, want) {
		t.Errorf("after 2 s: %+v, want %+v", c, want)
	}
	if f.sets != 1 {
		t.Errorf("a poll of an unchanged node re-sent the state: %d sets", f.sets)
	}
	if err := b.Withdraw(ctx, alpha.Key); err != nil {
		t.Fatal(err)
	}
	if ids := f.ids(); len(ids) != 0 {
		t.Errorf("after withdraw: %v", ids)
	}
}

// TestNodeRestart: a node that comes back without its state (new boot, a
// reset counter) is sent the state again and the totals stay monotonic.
func TestNodeRestart(t *testing.T) {
	p := newPKI(t)
	n := p.startNode(t)
	clk, rec := &clock{t: time.Unix(1e9, 0)}, newRecorder()
	b := newBackend(t, p.config(n.srv.URL), clk, rec)
	ctx := context.Background()
	if err := b.Sync(ctx, []divert.Diversion{alpha}); err != nil {
		t.Fatal(err)
	}
	if a := rec.lastApplied(alpha.Key); a.Status != dots.StatusMitigated {
		t.Fatalf("after Sync: %+v", a)
	}
	n.fake.Load().setDrop("cuidA/1", 500, 50_000)
	b.Poll(ctx)

	f := n.restart(t) // kill -9 and start again, table gone
	clk.add(5 * time.Second)
	b.Poll(ctx) // sees the new boot, sends the state
	if ids := f.ids(); !slices.Equal(ids, []string{"cuidA/1"}) {
		t.Fatalf("restarted node state %v", ids)
	}
	f.setDrop("cuidA/1", 100, 10_000)
	clk.add(5 * time.Second)
	b.Poll(ctx)
	c, _ := rec.lastCounters(alpha.Key)
	if c.PktsDropped != 600 || c.BytesDropped != 60_000 {
		t.Errorf("after the restart: %+v, want 600 packets, 60000 bytes", c)
	}
	// A restart that kept the kernel table keeps counting from the value.
	n.restart(t).setDrop("cuidA/1", 130, 13_000)
	clk.add(5 * time.Second)
	b.Poll(ctx)
	if c, _ := rec.lastCounters(alpha.Key); c.PktsDropped != 630 || c.PPSDropped != 6 {
		t.Errorf("restart with kept counters: %+v", c)
	}
}

func TestUnreachableThenBack(t *testing.T) {
	p := newPKI(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	n := p.startNode(t)
	cfg := p.config("https://"+addr, n.srv.URL)
	clk, rec := &clock{t: time.Unix(1e9, 0)}, newRecorder()
	cfg.Timeout = 2 * time.Second
	b := newBackend(t, cfg, clk, rec)
	ctx := context.Background()
	a, err := b.Apply(ctx, alpha)
	if err != nil || a.Status != dots.StatusMitigated || !strings.HasPrefix(a.Detail, "scrubbing at node2; not at node1 (unreachable:") {
		t.Fatalf("one node down: %+v %v", a, err)
	}
	n.srv.Close() // now both are down
	b.Poll(ctx)
	if a := rec.lastApplied(alpha.Key); a.Status != dots.StatusInProgress || !strings.Contains(a.Detail, "node2 (unreachable") {
		t.Errorf("both down: %+v", a)
	}
	alpha2 := alpha
	alpha2.Key.MID = 2
	alpha2.Prefixes = pfx("2001:db8:6401::1/128")
	a, err = b.Apply(ctx, alpha2)
	if err == nil || a.Status != dots.StatusInProgress {
		t.Errorf("apply with no node: %+v %v", a, err)
	}
	// node1 comes up: the next poll sends it the state and reports both.
	back := p.startNodeAt(t, addr)
	b.Poll(ctx)
	if ids := back.fake.Load().ids(); len(ids) != 2 {
		t.Errorf("node1 state %v", ids)
	}
	for _, k := range []divert.Key{alpha.Key, alpha2.Key} {
		if a := rec.lastApplied(k); a.Status != dots.StatusMitigated || !strings.HasPrefix(a.Detail, "scrubbing at node1; not at node2 (unreachable") {
			t.Errorf("%s after node1 came up: %+v", k, a)
		}
	}
}

// TestPollerTicks: the poller polls on each tick of Options.Tick and stops
// at Close.
func TestPollerTicks(t *testing.T) {
	p := newPKI(t)
	n := p.startNode(t)
	clk, rec := &clock{t: time.Unix(1e9, 0)}, newRecorder()
	tick := make(chan time.Time)
	b, err := New(p.config(n.srv.URL), Options{Tick: tick, Now: clk.now, Updates: rec.update, Measurements: rec.measure})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Apply(context.Background(), alpha); err != nil {
		t.Fatal(err)
	}
	n.fake.Load().setDrop("cuidA/1", 7, 700)
	tick <- clk.now()
	tick <- clk.now() // taken once the first poll is done
	if c, ok := rec.lastCounters(alpha.Key); !ok || c.PktsDropped != 7 {
		t.Errorf("after two ticks: %+v %v", c, ok)
	}
	b.Close()
	select {
	case tick <- clk.now():
		t.Error("the poller still runs after Close")
	case <-time.After(50 * time.Millisecond):
	}
}
