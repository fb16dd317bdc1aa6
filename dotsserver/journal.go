package dotsserver

import (
	"context"
	"errors"
	"sync"

	"github.com/levee-dots/levee/store"
)

// Store is the persistence the server needs (store.DB or store.Memory).
type Store interface {
	Apply(ctx context.Context, ops ...store.Op) error
	ForEach(bucket string, fn func(key string, value []byte) error) error
}

// journal commits writes in the order they were enqueued, many at a time:
// whatever queued while one transaction was being synced goes into the next
// one (group commit without a delay), and a lone writer commits at once.
// Enqueue happens under the server's state lock, so the disk sees the
// changes in the order the state machine made them.
type journal struct {
	st      Store
	mu      sync.Mutex
	pending []store.Op
	waiters []*commit
	kick    chan struct{}
	done    chan struct{}
	closed  bool
}

func newJournal(st Store) *journal {
	j := &journal{st: st, kick: make(chan struct{}, 1), done: make(chan struct{})}
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

// add queues ops and returns their commit.
func (j *journal) add(ops []store.Op) *commit {
	if len(ops) == 0 {
		return committed
	}
	ch := &commit{done: make(chan struct{})}
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return finished(errJournalClosed)
	}
	j.pending = append(j.pending, ops...)
	j.waiters = append(j.waiters, ch)
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
			ops, waiters := j.pending, j.waiters
			j.pending, j.waiters = nil, nil
			j.mu.Unlock()
			if len(waiters) == 0 {
				break
			}
			err := j.st.Apply(context.Background(), ops...)
			for _, w := range waiters {
				w.finish(err)
			}
		}
	}
}

// close stops the loop after the queued writes are committed.
func (j *journal) close() {
	j.mu.Lock()
	j.closed = true
	j.mu.Unlock()
	close(j.kick)
	<-j.done
}
