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

// TestDataRequest: a data-channel request is counted by method and HTTP
// status, and its latency observed by method.
func TestDataRequest(t *testing.T) {
	m := metrics.New(metrics.Options{})
	m.DataRequest("POST", 201, 3*time.Millisecond)
	m.DataRequest("POST", 201, 4*time.Millisecond)
	m.DataRequest("GET", 404, time.Millisecond)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"levee_data_requests_total", map[string]string{"method": "POST", "code": "201"}, 2},
		{"levee_data_requests_total", map[string]string{"method": "GET", "code": "404"}, 1},
		{"levee_data_request_duration_seconds", map[string]string{"method": "POST"}, 2},
	} {
		if v, ok := sample(t, m.Registry(), c.name, c.labels); !ok || v != c.want {
			t.Errorf("%s%v = %v, %v; want %v", c.name, c.labels, v, ok, c.want)
		}
	}
}
