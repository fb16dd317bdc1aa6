package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
)

// Apply calls racing with Close either land (and are found after reopening)
// or fail with ErrClosed; none is lost after being acknowledged.
func TestCloseWaitsForPendingWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "levee.db")
	db, err := Open(path, Options{MaxBatch: 8})
	if err != nil {
		t.Fatal(err)
	}
	const writers = 50
	var (
		mu       sync.Mutex
		acked    []string
		nAcked   atomic.Int64
		nClosed  atomic.Int64
		wg       sync.WaitGroup
		busy     = make(chan struct{})
		busyOnce sync.Once
	)
	for g := range writers {
		wg.Go(func() {
			for i := 0; ; i++ {
				k := fmt.Sprintf("g%02d-%05d", g, i)
				err := db.Apply(context.Background(), put("m", k, "v"))
				if errors.Is(err, ErrClosed) {
					nClosed.Add(1)
					return
				}
				if err != nil {
					t.Errorf("Apply %s: %v", k, err)
					return
				}
				mu.Lock()
				acked = append(acked, k)
				mu.Unlock()
				if nAcked.Add(1) >= 200 {
					busyOnce.Do(func() { close(busy) })
				}
			}
		})
	}
	<-busy // Close while all writers are still hammering
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if nClosed.Load() != writers {
		t.Fatalf("%d writers saw ErrClosed, want %d", nClosed.Load(), writers)
	}
	db, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, k := range acked {
		if _, found, err := db.Get("m", k); err != nil || !found {
			t.Fatalf("acknowledged %s: found=%v err=%v", k, found, err)
		}
	}
	t.Logf("%d Apply calls acknowledged before Close", len(acked))
}
