package dashboard_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/levee-dots/levee/dashboard"
	"github.com/levee-dots/levee/divert"
	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/service"
	"github.com/levee-dots/levee/store"
)

const testToken = "tok-3f9a61c2e07b4d58a1"

var alpha = service.Client{CUID: "cuid-alpha", Domain: &service.Domain{Name: "alpha",
	Prefixes: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/25"), netip.MustParsePrefix("2001:db8:6401::/48")}}}

// newService starts a mitigation service over an in-memory store.
func newService(t *testing.T, backends ...divert.Diverter) *service.Service {
	t.Helper()
	svc, err := service.New(service.Options{Store: store.NewMemory(), Backends: backends})
	if err != nil {
		t.Fatal(err)
	}
	svc.Start()
	t.Cleanup(svc.Close)
	return svc
}

// put asks for a mitigation of target by alpha.
func put(t *testing.T, svc *service.Service, mid uint32, target string) {
	t.Helper()
	lifetime := int64(3600)
	r, err := dots.ParseMitigationRequest(&dots.Message{MitigationScope: &dots.MitigationScope{Scope: []dots.Scope{{
		TargetPrefix: []string{target}, TargetPortRange: []dots.PortRange{{LowerPort: 443}}, TargetProtocol: []uint32{6}, Lifetime: &lifetime}}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.PutMitigation(context.Background(), alpha, service.PutRequest{MID: mid, Request: r}); err != nil {
		t.Fatal(err)
	}
}

// writeToken writes the token file, 0600.
func writeToken(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "dashboard.token")
	if err := os.WriteFile(p, []byte(testToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// serve starts the dashboard over svc on a loopback port, authenticated
// by the token file's token.
func serve(t *testing.T, opts dashboard.Options) (*dashboard.Dashboard, string) {
	t.Helper()
	tok, err := dashboard.LoadToken(writeToken(t))
	if err != nil {
		t.Fatal(err)
	}
	opts.Token = tok
	d, err := dashboard.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := dashboard.Serve("127.0.0.1:0", d, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close(); srv.Close() })
	return d, "http://" + srv.Addr().String()
}

// get fetches url with the bearer token (none when token is "").
func get(t *testing.T, url, token string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }, Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, b := get(t, url, testToken)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", url, resp.Status, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v: %s", url, err, b)
	}
}

func waitFor(t *testing.T, what string, fn func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !fn() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
