package store

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
)

func openBench(b *testing.B) *DB {
	b.Helper()
	db, err := Open(filepath.Join(b.TempDir(), "bench.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return db
}

// benchValue is about the size of a CBOR-encoded mitigation request.
var benchValue = make([]byte, 256)

// BenchmarkApplySerial measures one fsync'd transaction per Apply: a lone
// caller gets no batching.
func BenchmarkApplySerial(b *testing.B) {
	db := openBench(b)
	ctx := context.Background()
	i := 0
	for b.Loop() {
		if err := db.Apply(ctx, Op{Bucket: "m", Key: strconv.Itoa(i), Value: benchValue}); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

// BenchmarkApplyParallel100 runs about 100 concurrent callers, one Put per
// Apply, so group commit shares each fsync among many callers.
func BenchmarkApplyParallel100(b *testing.B) {
	db := openBench(b)
	ctx := context.Background()
	procs := runtime.GOMAXPROCS(0)
	b.SetParallelism((100 + procs - 1) / procs) // goroutines = parallelism * GOMAXPROCS
	var next atomic.Int64
	before := db.commits.Load()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			k := fmt.Sprint(next.Add(1))
			if err := db.Apply(ctx, Op{Bucket: "m", Key: k, Value: benchValue}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
	if txs := db.commits.Load() - before; txs > 0 {
		b.ReportMetric(float64(b.N)/float64(txs), "applies/tx")
	}
}
