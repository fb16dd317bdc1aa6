package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

const (
	defaultMaxBatch    = 256
	defaultOpenTimeout = 2 * time.Second
)

// Options tunes a DB. The zero value is ready to use.
type Options struct {
	// MaxBatch caps how many queued Apply calls share one transaction
	// (default 256).
	MaxBatch int
	// OpenTimeout bounds how long Open waits for the bbolt file lock
	// (default 2s). If another process (or another DB in this process)
	// holds the lock, Open fails with an error saying the file is locked.
	OpenTimeout time.Duration
}

// DB is a durable bbolt store with group commit. All methods are safe for
// concurrent use.
type DB struct {
	bolt     *bolt.DB
	maxBatch int
	reqs     chan *request // unbuffered: a send completes only when the writer takes it
	quit     chan struct{} // closed by Close
	done     chan struct{} // closed when the writer goroutine has exited

	closeOnce sync.Once
	closeErr  error

	commits atomic.Int64 // successful combined transactions (for tests and benchmarks)
}

// request is one Apply call waiting for the writer.
type request struct {
	ctx   context.Context
	ops   []Op
	reply chan error // buffered (1) so the writer never blocks on a caller that left
}

// Open opens (creating if needed) the bbolt file at path. The parent
// directory is created with mode 0700 and a new file with mode 0600.
func Open(path string, opts Options) (*DB, error) {
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = defaultMaxBatch
	}
	if opts.OpenTimeout <= 0 {
		opts.OpenTimeout = defaultOpenTimeout
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	_, statErr := os.Stat(path)
	created := errors.Is(statErr, os.ErrNotExist)

	bdb, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.OpenTimeout})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("store: open %s: file is locked by another process (gave up after %v): %w",
			path, opts.OpenTimeout, err)
	}
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	if created {
		// Make the new directory entry durable too, not just the file data.
		if err := syncDir(dir); err != nil {
			_ = bdb.Close()
			return nil, fmt.Errorf("store: open %s: sync directory: %w", path, err)
		}
	}
	db := &DB{
		bolt:     bdb,
		maxBatch: opts.MaxBatch,
		reqs:     make(chan *request),
		quit:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	go db.writer()
	return db, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Apply applies ops atomically: either all of them land or none do. It
// returns only after the transaction holding them has been committed and
// fsync'd to disk. Ops with an empty Bucket or Key are rejected before
// anything is queued. Buckets are created on demand.
//
// Apply gives up with ctx's error if ctx is done while the request waits to
// be queued or waits for its reply. A request whose context is done before
// its transaction starts is dropped; but once it is inside a transaction the
// write may still land even though Apply has already returned ctx's error.
// Apply may be called with no ops; it then just waits for the writer.
//
// After Close, Apply returns ErrClosed.
func (db *DB) Apply(ctx context.Context, ops ...Op) error {
	if err := validate(ops); err != nil {
		return err
	}
	select {
	case <-db.quit:
		return ErrClosed
	default:
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: apply: %w", err)
	}
	r := &request{ctx: ctx, ops: cloneOps(ops), reply: make(chan error, 1)}
	select {
	case db.reqs <- r:
	case <-db.quit:
		return ErrClosed
	case <-ctx.Done():
		return fmt.Errorf("store: apply: %w", ctx.Err())
	}
	// Once queued, the writer always replies, even while closing.
	select {
	case err := <-r.reply:
		return err
	case <-ctx.Done():
		return fmt.Errorf("store: apply: %w", ctx.Err())
	}
}

// writer is the only goroutine that writes to bbolt.
func (db *DB) writer() {
	defer close(db.done)
	batch := make([]*request, 0, db.maxBatch)
	for {
		select {
		case r := <-db.reqs:
			batch = db.drain(append(batch[:0], r))
			db.commit(batch)
		case <-db.quit:
			// Serve callers that were already blocked sending to us; anyone
			// arriving later sees quit and gets ErrClosed.
			for {
				batch = db.drain(batch[:0])
				if len(batch) == 0 {
					return
				}
				db.commit(batch)
			}
		}
	}
}

// drain appends, without waiting, requests already queued, up to maxBatch.
func (db *DB) drain(batch []*request) []*request {
	for len(batch) < db.maxBatch {
		select {
		case r := <-db.reqs:
			batch = append(batch, r)
		default:
			return batch
		}
	}
	return batch
}

// commit runs batch in one transaction and replies to every request. If the
// combined transaction fails, each request is retried on its own.
func (db *DB) commit(batch []*request) {
	live := batch[:0]
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.reply <- fmt.Errorf("store: apply: %w", err)
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		for _, r := range live {
			if err := applyOps(tx, r.ops); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		db.commits.Add(1)
		for _, r := range live {
			r.reply <- nil
		}
		return
	}
	if len(live) == 1 {
		live[0].reply <- fmt.Errorf("store: apply: %w", err)
		return
	}
	for _, r := range live {
		err := db.bolt.Update(func(tx *bolt.Tx) error { return applyOps(tx, r.ops) })
		if err != nil {
			err = fmt.Errorf("store: apply: %w", err)
		} else {
			db.commits.Add(1)
		}
		r.reply <- err
	}
}

func applyOps(tx *bolt.Tx, ops []Op) error {
	for i, op := range ops {
		if op.Delete {
			b := tx.Bucket([]byte(op.Bucket))
			if b == nil {
				continue // nothing to delete
			}
			if err := b.Delete([]byte(op.Key)); err != nil {
				return fmt.Errorf("op %d: delete %q/%q: %w", i, op.Bucket, op.Key, err)
			}
			continue
		}
		b, err := tx.CreateBucketIfNotExists([]byte(op.Bucket))
		if err != nil {
			return fmt.Errorf("op %d: bucket %q: %w", i, op.Bucket, err)
		}
		value := op.Value
		if value == nil {
			value = []byte{}
		}
		if err := b.Put([]byte(op.Key), value); err != nil {
			return fmt.Errorf("op %d: put %q/%q: %w", i, op.Bucket, op.Key, err)
		}
	}
	return nil
}

// ForEach calls fn for every key in bucket, in byte-wise key order, inside a
// read-only transaction. A missing bucket has no keys. The value slice is
// only valid while fn runs: it points into the memory-mapped file, so copy it
// to keep it and never modify it. fn must not call Apply or Close (a write
// that needs to grow the file waits for this read transaction to end). If fn
// returns an error, iteration stops and ForEach returns that error.
func (db *DB) ForEach(bucket string, fn func(key string, value []byte) error) error {
	if db.isClosed() {
		return ErrClosed
	}
	err := db.bolt.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucket))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			if v == nil {
				return nil // nested bucket; store never creates these
			}
			return fn(string(k), v)
		})
	})
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return err
}

// Get returns a copy of the value stored under key in bucket, and whether it
// was found.
func (db *DB) Get(bucket, key string) ([]byte, bool, error) {
	if db.isClosed() {
		return nil, false, ErrClosed
	}
	var (
		out   []byte
		found bool
	)
	err := db.bolt.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucket))
		if b == nil {
			return nil
		}
		k, v := b.Cursor().Seek([]byte(key))
		if k != nil && v != nil && bytes.Equal(k, []byte(key)) {
			out, found = append([]byte{}, v...), true
		}
		return nil
	})
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return nil, false, ErrClosed
	}
	if err != nil {
		return nil, false, fmt.Errorf("store: get %q/%q: %w", bucket, key, err)
	}
	return out, found, nil
}

// Close stops accepting writes, waits for queued writes to be committed, and
// closes the file. Later calls return the first call's result.
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		close(db.quit)
		<-db.done
		if err := db.bolt.Close(); err != nil {
			db.closeErr = fmt.Errorf("store: close: %w", err)
		}
	})
	return db.closeErr
}

func (db *DB) isClosed() bool {
	select {
	case <-db.quit:
		return true
	default:
		return false
	}
}
