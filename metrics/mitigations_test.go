package metrics_test

import (
	"fmt"
	"testing"

	"github.com/levee-dots/levee/divert"
	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsclient"
	"github.com/levee-dots/levee/dotsserver"
	"github.com/levee-dots/levee/dotsserver/dotstest"
	"github.com/levee-dots/levee/metrics"
)

// TestMitigations reads a real service behind a signal channel on
// loopback: mitigations by status and client domain, the store's commit
// latency, and the drop series the backends' samples make, within the
// bound of per-mitigation series.
func TestMitigations(t *testing.T) {
	m := metrics.New(metrics.Options{MaxMitigationSeries: 2})
	s := dotstest.Start(t, dotstest.Options{Mutate: func(o *dotsserver.Options) {
		st, err := m.TimeStore(o.Store)
		if err != nil {
			t.Fatal(err)
		}
		o.Store = st
	}})
	svc := s.Srv.Service()
	if err := m.Register(m.NewMitigationsCollector(svc)); err != nil {
		t.Fatal(err)
	}
	reg := m.Registry()
	commits, _ := sample(t, reg, "levee_store_commit_duration_seconds", map[string]string{})

	clients := map[string]*dotsclient.Client{}
	for _, name := range []string{"alpha", "beta"} {
		c, err := dotsclient.Dial(ctx(t), dotsclient.Config{Servers: []string{s.Addr}, Certificate: s.ClientCert(t, name), RootCAs: s.Roots, Transport: "dtls"})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		clients[name] = c
	}
	put := func(name string, mid uint32, target string) {
		t.Helper()
		r, err := clients[name].Mitigate(ctx(t), mid, dots.Scope{TargetPrefix: []string{target}, Lifetime: dots.Ptr[int64](3600)})
		if err != nil || r.Code != dots.Created {
			t.Fatalf("PUT %s mid %d: %v %+v", name, mid, err, r)
		}
	}
	put("alpha", 1, "203.0.113.1/32")
	put("alpha", 2, "203.0.113.2/32")
	put("alpha", 3, "203.0.113.3/32")
	put("beta", 1, "203.0.113.129/32")
	if r, err := clients["alpha"].Withdraw(ctx(t), 3); err != nil || r.Code != dots.Deleted {
		t.Fatalf("DELETE: %v %+v", err, r)
	}
	inProgress := dots.StatusInProgress.String()
	withdrawn := dots.StatusClientWithdrawn.String()
	for _, tc := range []struct {
		status, domain string
		want           float64
	}{{inProgress, "alpha", 2}, {withdrawn, "alpha", 1}, {inProgress, "beta", 1}} {
		waitSample(t, reg, "levee_mitigations", map[string]string{"status": tc.status, "domain": tc.domain}, tc.want)
	}
	if got, _ := sample(t, reg, "levee_store_commit_duration_seconds", map[string]string{}); got < commits+5 {
		t.Errorf("store commits observed: %v, want at least %v (5 changes)", got, commits+5)
	}
	if _, ok := sample(t, reg, "levee_dropped_bytes_per_second", map[string]string{}); ok {
		t.Fatal("drop rates exported before anything measured them")
	}

	alpha, beta := clients["alpha"].CUID(), clients["beta"].CUID()
	// Three measured mitigations, two series allowed: the two dropping the
	// most bits per second get series, the third only counts in the totals.
	samples := []struct {
		cuid string
		mid  uint32
		c    divert.Counters
	}{
		{alpha, 1, divert.Counters{BytesDropped: 1000, PktsDropped: 10, BPSDropped: 800, PPSDropped: 1}},
		{alpha, 2, divert.Counters{BytesDropped: 5000, PktsDropped: 50, BPSDropped: 4000, PPSDropped: 5}},
		{beta, 1, divert.Counters{BytesDropped: 3000, PktsDropped: 30, BPSDropped: 2400, PPSDropped: 3}},
	}
	for _, sm := range samples {
		svc.Measured("scrub", divert.Key{CUID: sm.cuid, MID: sm.mid}, sm.c)
	}
	per := func(domain, cuid string, mid uint32) map[string]string {
		return map[string]string{"domain": domain, "cuid": cuid, "mid": fmt.Sprint(mid)}
	}
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"levee_dropped_bytes_per_second", map[string]string{}, (800 + 4000 + 2400) / 8},
		{"levee_dropped_packets_per_second", map[string]string{}, 1 + 5 + 3},
		{"levee_mitigation_drop_series_omitted", map[string]string{}, 1},
		{"levee_mitigation_dropped_bytes_total", per("alpha", alpha, 2), 5000},
		{"levee_mitigation_dropped_packets_total", per("alpha", alpha, 2), 50},
		{"levee_mitigation_dropped_bytes_per_second", per("alpha", alpha, 2), 4000 / 8},
		{"levee_mitigation_dropped_packets_per_second", per("beta", beta, 1), 3},
		{"levee_mitigation_dropped_bytes_total", per("beta", beta, 1), 3000},
	} {
		waitSample(t, reg, tc.name, tc.labels, tc.want)
	}
	if v, ok := sample(t, reg, "levee_mitigation_dropped_bytes_total", per("alpha", alpha, 1)); ok {
		t.Errorf("the mitigation past the bound has a series of its own (%v)", v)
	}
	// A device reset: the totals stay monotonic (the service carries the
	// old count over).
	svc.Measured("scrub", divert.Key{CUID: alpha, MID: 2}, divert.Counters{BytesDropped: 100, PktsDropped: 1, BPSDropped: 4000})
	waitSample(t, reg, "levee_mitigation_dropped_bytes_total", per("alpha", alpha, 2), 5100)
	lint(t, reg)
}
