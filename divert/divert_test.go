package divert

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/levee-dots/levee/dots"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fixed is a backend that answers what it is told to (a unit-test fake; the
// real backends are tested against real routers and DNS servers).
type fixed struct {
	name    string
	applied Applied
	err     error
	check   error
	block   chan struct{} // when set, Apply waits for it (or the context)
	panics  bool

	mu    sync.Mutex
	calls []string
	after atomic.Bool // set by the test once Close returned
	late  atomic.Int32
}

func (f *fixed) Name() string { return f.name }
func (f *fixed) Apply(ctx context.Context, d Diversion) (Applied, error) {
	if f.after.Load() {
		f.late.Add(1)
	}
	f.note("apply " + d.Key.String())
	if f.panics {
		panic("backend bug")
	}
	if f.block != nil {
		select {
		case <-f.block:
		case <-ctx.Done():
			return Applied{}, ctx.Err()
		}
	}
	return f.applied, f.err
}
func (f *fixed) Withdraw(_ context.Context, k Key) error {
	f.note("withdraw " + k.String())
	return nil
}
func (f *fixed) Check(Diversion) error { return f.check }
func (f *fixed) note(s string) {
	f.mu.Lock()
	f.calls = append(f.calls, s)
	f.mu.Unlock()
}
func (f *fixed) log() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// reports collects what the orchestrator reports, for waiting on.
type reports struct {
	ch chan string
}

func newReports() *reports { return &reports{ch: make(chan string, 100)} }
func (r *reports) fn(backend string, k Key, a Applied) {
	r.ch <- backend + " " + k.String() + " " + a.Status.String()
}
func (r *reports) wait(t *testing.T, want string) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case got := <-r.ch:
			if got == want {
				return
			}
		case <-deadline:
			t.Fatalf("no report %q", want)
		}
	}
}

func TestCombinedOutcome(t *testing.T) {
	k := Key{CUID: "c", MID: 1}
	for _, tc := range []struct {
		name     string
		backends []*fixed
		want     dots.Status
		note     string
	}{
		{"none configured", nil, dots.StatusInProgress, "no mitigator is configured"},
		{"one diverted", []*fixed{{name: "bgp", applied: Applied{Status: dots.StatusMitigated, Detail: "rtbh"}}}, dots.StatusMitigated, "bgp: rtbh"},
		{"one handles, one does not", []*fixed{{name: "bgp", applied: Applied{Status: dots.StatusMitigated, Detail: "rtbh"}}, {name: "dns"}}, dots.StatusMitigated, "bgp: rtbh"},
		{"one pending", []*fixed{{name: "bgp", applied: Applied{Status: dots.StatusMitigated, Detail: "ok"}}, {name: "dns", applied: Applied{Status: dots.StatusInProgress, Detail: "waiting"}}}, dots.StatusInProgress, "dns: waiting"},
		{"budget", []*fixed{{name: "bgp", applied: Applied{Status: dots.StatusExceededCapability, Detail: "budget"}}, {name: "dns", applied: Applied{Status: dots.StatusMitigated, Detail: "ok"}}}, dots.StatusExceededCapability, "bgp: budget"},
		{"nobody handles", []*fixed{{name: "dns"}}, dots.StatusInProgress, "no configured mitigator handles"},
		{"error", []*fixed{{name: "bgp", err: errors.New("boom")}}, dots.StatusInProgress, "failed: boom"},
		{"panic", []*fixed{{name: "bgp", panics: true}}, dots.StatusInProgress, "internal error in the backend"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ds []Diverter
			for _, b := range tc.backends {
				ds = append(ds, b)
			}
			o := NewOrchestrator(ds...)
			rep := newReports()
			o.Start(nil, rep.fn)
			defer o.Close()
			o.Apply(Diversion{Key: k})
			for _, b := range tc.backends {
				select {
				case <-rep.ch:
				case <-time.After(5 * time.Second):
					t.Fatalf("%s reported nothing", b.name)
				}
			}
			if out := o.Combined(k); out.Status != tc.want || !strings.Contains(out.Note, tc.note) {
				t.Fatalf("outcome %+v, want status %s with note containing %q", out, tc.want, tc.note)
			}
		})
	}
}

func TestReportOrderAndWithdraw(t *testing.T) {
	k := Key{CUID: "c", MID: 1}
	bgp := &fixed{name: "bgp", applied: Applied{Status: dots.StatusInProgress, Detail: "no neighbor up", Seq: 5}, check: errors.New("too short")}
	o := NewOrchestrator(bgp)
	rep := newReports()
	o.Start(nil, rep.fn)
	defer o.Close()
	// Before the backend answered, the key is pending.
	o.Apply(Diversion{Key: k})
	rep.wait(t, "bgp c/1 attack-mitigation-in-progress")
	// A neighbor event decided later (higher Seq) raises the status; an
	// Apply result decided before it (lower Seq) arriving late does not
	// overwrite it.
	o.Report("bgp", k, Applied{Status: dots.StatusMitigated, Detail: "up", Seq: 7})
	o.Report("bgp", k, Applied{Status: dots.StatusInProgress, Detail: "stale", Seq: 6})
	if out := o.Combined(k); out.Status != dots.StatusMitigated || out.Note != "bgp: up" {
		t.Fatalf("a stale outcome overwrote a newer one: %+v", out)
	}
	if err := o.Check(Diversion{Key: k}); err == nil || !strings.Contains(err.Error(), "bgp: too short") {
		t.Fatalf("check: %v", err)
	}
	// Operations of one client run in the order they were queued: the new
	// diversion before the withdrawal of the one it replaces.
	k2 := Key{CUID: "c", MID: 2}
	o.Apply(Diversion{Key: k2})
	o.Withdraw(k)
	deadline := time.Now().Add(5 * time.Second)
	for len(bgp.log()) < 3 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := strings.Join(bgp.log(), ", "); got != "apply c/1, apply c/2, withdraw c/1" {
		t.Fatalf("calls = %s", got)
	}
	// A late report for a withdrawn key is dropped.
	o.Report("bgp", k, Applied{Status: dots.StatusMitigated, Seq: 99})
	if out := o.Combined(k); !strings.Contains(out.Note, "no configured mitigator handles") {
		t.Fatalf("after withdraw the outcome is forgotten: %+v", out)
	}
}

// A backend that does not answer holds up neither another backend nor
// another lane; Close cancels it and waits, and no call runs afterwards.
func TestStuckBackendIsolatedAndClose(t *testing.T) {
	stuck := &fixed{name: "dns", block: make(chan struct{}), applied: Applied{Status: dots.StatusMitigated}}
	fast := &fixed{name: "bgp", applied: Applied{Status: dots.StatusMitigated, Detail: "rtbh"}}
	o := NewOrchestrator(stuck, fast)
	rep := newReports()
	o.Start(nil, rep.fn)
	o.Apply(Diversion{Key: Key{CUID: "c", MID: 1}})
	o.Apply(Diversion{Key: Key{CUID: "c", MID: 2}})
	start := time.Now()
	rep.wait(t, "bgp c/2 attack-successfully-mitigated")
	if d := time.Since(start); d > time.Second {
		t.Errorf("bgp waited %v behind a stuck dns", d)
	}
	closed := make(chan struct{})
	go func() { o.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not cancel the stuck call")
	}
	stuck.after.Store(true)
	fast.after.Store(true)
	o.Apply(Diversion{Key: Key{CUID: "c", MID: 3}})
	time.Sleep(20 * time.Millisecond)
	if n := stuck.late.Load() + fast.late.Load(); n != 0 {
		t.Fatalf("%d backend calls after Close", n)
	}
}
