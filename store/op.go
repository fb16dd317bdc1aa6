package store

import (
	"errors"
	"fmt"
)

// ErrClosed is returned by Apply, Get and ForEach after Close.
var ErrClosed = errors.New("store: closed")

// Op is one write: Put of Value under Key in Bucket, or Delete of Key when
// Delete is true.
type Op struct {
	Bucket string
	Key    string
	Value  []byte
	Delete bool
}

// validate rejects ops that can never be applied, before they are queued.
func validate(ops []Op) error {
	for i, op := range ops {
		switch {
		case op.Bucket == "":
			return fmt.Errorf("store: apply: op %d: empty bucket name", i)
		case op.Key == "":
			return fmt.Errorf("store: apply: op %d: empty key (bucket %q)", i, op.Bucket)
		}
	}
	return nil
}

// cloneOps deep-copies ops so that the caller may reuse its slices as soon as
// Apply returns, even if it returned early because its context was cancelled.
func cloneOps(ops []Op) []Op {
	out := make([]Op, len(ops))
	for i, op := range ops {
		out[i] = op
		if op.Value != nil {
			out[i].Value = append([]byte{}, op.Value...)
		}
	}
	return out
}
