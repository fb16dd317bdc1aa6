package store

import (
	"context"
	"fmt"
	"sort"
	"sync"
)

// Memory is an in-memory implementation with the same methods as DB (Apply,
// ForEach, Get, Close), for unit tests. Nothing is persisted. It is safe for
// concurrent use.
type Memory struct {
	mu      sync.RWMutex
	buckets map[string]map[string][]byte
	closed  bool
}

// NewMemory returns an empty Memory.
func NewMemory() *Memory {
	return &Memory{buckets: make(map[string]map[string][]byte)}
}

// Apply applies ops atomically, with the same validation and errors as
// DB.Apply. A context that is already done makes it fail without writing.
func (m *Memory) Apply(ctx context.Context, ops ...Op) error {
	if err := validate(ops); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: apply: %w", err)
	}
	ops = cloneOps(ops)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	// Validation above rules out every failure, so the ops apply all-or-none.
	for _, op := range ops {
		b := m.buckets[op.Bucket]
		if op.Delete {
			delete(b, op.Key) // no-op on a nil map
			continue
		}
		if b == nil {
			b = make(map[string][]byte)
			m.buckets[op.Bucket] = b
		}
		v := op.Value
		if v == nil {
			v = []byte{}
		}
		b[op.Key] = v
	}
	return nil
}

// ForEach calls fn for every key in bucket, in byte-wise key order, like
// DB.ForEach. Here fn receives a copy of a snapshot taken before the first
// call, so it may keep the value and may call Apply; callers written against
// DB must still treat value as valid only during fn.
func (m *Memory) ForEach(bucket string, fn func(key string, value []byte) error) error {
	type kv struct {
		k string
		v []byte
	}
	m.mu.RLock()
	if m.closed {
		m.mu.RUnlock()
		return ErrClosed
	}
	snap := make([]kv, 0, len(m.buckets[bucket]))
	for k, v := range m.buckets[bucket] {
		snap = append(snap, kv{k, append([]byte{}, v...)})
	}
	m.mu.RUnlock()
	sort.Slice(snap, func(i, j int) bool { return snap[i].k < snap[j].k })
	for _, e := range snap {
		if err := fn(e.k, e.v); err != nil {
			return err
		}
	}
	return nil
}

// Get returns a copy of the value stored under key in bucket, and whether it
// was found.
func (m *Memory) Get(bucket, key string) ([]byte, bool, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return nil, false, ErrClosed
	}
	v, ok := m.buckets[bucket][key]
	if !ok {
		return nil, false, nil
	}
	return append([]byte{}, v...), true, nil
}

// Close makes later calls return ErrClosed. It is idempotent.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}
