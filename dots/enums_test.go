package dots

import (
	"encoding/json"
	"fmt"
	"testing"
)

// enumCase is one enumeration value with its RFC 7951 label.
type enumCase struct {
	v     any    // the Go value
	label string // the JSON label
}

var enumCases = []enumCase{
	{StatusInProgress, "attack-mitigation-in-progress"},
	{StatusMitigated, "attack-successfully-mitigated"},
	{StatusAttackStopped, "attack-stopped"},
	{StatusExceededCapability, "attack-exceeded-capability"},
	{StatusClientWithdrawn, "dots-client-withdrawn-mitigation"},
	{StatusTerminated, "attack-mitigation-terminated"},
	{StatusServerWithdrawn, "attack-mitigation-withdrawn"},
	{StatusSignalLoss, "attack-mitigation-signal-loss"},
	{ConflictInactiveOtherActive, "request-inactive-other-active"},
	{ConflictActive, "request-active"},
	{ConflictAllInactive, "all-requests-inactive"},
	{CauseOverlappingTargets, "overlapping-targets"},
	{CauseConflictAcceptList, "conflict-with-acceptlist"},
	{CauseCUIDCollision, "cuid-collision"},
	{CauseLegitimateTraffic, "request-rejected-legitimate-traffic"},
	{CauseOverlappingPipes, "overlapping-pipes"},
	{AttackUnderAttack, "under-attack"},
	{AttackMitigated, "attack-successfully-mitigated"},
	{ActivationType(1), "activate-when-mitigating"},
	{ActivationType(2), "immediate"},
	{ActivationType(3), "deactivate"},
}

// newOf returns a pointer to a fresh zero value of v's type.
func newOf(v any) any {
	switch v.(type) {
	case Status:
		return new(Status)
	case ConflictStatus:
		return new(ConflictStatus)
	case ConflictCause:
		return new(ConflictCause)
	case AttackStatus:
		return new(AttackStatus)
	case ActivationType:
		return new(ActivationType)
	}
	panic(fmt.Sprintf("not an enum: %T", v))
}

// deref returns the value a newOf pointer points to.
func deref(p any) any {
	switch p := p.(type) {
	case *Status:
		return *p
	case *ConflictStatus:
		return *p
	case *ConflictCause:
		return *p
	case *AttackStatus:
		return *p
	case *ActivationType:
		return *p
	}
	panic(fmt.Sprintf("not an enum pointer: %T", p))
}

func TestEnumJSON(t *testing.T) {
	for _, tc := range enumCases {
		name := fmt.Sprintf("%T(%v)", tc.v, tc.label)
		t.Run(name, func(t *testing.T) {
			out, err := json.Marshal(tc.v)
			if err != nil || string(out) != `"`+tc.label+`"` {
				t.Errorf("json.Marshal = %s, %v; want %q", out, err, tc.label)
			}
			if s := fmt.Sprint(tc.v); s != tc.label {
				t.Errorf("String = %q", s)
			}
			n := fmt.Sprintf("%d", tc.v)
			for _, in := range []string{`"` + tc.label + `"`, n, `"` + n + `"`} {
				p := newOf(tc.v)
				if err := json.Unmarshal([]byte(in), p); err != nil || deref(p) != tc.v {
					t.Errorf("json.Unmarshal(%s) = %v, %v; want %v", in, deref(p), err, tc.v)
				}
			}
		})
	}
}

func TestEnumJSONUnknown(t *testing.T) {
	// Unassigned numbers render as numbers in a string and parse back.
	for _, v := range []any{Status(0), Status(9), ConflictStatus(4), ConflictCause(99), AttackStatus(3), ActivationType(4)} {
		out, err := json.Marshal(v)
		want := fmt.Sprintf(`"%d"`, v)
		if err != nil || string(out) != want {
			t.Errorf("json.Marshal(%T %d) = %s, %v; want %s", v, v, out, err, want)
		}
		p := newOf(v)
		if err := json.Unmarshal(out, p); err != nil || deref(p) != v {
			t.Errorf("json.Unmarshal(%s) = %v, %v", out, deref(p), err)
		}
	}
	for _, v := range []any{Status(0), ConflictStatus(0), ConflictCause(0), AttackStatus(0), ActivationType(0)} {
		for _, in := range []string{`"no-such-label"`, `""`, `-1`, `1.5`, `true`, `4294967296`, `"Under-Attack"`} {
			p := newOf(v)
			if err := json.Unmarshal([]byte(in), p); err == nil {
				t.Errorf("%T: json.Unmarshal(%s) = %v, want an error", v, in, deref(p))
			}
		}
	}
}

func TestEnumJSONInMessage(t *testing.T) {
	in := `{"ietf-dots-signal-channel:mitigation-scope":{"scope":[{"mid":1,"status":2,
	  "conflict-information":{"conflict-status":"request-active","conflict-cause":3,"retry-timer":30},
	  "attack-status":"attack-successfully-mitigated"}]}}`
	var m Message
	if err := json.Unmarshal([]byte(in), &m); err != nil {
		t.Fatal(err)
	}
	s := m.MitigationScope.Scope[0]
	if *s.Status != StatusMitigated || *s.ConflictInformation.ConflictStatus != ConflictActive ||
		*s.ConflictInformation.ConflictCause != CauseCUIDCollision || *s.AttackStatus != AttackMitigated {
		t.Errorf("decoded %+v %+v", s, s.ConflictInformation)
	}
	out, err := json.Marshal(&m)
	if err != nil {
		t.Fatal(err)
	}
	jsonEqual(t, out, []byte(`{"ietf-dots-signal-channel:mitigation-scope":{"scope":[{"mid":1,
	  "status":"attack-successfully-mitigated",
	  "conflict-information":{"conflict-status":"request-active","conflict-cause":"cuid-collision","retry-timer":30},
	  "attack-status":"attack-successfully-mitigated"}]}}`))
}

func TestParseAttackStatus(t *testing.T) {
	for in, want := range map[string]AttackStatus{"under-attack": 1, "attack-successfully-mitigated": 2, "1": 1, "2": 2} {
		if got, err := ParseAttackStatus(in); err != nil || got != want {
			t.Errorf("ParseAttackStatus(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "3", "attack-stopped", "under attack"} {
		if got, err := ParseAttackStatus(in); err == nil {
			t.Errorf("ParseAttackStatus(%q) = %v, want an error", in, got)
		}
	}
}
