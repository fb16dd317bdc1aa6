package metrics_test

import (
	"testing"
	"time"

	"github.com/levee-dots/levee/metrics"
)

func TestCertCollector(t *testing.T) {
	end := time.Date(2027, 3, 1, 12, 0, 0, 0, time.UTC)
	kinds := map[string]time.Time{"server-certificate": end}
	m := metrics.New(metrics.Options{})
	if err := m.Register(metrics.NewCertCollector(func() map[string]time.Time { return kinds })); err != nil {
		t.Fatal(err)
	}
	if v, ok := sample(t, m.Registry(), "levee_certificate_not_after_seconds", map[string]string{"kind": "server-certificate"}); !ok || v != float64(end.Unix()) {
		t.Fatalf("server-certificate = %v, %v; want %d", v, ok, end.Unix())
	}
	if _, ok := sample(t, m.Registry(), "levee_certificate_not_after_seconds", map[string]string{"kind": "client-certificate"}); ok {
		t.Fatal("a kind with no certificate is exported")
	}
}
