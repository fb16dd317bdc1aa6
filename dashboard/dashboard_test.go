package dashboard_test

import (
	"bufio"
	"crypto/tls"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/levee-dots/levee/dashboard"
	"github.com/levee-dots/levee/divert"
	"github.com/levee-dots/levee/pki"
)

// TestAuthentication: nothing but the login form is served without the
// token, a client certificate or the cookie of a login.
func TestAuthentication(t *testing.T) {
	svc := newService(t)
	put(t, svc, 1, "203.0.113.10/32")
	_, base := serve(t, dashboard.Options{Service: svc})
	cookie := login(t, base, testToken)
	if cookie == nil {
		t.Fatal("login with the right token set no cookie")
	}
	if bad := login(t, base, "wrong-token-0123456789"); bad != nil {
		t.Fatalf("login with a wrong token set cookie %v", bad)
	}
	cases := []struct {
		name, path, bearer string
		cookie             *http.Cookie
		want               int
		location           string
	}{
		{"api without credentials", "/api/mitigations", "", nil, http.StatusUnauthorized, ""},
		{"stream without credentials", "/api/stream", "", nil, http.StatusUnauthorized, ""},
		{"page without credentials", "/mitigations", "", nil, http.StatusSeeOther, "/login"},
		{"overview without credentials", "/", "", nil, http.StatusSeeOther, "/login"},
		{"script without credentials", "/static/app.js", "", nil, http.StatusSeeOther, "/login"},
		{"login form", "/login", "", nil, http.StatusOK, ""},
		{"login script", "/static/login.js", "", nil, http.StatusOK, ""},
		{"wrong bearer", "/api/mitigations", "wrong-token-0123456789", nil, http.StatusUnauthorized, ""},
		{"token prefix", "/api/mitigations", testToken[:16], nil, http.StatusUnauthorized, ""},
		{"forged cookie", "/api/mitigations", "", &http.Cookie{Name: "levee_dashboard", Value: testToken}, http.StatusUnauthorized, ""},
		{"bearer", "/api/mitigations", testToken, nil, http.StatusOK, ""},
		{"login cookie", "/api/mitigations", "", cookie, http.StatusOK, ""},
		{"login cookie, page", "/mitigations", "", cookie, http.StatusOK, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", base+tc.path, nil)
			if tc.bearer != "" {
				req.Header.Set("Authorization", "Bearer "+tc.bearer)
			}
			if tc.cookie != nil {
				req.AddCookie(tc.cookie)
			}
			resp := do(t, req)
			if resp.StatusCode != tc.want {
				t.Fatalf("GET %s: %s, want %d", tc.path, resp.Status, tc.want)
			}
			if tc.location != "" && resp.Header.Get("Location") != tc.location {
				t.Errorf("Location %q, want %q", resp.Header.Get("Location"), tc.location)
			}
			if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
				t.Errorf("Content-Security-Policy %q", csp)
			}
		})
	}
	t.Run("read-only", func(t *testing.T) {
		for _, m := range []string{"PUT", "POST", "DELETE"} {
			req, _ := http.NewRequest(m, base+"/api/mitigations", nil)
			req.Header.Set("Authorization", "Bearer "+testToken)
			if resp := do(t, req); resp.StatusCode != http.StatusMethodNotAllowed {
				t.Errorf("%s /api/mitigations: %s, want 405", m, resp.Status)
			}
		}
	})
}

func do(t *testing.T, req *http.Request) *http.Response {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }, Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// login posts the login form and returns the cookie it set (nil: none).
func login(t *testing.T, base, token string) *http.Cookie {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/login", strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp := do(t, req)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST /login: %s", resp.Status)
	}
	for _, c := range resp.Cookies() {
		if c.Name == "levee_dashboard" && c.Value != "" {
			if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode {
				t.Errorf("cookie %v: want HttpOnly and SameSite=Strict", c)
			}
			if strings.Contains(c.Value, token) {
				t.Errorf("the cookie carries the token itself")
			}
			return c
		}
	}
	return nil
}

func TestLoadToken(t *testing.T) {
	cases := []struct {
		name    string
		content string
		mode    os.FileMode
		wantErr string
	}{
		{"owner only", testToken + "\n", 0o600, ""},
		{"owner read-only", testToken, 0o400, ""},
		{"group readable", testToken, 0o640, "chmod 600"},
		{"world readable", testToken, 0o604, "chmod 600"},
		{"too short", "short", 0o600, "at least 16"},
		{"two words", "abcdefghijklmnop qrstuvwxyz", 0o600, "without spaces"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "token")
			if err := os.WriteFile(p, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, tc.mode); err != nil {
				t.Fatal(err)
			}
			tok, err := dashboard.LoadToken(p)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatal(err)
			case tc.wantErr == "" && string(tok) != strings.TrimSpace(tc.content):
				t.Fatalf("token %q", tok)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error %v, want one saying %q", err, tc.wantErr)
			}
		})
	}
	if _, err := dashboard.LoadToken(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("a missing token file was accepted")
	}
}

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		name string
		cfg  dashboard.Config
		ok   bool
	}{
		{"off", dashboard.Config{}, true},
		{"token", dashboard.Config{Listen: "127.0.0.1:8080", TokenFile: "t"}, true},
		{"client CA", dashboard.Config{Listen: "127.0.0.1:8443", ClientCA: "ca.pem"}, true},
		{"anonymous", dashboard.Config{Listen: "127.0.0.1:8080"}, false},
		{"no port", dashboard.Config{Listen: "127.0.0.1", TokenFile: "t"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.cfg.Validate(); (err == nil) != tc.ok {
				t.Fatalf("Validate: %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

// TestClientCertificate: with an operator CA the listener speaks TLS and
// a certificate from that CA is enough; without one, nothing is served.
func TestClientCertificate(t *testing.T) {
	dev, err := pki.Dev(t.TempDir(), []string{"operator"})
	if err != nil {
		t.Fatal(err)
	}
	serverCert, _, err := pki.LoadKeyPair(dev.ServerCert, dev.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	clientCert, _, err := pki.LoadKeyPair(dev.Clients["operator"].Cert, dev.Clients["operator"].Key)
	if err != nil {
		t.Fatal(err)
	}
	cas, err := pki.LoadCertPool(dev.CAPath)
	if err != nil {
		t.Fatal(err)
	}
	d, err := dashboard.New(dashboard.Options{Service: newService(t)})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := dashboard.Serve("127.0.0.1:0", d, &serverCert, cas, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close(); srv.Close() })
	for _, tc := range []struct {
		name  string
		certs []tls.Certificate
		want  int
	}{
		{"operator certificate", []tls.Certificate{clientCert}, http.StatusOK},
		{"no certificate", nil, http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: cas, Certificates: tc.certs}}}
			resp, err := c.Get("https://" + srv.Addr().String() + "/api/overview")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			c.CloseIdleConnections()
			if resp.StatusCode != tc.want {
				t.Fatalf("%s, want %d", resp.Status, tc.want)
			}
			if resp.Header.Get("Strict-Transport-Security") == "" {
				t.Error("no Strict-Transport-Security over TLS")
			}
		})
	}
}

type listJSON struct {
	Mitigations []struct {
		CUID       string   `json:"cuid"`
		MID        uint32   `json:"mid"`
		Status     int      `json:"status"`
		StatusName string   `json:"status_name"`
		Targets    []string `json:"targets"`
		Ports      []string `json:"ports"`
		Counters   *struct {
			BytesDropped uint64 `json:"bytes_dropped"`
			BPSDropped   uint64 `json:"bps_dropped"`
			PPSDropped   uint64 `json:"pps_dropped"`
		} `json:"counters"`
	} `json:"mitigations"`
}

type detailJSON struct {
	Mitigation struct {
		MID    uint32 `json:"mid"`
		Status int    `json:"status"`
		Note   string `json:"note"`
	} `json:"mitigation"`
	Outcome []struct {
		Backend string `json:"backend"`
		Detail  string `json:"detail"`
	} `json:"outcome"`
	Samples []struct {
		At  int64  `json:"t"`
		BPS uint64 `json:"bps"`
		PPS uint64 `json:"pps"`
	} `json:"samples"`
	WindowSeconds int `json:"window_seconds"`
}

// TestJSON: the endpoints' shapes over a real service, one mitigation
// measured and one not.
func TestJSON(t *testing.T) {
	svc := newService(t)
	_, base := serve(t, dashboard.Options{Service: svc, SampleEvery: 20 * time.Millisecond})
	put(t, svc, 1, "203.0.113.10/32")
	put(t, svc, 2, "203.0.113.20/32")
	svc.Measured("scrub", divert.Key{CUID: alpha.CUID, MID: 2}, divert.Counters{BytesDropped: 5e9, PktsDropped: 4e6, BPSDropped: 8e8, PPSDropped: 7e4})

	var l listJSON
	getJSON(t, base+"/api/mitigations", &l)
	if len(l.Mitigations) != 2 {
		t.Fatalf("%d mitigations, want 2", len(l.Mitigations))
	}
	m1, m2 := l.Mitigations[0], l.Mitigations[1]
	if m1.MID != 1 || m1.CUID != alpha.CUID || m1.Status != 1 || m1.StatusName != "attack-mitigation-in-progress" ||
		len(m1.Targets) != 1 || m1.Targets[0] != "203.0.113.10/32" || len(m1.Ports) != 1 || m1.Ports[0] != "443" {
		t.Errorf("mid 1: %+v", m1)
	}
	if m1.Counters != nil {
		t.Errorf("mid 1 is measured by nothing, got counters %+v", m1.Counters)
	}
	if m2.Counters == nil || m2.Counters.BPSDropped != 8e8 || m2.Counters.PPSDropped != 7e4 || m2.Counters.BytesDropped != 5e9 {
		t.Errorf("mid 2 counters %+v", m2.Counters)
	}

	var det detailJSON
	waitFor(t, "samples of mid 2", func() bool {
		getJSON(t, base+"/api/mitigation?cuid="+alpha.CUID+"&mid=2", &det)
		return len(det.Samples) >= 2
	})
	for _, s := range det.Samples {
		if s.BPS != 8e8 || s.PPS != 7e4 {
			t.Errorf("sample %+v, want the measured 8e8 bit/s, 7e4 pkt/s", s)
		}
	}
	if det.WindowSeconds != 900 || det.Mitigation.MID != 2 || len(det.Outcome) != 1 || det.Outcome[0].Backend != "" ||
		!strings.Contains(det.Outcome[0].Detail, "no mitigator") {
		t.Errorf("detail %+v", det)
	}
	getJSON(t, base+"/api/mitigation?cuid="+alpha.CUID+"&mid=1", &det)
	if len(det.Samples) != 0 {
		t.Errorf("mid 1, measured by nothing, has samples %+v", det.Samples)
	}
	for _, tc := range []struct {
		query string
		want  int
	}{
		{"cuid=" + alpha.CUID + "&mid=9", http.StatusNotFound},
		{"cuid=" + alpha.CUID + "&mid=x", http.StatusBadRequest},
		{"mid=1", http.StatusBadRequest},
	} {
		if resp, _ := get(t, base+"/api/mitigation?"+tc.query, testToken); resp.StatusCode != tc.want {
			t.Errorf("/api/mitigation?%s: %s, want %d", tc.query, resp.Status, tc.want)
		}
	}

	var o struct {
		Sessions    *struct{} `json:"sessions"`
		Mitigations struct {
			Total, Active, Measured int
			ByStatus                []struct {
				Status int    `json:"status"`
				Name   string `json:"name"`
				Count  int    `json:"count"`
			} `json:"by_status"`
		} `json:"mitigations"`
		BGP       *struct{}  `json:"bgp"`
		Scrubbers []struct{} `json:"scrubbers"`
	}
	getJSON(t, base+"/api/overview", &o)
	if o.Mitigations.Total != 2 || o.Mitigations.Active != 2 || o.Mitigations.Measured != 1 || len(o.Mitigations.ByStatus) != 1 ||
		o.Mitigations.ByStatus[0].Status != 1 || o.Mitigations.ByStatus[0].Count != 2 {
		t.Errorf("overview mitigations %+v", o.Mitigations)
	}
	if o.Sessions != nil || o.BGP != nil || o.Scrubbers != nil {
		t.Errorf("overview: sessions, bgp and scrubbers are not configured: %+v", o)
	}

	var ev struct {
		Events []struct {
			MID        uint32 `json:"mid"`
			StatusName string `json:"status_name"`
		} `json:"events"`
	}
	waitFor(t, "both requests in the event log", func() bool {
		getJSON(t, base+"/api/events", &ev)
		return len(ev.Events) >= 2
	})
	seen := map[uint32]bool{}
	for _, e := range ev.Events {
		seen[e.MID] = true
	}
	if !seen[1] || !seen[2] {
		t.Errorf("event log %+v: want mids 1 and 2", ev.Events)
	}
	var b struct {
		Configured bool       `json:"configured"`
		Neighbors  []struct{} `json:"neighbors"`
	}
	getJSON(t, base+"/api/bgp", &b)
	if b.Configured || b.Neighbors == nil {
		t.Errorf("bgp %+v: want configured false and an empty list", b)
	}
}

// TestStream: a change of the service reaches a live stream; streams are
// bounded.
func TestStream(t *testing.T) {
	svc := newService(t)
	_, base := serve(t, dashboard.Options{Service: svc, MaxStreams: 1})
	req, _ := http.NewRequest("GET", base+"/api/stream", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	if second, _ := get(t, base+"/api/stream", testToken); second.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("a second stream over MaxStreams 1: %s, want 503", second.Status)
	}
	put(t, svc, 7, "203.0.113.70/32")
	sc := bufio.NewScanner(resp.Body)
	event := ""
	deadline := time.AfterFunc(10*time.Second, func() { resp.Body.Close() })
	defer deadline.Stop()
	for sc.Scan() {
		line := sc.Text()
		if e, ok := strings.CutPrefix(line, "event: "); ok {
			event = e
		}
		if d, ok := strings.CutPrefix(line, "data: "); ok && event == "mitigations" {
			if !strings.Contains(d, `"mid":7`) || !strings.Contains(d, "203.0.113.70/32") {
				t.Fatalf("mitigations event %s: want mid 7", d)
			}
			return
		}
	}
	t.Fatal("no mitigations event arrived")
}
