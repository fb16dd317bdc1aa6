package service_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/levee-dots/levee/divert"
	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/escalate"
	"github.com/levee-dots/levee/service"
)

// kinds is a backend that records the countermeasure of every Apply and
// reports the status set for it (a unit-test fake; cmd/dotsd's
// TestEscalationAtRouters drives the same ladder against real routers).
type kinds struct {
	mu     sync.Mutex
	seen   []string
	status map[string]dots.Status
}

func (k *kinds) Name() string { return "kinds" }
func (k *kinds) Apply(_ context.Context, d divert.Diversion) (divert.Applied, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.seen = append(k.seen, d.Countermeasure)
	st := k.status[d.Countermeasure]
	if st == 0 {
		st = dots.StatusMitigated
	}
	return divert.Applied{Status: st, Detail: d.Countermeasure + " applied"}, nil
}
func (k *kinds) Withdraw(context.Context, divert.Key) error { return nil }
func (k *kinds) applied() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return strings.Join(k.seen, " ")
}

var ladder = map[string]escalate.Ladder{"alpha": {Steps: []string{escalate.FlowSpec, escalate.Scrubbing, escalate.RTBH},
	Up: 30 * time.Second, Down: time.Minute}}

func TestEscalationLadder(t *testing.T) {
	be := &kinds{}
	f := newFixture(t, service.Options{Backends: []divert.Diverter{be}, Ladders: ladder})
	ctx := context.Background()
	scope := dots.Scope{TargetPrefix: []string{"203.0.113.10/32"}, Lifetime: dots.Ptr[int64](3600)}
	if _, err := f.svc.PutMitigation(ctx, alpha, service.PutRequest{MID: 1, Request: request(t, scope)}); err != nil {
		t.Fatal(err)
	}
	efficacy := func(a dots.AttackStatus) {
		t.Helper()
		sc := scope
		sc.AttackStatus = dots.Ptr(a)
		if _, err := f.svc.PutMitigation(ctx, alpha, service.PutRequest{MID: 1, Request: request(t, sc), Efficacy: true}); err != nil {
			t.Fatal(err)
		}
	}
	at := func(kind, why string) {
		t.Helper()
		waitFor(t, kind+" applied", func() bool { return strings.HasSuffix(be.applied(), kind) })
		var note string
		waitFor(t, kind+" in the status note", func() bool {
			r, err := f.svc.Mitigation(alpha, 1)
			if err != nil {
				t.Fatal(err)
			}
			note = r.StatusScope(f.clk.Now(), false, true).Note
			return strings.HasPrefix(note, "escalation: "+kind) && strings.Contains(note, why) && strings.Contains(note, kind+" applied")
		})
		t.Logf("%s: %s", kind, note)
	}
	advance := func(d time.Duration) { f.clk.Add(d); f.svc.Tick() }

	at("flowspec", "(step 1 of 3)")
	advance(5 * time.Minute)
	at("flowspec", "(step 1 of 3)") // mitigated and never told otherwise: stays

	efficacy(dots.AttackUnderAttack)
	advance(29 * time.Second)
	at("flowspec", "(step 1 of 3)")
	advance(time.Second)
	at("scrubbing", "flowspec left after the client reported under-attack for 30s")

	// The report made at the last step does not count at this one.
	advance(10 * time.Minute)
	at("scrubbing", "(step 2 of 3)")
	efficacy(dots.AttackUnderAttack)
	advance(30 * time.Second)
	at("rtbh", "scrubbing left after the client reported under-attack for 30s")
	advance(10 * time.Minute)
	at("rtbh", "(step 3 of 3)") // the top

	efficacy(dots.AttackMitigated)
	advance(59 * time.Second)
	at("rtbh", "(step 3 of 3)")
	advance(time.Second)
	at("scrubbing", "rtbh left after the client reported attack-successfully-mitigated for 1m0s")
	efficacy(dots.AttackMitigated)
	advance(time.Minute)
	at("flowspec", "scrubbing left after the client reported attack-successfully-mitigated")
	if got, want := be.applied(), "flowspec scrubbing rtbh scrubbing flowspec"; got != want {
		t.Fatalf("applied %q, want %q", got, want)
	}

	// A restart re-announces the step it was at.
	efficacy(dots.AttackUnderAttack)
	advance(30 * time.Second)
	at("scrubbing", "(step 2 of 3)")
	f.svc.Close()
	be2 := &kinds{}
	svc, err := service.New(service.Options{Store: f.st, Now: f.clk.Now, Backends: []divert.Diverter{be2}, Ladders: ladder})
	if err != nil {
		t.Fatal(err)
	}
	svc.Start()
	defer svc.Close()
	waitFor(t, "restart re-announces the step", func() bool { return be2.applied() == "scrubbing" })
}

// A step that does not hold (the scrubbing centre is over capacity) is
// left without a word from the client; a client that names its
// countermeasure has no ladder; RTBH is never a step for a port scope.
func TestEscalationMeasuredAndPinned(t *testing.T) {
	be := &kinds{status: map[string]dots.Status{escalate.Scrubbing: dots.StatusExceededCapability}}
	f := newFixture(t, service.Options{Backends: []divert.Diverter{be}, Ladders: map[string]escalate.Ladder{
		"alpha": {Steps: []string{escalate.Scrubbing, escalate.RTBH}, Up: 30 * time.Second}}})
	ctx := context.Background()
	put := func(mid uint32, sc dots.Scope) {
		t.Helper()
		sc.Lifetime = dots.Ptr[int64](3600)
		if _, err := f.svc.PutMitigation(ctx, alpha, service.PutRequest{MID: mid, Request: request(t, sc)}); err != nil {
			t.Fatal(err)
		}
	}
	put(1, dots.Scope{TargetPrefix: []string{"203.0.113.10/32"}})
	waitFor(t, "exceeded capability", func() bool {
		r, _ := f.svc.Mitigation(alpha, 1)
		return r.Status == dots.StatusExceededCapability
	})
	f.clk.Add(30 * time.Second)
	f.svc.Tick()
	waitFor(t, "rtbh after capacity exceeded", func() bool {
		r, _ := f.svc.Mitigation(alpha, 1)
		return r.Escalation.Kind == escalate.RTBH && strings.Contains(r.StatusNote(), "scrubbing left after attack-exceeded-capability for 30s")
	})

	put(2, dots.Scope{TargetPrefix: []string{"203.0.113.20/32"}, Countermeasure: "flowspec"})
	put(3, dots.Scope{TargetPrefix: []string{"203.0.113.30/32"}, TargetProtocol: []uint32{17}})
	f.clk.Add(10 * time.Minute)
	f.svc.Tick()
	for mid, want := range map[uint32]string{2: "", 3: escalate.Scrubbing} {
		r, err := f.svc.Mitigation(alpha, mid)
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		if r.Escalation != nil {
			got = r.Escalation.Kind
		}
		if got != want {
			t.Errorf("mid %d at %q, want %q (note %q)", mid, got, want, r.StatusNote())
		}
	}
}
