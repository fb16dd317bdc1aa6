package escalate

import (
	"strings"
	"testing"
	"time"

	"github.com/levee-dots/levee/dots"
)

var t0 = time.Date(2026, 12, 2, 1, 0, 0, 0, time.UTC)

func at(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

func TestNext(t *testing.T) {
	l := Ladder{Steps: []string{FlowSpec, Scrubbing, RTBH}, Up: 30 * time.Second, Down: 60 * time.Second}
	pos := func(i, since int) Position {
		return Position{Step: i, Of: 3, Kind: l.Steps[i], Since: at(since)}
	}
	under := func(first, last int) Observed {
		return Observed{Status: dots.StatusMitigated, Attack: dots.AttackUnderAttack, AttackSince: at(first), AttackAt: at(last)}
	}
	mitigated := func(first, last int) Observed {
		return Observed{Status: dots.StatusMitigated, Attack: dots.AttackMitigated, AttackSince: at(first), AttackAt: at(last)}
	}
	tests := []struct {
		name string
		p    Position
		o    Observed
		now  int
		want int // step after; -1: no move
		why  string
	}{
		{"under-attack, not long enough", pos(0, 0), under(5, 20), 34, -1, ""},
		{"under-attack for up-after", pos(0, 0), under(5, 20), 35, 1, "flowspec left after the client reported under-attack for 30s"},
		{"under-attack held since before the step counts from the step", pos(1, 100), under(5, 120), 130, 2, "under-attack for 30s"},
		{"a report from before the step does not count", pos(1, 100), under(5, 90), 500, -1, ""},
		{"never reported: stays", pos(0, 0), Observed{Status: dots.StatusMitigated}, 900, -1, ""},
		{"top step: nowhere to go", pos(2, 0), under(1, 100), 900, -1, ""},
		{"exceeded capability", pos(1, 0), Observed{Status: dots.StatusExceededCapability}, 30, 2, "attack-exceeded-capability for 30s"},
		{"exceeded capability, early", pos(1, 0), Observed{Status: dots.StatusExceededCapability}, 29, -1, ""},
		{"did not take effect", pos(0, 0), Observed{Status: dots.StatusInProgress}, 31, 1, "did not take effect in 31s"},
		{"mitigated: down after down-after", pos(2, 0), mitigated(10, 60), 70, 1, "rtbh left after the client reported attack-successfully-mitigated for 1m0s"},
		{"mitigated: down needs down-after", pos(2, 0), mitigated(10, 60), 69, -1, ""},
		{"mitigated but the step does not hold", pos(2, 0), Observed{Status: dots.StatusExceededCapability, Attack: dots.AttackMitigated, AttackSince: at(1), AttackAt: at(1)}, 20, -1, ""},
		{"mitigated at the bottom: stays", pos(0, 0), mitigated(1, 100), 900, -1, ""},
		{"mitigated, report older than the step", pos(1, 100), mitigated(1, 99), 900, -1, ""},
		{"start later than since", pos(0, 0), Observed{Status: dots.StatusInProgress, Start: at(50)}, 79, -1, ""},
		{"rtbh skipped for ports", pos(1, 0), Observed{Status: dots.StatusExceededCapability, PortsOrProtocols: true}, 100, -1, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, moved := l.Next(tc.p, tc.o, at(tc.now))
			if tc.want < 0 {
				if moved {
					t.Fatalf("moved to %+v", got)
				}
				return
			}
			if !moved || got.Step != tc.want || got.Kind != l.Steps[tc.want] || !got.Since.Equal(at(tc.now)) || got.Of != 3 {
				t.Fatalf("got %+v moved=%v, want step %d", got, moved, tc.want)
			}
			if !strings.Contains(got.Why, tc.why) {
				t.Fatalf("why %q does not say %q", got.Why, tc.why)
			}
		})
	}
}

func TestNextSkipsRTBHDown(t *testing.T) {
	l := Ladder{Steps: []string{RTBH, FlowSpec, Scrubbing}}
	p, ok := l.Start(Observed{PortsOrProtocols: true}, t0)
	if !ok || p.Kind != FlowSpec || p.Step != 1 {
		t.Fatalf("start for a port scope: %+v %v", p, ok)
	}
	o := Observed{Status: dots.StatusMitigated, Attack: dots.AttackMitigated, AttackSince: at(1), AttackAt: at(1), PortsOrProtocols: true}
	if got, moved := l.Next(p, o, at(3600)); moved {
		t.Fatalf("moved down onto rtbh for a port scope: %+v", got)
	}
	if _, ok := (Ladder{Steps: []string{RTBH}}).Start(Observed{PortsOrProtocols: true}, t0); ok {
		t.Fatal("an rtbh-only ladder has a step for a port scope")
	}
}

func TestNextLadderChanged(t *testing.T) {
	l := Ladder{Steps: []string{FlowSpec, Scrubbing}}
	p := Position{Step: 2, Of: 3, Kind: RTBH, Since: t0}
	got, moved := l.Next(p, Observed{Status: dots.StatusMitigated}, at(5))
	if !moved || got.Kind != FlowSpec || got.Step != 0 || !strings.Contains(got.Why, "no longer has rtbh") {
		t.Fatalf("got %+v %v", got, moved)
	}
	if _, moved := l.Next(Position{Step: 0, Of: 2, Kind: FlowSpec, Since: t0}, Observed{Status: dots.StatusMitigated}, at(5)); moved {
		t.Fatal("a valid position moved")
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		l    Ladder
		want string
	}{
		{Ladder{Steps: []string{FlowSpec, Scrubbing, RTBH}}, ""},
		{Ladder{}, "steps: name at least one"},
		{Ladder{Steps: []string{"ddos"}}, `steps[0]: "ddos" is not a countermeasure`},
		{Ladder{Steps: []string{FlowSpec, FlowSpec}}, "steps[1]: \"flowspec\" is named twice"},
		{Ladder{Steps: []string{FlowSpec}, Up: -time.Second}, "up-after"},
		{Ladder{Steps: []string{FlowSpec}, Down: -time.Second}, "down-after"},
		{Ladder{Steps: []string{FlowSpec}, Up: time.Millisecond}, "up-after: 1ms is less than 1s"},
		{Ladder{Steps: []string{FlowSpec}, Down: time.Millisecond}, "down-after: 1ms is less than 1s"},
	}
	for _, tc := range tests {
		err := tc.l.Validate()
		if tc.want == "" {
			if err != nil {
				t.Errorf("%+v: %v", tc.l, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", tc.l, err, tc.want)
		}
	}
}

func TestNote(t *testing.T) {
	p := Position{Step: 1, Of: 3, Kind: Scrubbing, Since: at(65), Why: "flowspec left after x"}
	if got, want := p.Note(), "escalation: scrubbing (step 2 of 3) since 01:01:05 UTC, flowspec left after x"; got != want {
		t.Fatalf("%q, want %q", got, want)
	}
}
