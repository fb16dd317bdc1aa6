package dotsserver

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/levee-dots/levee/divert"
	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsserver/mitigation"
	"github.com/levee-dots/levee/store"
)

// blocking is a unit-test backend whose Apply for one client waits until
// released (the real backends are tested against real routers and DNS).
type blocking struct {
	slowCUID string
	release  chan struct{}
	applied  chan string
}

func (b *blocking) Name() string { return "blocking" }
func (b *blocking) Apply(ctx context.Context, d divert.Diversion) (divert.Applied, error) {
	if d.Key.CUID == b.slowCUID {
		<-b.release
	}
	b.applied <- d.Key.CUID
	return divert.Applied{Status: dots.StatusMitigated, Detail: "ok"}, nil
}
func (b *blocking) Withdraw(context.Context, divert.Key) error { return nil }

// TestEffectsOfOneClientDoNotWaitForAnother: while one client's diversion
// hangs in a backend, another client's (on another worker) goes through.
func TestEffectsOfOneClientDoNotWaitForAnother(t *testing.T) {
	slow, fast := "client-0", ""
	for i := 1; fast == ""; i++ {
		if c := fmt.Sprintf("client-%d", i); shardOf(c) != shardOf(slow) {
			fast = c
		}
	}
	be := &blocking{slowCUID: slow, release: make(chan struct{}), applied: make(chan string, 4)}
	s, err := New(Options{Store: store.NewMemory(), Mitigator: divert.NewOrchestrator(be)})
	if err != nil {
		t.Fatal(err)
	}
	s.runEffects()
	defer func() { close(be.release); s.Close() }()
	now := time.Now()
	put := func(cuid string) {
		req := &dots.Request{Scope: dots.Scope{TargetPrefix: []string{"203.0.113.1/32"}}, Lifetime: 60, Trigger: true}
		s.mu.Lock()
		res, err := s.book.Put(mitigation.PutRequest{CUID: cuid, Domain: "d", MID: 1, Req: req,
			Prefixes: []netip.Prefix{netip.MustParsePrefix("203.0.113.1/32")}}, now)
		if err != nil {
			s.mu.Unlock()
			t.Fatal(err)
		}
		s.commitLocked(res)
		s.mu.Unlock()
	}
	put(slow)
	put(fast)
	select {
	case got := <-be.applied:
		if got != fast {
			t.Fatalf("applied %s first, want %s (the slow one is still blocked)", got, fast)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the second client's diversion waited for the first client's backend call")
	}
}
