package service

import (
	"hash/fnv"
	"sync"

	"github.com/levee-dots/levee/dotsserver/mitigation"
)

// Event is one change of a client's mitigations, as Watch delivers it.
type Event struct {
	CUID string
	// Changed are the client's requests as they are after the change
	// (copies); a request that ended is in Final with status 6 instead.
	Changed []*mitigation.Record
	Final   []*mitigation.Record
	// Periodic marks the regular refresh of every watched client of one
	// shard (RFC 9132 §4.4.2.1: notifications every so often), queued
	// behind the changes before it. Shard says which clients: those whose
	// ShardOf is Shard.
	Periodic bool
	Shard    int
}

// notifyShards is the number of notification workers. A client's events
// always go through the same worker, in the order the changes happened,
// each after its durable write.
const notifyShards = 8

// ShardOf returns the notification shard of a client.
func ShardOf(cuid string) int {
	h := fnv.New32a()
	h.Write([]byte(cuid))
	return int(h.Sum32() % notifyShards)
}

// Watch registers fn for every change of every client's mitigations, in
// order per client, after each change is on disk. fn runs on a worker of
// the client's shard and must not block for long. cancel unregisters it.
func (s *Service) Watch(fn func(Event)) (cancel func()) {
	s.watchM.Lock()
	id := s.nextW
	s.nextW++
	s.watch[id] = fn
	s.watchM.Unlock()
	return func() {
		s.watchM.Lock()
		delete(s.watch, id)
		s.watchM.Unlock()
	}
}

// NotifyAll queues a periodic event on every shard, behind the changes
// already queued there: every watched client gets its current state.
func (s *Service) NotifyAll() {
	for i, q := range s.notes {
		q.push(note{ev: Event{Periodic: true, Shard: i}})
	}
}

type note struct {
	done     *commit
	diverts  func()
	ev       Event
	hasEvent bool
}

// notifyLocked queues what follows res once it is on disk: its diversions
// and one event per client it changed. Called with s.mu held.
func (s *Service) notifyLocked(done *commit, res *mitigation.Result, diverts map[string]func()) {
	byClient := map[string]*Event{}
	var order []string
	ev := func(cuid string) *Event {
		e := byClient[cuid]
		if e == nil {
			e = &Event{CUID: cuid}
			byClient[cuid] = e
			order = append(order, cuid)
		}
		return e
	}
	for _, c := range res.Changes {
		e := ev(c.Key.CUID)
		if c.Record != nil {
			e.Changed = append(e.Changed, s.withCountersLocked(c.Record))
		}
	}
	for _, r := range res.Notify {
		e := ev(r.CUID)
		e.Final = append(e.Final, s.withCountersLocked(r))
	}
	for cuid := range diverts {
		ev(cuid)
	}
	for _, cuid := range order {
		// A client's diversions and events go through its own worker, in
		// state order; its backend lanes are the client's too.
		n := note{done: done, diverts: diverts[cuid], ev: *byClient[cuid]}
		n.hasEvent = len(n.ev.Changed)+len(n.ev.Final) > 0
		s.notes[ShardOf(cuid)].push(n)
	}
}

func (s *Service) runNotify(_ int, q *notifyQueue) {
	for {
		select {
		case <-q.ready:
			for _, n := range q.take() {
				if n.done != nil && n.done.wait() != nil {
					continue // not on disk: it did not happen
				}
				if n.diverts != nil {
					n.diverts()
				}
				if n.hasEvent || n.ev.Periodic {
					s.deliver(n.ev)
				}
			}
		case <-s.stop:
			return
		}
	}
}

func (s *Service) deliver(ev Event) {
	s.watchM.Lock()
	fns := make([]func(Event), 0, len(s.watch))
	for _, fn := range s.watch {
		fns = append(fns, fn)
	}
	s.watchM.Unlock()
	for _, fn := range fns {
		fn(ev)
	}
}

// notifyQueue is an unbounded FIFO, so that queuing under s.mu never blocks.
type notifyQueue struct {
	mu    sync.Mutex
	items []note
	ready chan struct{}
}

func newNotifyQueue() *notifyQueue { return &notifyQueue{ready: make(chan struct{}, 1)} }

func (q *notifyQueue) push(n note) {
	q.mu.Lock()
	q.items = append(q.items, n)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

func (q *notifyQueue) take() []note {
	q.mu.Lock()
	defer q.mu.Unlock()
	items := q.items
	q.items = nil
	return items
}
