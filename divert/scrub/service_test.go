package scrub

import (
	"context"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/levee-dots/levee/divert"
	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/service"
	"github.com/levee-dots/levee/store"
)

// TestThroughService runs a request through the real mitigation service,
// its orchestrator and this backend to a node, and the node's counters
// back: the client's totals stay monotonic across a node restart that
// reset them.
func TestThroughService(t *testing.T) {
	p := newPKI(t)
	n := p.startNode(t)
	clk := &clock{t: time.Unix(1e9, 0)}
	var svcp atomic.Pointer[service.Service]
	b, err := New(p.config(n.srv.URL), Options{NoPoll: true, Now: clk.now,
		Updates: func(be string, k divert.Key, a divert.Applied) {
			if s := svcp.Load(); s != nil {
				s.DiversionUpdate(be, k, a)
			}
		},
		Measurements: func(be string, k divert.Key, c divert.Counters) { svcp.Load().Measured(be, k, c) }})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	svc, err := service.New(service.Options{Store: store.NewMemory(), Backends: []divert.Diverter{b}})
	if err != nil {
		t.Fatal(err)
	}
	svcp.Store(svc)
	svc.Start()
	defer svc.Close()
	client := service.Client{CUID: "cuidA", Domain: &service.Domain{Name: "alpha", Prefixes: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/25")}}}
	req, err := dots.ParseMitigationRequest(&dots.Message{MitigationScope: &dots.MitigationScope{Scope: []dots.Scope{
		{TargetPrefix: []string{"203.0.113.10/32"}, TargetProtocol: []uint32{17}, Lifetime: dots.Ptr[int64](3600)}}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := svc.PutMitigation(ctx, client, service.PutRequest{MID: 1, Request: req}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, err := svc.Mitigation(client, 1)
		if err == nil && r.Status == dots.StatusMitigated {
			if r.Note != "scrub: scrubbing at node1" {
				t.Errorf("note %q", r.Note)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not mitigated: %+v %v", r, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	counters := func() (pkts, bytes, pps uint64) {
		r, err := svc.Mitigation(client, 1)
		if err != nil || r.Counters == nil {
			t.Fatalf("no counters: %v", err)
		}
		return r.Counters.PktsDropped, r.Counters.BytesDropped, r.Counters.PPSDropped
	}
	n.fake.Load().setDrop("cuidA/1", 400, 40_000)
	b.Poll(ctx)
	clk.add(4 * time.Second)
	n.fake.Load().setDrop("cuidA/1", 800, 80_000)
	b.Poll(ctx)
	if p, by, pps := counters(); p != 800 || by != 80_000 || pps != 100 {
		t.Errorf("before the restart: %d pkts %d bytes %d pps", p, by, pps)
	}
	n.restart(t)
	clk.add(4 * time.Second)
	b.Poll(ctx) // new boot: the state is sent again
	if ids := n.fake.Load().ids(); len(ids) != 1 {
		t.Fatalf("state not sent again: %v", ids)
	}
	n.fake.Load().setDrop("cuidA/1", 40, 4_000)
	clk.add(4 * time.Second)
	b.Poll(ctx)
	// 40 packets since the last read of the mitigation, 8 s before.
	if p, by, pps := counters(); p != 840 || by != 84_000 || pps != 5 {
		t.Errorf("after the restart: %d pkts %d bytes %d pps, want 840 84000 5", p, by, pps)
	}
}
