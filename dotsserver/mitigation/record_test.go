package mitigation_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsserver/mitigation"
)

// Remaining is the lifetime left in whole seconds, rounded up, so a status
// never reports 0 for a request that still exists.
func TestRemaining(t *testing.T) {
	for _, tc := range []struct {
		name     string
		lifetime int64
		expires  time.Time
		now      time.Time
		want     int64
	}{
		{"indefinite", -1, time.Time{}, at(1e6), -1},
		{"whole seconds", 60, at(60), at(0), 60},
		{"just under", 60, at(60), at(0.001), 60},
		{"half a second", 60, at(60), at(59.5), 1},
		{"a nanosecond", 60, at(60), at(60).Add(-time.Nanosecond), 1},
		{"exactly at expiry", 60, at(60), at(60), 0},
		{"past expiry", 60, at(60), at(61), 0},
		{"long", 1<<32 - 1, at(1<<32 - 1), at(0), 1<<32 - 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &mitigation.Record{Lifetime: tc.lifetime, Expires: tc.expires}
			if got := r.Remaining(tc.now); got != tc.want {
				t.Errorf("Remaining = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestRecordActive(t *testing.T) {
	for st, want := range map[dots.Status]bool{
		0: false, dots.StatusInProgress: true, dots.StatusMitigated: true, dots.StatusAttackStopped: true,
		dots.StatusExceededCapability: true, dots.StatusClientWithdrawn: true, dots.StatusTerminated: false,
		dots.StatusServerWithdrawn: false, dots.StatusSignalLoss: false, 9: false,
	} {
		if got := (&mitigation.Record{Status: st}).Active(); got != want {
			t.Errorf("status %d: Active = %v, want %v", st, got, want)
		}
	}
}

// RFC 9132 §4.4.2 and the CoMI 'c' query: c=c config nodes, c=n non-config,
// c=a both; mitigation-start is absent in status 8.
func TestStatusScope(t *testing.T) {
	base := mitigation.Record{
		Key: key(cuidA, 42),
		Scope: dots.Scope{TargetPrefix: []string{"192.0.2.0/24"}, TargetPortRange: []dots.PortRange{{LowerPort: 443}},
			TargetProtocol: []uint32{6}, TargetFQDN: []string{"www.example.com"}, TargetURI: []string{"https://www.example.com/"},
			AliasName: []string{"web"}, TriggerMitigation: dots.Ptr(true)},
		Prefixes:     []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")},
		Lifetime:     600,
		Expires:      at(600),
		Start:        at(0),
		Status:       dots.StatusMitigated,
		Trigger:      true,
		AttackStatus: dots.AttackMitigated,
		Conflict:     &dots.ConflictInformation{ConflictStatus: dots.Ptr(dots.ConflictActive)},
		Note:         "diverted",
		Counters:     &mitigation.Counters{BytesDropped: 1000, PktsDropped: 10, BPSDropped: 800, PPSDropped: 1},
	}
	unmeasured := base
	unmeasured.Counters = nil
	waiting := base
	waiting.Status, waiting.Start, waiting.Trigger = dots.StatusSignalLoss, time.Time{}, false
	waiting.Scope.TriggerMitigation = dots.Ptr(false)
	waiting.AttackStatus, waiting.Conflict, waiting.Note, waiting.Counters = 0, nil, "", nil
	// A record that had been activated on signal loss and later came back
	// to status 8 must not report its old start either.
	waitingAgain := waiting
	waitingAgain.Start = at(0)
	terminated := base
	terminated.Status = dots.StatusTerminated
	withdrawn := base
	withdrawn.Status = dots.StatusServerWithdrawn
	withdrawn.Counters = nil

	type want struct {
		config, state, start, counters bool
	}
	for _, tc := range []struct {
		name   string
		r      mitigation.Record
		c      string
		config bool
		state  bool
		want   want
	}{
		{"active c=a", base, "a", true, true, want{config: true, state: true, start: true, counters: true}},
		{"active c=c", base, "c", true, false, want{config: true}},
		{"active c=n", base, "n", false, true, want{state: true, start: true, counters: true}},
		{"status 8 c=a", waiting, "a", true, true, want{config: true, state: true}},
		{"status 8 c=n", waiting, "n", false, true, want{state: true}},
		{"status 8 c=c", waiting, "c", true, false, want{config: true}},
		{"status 8 with stale start", waitingAgain, "a", true, true, want{config: true, state: true}},
		{"status 6 keeps counters", terminated, "n", false, true, want{state: true, start: true, counters: true}},
		{"status 7 without counters", withdrawn, "n", false, true, want{state: true, start: true}},
		{"active, nothing measures", unmeasured, "a", true, true, want{config: true, state: true, start: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := at(100.5)
			s := tc.r.StatusScope(now, tc.config, tc.state)
			if s.MID == nil || *s.MID != 42 {
				t.Errorf("mid = %v, want 42 always", s.MID)
			}
			if s.Lifetime == nil || *s.Lifetime != 500 {
				t.Errorf("lifetime = %v, want the remaining 500 always", deref(s.Lifetime))
			}
			hasConfig := s.TargetPrefix != nil
			if hasConfig != tc.want.config ||
				(s.TargetPortRange != nil) != tc.want.config || (s.TargetProtocol != nil) != tc.want.config ||
				(s.TargetFQDN != nil) != tc.want.config || (s.TargetURI != nil) != tc.want.config ||
				(s.AliasName != nil) != tc.want.config || (s.TriggerMitigation != nil) != tc.want.config {
				t.Errorf("config nodes present = %v (%+v), want %v", hasConfig, s, tc.want.config)
			}
			if tc.want.config && (*s.TriggerMitigation != tc.r.Trigger || s.TargetPrefix[0] != "192.0.2.0/24") {
				t.Errorf("config nodes = %+v", s)
			}
			if (s.Status != nil) != tc.want.state {
				t.Errorf("status present = %v, want %v", s.Status != nil, tc.want.state)
			} else if tc.want.state && *s.Status != tc.r.Status {
				t.Errorf("status = %d, want %d", *s.Status, tc.r.Status)
			}
			if (s.MitigationStart != nil) != tc.want.start {
				t.Errorf("mitigation-start present = %v, want %v", s.MitigationStart != nil, tc.want.start)
			} else if tc.want.start && int64(*s.MitigationStart) != at(0).Unix() {
				t.Errorf("mitigation-start = %d, want %d", *s.MitigationStart, at(0).Unix())
			}
			present := []bool{s.BytesDropped != nil, s.BpsDropped != nil, s.PktsDropped != nil, s.PpsDropped != nil}
			for i, p := range present {
				if p != tc.want.counters {
					t.Errorf("counter %d (keys 25-28) present = %v, want %v", 25+i, p, tc.want.counters)
				}
			}
			if tc.want.counters && (*s.BytesDropped != 1000 || *s.PktsDropped != 10 || *s.BpsDropped != 800 || *s.PpsDropped != 1) {
				t.Errorf("counters = %d/%d/%d/%d", *s.BytesDropped, *s.BpsDropped, *s.PktsDropped, *s.PpsDropped)
			}
			if s.AttackStatus != nil {
				t.Errorf("attack-status %v echoed: it is a client-to-server attribute (RFC 9132 §4.4.2)", *s.AttackStatus)
			}
			if !tc.state && (s.ConflictInformation != nil || s.Note != "") {
				t.Errorf("state nodes in c=c: %+v", s)
			}
			if tc.state && (s.ConflictInformation != tc.r.Conflict || s.Note != tc.r.Note) {
				t.Errorf("conflict/note = %+v %q", s.ConflictInformation, s.Note)
			}
			// Whatever is selected must encode and decode.
			m := &dots.Message{MitigationScope: &dots.MitigationScope{Scope: []dots.Scope{s}}}
			b, err := dots.Encode(m)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if _, err := dots.Decode(b); err != nil {
				t.Fatalf("Decode: %v", err)
			}
		})
	}
}

// Indefinite requests report lifetime -1 in status.
func TestStatusScopeIndefinite(t *testing.T) {
	r := mitigation.Record{Key: key(cuidA, 1), Lifetime: -1, Status: dots.StatusInProgress, Start: at(0)}
	s := r.StatusScope(at(1e6), false, true)
	if s.Lifetime == nil || *s.Lifetime != -1 {
		t.Errorf("lifetime = %v, want -1", deref(s.Lifetime))
	}
}
