package service

import (
	"time"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsserver/mitigation"
	"github.com/levee-dots/levee/escalate"
)

// ladderOf returns the escalation ladder of a request, if it has one: its
// domain has a ladder and the client did not choose the countermeasure.
func (s *Service) ladderOf(domain string, sc *dots.Scope) (escalate.Ladder, bool) {
	l, ok := s.opts.Ladders[domain]
	if !ok || sc.Countermeasure != "" {
		return escalate.Ladder{}, false
	}
	return l, true
}

// firstStep is the escalation position of a new request (nil: none).
func (s *Service) firstStep(domain string, sc *dots.Scope, now time.Time) *escalate.Position {
	l, ok := s.ladderOf(domain, sc)
	if !ok {
		return nil
	}
	p, ok := l.Start(escalate.Observed{PortsOrProtocols: portsOrProtocols(sc)}, now)
	if !ok {
		return nil
	}
	return &p
}

// portsOrProtocols tells whether the scope narrows the traffic by port or
// protocol, its target-uri included (dots.Scope.Filter).
func portsOrProtocols(sc *dots.Scope) bool {
	ports, protocols := sc.Filter()
	return len(ports) > 0 || len(protocols) > 0
}

// decide is the escalation decision for one request (mitigation.Decide).
func (s *Service) decide(r *mitigation.Record, now time.Time) (escalate.Position, bool) {
	l, ok := s.ladderOf(r.Domain, &r.Scope)
	if !ok || r.Escalation == nil {
		return escalate.Position{}, false
	}
	return l.Next(*r.Escalation, escalate.Observed{Status: r.Status, Attack: r.AttackStatus,
		AttackAt: r.AttackAt, AttackSince: r.AttackSince, Start: r.Start, PortsOrProtocols: portsOrProtocols(&r.Scope)}, now)
}

// escalateLocked moves the requests of keys (nil: all) that their ladders
// move, diverts them again with the new countermeasure and logs each move.
func (s *Service) escalateLocked(keys []mitigation.Key) {
	if len(s.opts.Ladders) == 0 {
		return
	}
	res := s.book.Escalate(keys, s.now(), s.decide)
	if len(res.Changes) == 0 {
		return
	}
	s.commitLocked(res)
	for _, c := range res.Changes {
		p := c.Record.Escalation
		s.log.Warn("mitigation moved on its escalation ladder", "cuid", c.Key.CUID, "mid", c.Key.MID,
			"domain", c.Record.Domain, "countermeasure", p.Kind, "step", p.Step+1, "of", p.Of, "why", p.Why)
	}
}
