package mitigation_test

import (
	"testing"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsserver/mitigation"
)

// Undo puts the book back as it was before an operation, newest result
// first: what a failed durable write must leave behind.
func TestUndo(t *testing.T) {
	b := mitigation.NewBook(mitigation.Policy{})
	mustPut(t, b, mkPut(cuidA, 1, 3600, pfx("192.0.2.1/32")), at(0))
	mustPut(t, b, mkPut(cuidA, 2, 3600, pfx("192.0.2.2/32")), at(0))
	before := b.List(cuidA)

	sup, err := b.Put(mkPut(cuidA, 3, 3600, pfx("192.0.2.0/29")), at(1))
	if err != nil {
		t.Fatal(err)
	}
	eqUints(t, "Superseded", sup.Superseded, []uint32{1, 2})
	ref, err := b.Put(mkPut(cuidA, 3, 60, pfx("192.0.2.0/29")), at(2))
	if err != nil {
		t.Fatal(err)
	}
	del := b.Delete(key(cuidA, 3), at(3))
	for _, res := range []*mitigation.Result{del, ref, sup} {
		b.Undo(res)
	}
	after := b.List(cuidA)
	if len(after) != len(before) {
		t.Fatalf("after undo: %d requests, want %d", len(after), len(before))
	}
	for i := range before {
		if after[i].MID != before[i].MID || after[i].Status != before[i].Status || !after[i].Expires.Equal(before[i].Expires) {
			t.Errorf("request %d after undo = %+v, want %+v", i, after[i], before[i])
		}
	}
	// The index is back too: mid 1 is found as an overlap again.
	if _, err := b.Put(mkPut(cuidA, 0, 3600, pfx("192.0.2.1/32")), at(4)); err == nil {
		t.Error("lower mid over restored mid 1 accepted: index not restored")
	}
	// A refresh undone restores the old lifetime.
	r, _ := b.Get(key(cuidA, 1))
	res, _ := b.Put(mkPut(cuidA, 1, 10, pfx("192.0.2.1/32")), at(5))
	b.Undo(res)
	if got, _ := b.Get(key(cuidA, 1)); got.Lifetime != r.Lifetime || got.Status != dots.StatusInProgress {
		t.Errorf("refresh undone: %+v, want lifetime %d", got, r.Lifetime)
	}
}

func eqUints(t *testing.T, what string, got, want []uint32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s = %v, want %v", what, got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%s = %v, want %v", what, got, want)
		}
	}
}
