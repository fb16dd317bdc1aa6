package mitigation_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsserver/mitigation"
)

// RFC 9132 §4.4.1: an unknown mid is accepted with 2.01; an immediate
// request starts (status 1), a trigger-mitigation=false one waits (status 8).
func TestPutCreate(t *testing.T) {
	for _, tc := range []struct {
		name       string
		in         mitigation.PutRequest
		wantStatus dots.Status
		activate   bool
	}{
		{"immediate", mkPut(cuidA, 1, 3600, pfx("192.0.2.0/24")), dots.StatusInProgress, true},
		{"trigger-false", mkPut(cuidA, 1, 3600, pfx("192.0.2.0/24"), onLoss), dots.StatusSignalLoss, false},
		{"with note", mkPut(cuidA, 7, 60, pfx("2001:db8::/48"), note("no mitigator")), dots.StatusInProgress, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := mitigation.NewBook(mitigation.Policy{})
			now := at(10)
			res := mustPut(t, b, tc.in, now)
			if res.Code != dots.Created {
				t.Fatalf("code = %s, want 2.01", res.Code)
			}
			k := key(tc.in.CUID, tc.in.MID)
			if res.Record == nil || res.Record.Key != k || res.Record.Status != tc.wantStatus {
				t.Fatalf("Record = %+v, want %v status %d", res.Record, k, tc.wantStatus)
			}
			if res.Conflict != nil || len(res.Withdraw) != 0 || len(res.Notify) != 0 {
				t.Errorf("unexpected conflict/withdraw/notify: %+v", res)
			}
			eqStrings(t, "Changes", changeSummary(res.Changes), []string{"put " + tc.in.CUID + "/" + strconvU(tc.in.MID)})
			got := mustGet(t, b, k)
			if got.Status != tc.wantStatus || got.Trigger != tc.activate || got.Domain != tc.in.Domain || got.Note != tc.in.Note {
				t.Errorf("stored = %+v", got)
			}
			wantExp := now.Add(time.Duration(*tc.in.Req.Scope.Lifetime) * time.Second)
			if got.Lifetime != *tc.in.Req.Scope.Lifetime || !got.Expires.Equal(wantExp) {
				t.Errorf("lifetime %d expires %v, want %d %v", got.Lifetime, got.Expires, *tc.in.Req.Scope.Lifetime, wantExp)
			}
			if tc.activate {
				if len(res.Activate) != 1 || res.Activate[0].Key != k || res.Activate[0].Status != dots.StatusInProgress {
					t.Errorf("Activate = %v, want %v in status 1", keysOf(res.Activate), k)
				}
				if !got.Start.Equal(now) {
					t.Errorf("Start = %v, want %v", got.Start, now)
				}
				if !b.HasActive(tc.in.CUID) || len(b.Active()) != 1 {
					t.Error("request not reported active")
				}
			} else {
				if len(res.Activate) != 0 {
					t.Errorf("Activate = %v, want none for status 8", keysOf(res.Activate))
				}
				if !got.Start.IsZero() {
					t.Errorf("Start = %v, want zero while status 8", got.Start)
				}
				if b.HasActive(tc.in.CUID) || len(b.Active()) != 0 {
					t.Error("status-8 request reported active")
				}
			}
		})
	}
}

func strconvU(v uint32) string { return strconv.FormatUint(uint64(v), 10) }

// RFC 9132 §4.4.1: lifetime is mandatory and 0 is invalid.
func TestPutCreateWithoutLifetime(t *testing.T) {
	b := mitigation.NewBook(mitigation.Policy{})
	in := mkPut(cuidA, 1, 0, pfx("192.0.2.0/24"))
	_, err := b.Put(in, t0)
	protoErr(t, err, dots.BadRequest)
	absent(t, b, key(cuidA, 1))
}

// RFC 9132 §4.4.1: same mid, same parameters apart from lifetime → 2.04 and
// the lifetime restarts; any other change → 4.00.
func TestPutRefresh(t *testing.T) {
	for _, tc := range []struct {
		name   string
		create mitigation.PutRequest
		again  mitigation.PutRequest
		want   dots.Code
	}{
		{"same params", mkPut(cuidA, 1, 600, pfx("192.0.2.0/24")), mkPut(cuidA, 1, 600, pfx("192.0.2.0/24")), dots.Changed},
		{"other lifetime", mkPut(cuidA, 1, 600, pfx("192.0.2.0/24")), mkPut(cuidA, 1, 900, pfx("192.0.2.0/24")), dots.Changed},
		{"all attributes", mkPut(cuidA, 1, 600, pfx("192.0.2.0/24"), ports(80, 443), protocol(6), fqdn("www.example.com"), uri("https://www.example.com/"), alias("web")),
			mkPut(cuidA, 1, 600, pfx("192.0.2.0/24"), ports(80, 443), protocol(6), fqdn("www.example.com"), uri("https://www.example.com/"), alias("web")), dots.Changed},
		{"trigger-false", mkPut(cuidA, 1, 600, pfx("192.0.2.0/24"), onLoss), mkPut(cuidA, 1, 600, pfx("192.0.2.0/24"), onLoss), dots.Changed},
		{"single port written without and with upper-port", mkPut(cuidA, 1, 600, pfx("192.0.2.0/24"), port(53)), mkPut(cuidA, 1, 600, pfx("192.0.2.0/24"), ports(53, 53)), dots.Changed},
		{"single port vs range", mkPut(cuidA, 1, 600, pfx("192.0.2.0/24"), port(53)), mkPut(cuidA, 1, 600, pfx("192.0.2.0/24"), ports(53, 54)), dots.BadRequest},
		{"other prefix", mkPut(cuidA, 1, 600, pfx("192.0.2.0/24")), mkPut(cuidA, 1, 600, pfx("192.0.2.0/25")), dots.BadRequest},
		{"extra prefix", mkPut(cuidA, 1, 600, pfx("192.0.2.0/24")), mkPut(cuidA, 1, 600, pfx("192.0.2.0/24", "198.51.100.0/24")), dots.BadRequest},
		{"port range added", mkPut(cuidA, 1, 600, pfx("192.0.2.0/24")), mkPut(cuidA, 1, 600, pfx("192.0.2.0/24"), ports(80, 80)), dots.BadRequest},
		{"port range changed", mkPut(cuidA, 1, 600, pfx("192.0.2.0/24"), ports(80, 90)), mkPut(cuidA, 1, 600, pfx("192.0.2.0/24"), ports(80, 91)), dots.BadRequest},
		{"protocol", mkPut(cuidA, 1, 600, pfx("192.0.2.0/24"), protocol(6)), mkPut(cuidA, 1, 600, pfx("192.0.2.0/24"), protocol(17)), dots.BadRequest},
		{"fqdn", mkPut(cuidA, 1, 600, pfx("192.0.2.0/24")), mkPut(cuidA, 1, 600, pfx("192.0.2.0/24"), fqdn("a.example")), dots.BadRequest},
		{"uri", mkPut(cuidA, 1, 600, pfx("192.0.2.0/24")), mkPut(cuidA, 1, 600, pfx("192.0.2.0/24"), uri("https://a.example/")), dots.BadRequest},
		{"alias", mkPut(cuidA, 1, 600, pfx("192.0.2.0/24")), mkPut(cuidA, 1, 600, pfx("192.0.2.0/24"), alias("x")), dots.BadRequest},
		{"trigger flipped", mkPut(cuidA, 1, 600, pfx("192.0.2.0/24")), mkPut(cuidA, 1, 600, pfx("192.0.2.0/24"), onLoss), dots.BadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := mitigation.NewBook(mitigation.Policy{})
			mustPut(t, b, tc.create, at(0))
			before := mustGet(t, b, keyOf(tc.create))
			res, err := b.Put(tc.again, at(100))
			if tc.want != dots.Changed {
				protoErr(t, err, tc.want)
				after := mustGet(t, b, keyOf(tc.create))
				if after.Lifetime != before.Lifetime || !after.Expires.Equal(before.Expires) || after.Status != before.Status {
					t.Errorf("refused refresh changed the record: %+v → %+v", before, after)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.Code != dots.Changed {
				t.Fatalf("code = %s, want 2.04", res.Code)
			}
			lt := *tc.again.Req.Scope.Lifetime
			after := mustGet(t, b, keyOf(tc.create))
			if want := at(100).Add(time.Duration(lt) * time.Second); after.Lifetime != lt || !after.Expires.Equal(want) {
				t.Errorf("lifetime %d expires %v, want %d %v", after.Lifetime, after.Expires, lt, want)
			}
			if after.Status != before.Status || !after.Start.Equal(before.Start) {
				t.Errorf("refresh changed status/start: %+v → %+v", before, after)
			}
			if len(res.Activate) != 0 || len(res.Withdraw) != 0 {
				t.Errorf("refresh of a running request activated/withdrew: %+v", res)
			}
			eqStrings(t, "Changes", changeSummary(res.Changes), []string{"put client-A/1"})
			if res.Record == nil || res.Record.Lifetime != lt {
				t.Errorf("Record = %+v", res.Record)
			}
		})
	}
}

// RFC 9132 §4.4.3: an efficacy update carries attack-status (else 4.00), is
// a refresh (2.04), and is silently ignored for an unknown mid.
func TestEfficacyUpdate(t *testing.T) {
	for _, tc := range []struct {
		name     string
		create   bool
		in       mitigation.PutRequest
		wantCode dots.Code // 0: ignored
		wantErr  bool
		wantAS   dots.AttackStatus
		wantExp  time.Time
	}{
		{name: "with attack-status and lifetime", create: true,
			in:       mkPut(cuidA, 1, 300, pfx("192.0.2.0/24"), efficacy(dots.AttackMitigated)),
			wantCode: dots.Changed, wantAS: dots.AttackMitigated, wantExp: at(50).Add(300 * time.Second)},
		{name: "with attack-status, no lifetime (RFC 9132 Fig. 16)", create: true,
			in:       mkPut(cuidA, 1, 0, pfx("192.0.2.0/24"), efficacy(dots.AttackUnderAttack)),
			wantCode: dots.Changed, wantAS: dots.AttackUnderAttack, wantExp: at(3600)},
		{name: "without attack-status", create: true,
			in: mkPut(cuidA, 1, 300, pfx("192.0.2.0/24"), efficacy(0)), wantCode: dots.BadRequest, wantErr: true, wantExp: at(3600)},
		{name: "changed parameters", create: true,
			in: mkPut(cuidA, 1, 300, pfx("192.0.2.0/25"), efficacy(dots.AttackMitigated)), wantCode: dots.BadRequest, wantErr: true, wantExp: at(3600)},
		{name: "unknown mid", create: false,
			in: mkPut(cuidA, 1, 300, pfx("192.0.2.0/24"), efficacy(dots.AttackMitigated))},
		{name: "unknown mid, other mid exists", create: true,
			in: mkPut(cuidA, 2, 300, pfx("192.0.2.0/24"), efficacy(dots.AttackMitigated)), wantExp: at(3600)},
		{name: "unknown mid without attack-status", create: false,
			in: mkPut(cuidA, 1, 300, pfx("192.0.2.0/24"), efficacy(0))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := mitigation.NewBook(mitigation.Policy{})
			if tc.create {
				mustPut(t, b, mkPut(cuidA, 1, 3600, pfx("192.0.2.0/24")), at(0))
			}
			res, err := b.Put(tc.in, at(50))
			switch {
			case tc.wantErr:
				protoErr(t, err, tc.wantCode)
			case err != nil:
				t.Fatal(err)
			case tc.wantCode == 0:
				if res.Code != 0 {
					t.Fatalf("code = %s, want 0 (ignored)", res.Code)
				}
				emptyResult(t, res)
			default:
				if res.Code != tc.wantCode {
					t.Fatalf("code = %s, want %s", res.Code, tc.wantCode)
				}
				eqStrings(t, "Changes", changeSummary(res.Changes), []string{"put client-A/1"})
			}
			if !tc.create {
				if len(b.List(cuidA)) != 0 {
					t.Errorf("ignored efficacy update created %v", keysOf(b.List(cuidA)))
				}
				return
			}
			absent(t, b, key(cuidA, 2))
			r := mustGet(t, b, key(cuidA, 1))
			if r.AttackStatus != tc.wantAS {
				t.Errorf("AttackStatus = %d, want %d", r.AttackStatus, tc.wantAS)
			}
			if !r.Expires.Equal(tc.wantExp) {
				t.Errorf("Expires = %v, want %v", r.Expires.Sub(t0), tc.wantExp.Sub(t0))
			}
			if r.Status != dots.StatusInProgress {
				t.Errorf("Status = %d, want 1", r.Status)
			}
		})
	}
}

// RFC 9132 §4.4.3: an efficacy update that a DELETE overtook (the request
// is now active-but-terminating) is silently ignored and must not revive it;
// a plain PUT still re-requests it.
func TestEfficacyAfterDelete(t *testing.T) {
	for _, tc := range []struct {
		name       string
		in         mitigation.PutRequest
		wantCode   dots.Code
		wantStatus dots.Status
	}{
		{"efficacy update ignored", mkPut(cuidA, 1, 3600, pfx("192.0.2.0/24"), efficacy(dots.AttackMitigated)), 0, dots.StatusClientWithdrawn},
		{"efficacy update without lifetime ignored", mkPut(cuidA, 1, 0, pfx("192.0.2.0/24"), efficacy(dots.AttackUnderAttack)), 0, dots.StatusClientWithdrawn},
		{"plain re-request revives", mkPut(cuidA, 1, 3600, pfx("192.0.2.0/24")), dots.Created, dots.StatusInProgress},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := mitigation.NewBook(mitigation.Policy{})
			mustPut(t, b, mkPut(cuidA, 1, 3600, pfx("192.0.2.0/24")), at(0))
			b.Delete(key(cuidA, 1), at(10))
			res := mustPut(t, b, tc.in, at(11))
			if res.Code != tc.wantCode {
				t.Fatalf("code = %s, want %s", res.Code, tc.wantCode)
			}
			if tc.wantCode == 0 {
				emptyResult(t, res)
			}
			r := mustGet(t, b, key(cuidA, 1))
			if r.Status != tc.wantStatus {
				t.Errorf("status = %d, want %d", r.Status, tc.wantStatus)
			}
			if tc.wantCode == 0 && (!r.TerminateAt.Equal(at(130)) || r.AttackStatus != 0) {
				t.Errorf("ignored update changed the record: %+v", r)
			}
		})
	}
}

// The efficacy update's attack-status is kept, but not echoed in the
// server's status: it is a client-to-server attribute (RFC 9132 §4.4.2).
func TestEfficacyInStatus(t *testing.T) {
	b := mitigation.NewBook(mitigation.Policy{})
	mustPut(t, b, mkPut(cuidA, 1, 3600, pfx("192.0.2.0/24")), at(0))
	mustPut(t, b, mkPut(cuidA, 1, 3600, pfx("192.0.2.0/24"), efficacy(dots.AttackUnderAttack)), at(1))
	r := mustGet(t, b, key(cuidA, 1))
	if r.AttackStatus != dots.AttackUnderAttack {
		t.Errorf("kept attack-status = %v, want 1", r.AttackStatus)
	}
	if s := r.StatusScope(at(2), true, true); s.AttackStatus != nil {
		t.Errorf("attack-status echoed in status: %v", *s.AttackStatus)
	}
}

// RFC 9132 §4.4.1: -1 is indefinite; the server MAY refuse and grant a
// finite lifetime. Policy caps every grant at MaxLifetime.
func TestGrantLifetime(t *testing.T) {
	for _, tc := range []struct {
		name   string
		policy mitigation.Policy
		asked  int64
		want   int64
	}{
		{"indefinite allowed", mitigation.Policy{AllowIndefinite: true}, -1, -1},
		{"indefinite allowed despite cap", mitigation.Policy{AllowIndefinite: true, MaxLifetime: 2 * time.Hour}, -1, -1},
		{"indefinite refused, default lifetime", mitigation.Policy{}, -1, 3600},
		{"indefinite refused, configured default", mitigation.Policy{DefaultLifetime: 10 * time.Minute}, -1, 600},
		{"indefinite refused, cap wins over default", mitigation.Policy{MaxLifetime: 2 * time.Hour, DefaultLifetime: 10 * time.Minute}, -1, 7200},
		{"above cap", mitigation.Policy{MaxLifetime: 2 * time.Hour}, 10000, 7200},
		{"at cap", mitigation.Policy{MaxLifetime: 2 * time.Hour}, 7200, 7200},
		{"below cap", mitigation.Policy{MaxLifetime: 2 * time.Hour}, 100, 100},
		{"no cap", mitigation.Policy{}, 1<<32 - 1, 1<<32 - 1},
		{"one second", mitigation.Policy{}, 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, phase := range []string{"create", "refresh"} {
				b := mitigation.NewBook(tc.policy)
				now := at(0)
				var res *mitigation.Result
				if phase == "refresh" {
					mustPut(t, b, mkPut(cuidA, 1, 60, pfx("192.0.2.0/24")), at(-30))
				}
				res = mustPut(t, b, mkPut(cuidA, 1, tc.asked, pfx("192.0.2.0/24")), now)
				if res.Record.Lifetime != tc.want {
					t.Errorf("%s: granted %d, want %d", phase, res.Record.Lifetime, tc.want)
				}
				r := mustGet(t, b, key(cuidA, 1))
				if tc.want < 0 {
					if !r.Expires.IsZero() || r.Remaining(at(1e9)) != -1 {
						t.Errorf("%s: indefinite but Expires = %v, Remaining = %d", phase, r.Expires, r.Remaining(at(1e9)))
					}
					continue
				}
				if want := now.Add(time.Duration(tc.want) * time.Second); !r.Expires.Equal(want) {
					t.Errorf("%s: Expires = %v, want %v", phase, r.Expires, want)
				}
				if got := r.Remaining(now); got != tc.want {
					t.Errorf("%s: Remaining = %d, want %d", phase, got, tc.want)
				}
			}
		})
	}
}

// RFC 9132 §4.4.1: within one client and one trigger-mitigation type, the
// higher mid wins and the lower-mid overlapping request is deleted; a lower
// mid overlapping a higher one is 4.09 with conflict-cause 1 and the mid.
func TestSameClientOverlap(t *testing.T) {
	type existing struct {
		mid  uint32
		in   func(mid uint32) mitigation.PutRequest
		drop bool // delete it (status 5) before the new request
	}
	immediate := func(p ...string) func(uint32) mitigation.PutRequest {
		return func(mid uint32) mitigation.PutRequest { return mkPut(cuidA, mid, 3600, p) }
	}
	onLossReq := func(p ...string) func(uint32) mitigation.PutRequest {
		return func(mid uint32) mitigation.PutRequest { return mkPut(cuidA, mid, 3600, p, onLoss) }
	}
	for _, tc := range []struct {
		name      string
		existing  []existing
		in        mitigation.PutRequest
		wantErr   bool
		wantMIDs  []uint32 // client A's mids afterwards
		withdraw  []uint32
		deleted   []uint32
		conflictM uint32 // conflict-scope mid of the 4.09
		conflictP []string
	}{
		{name: "higher mid replaces lower",
			existing: []existing{{mid: 1, in: immediate("10.0.0.0/24")}},
			in:       mkPut(cuidA, 2, 3600, pfx("10.0.0.128/25")),
			wantMIDs: []uint32{2}, withdraw: []uint32{1}, deleted: []uint32{1}},
		{name: "higher mid replaces several lower",
			existing: []existing{{mid: 1, in: immediate("10.0.0.0/24")}, {mid: 3, in: immediate("10.0.1.0/24")}, {mid: 4, in: immediate("10.9.0.0/24")}},
			in:       mkPut(cuidA, 9, 3600, pfx("10.0.0.0/23")),
			wantMIDs: []uint32{4, 9}, withdraw: []uint32{1, 3}, deleted: []uint32{1, 3}},
		{name: "overlap by fqdn",
			existing: []existing{{mid: 1, in: func(mid uint32) mitigation.PutRequest {
				return mkPut(cuidA, mid, 3600, nil, fqdn("www.example.com"))
			}}},
			in:       mkPut(cuidA, 2, 3600, nil, fqdn("mail.example.com", "www.example.com")),
			wantMIDs: []uint32{2}, withdraw: []uint32{1}, deleted: []uint32{1}},
		{name: "overlap by uri",
			existing: []existing{{mid: 1, in: func(mid uint32) mitigation.PutRequest {
				return mkPut(cuidA, mid, 3600, nil, uri("https://www.example.com/"))
			}}},
			in:       mkPut(cuidA, 2, 3600, nil, uri("https://www.example.com/")),
			wantMIDs: []uint32{2}, withdraw: []uint32{1}, deleted: []uint32{1}},
		{name: "overlap by alias",
			existing: []existing{{mid: 1, in: func(mid uint32) mitigation.PutRequest {
				return mkPut(cuidA, mid, 3600, nil, alias("web"))
			}}},
			in:       mkPut(cuidA, 2, 3600, nil, alias("web")),
			wantMIDs: []uint32{2}, withdraw: []uint32{1}, deleted: []uint32{1}},
		{name: "higher trigger-false replaces lower trigger-false without withdrawal",
			existing: []existing{{mid: 1, in: onLossReq("10.0.0.0/24")}},
			in:       mkPut(cuidA, 2, 3600, pfx("10.0.0.0/24"), onLoss),
			wantMIDs: []uint32{2}, deleted: []uint32{1}},
		{name: "different trigger types both kept",
			existing: []existing{{mid: 1, in: onLossReq("10.0.0.0/16")}},
			in:       mkPut(cuidA, 2, 3600, pfx("10.0.1.0/24")),
			wantMIDs: []uint32{1, 2}},
		{name: "non-overlapping lower mid accepted",
			existing: []existing{{mid: 10, in: immediate("10.0.0.0/24")}},
			in:       mkPut(cuidA, 5, 3600, pfx("10.0.1.0/24")),
			wantMIDs: []uint32{5, 10}},
		{name: "non-overlapping ipv6 and ipv4",
			existing: []existing{{mid: 10, in: immediate("2001:db8::/32")}},
			in:       mkPut(cuidA, 5, 3600, pfx("10.0.0.0/8")),
			wantMIDs: []uint32{5, 10}},
		{name: "lower mid overlapping higher is 4.09",
			existing: []existing{{mid: 10, in: immediate("10.0.0.0/24")}},
			in:       mkPut(cuidA, 5, 3600, pfx("10.0.0.0/25", "192.0.2.0/24")),
			wantErr:  true, wantMIDs: []uint32{10}, conflictM: 10, conflictP: []string{"10.0.0.0/25"}},
		// mids that are also CBOR key numbers (5 = "mid", 31 = "sid") once
		// crashed the diagnostic text.
		{name: "lower mid overlapping higher mid 5",
			existing: []existing{{mid: 5, in: immediate("10.0.0.0/24")}},
			in:       mkPut(cuidA, 3, 3600, pfx("10.0.0.0/24")),
			wantErr:  true, wantMIDs: []uint32{5}, conflictM: 5, conflictP: []string{"10.0.0.0/24"}},
		{name: "lower mid overlapping higher mid 31",
			existing: []existing{{mid: 31, in: immediate("10.0.0.0/24")}},
			in:       mkPut(cuidA, 30, 3600, pfx("10.0.0.0/24")),
			wantErr:  true, wantMIDs: []uint32{31}, conflictM: 31, conflictP: []string{"10.0.0.0/24"}},
		{name: "refused request supersedes nothing",
			existing: []existing{{mid: 1, in: immediate("10.0.0.0/25")}, {mid: 7, in: immediate("10.0.0.128/25")}},
			in:       mkPut(cuidA, 4, 3600, pfx("10.0.0.0/24")),
			wantErr:  true, wantMIDs: []uint32{1, 7}, conflictM: 7, conflictP: []string{"10.0.0.0/24"}},
		{name: "higher mid being withdrawn does not block a lower one",
			existing: []existing{{mid: 10, in: immediate("10.0.0.0/24"), drop: true}},
			in:       mkPut(cuidA, 5, 3600, pfx("10.0.0.0/24")),
			wantMIDs: []uint32{5, 10}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := mitigation.NewBook(mitigation.Policy{})
			// Another client's identical request is never touched.
			mustPut(t, b, mkPut(cuidB, 1, 3600, pfx("10.0.0.0/8"), onLoss), at(0))
			for _, e := range tc.existing {
				mustPut(t, b, e.in(e.mid), at(0))
				if e.drop {
					b.Delete(key(cuidA, e.mid), at(1))
				}
			}
			res, err := b.Put(tc.in, at(10))
			var gotMIDs []uint32
			for _, r := range b.List(cuidA) {
				gotMIDs = append(gotMIDs, r.MID)
			}
			if !equalU32(gotMIDs, tc.wantMIDs) {
				t.Errorf("mids afterwards = %v, want %v", gotMIDs, tc.wantMIDs)
			}
			if len(b.List(cuidB)) != 1 {
				t.Errorf("client B's request was touched")
			}
			if tc.wantErr {
				pe := protoErr(t, err, dots.Conflict)
				if res != nil {
					t.Errorf("Result = %+v alongside the error", res)
				}
				if !strings.Contains(pe.Diag, "mid "+strconvU(tc.conflictM)+" ") {
					t.Errorf("Diag = %q, want it to name mid %d", pe.Diag, tc.conflictM)
				}
				ci := conflictOf(t, pe.Body, tc.in.MID)
				if ci.ConflictCause == nil || *ci.ConflictCause != dots.CauseOverlappingTargets {
					t.Errorf("conflict-cause = %v, want 1", ci.ConflictCause)
				}
				if ci.ConflictStatus == nil || *ci.ConflictStatus != dots.ConflictInactiveOtherActive {
					t.Errorf("conflict-status = %v, want 1", ci.ConflictStatus)
				}
				if ci.ConflictScope == nil || ci.ConflictScope.MID == nil || *ci.ConflictScope.MID != tc.conflictM {
					t.Fatalf("conflict-scope = %+v, want mid %d", ci.ConflictScope, tc.conflictM)
				}
				eqStrings(t, "conflict-scope target-prefix", ci.ConflictScope.TargetPrefix, tc.conflictP)
				if _, err := dots.Encode(pe.Body); err != nil {
					t.Errorf("4.09 body does not encode: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.Code != dots.Created {
				t.Fatalf("code = %s, want 2.01", res.Code)
			}
			var withdrawn []uint32
			for _, k := range res.Withdraw {
				if k.CUID != cuidA {
					t.Errorf("withdrew %v", k)
				}
				withdrawn = append(withdrawn, k.MID)
			}
			if !equalU32(withdrawn, tc.withdraw) {
				t.Errorf("Withdraw = %v, want %v", withdrawn, tc.withdraw)
			}
			var want []string
			for _, m := range tc.deleted {
				want = append(want, "del client-A/"+strconvU(m))
			}
			want = append(want, "put client-A/"+strconvU(tc.in.MID))
			eqStrings(t, "Changes", changeSummary(res.Changes), want)
			if len(res.Notify) != 0 {
				t.Errorf("Notify = %v, want none", keysOf(res.Notify))
			}
		})
	}
}

func equalU32(a, b []uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// conflictOf extracts the conflict-information of a 4.09 body for mid.
func conflictOf(t *testing.T, body *dots.Message, mid uint32) *dots.ConflictInformation {
	t.Helper()
	if body == nil || body.MitigationScope == nil || len(body.MitigationScope.Scope) != 1 {
		t.Fatalf("4.09 body = %+v, want one mitigation-scope entry", body)
	}
	s := body.MitigationScope.Scope[0]
	if s.MID == nil || *s.MID != mid {
		t.Errorf("4.09 body mid = %v, want %d", s.MID, mid)
	}
	if s.ConflictInformation == nil {
		t.Fatal("4.09 body has no conflict-information")
	}
	return s.ConflictInformation
}

// RFC 9132 §4.4.1: overlap with another client's request is either kept
// (2.01 + conflict-information, conflict-status 2) or refused (4.09 with
// retry-timer = the winning request's lifetime).
func TestOtherClientOverlap(t *testing.T) {
	for _, tc := range []struct {
		name      string
		policy    mitigation.Policy
		others    []mitigation.PutRequest // created at t0
		in        mitigation.PutRequest   // at t0+100
		want      dots.Code
		conflict  bool
		prefixes  []string
		retry     *uint32 // for 4.09
		keepMIDsA []uint32
	}{
		{name: "kept with conflict",
			others: []mitigation.PutRequest{mkPut(cuidB, 1, 3600, pfx("10.0.0.0/24"))},
			in:     mkPut(cuidA, 1, 3600, pfx("10.0.0.128/25", "192.0.2.0/24")),
			want:   dots.Created, conflict: true, prefixes: []string{"10.0.0.128/25"}, keepMIDsA: []uint32{1}},
		{name: "kept, prefixes of several clients merged",
			others: []mitigation.PutRequest{mkPut(cuidB, 1, 3600, pfx("10.0.0.0/24")), mkPut(cuidC, 9, 3600, pfx("10.0.0.0/24", "192.0.2.0/24"))},
			in:     mkPut(cuidA, 1, 3600, pfx("192.0.2.0/24", "10.0.0.0/16")),
			want:   dots.Created, conflict: true, prefixes: []string{"10.0.0.0/16", "192.0.2.0/24"}, keepMIDsA: []uint32{1}},
		{name: "other client's status-8 request is no conflict",
			others: []mitigation.PutRequest{mkPut(cuidB, 1, 3600, pfx("10.0.0.0/24"), onLoss)},
			in:     mkPut(cuidA, 1, 3600, pfx("10.0.0.0/24")),
			want:   dots.Created, keepMIDsA: []uint32{1}},
		{name: "trigger-false request is not checked",
			policy: mitigation.Policy{RejectOtherClientOverlap: true},
			others: []mitigation.PutRequest{mkPut(cuidB, 1, 3600, pfx("10.0.0.0/24"))},
			in:     mkPut(cuidA, 1, 3600, pfx("10.0.0.0/24"), onLoss),
			want:   dots.Created, keepMIDsA: []uint32{1}},
		{name: "disjoint",
			policy: mitigation.Policy{RejectOtherClientOverlap: true},
			others: []mitigation.PutRequest{mkPut(cuidB, 1, 3600, pfx("10.0.0.0/24"))},
			in:     mkPut(cuidA, 1, 3600, pfx("10.0.1.0/24")),
			want:   dots.Created, keepMIDsA: []uint32{1}},
		{name: "refused with retry-timer",
			policy: mitigation.Policy{RejectOtherClientOverlap: true},
			others: []mitigation.PutRequest{mkPut(cuidB, 1, 3600, pfx("10.0.0.0/24"))},
			in:     mkPut(cuidA, 1, 3600, pfx("10.0.0.0/24")),
			want:   dots.Conflict, prefixes: []string{"10.0.0.0/24"}, retry: dots.Ptr(uint32(3500))},
		{name: "refused, retry-timer is the longest remaining lifetime",
			policy: mitigation.Policy{RejectOtherClientOverlap: true},
			others: []mitigation.PutRequest{mkPut(cuidB, 1, 3600, pfx("10.0.0.0/24")), mkPut(cuidC, 1, 7200, pfx("10.0.0.0/24"))},
			in:     mkPut(cuidA, 1, 3600, pfx("10.0.0.0/24")),
			want:   dots.Conflict, prefixes: []string{"10.0.0.0/24"}, retry: dots.Ptr(uint32(7100))},
		{name: "refused, indefinite winner leaves no retry-timer",
			policy: mitigation.Policy{RejectOtherClientOverlap: true, AllowIndefinite: true},
			others: []mitigation.PutRequest{mkPut(cuidB, 1, -1, pfx("10.0.0.0/24")), mkPut(cuidC, 1, 7200, pfx("10.0.0.0/24"))},
			in:     mkPut(cuidA, 1, 3600, pfx("10.0.0.0/24")),
			want:   dots.Conflict, prefixes: []string{"10.0.0.0/24"}},
		{name: "refused request does not supersede the client's own lower mid",
			policy: mitigation.Policy{RejectOtherClientOverlap: true},
			others: []mitigation.PutRequest{mkPut(cuidB, 1, 3600, pfx("10.0.0.0/24")), mkPut(cuidA, 1, 3600, pfx("10.0.0.0/16"))},
			in:     mkPut(cuidA, 2, 3600, pfx("10.0.0.0/24")),
			want:   dots.Conflict, prefixes: []string{"10.0.0.0/24"}, retry: dots.Ptr(uint32(3500)), keepMIDsA: []uint32{1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Map order varies between runs; repeat to catch order dependence.
			for range 20 {
				b := mitigation.NewBook(tc.policy)
				// The existing requests may overlap each other: create them in
				// a permissive book and restore them into the one under test.
				lax := tc.policy
				lax.RejectOtherClientOverlap = false
				scratch := mitigation.NewBook(lax)
				for _, o := range tc.others {
					mustPut(t, scratch, o, at(0))
				}
				for _, c := range []string{cuidA, cuidB, cuidC} {
					for _, r := range scratch.List(c) {
						b.Restore(r)
					}
				}
				res, err := b.Put(tc.in, at(100))
				var mids []uint32
				for _, r := range b.List(cuidA) {
					mids = append(mids, r.MID)
				}
				if !equalU32(mids, tc.keepMIDsA) {
					t.Fatalf("client A mids = %v, want %v", mids, tc.keepMIDsA)
				}
				if tc.want == dots.Conflict {
					pe := protoErr(t, err, dots.Conflict)
					ci := conflictOf(t, pe.Body, tc.in.MID)
					if ci.ConflictStatus == nil || *ci.ConflictStatus != dots.ConflictInactiveOtherActive ||
						ci.ConflictCause == nil || *ci.ConflictCause != dots.CauseOverlappingTargets {
						t.Fatalf("conflict = %+v, want status 1 cause 1", ci)
					}
					if (ci.RetryTimer == nil) != (tc.retry == nil) || (tc.retry != nil && *ci.RetryTimer != *tc.retry) {
						t.Fatalf("retry-timer = %v, want %v", deref(ci.RetryTimer), deref(tc.retry))
					}
					if ci.ConflictScope == nil || ci.ConflictScope.MID != nil {
						t.Fatalf("conflict-scope = %+v, want no mid (another client's)", ci.ConflictScope)
					}
					eqStrings(t, "conflict-scope prefixes", ci.ConflictScope.TargetPrefix, tc.prefixes)
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				if res.Code != tc.want {
					t.Fatalf("code = %s, want %s", res.Code, tc.want)
				}
				stored := mustGet(t, b, keyOf(tc.in))
				if !tc.conflict {
					if res.Conflict != nil || stored.Conflict != nil {
						t.Fatalf("unexpected conflict %+v", res.Conflict)
					}
					continue
				}
				ci := res.Conflict
				if ci == nil || ci.ConflictStatus == nil || *ci.ConflictStatus != dots.ConflictActive ||
					ci.ConflictCause == nil || *ci.ConflictCause != dots.CauseOverlappingTargets {
					t.Fatalf("conflict = %+v, want status 2 cause 1", ci)
				}
				if ci.ConflictScope == nil {
					t.Fatal("no conflict-scope")
				}
				eqStrings(t, "conflict-scope prefixes", ci.ConflictScope.TargetPrefix, tc.prefixes)
				if stored.Conflict == nil || *stored.Conflict.ConflictStatus != dots.ConflictActive {
					t.Errorf("stored conflict = %+v", stored.Conflict)
				}
				if len(res.Activate) != 1 || stored.Status != dots.StatusInProgress {
					t.Errorf("kept request not activated: %+v", stored)
				}
				if s := stored.StatusScope(at(100), false, true); s.ConflictInformation == nil {
					t.Error("status scope lacks conflict-information")
				}
			}
		})
	}
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

// A client's withdrawn (status 5) request no longer conflicts with others.
func TestOtherClientOverlapIgnoresWithdrawn(t *testing.T) {
	b := mitigation.NewBook(mitigation.Policy{RejectOtherClientOverlap: true})
	mustPut(t, b, mkPut(cuidB, 1, 3600, pfx("10.0.0.0/24")), at(0))
	b.Delete(key(cuidB, 1), at(1))
	res := mustPut(t, b, mkPut(cuidA, 1, 3600, pfx("10.0.0.0/24")), at(2))
	if res.Code != dots.Created || res.Conflict != nil {
		t.Errorf("res = %+v", res)
	}
}

// A server near capacity may refuse (RFC 9132 §4.4.1: 5.03 is the generic "unable").
func TestMaxPerClient(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   mitigation.PutRequest
		want dots.Code
	}{
		{"third distinct request", mkPut(cuidA, 3, 3600, pfx("10.0.3.0/24")), dots.ServiceUnavailable},
		{"third request superseding one", mkPut(cuidA, 3, 3600, pfx("10.0.1.0/24")), dots.Created},
		{"third request superseding both", mkPut(cuidA, 3, 3600, pfx("10.0.0.0/16")), dots.Created},
		{"refresh at the limit", mkPut(cuidA, 2, 3600, pfx("10.0.2.0/24")), dots.Changed},
		{"other client", mkPut(cuidB, 1, 3600, pfx("10.0.3.0/24")), dots.Created},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := mitigation.NewBook(mitigation.Policy{MaxPerClient: 2})
			mustPut(t, b, mkPut(cuidA, 1, 3600, pfx("10.0.1.0/24")), at(0))
			mustPut(t, b, mkPut(cuidA, 2, 3600, pfx("10.0.2.0/24")), at(0))
			res, err := b.Put(tc.in, at(1))
			if tc.want == dots.ServiceUnavailable {
				protoErr(t, err, tc.want)
				if len(b.List(cuidA)) != 2 {
					t.Errorf("refused request changed the book: %v", keysOf(b.List(cuidA)))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.Code != tc.want {
				t.Fatalf("code = %s, want %s", res.Code, tc.want)
			}
			if n := len(b.List(cuidA)); n > 2 {
				t.Errorf("client holds %d requests, limit 2", n)
			}
		})
	}
}
