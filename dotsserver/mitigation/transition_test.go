package mitigation

import (
	"fmt"
	"testing"

	"github.com/levee-dots/levee/dots"
)

// TestTransitionTableExhaustive checks every (status, event) pair: the ones
// listed here are the life of a request, written out by hand; every other
// pair must change nothing.
func TestTransitionTableExhaustive(t *testing.T) {
	const (
		s0 = Absent
		s1 = dots.StatusInProgress
		s2 = dots.StatusMitigated
		s3 = dots.StatusAttackStopped
		s4 = dots.StatusExceededCapability
		s5 = dots.StatusClientWithdrawn
		s6 = dots.StatusTerminated
		s7 = dots.StatusServerWithdrawn
		s8 = dots.StatusSignalLoss
	)
	type row struct {
		from dots.Status
		ev   Event
		want Step
	}
	rows := []row{
		{s0, EvCreate, Step{To: s1, Effect: Divert}},
		{s0, EvPreconfigure, Step{To: s8}},
		{s5, EvReRequest, Step{To: s1, Effect: Divert}},
		{s8, EvSignalLost, Step{To: s1, Effect: Divert}},
		{s8, EvClientDelete, Step{Remove: true}},
		{s8, EvEnd, Step{To: s6, Remove: true}},
		{s8, EvSupersede, Step{Remove: true}},
		{s7, EvClientDelete, Step{Remove: true}},
		{s7, EvEnd, Step{To: s6, Remove: true}},
		{s7, EvSupersede, Step{Remove: true}},
		{s5, EvEnd, Step{To: s6, Effect: StopDiverting, Remove: true}},
	}
	for _, s := range []dots.Status{s1, s2, s3, s4} {
		rows = append(rows,
			row{s, EvClientDelete, Step{To: s5}},
			row{s, EvEnd, Step{To: s6, Effect: StopDiverting, Remove: true}},
			row{s, EvSupersede, Step{Effect: StopDiverting, Remove: true}},
			row{s, EvImmediateOverlap, Step{To: s8, Effect: StopDiverting}},
			row{s, EvPreconfiguredTakeover, Step{To: s7, Effect: StopDiverting}},
			row{s, EvDiverted, Step{To: s2}},
			row{s, EvPending, Step{To: s1}},
			row{s, EvExceeded, Step{To: s4}},
			row{s, EvStopped, Step{To: s3}},
		)
	}
	want := map[transitionKey]Step{}
	for _, r := range rows {
		want[transitionKey{r.from, r.ev}] = r.want
	}
	for from := s0; from <= s8; from++ {
		for ev := Event(1); int(ev) <= numEvents; ev++ {
			t.Run(fmt.Sprintf("%d/%s", from, ev), func(t *testing.T) {
				got, ok := Transition(from, ev)
				w, listed := want[transitionKey{from, ev}]
				if ok != listed || got != w {
					t.Fatalf("Transition(%d, %s) = %+v, %v; want %+v, %v", from, ev, got, ok, w, listed)
				}
				if !ok {
					return
				}
				// The effect agrees with the status: only an active request diverts.
				to := &Record{Status: got.To}
				if got.Effect == Divert && !to.Active() {
					t.Errorf("diverts into inactive status %d", got.To)
				}
				if got.Effect == StopDiverting && !got.Remove && to.Active() {
					t.Errorf("stops diverting but stays active in status %d", got.To)
				}
			})
		}
	}
	if len(transitions) != len(rows) {
		t.Errorf("table has %d transitions, the life of a request %d", len(transitions), len(rows))
	}
	if s := Event(99).String(); s != "event(99)" {
		t.Errorf("String = %q", s)
	}
}
