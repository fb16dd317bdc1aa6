package mitigation_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsserver/mitigation"
)

// RFC 9132 §4.4.4: DELETE answers 2.02; an active request stays in status 5
// for the active-but-terminating period (120 s), then ends in status 6.
func TestDeleteActiveButTerminating(t *testing.T) {
	b := mitigation.NewBook(mitigation.Policy{})
	k := key(cuidA, 1)
	mustPut(t, b, mkPut(cuidA, 1, 3600, pfx("192.0.2.0/24")), at(0))

	res := b.Delete(k, at(10))
	if res.Code != dots.Deleted {
		t.Fatalf("code = %s, want 2.02", res.Code)
	}
	if res.Record == nil || res.Record.Status != dots.StatusClientWithdrawn || !res.Record.TerminateAt.Equal(at(130)) {
		t.Fatalf("Record = %+v, want status 5 until t0+130s", res.Record)
	}
	if len(res.Withdraw) != 0 || len(res.Activate) != 0 || len(res.Notify) != 0 {
		t.Errorf("Delete must keep diverting during the period: %+v", res)
	}
	eqStrings(t, "Changes", changeSummary(res.Changes), []string{"put client-A/1"})
	if r := mustGet(t, b, k); r.Status != dots.StatusClientWithdrawn || !r.Active() {
		t.Errorf("status = %d active = %v, want 5 and still active", r.Status, r.Active())
	}
	if len(b.Active()) != 1 {
		t.Error("status-5 request not in Active()")
	}

	// A repeated DELETE changes nothing (and does not restart the period).
	res = b.Delete(k, at(20))
	if res.Code != dots.Deleted {
		t.Fatalf("second Delete code = %s", res.Code)
	}
	emptyResult(t, res)

	for _, s := range []float64{11, 60, 129, 129.999} {
		if res := b.Tick(at(s)); len(res.Changes)+len(res.Withdraw)+len(res.Notify) != 0 {
			t.Fatalf("Tick(t0+%vs) = %+v, want nothing before the period ends", s, res)
		}
	}
	res = b.Tick(at(130))
	if len(res.Notify) != 1 || res.Notify[0].Key != k || res.Notify[0].Status != dots.StatusTerminated {
		t.Fatalf("Notify = %+v, want a status-6 copy of %v", res.Notify, k)
	}
	eqKeys(t, "Withdraw", res.Withdraw, []mitigation.Key{k})
	eqStrings(t, "Changes", changeSummary(res.Changes), []string{"del client-A/1"})
	absent(t, b, k)
	if len(b.Active()) != 0 || b.HasActive(cuidA) {
		t.Error("terminated request still active")
	}
	emptyResult(t, b.Tick(at(131)))
	if res := b.Delete(k, at(140)); res.Code != dots.Deleted || len(res.Changes) != 0 {
		t.Errorf("Delete after termination = %+v", res)
	}
}

// RFC 9132 §4.4.4: a re-request within the period brings the mitigation
// back; the next period doubles, capped at 300 s.
func TestReRequestWhileTerminating(t *testing.T) {
	b := mitigation.NewBook(mitigation.Policy{})
	k := key(cuidA, 1)
	in := mkPut(cuidA, 1, 3600, pfx("192.0.2.0/24"))
	first := mustPut(t, b, in, at(0))
	start := first.Record.Start
	now := 0.0
	for i, wantPeriod := range []float64{120, 240, 300, 300, 300} {
		now += 10
		del := b.Delete(k, at(now))
		if del.Record == nil {
			t.Fatalf("round %d: Delete changed nothing", i)
		}
		if got := del.Record.TerminateAt.Sub(at(now)).Seconds(); got != wantPeriod {
			t.Fatalf("round %d: active-but-terminating period = %vs, want %vs", i, got, wantPeriod)
		}
		now += wantPeriod - 1 // just inside the period
		res := mustPut(t, b, in, at(now))
		if res.Code != dots.Created {
			t.Errorf("round %d: re-request code = %s, want 2.01", i, res.Code)
		}
		if len(res.Activate) != 1 || res.Activate[0].Key != k || res.Activate[0].Status != dots.StatusInProgress {
			t.Fatalf("round %d: Activate = %+v", i, res.Activate)
		}
		r := mustGet(t, b, k)
		if r.Status != dots.StatusInProgress || !r.TerminateAt.IsZero() {
			t.Fatalf("round %d: status %d terminate-at %v, want 1 and none", i, r.Status, r.TerminateAt)
		}
		if !r.Start.Equal(start) {
			t.Errorf("round %d: mitigation-start moved from %v to %v", i, start, r.Start)
		}
		if want := at(now).Add(3600 * time.Second); !r.Expires.Equal(want) {
			t.Errorf("round %d: Expires = %v, want %v", i, r.Expires, want)
		}
		// The old termination deadline no longer applies.
		if res := b.Tick(at(now + 2)); len(res.Notify) != 0 {
			t.Fatalf("round %d: Tick after re-request terminated it", i)
		}
	}
}

// Policy knobs for the period.
func TestTerminatingPolicy(t *testing.T) {
	b := mitigation.NewBook(mitigation.Policy{Terminating: 10 * time.Second, MaxTerminating: 25 * time.Second})
	k := key(cuidA, 1)
	in := mkPut(cuidA, 1, 3600, pfx("192.0.2.0/24"))
	mustPut(t, b, in, at(0))
	for i, want := range []time.Duration{10, 20, 25} {
		res := b.Delete(k, at(0))
		if got := res.Record.TerminateAt.Sub(at(0)); got != want*time.Second {
			t.Fatalf("round %d: period %v, want %vs", i, got, want)
		}
		mustPut(t, b, in, at(0))
	}
}

func TestDeleteWithoutPeriod(t *testing.T) {
	for _, tc := range []struct {
		name    string
		setup   func(b *mitigation.Book)
		k       mitigation.Key
		deleted bool
	}{
		{"unknown mid", func(b *mitigation.Book) { mustPut(t, b, mkPut(cuidA, 1, 3600, pfx("192.0.2.0/24")), at(0)) }, key(cuidA, 2), false},
		{"unknown client", func(b *mitigation.Book) {}, key(cuidA, 1), false},
		{"other client's mid", func(b *mitigation.Book) { mustPut(t, b, mkPut(cuidB, 1, 3600, pfx("192.0.2.0/24")), at(0)) }, key(cuidA, 1), false},
		{"status 8", func(b *mitigation.Book) { mustPut(t, b, mkPut(cuidA, 1, 3600, pfx("192.0.2.0/24"), onLoss), at(0)) }, key(cuidA, 1), true},
		{"status 7", func(b *mitigation.Book) {
			mustPut(t, b, mkPut(cuidA, 1, 3600, pfx("10.0.0.0/16"), onLoss), at(0))
			mustPut(t, b, mkPut(cuidA, 2, 3600, pfx("10.0.1.0/24")), at(0))
			b.SessionLost(cuidA, at(1))
		}, key(cuidA, 2), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := mitigation.NewBook(mitigation.Policy{})
			tc.setup(b)
			before := len(b.List(tc.k.CUID))
			res := b.Delete(tc.k, at(5))
			if res.Code != dots.Deleted {
				t.Fatalf("code = %s, want 2.02", res.Code)
			}
			if !tc.deleted {
				emptyResult(t, res)
				if len(b.List(tc.k.CUID)) != before {
					t.Error("book changed")
				}
				return
			}
			eqStrings(t, "Changes", changeSummary(res.Changes), []string{"del " + tc.k.CUID + "/" + strconvU(tc.k.MID)})
			if len(res.Withdraw) != 0 || len(res.Notify) != 0 || len(res.Activate) != 0 {
				t.Errorf("inactive request: Result = %+v, want only the delete", res)
			}
			absent(t, b, tc.k)
		})
	}
}

// RFC 9132 §4.4.1: a request not refreshed before its lifetime ends is removed.
func TestLifetimeExpiry(t *testing.T) {
	for _, tc := range []struct {
		name     string
		policy   mitigation.Policy
		in       mitigation.PutRequest
		never    bool
		withdraw bool
	}{
		{name: "immediate", in: mkPut(cuidA, 1, 60, pfx("192.0.2.0/24")), withdraw: true},
		{name: "trigger-false", in: mkPut(cuidA, 1, 60, pfx("192.0.2.0/24"), onLoss)},
		{name: "indefinite", policy: mitigation.Policy{AllowIndefinite: true}, in: mkPut(cuidA, 1, -1, pfx("192.0.2.0/24")), never: true},
		{name: "indefinite trigger-false", policy: mitigation.Policy{AllowIndefinite: true}, in: mkPut(cuidA, 1, -1, pfx("192.0.2.0/24"), onLoss), never: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := mitigation.NewBook(tc.policy)
			k := keyOf(tc.in)
			mustPut(t, b, tc.in, at(0))
			if tc.never {
				for _, s := range []float64{60, 3600, 86400 * 365 * 100} {
					emptyResult(t, b.Tick(at(s)))
				}
				mustGet(t, b, k)
				return
			}
			emptyResult(t, b.Tick(at(59.5)))
			if r := mustGet(t, b, k); r.Remaining(at(59.5)) != 1 {
				t.Errorf("Remaining(59.5s) = %d, want 1", r.Remaining(at(59.5)))
			}
			res := b.Tick(at(60))
			if len(res.Notify) != 1 || res.Notify[0].Status != dots.StatusTerminated || res.Notify[0].Key != k {
				t.Fatalf("Notify = %+v", res.Notify)
			}
			if tc.withdraw {
				eqKeys(t, "Withdraw", res.Withdraw, []mitigation.Key{k})
			} else if len(res.Withdraw) != 0 {
				t.Errorf("Withdraw = %v for a request that never diverted", res.Withdraw)
			}
			eqStrings(t, "Changes", changeSummary(res.Changes), []string{"del client-A/1"})
			absent(t, b, k)
			if len(b.List(cuidA)) != 0 {
				t.Error("List not empty")
			}
		})
	}
}

// A refresh pushes expiry out; Tick at the old deadline keeps the request.
func TestRefreshPostponesExpiry(t *testing.T) {
	b := mitigation.NewBook(mitigation.Policy{})
	in := mkPut(cuidA, 1, 60, pfx("192.0.2.0/24"))
	mustPut(t, b, in, at(0))
	mustPut(t, b, in, at(50))
	emptyResult(t, b.Tick(at(60)))
	emptyResult(t, b.Tick(at(109)))
	if res := b.Tick(at(110)); len(res.Notify) != 1 {
		t.Fatalf("not expired at the refreshed deadline: %+v", res)
	}
}

// Tick handles several clients and requests in one pass, in a stable order.
func TestTickSeveral(t *testing.T) {
	b := mitigation.NewBook(mitigation.Policy{})
	mustPut(t, b, mkPut(cuidB, 2, 30, pfx("10.2.0.0/24")), at(0))
	mustPut(t, b, mkPut(cuidA, 9, 30, pfx("10.1.9.0/24")), at(0))
	mustPut(t, b, mkPut(cuidA, 3, 30, pfx("10.1.3.0/24")), at(0))
	mustPut(t, b, mkPut(cuidA, 4, 300, pfx("10.1.4.0/24")), at(0))
	b.Delete(key(cuidA, 4), at(0)) // ends at 120 s
	res := b.Tick(at(30))
	eqKeys(t, "Withdraw", res.Withdraw, []mitigation.Key{key(cuidA, 3), key(cuidA, 9), key(cuidB, 2)})
	eqKeys(t, "Notify", keysOf(res.Notify), []mitigation.Key{key(cuidA, 3), key(cuidA, 9), key(cuidB, 2)})
	eqKeys(t, "List", keysOf(b.List(cuidA)), []mitigation.Key{key(cuidA, 4)})
	res = b.Tick(at(120))
	eqKeys(t, "Withdraw", res.Withdraw, []mitigation.Key{key(cuidA, 4)})
	if len(b.Active()) != 0 {
		t.Errorf("Active = %v", keysOf(b.Active()))
	}
}

// RFC 9132 §4.4.1/§4.7: on signal loss the client's trigger-mitigation=false
// requests start and the active immediate requests they overlap are
// withdrawn by the server (status 7, no active-but-terminating period).
func TestSessionLost(t *testing.T) {
	b := mitigation.NewBook(mitigation.Policy{})
	mustPut(t, b, mkPut(cuidA, 1, 3600, pfx("10.0.0.0/16"), onLoss), at(0))
	mustPut(t, b, mkPut(cuidA, 2, 3600, pfx("10.0.1.0/24")), at(0))  // overlapped → 7
	mustPut(t, b, mkPut(cuidA, 3, 3600, pfx("192.0.2.0/24")), at(0)) // disjoint → stays 1
	mustPut(t, b, mkPut(cuidA, 4, 3600, pfx("10.0.2.0/24")), at(0))  // overlapped but terminating → stays 5
	mustPut(t, b, mkPut(cuidA, 5, 3600, pfx("198.51.100.0/24"), onLoss), at(0))
	mustPut(t, b, mkPut(cuidA, 6, 3600, pfx("198.51.100.0/25")), at(0)) // overlapped by mid 5 → 7
	b.Delete(key(cuidA, 4), at(1))
	mustPut(t, b, mkPut(cuidB, 1, 3600, pfx("10.0.1.0/24")), at(0)) // other client: untouched
	mustPut(t, b, mkPut(cuidB, 2, 3600, pfx("10.0.0.0/8"), onLoss), at(0))
	if st := mustGet(t, b, key(cuidA, 1)).StatusScope(at(2), true, true); st.MitigationStart != nil {
		t.Errorf("status 8 carries mitigation-start %v", *st.MitigationStart)
	}

	res := b.SessionLost(cuidA, at(50))
	eqKeys(t, "Activate", keysOf(res.Activate), []mitigation.Key{key(cuidA, 1), key(cuidA, 5)})
	for _, r := range res.Activate {
		if r.Status != dots.StatusInProgress || !r.Start.Equal(at(50)) {
			t.Errorf("activated %v: status %d start %v", r.Key, r.Status, r.Start)
		}
	}
	eqKeys(t, "Withdraw", res.Withdraw, []mitigation.Key{key(cuidA, 2), key(cuidA, 6)})
	if len(res.Notify) != 0 {
		t.Errorf("Notify = %v", keysOf(res.Notify))
	}
	changed := map[string]bool{}
	for _, c := range changeSummary(res.Changes) {
		changed[c] = true
	}
	for _, want := range []string{"put client-A/1", "put client-A/2", "put client-A/5", "put client-A/6"} {
		if !changed[want] {
			t.Errorf("Changes %v lack %q", changeSummary(res.Changes), want)
		}
	}
	if len(res.Changes) != 4 {
		t.Errorf("Changes = %v, want 4 puts", changeSummary(res.Changes))
	}
	for mid, want := range map[uint32]dots.Status{1: 1, 2: 7, 3: 1, 4: 5, 5: 1, 6: 7} {
		if got := mustGet(t, b, key(cuidA, mid)).Status; got != want {
			t.Errorf("mid %d: status %d, want %d", mid, got, want)
		}
	}
	if got := mustGet(t, b, key(cuidB, 1)).Status; got != dots.StatusInProgress {
		t.Errorf("client B mid 1: status %d", got)
	}
	if got := mustGet(t, b, key(cuidB, 2)).Status; got != dots.StatusSignalLoss {
		t.Errorf("client B mid 2: status %d", got)
	}
	st := mustGet(t, b, key(cuidA, 1)).StatusScope(at(60), true, true)
	if st.MitigationStart == nil || int64(*st.MitigationStart) != at(50).Unix() {
		t.Errorf("mitigation-start = %v, want %d", st.MitigationStart, at(50).Unix())
	}
	// Status 7 is not diverting.
	for _, r := range b.Active() {
		if r.Key == key(cuidA, 2) || r.Key == key(cuidA, 6) {
			t.Errorf("%v still in Active()", r.Key)
		}
	}
	// Nothing left to do on a second loss.
	emptyResult(t, b.SessionLost(cuidA, at(70)))
	emptyResult(t, b.SessionLost("nobody", at(70)))
	// The activated request ends by DELETE (RFC 9132 §4.4.4), with the period.
	if del := b.Delete(key(cuidA, 1), at(80)); del.Record == nil || del.Record.Status != dots.StatusClientWithdrawn {
		t.Errorf("Delete of the activated request = %+v", del)
	}
}

// SetOutcome records the mitigator's verdict only for diverting requests.
func TestSetOutcome(t *testing.T) {
	for _, tc := range []struct {
		name    string
		setup   func(b *mitigation.Book)
		k       mitigation.Key
		status  dots.Status
		note    string
		changed bool
	}{
		{"active → mitigated", func(b *mitigation.Book) {}, key(cuidA, 1), dots.StatusMitigated, "", true},
		{"active → exceeded with note", func(b *mitigation.Book) {}, key(cuidA, 1), dots.StatusExceededCapability, "too big", true},
		{"same status, new note", func(b *mitigation.Book) {}, key(cuidA, 1), dots.StatusInProgress, "diverting", true},
		{"nothing new", func(b *mitigation.Book) {}, key(cuidA, 1), dots.StatusInProgress, "", false},
		{"after an earlier outcome", func(b *mitigation.Book) { b.SetOutcome(key(cuidA, 1), dots.StatusMitigated, "") },
			key(cuidA, 1), dots.StatusAttackStopped, "", true},
		{"status 8", func(b *mitigation.Book) {}, key(cuidA, 2), dots.StatusMitigated, "x", false},
		{"status 5", func(b *mitigation.Book) { b.Delete(key(cuidA, 1), at(1)) }, key(cuidA, 1), dots.StatusMitigated, "x", false},
		{"unknown", func(b *mitigation.Book) {}, key(cuidA, 9), dots.StatusMitigated, "x", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := mitigation.NewBook(mitigation.Policy{})
			mustPut(t, b, mkPut(cuidA, 1, 3600, pfx("10.0.1.0/24")), at(0))
			mustPut(t, b, mkPut(cuidA, 2, 3600, pfx("10.0.2.0/24"), onLoss), at(0))
			tc.setup(b)
			before, _ := b.Get(tc.k)
			res := b.SetOutcome(tc.k, tc.status, tc.note)
			after, ok := b.Get(tc.k)
			if !tc.changed {
				emptyResult(t, res)
				if ok && (after.Status != before.Status || after.Note != before.Note) {
					t.Errorf("record changed: %+v → %+v", before, after)
				}
				return
			}
			if after.Status != tc.status || after.Note != tc.note {
				t.Errorf("stored status %d note %q, want %d %q", after.Status, after.Note, tc.status, tc.note)
			}
			if res.Record == nil || res.Record.Status != tc.status {
				t.Errorf("Record = %+v", res.Record)
			}
			eqStrings(t, "Changes", changeSummary(res.Changes), []string{"put client-A/1"})
			if len(res.Activate)+len(res.Withdraw)+len(res.Notify) != 0 {
				t.Errorf("SetOutcome touched the mitigator: %+v", res)
			}
		})
	}
}

// Restore loads persisted records; the first Tick ends what expired while
// the server was down.
func TestRestoreThenTick(t *testing.T) {
	recs := []*mitigation.Record{
		{Key: key(cuidA, 1), Lifetime: 60, Expires: at(60), Start: at(0), Status: dots.StatusInProgress, Trigger: true,
			Prefixes: []netip.Prefix{netip.MustParsePrefix("10.0.1.0/24")}},
		{Key: key(cuidA, 2), Lifetime: 3600, Expires: at(3600), Start: at(0), Status: dots.StatusClientWithdrawn, Trigger: true,
			TerminateAt: at(120), Prefixes: []netip.Prefix{netip.MustParsePrefix("10.0.2.0/24")}},
		{Key: key(cuidA, 3), Lifetime: 3600, Expires: at(3600), Start: at(0), Status: dots.StatusMitigated, Trigger: true,
			Prefixes: []netip.Prefix{netip.MustParsePrefix("10.0.3.0/24")}},
		{Key: key(cuidB, 1), Lifetime: -1, Status: dots.StatusSignalLoss,
			Prefixes: []netip.Prefix{netip.MustParsePrefix("10.0.4.0/24")}},
		{Key: key(cuidB, 2), Lifetime: 100, Expires: at(100), Status: dots.StatusSignalLoss,
			Prefixes: []netip.Prefix{netip.MustParsePrefix("10.0.5.0/24")}},
	}
	b := mitigation.NewBook(mitigation.Policy{})
	for _, r := range recs {
		b.Restore(r)
	}
	recs[2].Status = dots.StatusTerminated // Restore must have copied
	if got := mustGet(t, b, key(cuidA, 3)).Status; got != dots.StatusMitigated {
		t.Fatalf("Restore kept a reference: status %d", got)
	}
	eqKeys(t, "Active", keysOf(b.Active()), []mitigation.Key{key(cuidA, 1), key(cuidA, 2), key(cuidA, 3)})

	res := b.Tick(at(1000))
	eqKeys(t, "Notify", keysOf(res.Notify), []mitigation.Key{key(cuidA, 1), key(cuidA, 2), key(cuidB, 2)})
	eqKeys(t, "Withdraw", res.Withdraw, []mitigation.Key{key(cuidA, 1), key(cuidA, 2)})
	eqStrings(t, "Changes", changeSummary(res.Changes), []string{"del client-A/1", "del client-A/2", "del client-B/2"})
	eqKeys(t, "List A", keysOf(b.List(cuidA)), []mitigation.Key{key(cuidA, 3)})
	eqKeys(t, "List B", keysOf(b.List(cuidB)), []mitigation.Key{key(cuidB, 1)})
	// Restored records take part in overlap rules.
	_, err := b.Put(mkPut(cuidA, 2, 60, pfx("10.0.3.0/25")), at(1001))
	protoErr(t, err, dots.Conflict)
}

// Get, List and Active hand out copies in mid order.
func TestAccessorsReturnCopies(t *testing.T) {
	b := mitigation.NewBook(mitigation.Policy{})
	for _, mid := range []uint32{30, 2, 17} {
		mustPut(t, b, mkPut(cuidA, mid, 3600, pfx("10.0."+strconvU(mid)+".0/24")), at(0))
	}
	res := mustPut(t, b, mkPut(cuidA, 40, 3600, pfx("10.1.0.0/24"), onLoss), at(0))
	res.Record.Status = dots.StatusTerminated
	res.Changes[0].Record.Status = dots.StatusTerminated

	eqKeys(t, "List", keysOf(b.List(cuidA)), []mitigation.Key{key(cuidA, 2), key(cuidA, 17), key(cuidA, 30), key(cuidA, 40)})
	eqKeys(t, "Active", keysOf(b.Active()), []mitigation.Key{key(cuidA, 2), key(cuidA, 17), key(cuidA, 30)})
	if len(b.List(cuidB)) != 0 || b.HasActive(cuidB) {
		t.Error("unknown client has requests")
	}
	for _, r := range b.List(cuidA) {
		r.Status = dots.StatusTerminated
	}
	for _, r := range b.Active() {
		r.Status = dots.StatusTerminated
	}
	g := mustGet(t, b, key(cuidA, 2))
	g.Status = dots.StatusTerminated
	for _, r := range b.List(cuidA) {
		if r.Status == dots.StatusTerminated {
			t.Fatalf("caller's copy changed the book: %v", r.Key)
		}
	}
}

// An immediate request that overlaps an activated preconfigured one of the
// same client sends the preconfigured one back to waiting (status 8).
func TestImmediateDeactivatesPreconfigured(t *testing.T) {
	b := mitigation.NewBook(mitigation.Policy{})
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	pre := &dots.Request{Scope: dots.Scope{TargetPrefix: []string{"203.0.113.0/28"}}, Lifetime: 3600, Trigger: false,
		Prefixes: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/28")}}
	if _, err := b.Put(mitigation.PutRequest{CUID: "a", MID: 1, Req: pre, Prefixes: pre.Prefixes}, now); err != nil {
		t.Fatal(err)
	}
	res := b.SessionLost("a", now.Add(time.Minute))
	if len(res.Activate) != 1 {
		t.Fatalf("signal loss activated %d requests", len(res.Activate))
	}
	imm := &dots.Request{Scope: dots.Scope{TargetPrefix: []string{"203.0.113.1/32"}}, Lifetime: 3600, Trigger: true,
		Prefixes: []netip.Prefix{netip.MustParsePrefix("203.0.113.1/32")}}
	res, err := b.Put(mitigation.PutRequest{CUID: "a", MID: 2, Req: imm, Prefixes: imm.Prefixes}, now.Add(2*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Withdraw) != 1 || res.Withdraw[0].MID != 1 {
		t.Fatalf("withdraw %v, want the preconfigured mid 1", res.Withdraw)
	}
	if r, _ := b.Get(mitigation.Key{CUID: "a", MID: 1}); r.Status != dots.StatusSignalLoss || !r.Start.IsZero() {
		t.Fatalf("preconfigured request: status %s, start %v; want attack-mitigation-signal-loss", r.Status, r.Start)
	}
	if r, _ := b.Get(mitigation.Key{CUID: "a", MID: 2}); r.Status != dots.StatusInProgress {
		t.Fatalf("immediate request: status %s", r.Status)
	}
}
