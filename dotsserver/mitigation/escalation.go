package mitigation

import (
	"sort"
	"time"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/escalate"
)

// Decide returns where an active request on an escalation ladder moves at
// now, and whether it moves (package escalate decides; the service passes
// the ladder of the request's domain).
type Decide func(r *Record, now time.Time) (escalate.Position, bool)

// Escalate moves the active requests of keys (nil: every request) that
// decide moves: the new position is recorded and the request is diverted
// again with its new countermeasure (the backends replace the old one,
// make before break). The client's attack-status is kept, but counts at
// the new step only from its next report.
func (b *Book) Escalate(keys []Key, now time.Time, decide Decide) *Result {
	res := &Result{}
	var todo []*Record
	if keys == nil {
		for _, m := range b.byClient {
			for _, r := range m {
				if r.onLadder() {
					todo = append(todo, r)
				}
			}
		}
		sort.Slice(todo, func(i, j int) bool {
			if todo[i].CUID != todo[j].CUID {
				return todo[i].CUID < todo[j].CUID
			}
			return todo[i].MID < todo[j].MID
		})
	} else {
		for _, k := range keys {
			if r, ok := b.byClient[k.CUID][k.MID]; ok && r.onLadder() {
				todo = append(todo, r)
			}
		}
	}
	for _, r := range todo {
		p, ok := decide(r, now)
		if !ok {
			continue
		}
		res.touch(r)
		r.Escalation = &p
		// What the client reports from now on is about the new step.
		r.AttackSince = time.Time{}
		res.put(r)
		res.Activate = append(res.Activate, clone(r))
		res.Record = clone(r)
	}
	return res
}

// onLadder reports whether r may move on its ladder: it is diverting and
// the client has not withdrawn it (a request in its active-but-terminating
// period keeps its step until it ends).
func (r *Record) onLadder() bool {
	switch r.Status {
	case dots.StatusInProgress, dots.StatusMitigated, dots.StatusExceededCapability:
		return r.Escalation != nil
	}
	return false
}
