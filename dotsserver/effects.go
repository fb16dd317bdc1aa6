package dotsserver

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/levee-dots/levee/divert"
	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsserver/mitigation"
	"github.com/levee-dots/levee/store"
)

// effect is the work that follows a state change once it is on disk:
// diversions to apply or withdraw, and observers to notify.
type effect struct {
	done     *commit
	res      *mitigation.Result
	periodic bool // send every observer of this shard's clients its current state
	shard    int
}

// effectShards is the number of effect workers. A client's effects always
// go to the same worker, in order; a slow backend call for one client (a
// DNS primary timing out) does not hold up the clients of other workers.
const effectShards = 8

func shardOf(cuid string) int {
	h := fnv.New32a()
	h.Write([]byte(cuid))
	return int(h.Sum32() % effectShards)
}

// splitByShard divides a result among the workers of its clients.
func splitByShard(res *mitigation.Result) map[int]*mitigation.Result {
	out := map[int]*mitigation.Result{}
	of := func(cuid string) *mitigation.Result {
		i := shardOf(cuid)
		if out[i] == nil {
			out[i] = &mitigation.Result{}
		}
		return out[i]
	}
	for _, c := range res.Changes {
		r := of(c.Key.CUID)
		r.Changes = append(r.Changes, c)
	}
	for _, k := range res.Withdraw {
		r := of(k.CUID)
		r.Withdraw = append(r.Withdraw, k)
	}
	for _, a := range res.Activate {
		r := of(a.CUID)
		r.Activate = append(r.Activate, a)
	}
	for _, n := range res.Notify {
		r := of(n.CUID)
		r.Notify = append(r.Notify, n)
	}
	return out
}

func recordKey(k mitigation.Key) string { return fmt.Sprintf("%s/%010d", k.CUID, k.MID) }

// changeOps turns a result's changes into store writes.
func changeOps(changes []mitigation.Change) []store.Op {
	ops := make([]store.Op, 0, len(changes))
	for _, c := range changes {
		if c.Deleted {
			ops = append(ops, store.Op{Bucket: bucketMitigations, Key: recordKey(c.Key), Delete: true})
			continue
		}
		b, err := json.Marshal(c.Record)
		if err != nil {
			panic(fmt.Sprintf("dotsserver: encoding a record cannot fail: %v", err))
		}
		ops = append(ops, store.Op{Bucket: bucketMitigations, Key: recordKey(c.Key), Value: b})
	}
	return ops
}

// commitLocked queues res's changes for the disk and its effects for after
// the commit. It must be called with s.mu held, so disk order is state order.
func (s *Server) commitLocked(res *mitigation.Result) *commit {
	done := s.j.add(changeOps(res.Changes))
	for i, sub := range splitByShard(res) {
		s.effects[i].push(effect{done: done, res: sub})
	}
	return done
}

// effectQueue is an unbounded FIFO, so that queuing under s.mu never blocks.
type effectQueue struct {
	mu    sync.Mutex
	items []effect
	ready chan struct{}
}

func newEffectQueue() *effectQueue { return &effectQueue{ready: make(chan struct{}, 1)} }

func (q *effectQueue) push(e effect) {
	q.mu.Lock()
	q.items = append(q.items, e)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

func (q *effectQueue) take() []effect {
	q.mu.Lock()
	defer q.mu.Unlock()
	items := q.items
	q.items = nil
	return items
}

func (s *Server) runEffects() {
	for _, q := range s.effects {
		go s.runShard(q)
	}
}

func (s *Server) runShard(q *effectQueue) {
	for {
		select {
		case <-q.ready:
			for _, e := range q.take() {
				s.applyEffect(e)
			}
		case <-s.stop:
			return
		}
	}
}

// pushPeriodic queues a periodic notification on every worker, behind the
// changes already queued there.
func (s *Server) pushPeriodic() {
	for i, q := range s.effects {
		q.push(effect{periodic: true, shard: i})
	}
}

func (s *Server) applyEffect(e effect) {
	if e.periodic {
		s.obs.periodic(e.shard)
		return
	}
	if err := e.done.wait(); err != nil {
		s.log.Error("state change not persisted; effects skipped", "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, k := range e.res.Withdraw {
		if err := s.orch.Withdraw(ctx, divert.Key{CUID: k.CUID, MID: k.MID}); err != nil {
			s.log.Error("withdraw failed", "cuid", k.CUID, "mid", k.MID, "err", err)
		} else {
			s.log.Info("mitigation withdrawn", "cuid", k.CUID, "mid", k.MID)
		}
	}
	for _, r := range e.res.Activate {
		out := s.orch.Apply(ctx, diversionOf(r))
		if out.Err != nil {
			s.log.Error("diversion failed", "cuid", r.CUID, "mid", r.MID, "err", out.Err)
		} else if !s.orch.Configured() {
			s.log.Debug("mitigation accepted but not diverted: no mitigator is configured", "cuid", r.CUID, "mid", r.MID, "domain", r.Domain)
		} else {
			s.log.Info("mitigation diverted", "cuid", r.CUID, "mid", r.MID, "note", out.Note)
		}
		s.setOutcome(r.Key, out)
	}
	clients := map[string]bool{}
	for _, c := range e.res.Changes {
		clients[c.Key.CUID] = true
	}
	for _, r := range e.res.Notify {
		s.obs.notifyFinal(r)
		clients[r.CUID] = true
	}
	for c := range clients {
		s.obs.notifyClient(c)
	}
}

// setOutcome records the mitigator's answer and notifies observers.
func (s *Server) setOutcome(k mitigation.Key, out divert.Outcome) {
	s.mu.Lock()
	res := s.book.SetOutcome(k, out.Status, out.Note)
	done := s.j.add(changeOps(res.Changes))
	s.mu.Unlock()
	if err := done.wait(); err != nil {
		s.log.Error("persisting mitigation status", "cuid", k.CUID, "mid", k.MID, "err", err)
		return
	}
	if res.Record != nil {
		s.obs.notifyClient(k.CUID)
	}
}

func diversionOf(r *mitigation.Record) divert.Diversion {
	d := divert.Diversion{Key: divert.Key{CUID: r.CUID, MID: r.MID}, Domain: r.Domain, Prefixes: r.Prefixes,
		Ports: r.Scope.TargetPortRange, FQDNs: append(slices.Clone(r.Scope.TargetFQDN), uriHosts(r.Scope.TargetURI)...),
		Expires: r.Expires, Countermeasure: r.Scope.Countermeasure}
	for _, p := range r.Scope.TargetProtocol {
		d.Protocols = append(d.Protocols, uint8(p))
	}
	return d
}

func uriHosts(uris []string) []string {
	var out []string
	for _, u := range uris {
		if h, err := dots.URIHost(u); err == nil {
			if _, err := netip.ParseAddr(h); err != nil {
				out = append(out, h)
			}
		}
	}
	return out
}

// tick ends what is due: active-but-terminating periods and lifetimes.
func (s *Server) tick() {
	s.mu.Lock()
	res := s.book.Tick(s.now())
	if len(res.Changes) > 0 {
		s.commitLocked(res)
	}
	s.mu.Unlock()
}

// sessionLost activates a client's trigger-mitigation=false requests.
func (s *Server) sessionLost(cuid string) {
	s.mu.Lock()
	res := s.book.SessionLost(cuid, s.now())
	if len(res.Changes) > 0 {
		s.commitLocked(res)
	}
	s.mu.Unlock()
	if len(res.Activate) > 0 {
		s.log.Warn("signal channel lost: preconfigured mitigations activated", "cuid", cuid, "count", len(res.Activate))
	}
}
