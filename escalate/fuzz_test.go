package escalate

import (
	"testing"
	"time"

	"github.com/levee-dots/levee/dots"
)

// FuzzNext checks that Next never leaves the ladder, never lands on RTBH
// for a port scope, and moves at most one eligible step.
func FuzzNext(f *testing.F) {
	f.Add(uint8(0), uint8(1), uint8(2), int64(0), int64(40), int64(10), int64(20), false)
	f.Add(uint8(2), uint8(2), uint8(1), int64(5), int64(100), int64(1), int64(99), true)
	f.Fuzz(func(t *testing.T, step, status, attack uint8, since, now, first, last int64, ports bool) {
		l := Ladder{Steps: []string{FlowSpec, Scrubbing, RTBH}, Up: 10 * time.Second, Down: 20 * time.Second}
		p := Position{Step: int(step % 4), Of: 3, Since: at(int(since % 10000))}
		if p.Step < 3 {
			p.Kind = l.Steps[p.Step]
		}
		o := Observed{Status: dots.Status(status % 10), Attack: dots.AttackStatus(attack % 3),
			AttackSince: at(int(first % 10000)), AttackAt: at(int(last % 10000)), PortsOrProtocols: ports}
		got, moved := l.Next(p, o, at(int(now%10000)))
		if !moved {
			return
		}
		if got.Step < 0 || got.Step >= len(l.Steps) || got.Kind != l.Steps[got.Step] {
			t.Fatalf("off the ladder: %+v", got)
		}
		if ports && got.Kind == RTBH {
			t.Fatalf("rtbh for a port scope: %+v", got)
		}
	})
}
