package service_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/levee-dots/levee/divert"
	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dots/data"
	"github.com/levee-dots/levee/service"
)

// aclPut sends a mitigation request for 203.0.113.10/32 carrying acl-list.
func aclPut(t *testing.T, svc *service.Service, c service.Client, mid uint32, efficacy bool, list ...dots.ACLControl) (*service.PutResult, error) {
	t.Helper()
	sc := dots.Scope{TargetPrefix: []string{"203.0.113.10/32"}, Lifetime: dots.Ptr[int64](3600), ACLList: list}
	if efficacy {
		sc.AttackStatus = dots.Ptr(dots.AttackUnderAttack)
	}
	return svc.PutMitigation(context.Background(), c, service.PutRequest{MID: mid, Request: request(t, sc), Efficacy: efficacy})
}

func ctl(name string, act uint32) dots.ACLControl {
	c := dots.ACLControl{ACLName: name}
	if act != 0 {
		c.ActivationType = dots.Ptr(dots.ActivationType(act))
	}
	return c
}

// activation returns an ACL's activation type and pending-lifetime as the
// data channel shows them.
func activation(t *testing.T, svc *service.Service, c service.Client, name string) string {
	t.Helper()
	a, err := svc.ACLs(c, name)
	if err != nil {
		t.Fatalf("acl %s: %v", name, err)
	}
	return fmt.Sprintf("%s %d", a[0].Activation(), *a[0].PendingLifetime)
}

// TestSignalACLControl: RFC 9133 §3.2.1 filter control inside mitigation
// requests, step by step on one client: refused in idle time, in efficacy
// updates and for ACLs the client does not have; applied at once,
// persisting after the mitigation ends, refreshing the ACL's lifetime;
// 5.03 when it cannot be stored; undone when the mitigation request itself
// is refused.
func TestSignalACLControl(t *testing.T) {
	fb := newFilters()
	f := newFixture(t, service.Options{Backends: []divert.Diverter{fb}})
	register(t, f.svc, alpha)
	register(t, f.svc, beta)
	for _, b := range []string{aclBody("drop", "activate-when-mitigating", "203.0.113.0/26"),
		aclBody("other", "deactivate", "203.0.113.64/26")} {
		if _, err := f.svc.PutACLs(alpha, mustACLs(t, b), false, service.Insert{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.svc.PutACLs(beta, mustACLs(t, aclBody("betas", "deactivate", "198.51.100.0/24")), false, service.Insert{}); err != nil {
		t.Fatal(err)
	}
	const (
		awm = 1
		imm = 2
		off = 3
	)
	end := func(mid uint32) func() error {
		return func() error {
			if err := f.svc.WithdrawMitigation(alpha, mid); err != nil {
				return err
			}
			f.clk.Add(10 * time.Minute) // past active-but-terminating
			f.svc.Tick()
			return nil
		}
	}
	put := func(mid uint32, list ...dots.ACLControl) func() error {
		return func() error { _, err := aclPut(t, f.svc, alpha, mid, false, list...); return err }
	}
	steps := []struct {
		name    string
		advance time.Duration
		do      func() error
		code    string // "ok" or the CoAP code
		acl     string // the drop ACL afterwards: activation and pending-lifetime
		applied string // the enforced filters afterwards
		exists  bool   // whether the request's mid exists afterwards
		mid     uint32
	}{
		{name: "idle time", do: put(1, ctl("drop", off)), code: "4.00",
			acl: "activate-when-mitigating 10080", applied: "", mid: 1},
		{name: "mitigation without acl-list", do: put(2), code: "ok",
			acl: "activate-when-mitigating 10080", applied: "cuid-alpha/acl/drop", exists: true, mid: 2},
		{name: "unknown acl-name", do: put(3, ctl("nope", off)), code: "4.04",
			acl: "activate-when-mitigating 10080", applied: "cuid-alpha/acl/drop", mid: 3},
		{name: "another client's acl", do: put(3, ctl("betas", off)), code: "4.04",
			acl: "activate-when-mitigating 10080", applied: "cuid-alpha/acl/drop", mid: 3},
		{name: "one known, one unknown", do: put(3, ctl("drop", off), ctl("nope", off)), code: "4.04",
			acl: "activate-when-mitigating 10080", applied: "cuid-alpha/acl/drop", mid: 3},
		{name: "acl-name twice", do: put(3, ctl("drop", off), ctl("drop", imm)), code: "4.00",
			acl: "activate-when-mitigating 10080", applied: "cuid-alpha/acl/drop", mid: 3},
		{name: "no acl-name", do: put(3, ctl("", off)), code: "4.00",
			acl: "activate-when-mitigating 10080", applied: "cuid-alpha/acl/drop", mid: 3},
		{name: "activation-type out of range", do: put(3, ctl("drop", 7)), code: "4.00",
			acl: "activate-when-mitigating 10080", applied: "cuid-alpha/acl/drop", mid: 3},
		{name: "efficacy update", do: func() error { _, err := aclPut(t, f.svc, alpha, 2, true, ctl("drop", off)); return err }, code: "4.00",
			acl: "activate-when-mitigating 10080", applied: "cuid-alpha/acl/drop", exists: true, mid: 2},
		{name: "deactivate refreshes the lifetime", advance: time.Hour, do: put(3, ctl("drop", off)), code: "ok",
			acl: "deactivate 10080", applied: "", exists: true, mid: 3},
		{name: "immediate", advance: time.Hour, do: put(4, ctl("drop", imm)), code: "ok",
			acl: "immediate 10080", applied: "cuid-alpha/acl/drop", exists: true, mid: 4},
		{name: "immediate outlives the mitigation", do: end(4), code: "ok",
			acl: "immediate 10070", applied: "cuid-alpha/acl/drop", mid: 4},
		{name: "no mitigation again: idle time", do: put(5, ctl("drop", off)), code: "4.00",
			acl: "immediate 10070", applied: "cuid-alpha/acl/drop", mid: 5},
		{name: "new attack", do: put(6), code: "ok",
			acl: "immediate 10070", applied: "cuid-alpha/acl/drop", exists: true, mid: 6},
		{name: "default activation-type", do: put(7, ctl("drop", 0)), code: "ok",
			acl: "activate-when-mitigating 10080", applied: "cuid-alpha/acl/drop", exists: true, mid: 7},
		{name: "lower overlapping mid refused: change undone", do: put(5, ctl("drop", off)), code: "4.09",
			acl: "activate-when-mitigating 10080", applied: "cuid-alpha/acl/drop", mid: 5},
		{name: "store fails: 5.03", do: func() error {
			f.st.fail.Store(true)
			defer f.st.fail.Store(false)
			return put(8, ctl("drop", off))()
		}, code: "5.03", acl: "activate-when-mitigating 10080", applied: "cuid-alpha/acl/drop", mid: 8},
		{name: "activate-when-mitigating ends with the mitigation", do: end(7), code: "ok",
			acl: "activate-when-mitigating 10070", applied: "", mid: 7},
	}
	for _, st := range steps {
		f.clk.Add(st.advance)
		err := st.do()
		code := "ok"
		if err != nil {
			code = codeOf(err).String()
			var pe *dots.Error
			if errors.As(err, &pe) && pe.Diag == "" {
				t.Errorf("%s: %v carries no diagnostic", st.name, err)
			}
		}
		if code != st.code {
			t.Errorf("%s: got %s (%v), want %s", st.name, code, err, st.code)
		}
		if got := activation(t, f.svc, alpha, "drop"); got != st.acl {
			t.Errorf("%s: acl drop is %q, want %q", st.name, got, st.acl)
		}
		waitFor(t, st.name+": filters "+st.applied, func() bool { return fb.acls() == st.applied })
		if _, err := f.svc.Mitigation(alpha, st.mid); (err == nil) != st.exists {
			t.Errorf("%s: mid %d exists: %v, want %v", st.name, st.mid, err == nil, st.exists)
		}
	}
	if got := activation(t, f.svc, alpha, "other"); got != "deactivate 9940" {
		t.Errorf("an ACL the requests did not name changed: %s", got)
	}
}

// TestSignalACLFailureBody: the 5.03 of a failed ACL update carries the
// update in its body (RFC 9133 Figure 1) and a diagnostic.
func TestSignalACLFailureBody(t *testing.T) {
	f := newFixture(t, service.Options{Backends: []divert.Diverter{newFilters()}})
	register(t, f.svc, alpha)
	if _, err := f.svc.PutACLs(alpha, mustACLs(t, aclBody("refused", "deactivate", "203.0.113.0/26")), false, service.Insert{}); err != nil {
		t.Fatal(err)
	}
	if _, err := aclPut(t, f.svc, alpha, 1, false); err != nil {
		t.Fatal(err)
	}
	f.st.fail.Store(true)
	_, err := aclPut(t, f.svc, alpha, 2, false, ctl("refused", 2))
	f.st.fail.Store(false)
	var pe *dots.Error
	if !errors.As(err, &pe) || pe.Code != dots.ServiceUnavailable || pe.Diag == "" || pe.Body == nil {
		t.Fatalf("got %v, want 5.03 with a diagnostic and a body", err)
	}
	b, err := dots.Encode(pe.Body)
	if err != nil {
		t.Fatal(err)
	}
	// {1: {2: [{5: 2, 53: [{23: "refused", 52: 2}]}]}}
	want := "a101a10281a20502183581a21767726566757365641834" + "02"
	if got := fmt.Sprintf("%x", b); got != want {
		t.Errorf("body %s, want %s", got, want)
	}
}

// TestSignalACLStatus: the status of a request that controlled ACLs lists
// them with their activation types as they are now (RFC 9133 §3.2.1), in
// config data (c=c and c=a).
func TestSignalACLStatus(t *testing.T) {
	f := newFixture(t, service.Options{Backends: []divert.Diverter{newFilters()}})
	register(t, f.svc, alpha)
	if _, err := f.svc.PutACLs(alpha, mustACLs(t, aclBody("drop", "deactivate", "203.0.113.0/26")), false, service.Insert{}); err != nil {
		t.Fatal(err)
	}
	if _, err := aclPut(t, f.svc, alpha, 1, false); err != nil {
		t.Fatal(err)
	}
	res, err := aclPut(t, f.svc, alpha, 2, false, ctl("drop", 2))
	if err != nil || res.Code != dots.Created {
		t.Fatalf("put: %+v %v", res, err)
	}
	show := func() string {
		r, err := f.svc.Mitigation(alpha, 2)
		if err != nil {
			t.Fatal(err)
		}
		sc := r.StatusScope(f.clk.Now(), true, false)
		var out string
		for _, a := range sc.ACLList {
			out += fmt.Sprintf("%s=%v ", a.ACLName, *a.ActivationType)
		}
		if n := len(r.StatusScope(f.clk.Now(), false, true).ACLList); n != 0 {
			t.Errorf("acl-list in non-config data (c=n): %d entries", n)
		}
		return out
	}
	if got := show(); got != "drop=immediate " {
		t.Errorf("status %q", got)
	}
	// A change over the data channel shows in the next status.
	if _, err := f.svc.PutACLs(alpha, mustACLs(t, aclBody("drop", "deactivate", "203.0.113.0/26")), true, service.Insert{}); err != nil {
		t.Fatal(err)
	}
	if got := show(); got != "drop=deactivate " {
		t.Errorf("status after the data-channel change %q", got)
	}
}

// TestNotifyACLs: a data-channel change of an ACL during a mitigation
// hands the watchers the client's active requests as they now are (RFC
// 9133 §3.2.1): the accept-list conflict gone with the deactivated ACL,
// back with it, and gone again when the ACL is deleted.
func TestNotifyACLs(t *testing.T) {
	// No mitigator: no backend outcome adds events of its own.
	f := newFixture(t, service.Options{})
	register(t, f.svc, alpha)
	accept := func(act string) []data.ACL {
		return mustACLs(t, aclWith("allow", act, "203.0.113.0/26", `{"forwarding":"accept"}`))
	}
	if _, err := f.svc.PutACLs(alpha, accept("immediate"), false, service.Insert{}); err != nil {
		t.Fatal(err)
	}
	events := make(chan service.Event, 16)
	defer f.svc.Watch(func(ev service.Event) {
		if ev.CUID == alpha.CUID {
			events <- ev
		}
	})()
	next := func() service.Event {
		t.Helper()
		select {
		case ev := <-events:
			return ev
		case <-time.After(5 * time.Second):
			t.Fatal("no event")
		}
		return service.Event{}
	}
	if _, err := aclPut(t, f.svc, alpha, 1, false); err != nil {
		t.Fatal(err)
	}
	if ev := next(); len(ev.Changed) != 1 || conflictOf(ev.Changed[0].Conflict) != "conflict-with-acceptlist allow/ipv4-acl-type" {
		t.Fatalf("creation event %+v, want mid 1 with the accept-list conflict", ev)
	}
	f.svc.NotifyACLs(beta.CUID) // no mitigation: nothing to tell
	noConflict := func(what string) {
		t.Helper()
		if ev := next(); len(ev.Changed) != 1 || ev.Changed[0].MID != 1 || ev.Changed[0].Conflict != nil {
			t.Fatalf("%s: event %+v (conflict %s), want mid 1 without a conflict", what, ev, conflictOf(ev.Changed[0].Conflict))
		}
	}
	if _, err := f.svc.PutACLs(alpha, accept("deactivate"), true, service.Insert{}); err != nil {
		t.Fatal(err)
	}
	noConflict("after the deactivation")
	if _, err := f.svc.PutACLs(alpha, accept("immediate"), true, service.Insert{}); err != nil {
		t.Fatal(err)
	}
	if ev := next(); len(ev.Changed) != 1 || conflictOf(ev.Changed[0].Conflict) != "conflict-with-acceptlist allow/ipv4-acl-type" {
		t.Fatalf("after the reactivation: event %+v, want mid 1 with the accept-list conflict", ev)
	}
	if err := f.svc.DeleteACL(alpha, "allow"); err != nil {
		t.Fatal(err)
	}
	noConflict("after the deletion")
	select {
	case ev := <-events:
		t.Fatalf("an extra event: %+v", ev)
	case <-time.After(100 * time.Millisecond):
	}
}
