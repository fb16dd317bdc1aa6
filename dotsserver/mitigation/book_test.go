package mitigation_test

import (
	"net/netip"
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

// The efficacy update's attack-status shows in the status scope.
func TestEfficacyInStatus(t *testing.T) {
	b := mitigation.NewBook(mitigation.Policy{})
	mustPut(t, b, mkPut(cuidA, 1, 3600, pfx("192.0.2.0/24")), at(0))
	mustPut(t, b, mkPut(cuidA, 1, 3600, pfx("192.0.2.0/24"), efficacy(dots.AttackUnderAttack)), at(1))
	s := mustGet(t, b, key(cuidA, 1)).StatusScope(at(2), true, true)
	if s.AttackStatus == nil || *s.AttackStatus != dots.AttackUnderAttack {
		t.Errorf("attack-status = %v, want 1", s.AttackStatus)
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
