package metrics_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/metrics"
)

// TestServe: /metrics answers GET with the registry in the text format,
// nothing else is served, and Close stops the listener.
func TestServe(t *testing.T) {
	m := metrics.New(metrics.Options{})
	m.Request("PUT", "mitigate", dots.Created, 0)
	s, err := m.Serve("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + s.Addr()
	for _, tc := range []struct {
		method, path string
		status       int
		body         string
	}{
		{"GET", "/metrics", http.StatusOK, `levee_signal_requests_total{code="2.01",method="PUT",resource="mitigate"} 1`},
		{"POST", "/metrics", http.StatusMethodNotAllowed, ""},
		{"GET", "/", http.StatusNotFound, ""},
	} {
		req, _ := http.NewRequestWithContext(ctx(t), tc.method, base+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || !strings.Contains(string(b), tc.body) {
			t.Errorf("%s %s: %s, want %d with %q\n%s", tc.method, tc.path, resp.Status, tc.status, tc.body, b)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(base + "/metrics"); err == nil {
		t.Error("still serving after Close")
	}
}
