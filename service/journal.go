package service

import (
	"context"
	"errors"
	"sync"

	"github.com/levee-dots/levee/store"
)

// Store is the persistence the service needs (store.DB or store.Memory).
type Store interface {
	Apply(ctx context.Context, ops ...store.Op) error
	ForEach(bucket string, fn func(key string, value []byte) error) error
}

// journal commits writes in the order they were enqueued, many at a time:
// whatever queued while one transaction was being synced goes into the next
// one (group commit without a delay), and a lone writer commits at once.
// Enqueue happens under the service's state lock, so the disk sees the
// changes in the order the state machine made them.
//
// When a transaction fails, the change it held did not happen: under the
// state lock (lock), the journal fails that transaction and everything
// queued behind it (computed on top of it), and runs their undo functions
// newest first, so memory is back to what the disk has.
type journal struct {
	st   Store
	lock sync.Locker // the service's state lock

	mu      sync.Mutex
	pending []entry
	kick    chan struct{}
	done    chan struct{}
	closed  bool
}

type entry struct {
	ops  []store.Op
	undo func()
	c    *commit
}

func newJournal(st Store, lock sync.Locker) *journal {
	j := &journal{st: st, lock: lock, kick: make(chan struct{}, 1), done: make(chan struct{})}
	go j.loop()
	return j
}

var errJournalClosed = errors.New("server is shutting down")

// commit is the outcome of queued writes; wait may be called any number of
// times, from any goroutine.
type commit struct {
	done chan struct{}
	err  error
}

func (c *commit) wait() error {
	<-c.done
	return c.err
}

func (c *commit) finish(err error) {
	c.err = err
	close(c.done)
}

func finished(err error) *commit {
	c := &commit{done: make(chan struct{})}
	c.finish(err)
	return c
}

var committed = finished(nil)

// add queues ops, with undo to run should they fail, and returns their
// commit. It must be called with the state lock held.
func (j *journal) add(ops []store.Op, undo func()) *commit {
	if len(ops) == 0 {
		return committed
	}
	ch := &commit{done: make(chan struct{})}
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		if undo != nil {
			undo()
		}
		return finished(errJournalClosed)
	}
	j.pending = append(j.pending, entry{ops: ops, undo: undo, c: ch})
	select {
	case j.kick <- struct{}{}:
	default:
	}
	j.mu.Unlock()
	return ch
}

func (j *journal) loop() {
	defer close(j.done)
	for range j.kick {
		for {
			j.mu.Lock()
			batch := j.pending
			j.pending = nil
			j.mu.Unlock()
			if len(batch) == 0 {
				break
			}
			var ops []store.Op
			for _, e := range batch {
				ops = append(ops, e.ops...)
			}
			if err := j.st.Apply(context.Background(), ops...); err != nil {
				j.fail(batch, err)
				continue
			}
			for _, e := range batch {
				e.c.finish(nil)
			}
		}
	}
}

// fail rolls back batch and everything queued after it, newest first.
func (j *journal) fail(batch []entry, err error) {
	j.lock.Lock()
	j.mu.Lock()
	all := append(batch, j.pending...)
	j.pending = nil
	j.mu.Unlock()
	for i := len(all) - 1; i >= 0; i-- {
		if all[i].undo != nil {
			all[i].undo()
		}
	}
	j.lock.Unlock()
	for _, e := range all {
		e.c.finish(err)
	}
}

// close stops the loop after the queued writes are committed.
func (j *journal) close() {
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return
	}
	j.closed = true
	j.mu.Unlock()
	close(j.kick)
	<-j.done
}
