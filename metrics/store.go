package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/levee-dots/levee/service"
	"github.com/levee-dots/levee/store"
)

// TimedStore is a service.Store whose commits are timed: each Apply (one
// group commit of the service's journal, synced to disk) is observed in
// levee_store_commit_duration_seconds, and each failure counted.
type TimedStore struct {
	service.Store
	commits  prometheus.Histogram
	failures prometheus.Counter
}

// TimeStore wraps st so that its commits are measured, registering the
// store's metrics. Call it once.
func (m *Metrics) TimeStore(st service.Store) (*TimedStore, error) {
	t := &TimedStore{Store: st,
		commits: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "levee_store_commit_duration_seconds",
			Help:    "Time to commit one group of the mitigation service's writes to the store (synced to disk).",
			Buckets: latencyBuckets,
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "levee_store_commit_failures_total",
			Help: "Store commits that failed (the changes they held were undone and refused with 5.03).",
		})}
	if err := m.Register(t.commits, t.failures); err != nil {
		return nil, err
	}
	return t, nil
}

// Apply commits ops and observes how long it took.
func (t *TimedStore) Apply(ctx context.Context, ops ...store.Op) error {
	start := time.Now()
	err := t.Store.Apply(ctx, ops...)
	t.commits.Observe(time.Since(start).Seconds())
	if err != nil {
		t.failures.Inc()
	}
	return err
}
