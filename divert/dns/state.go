package dns

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/levee-dots/levee/divert"
	"github.com/levee-dots/levee/store"
)

// Store is the part of store.DB (and store.Memory) the backend uses.
type Store interface {
	Apply(ctx context.Context, ops ...store.Op) error
	ForEach(bucket string, fn func(key string, value []byte) error) error
	Get(bucket, key string) ([]byte, bool, error)
}

// Buckets holding the backend's state. Every change to a name and to the
// diversions holding it is written in one atomic store.Apply.
const (
	// BucketDiversions: key "cuid/mid" → the names the diversion holds.
	BucketDiversions = "dns-diversions"
	// BucketNames: key = canonical name → its original and diverted
	// RRsets, the diversions holding it (reference count) and its state.
	BucketNames = "dns-names"
)

// Name states. The state is written BEFORE the DNS update is sent, so a
// crash between the two leaves a record that Sync or Withdraw completes.
const (
	stateDiverting = "diverting" // divert update sent or about to be
	stateDiverted  = "diverted"  // the primary confirmed the diversion
	stateRestoring = "restoring" // no holder left; restore sent or about to be
)

// diversionRec is stored in BucketDiversions.
type diversionRec struct {
	CUID   string   `json:"cuid"`
	MID    uint32   `json:"mid"`
	Domain string   `json:"domain"`
	Names  []string `json:"names"` // held, or whose restore is still pending
}

func (d diversionRec) key() divert.Key { return divert.Key{CUID: d.CUID, MID: d.MID} }

// nameRec is stored in BucketNames: one original per name, whatever the
// number of diversions holding it.
type nameRec struct {
	Name     string   `json:"name"`
	Zone     string   `json:"zone"`
	Original rrsets   `json:"original"`
	Diverted rrsets   `json:"diverted"`
	Holders  []string `json:"holders"` // "cuid/mid" of the diversions holding it
	State    string   `json:"state"`
}

func getJSON[T any](st Store, bucket, key string) (T, bool, error) {
	var v T
	b, ok, err := st.Get(bucket, key)
	if err != nil || !ok {
		return v, false, err
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return v, false, fmt.Errorf("dns: corrupt %s/%s in the store: %w", bucket, key, err)
	}
	return v, true, nil
}

func putOp(bucket, key string, v any) store.Op {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // plain structs of strings, numbers and addresses
	}
	return store.Op{Bucket: bucket, Key: key, Value: b}
}

func (b *Backend) loadDiversion(k divert.Key) (diversionRec, bool, error) {
	return getJSON[diversionRec](b.st, BucketDiversions, k.String())
}

func (b *Backend) loadName(name string) (nameRec, bool, error) {
	return getJSON[nameRec](b.st, BucketNames, name)
}

// diversions returns every stored diversion.
func (b *Backend) diversions() ([]diversionRec, error) {
	var out []diversionRec
	err := b.st.ForEach(BucketDiversions, func(key string, value []byte) error {
		var d diversionRec
		if err := json.Unmarshal(value, &d); err != nil {
			return fmt.Errorf("dns: corrupt %s/%s in the store: %w", BucketDiversions, key, err)
		}
		out = append(out, d)
		return nil
	})
	return out, err
}

// save writes rec and the diversion record for k, with name added to (add)
// or removed from (!add) its names; an emptied diversion record is deleted.
// rec == nil deletes the name record. extra ops are written in the same
// transaction.
func (b *Backend) save(ctx context.Context, k divert.Key, domain, name string, rec *nameRec, add bool, extra ...store.Op) error {
	d, _, err := b.loadDiversion(k)
	if err != nil {
		return err
	}
	d.CUID, d.MID = k.CUID, k.MID
	if domain != "" {
		d.Domain = domain
	}
	d.Names = slices.DeleteFunc(d.Names, func(n string) bool { return n == name })
	if add {
		d.Names = append(d.Names, name)
		slices.Sort(d.Names)
	}
	ops := make([]store.Op, 0, 2+len(extra))
	if rec != nil {
		ops = append(ops, putOp(BucketNames, name, rec))
	} else {
		ops = append(ops, store.Op{Bucket: BucketNames, Key: name, Delete: true})
	}
	if len(d.Names) > 0 {
		ops = append(ops, putOp(BucketDiversions, k.String(), d))
	} else {
		ops = append(ops, store.Op{Bucket: BucketDiversions, Key: k.String(), Delete: true})
	}
	ops = append(ops, extra...)
	if err := b.st.Apply(ctx, ops...); err != nil {
		return fmt.Errorf("dns: saving %s for %s: %w", name, k, err)
	}
	return nil
}
