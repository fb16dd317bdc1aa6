package divert

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/levee-dots/levee/dots"
)

// fixed is a backend that answers what it is told to (a unit-test fake; the
// real backends are tested against real routers and DNS servers).
type fixed struct {
	name     string
	applied  Applied
	err      error
	check    error
	withdraw []Key
}

func (f *fixed) Name() string { return f.name }
func (f *fixed) Apply(context.Context, Diversion) (Applied, error) {
	return f.applied, f.err
}
func (f *fixed) Withdraw(_ context.Context, k Key) error {
	f.withdraw = append(f.withdraw, k)
	return nil
}
func (f *fixed) Check(Diversion) error { return f.check }

func TestCombinedOutcome(t *testing.T) {
	k := Key{CUID: "c", MID: 1}
	for _, tc := range []struct {
		name     string
		backends []*fixed
		want     dots.Status
		note     string
	}{
		{"none configured", nil, dots.StatusInProgress, "no mitigator is configured"},
		{"one diverted", []*fixed{{name: "bgp", applied: Applied{dots.StatusMitigated, "rtbh"}}}, dots.StatusMitigated, "bgp: rtbh"},
		{"one handles, one does not", []*fixed{{name: "bgp", applied: Applied{dots.StatusMitigated, "rtbh"}}, {name: "dns"}}, dots.StatusMitigated, "bgp: rtbh"},
		{"one pending", []*fixed{{name: "bgp", applied: Applied{dots.StatusMitigated, "ok"}}, {name: "dns", applied: Applied{dots.StatusInProgress, "waiting"}}}, dots.StatusInProgress, "dns: waiting"},
		{"budget", []*fixed{{name: "bgp", applied: Applied{dots.StatusExceededCapability, "budget"}}, {name: "dns", applied: Applied{dots.StatusMitigated, "ok"}}}, dots.StatusExceededCapability, "bgp: budget"},
		{"nobody handles", []*fixed{{name: "dns"}}, dots.StatusInProgress, "no configured mitigator handles"},
		{"error", []*fixed{{name: "bgp", err: errors.New("boom")}}, dots.StatusInProgress, "failed: boom"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ds []Diverter
			for _, b := range tc.backends {
				ds = append(ds, b)
			}
			o := NewOrchestrator(ds...)
			out := o.Apply(context.Background(), Diversion{Key: k})
			if out.Status != tc.want || !strings.Contains(out.Note, tc.note) {
				t.Fatalf("outcome %+v, want status %s with note containing %q", out, tc.want, tc.note)
			}
		})
	}
}

func TestUpdateCheckWithdraw(t *testing.T) {
	k := Key{CUID: "c", MID: 1}
	bgp := &fixed{name: "bgp", applied: Applied{dots.StatusInProgress, "no neighbor up"}, check: errors.New("too short")}
	o := NewOrchestrator(bgp)
	if out := o.Apply(context.Background(), Diversion{Key: k}); out.Status != dots.StatusInProgress {
		t.Fatalf("apply: %+v", out)
	}
	if out := o.Update("bgp", k, Applied{dots.StatusMitigated, "up"}); out.Status != dots.StatusMitigated {
		t.Fatalf("a later update must raise the status: %+v", out)
	}
	if err := o.Check(Diversion{Key: k}); err == nil || !strings.Contains(err.Error(), "bgp: too short") {
		t.Fatalf("check: %v", err)
	}
	if err := o.Withdraw(context.Background(), k); err != nil || len(bgp.withdraw) != 1 {
		t.Fatalf("withdraw: %v %v", err, bgp.withdraw)
	}
	if out := o.Combined(k); !strings.Contains(out.Note, "no configured mitigator handles") {
		t.Fatalf("after withdraw the outcome is forgotten: %+v", out)
	}
}
