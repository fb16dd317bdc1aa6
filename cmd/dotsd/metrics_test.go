package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/levee-dots/levee/dots"
)

func TestMetricsConfig(t *testing.T) {
	bad := func(key, format string, args ...any) error {
		return fmt.Errorf("%s: "+format, append([]any{key}, args...)...)
	}
	for _, tc := range []struct {
		name    string
		cfg     metricsConfig
		wantErr string
	}{
		{name: "off", cfg: metricsConfig{}},
		{name: "listen", cfg: metricsConfig{Listen: "127.0.0.1:9464"}},
		{name: "ipv6", cfg: metricsConfig{Listen: "[::1]:9464", MaxMitigationSeries: 10}},
		{name: "no port", cfg: metricsConfig{Listen: "127.0.0.1"}, wantErr: "metrics.listen"},
		{name: "negative bound", cfg: metricsConfig{Listen: "127.0.0.1:9464", MaxMitigationSeries: -1}, wantErr: "metrics.max-mitigation-series"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.validate(bad)
			if (err != nil) != (tc.wantErr != "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("validate: %v, want an error naming %q", err, tc.wantErr)
			}
		})
	}
}

func TestMetricsConfigFile(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want, wantErr string
	}{
		{name: "absent: off", yaml: ""},
		{name: "listen", yaml: "metrics:\n  listen: 127.0.0.1:9464\n  max-mitigation-series: 20\n", want: "127.0.0.1:9464"},
		{name: "bad listen", yaml: "metrics: {listen: localhost}\n", wantErr: "metrics.listen"},
		{name: "unknown key", yaml: "metrics: {lisen: 127.0.0.1:9464}\n", wantErr: "lisen"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := loadConfig(writeConfig(t, "dotsd.yaml", goodConfig+tc.yaml))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("loadConfig: %v, want an error naming %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Metrics.Listen != tc.want || cfg.Metrics.optional {
				t.Fatalf("metrics %+v, want listen %q (not optional)", cfg.Metrics, tc.want)
			}
		})
	}
}

func TestDevMetrics(t *testing.T) {
	for _, tc := range []struct {
		name, file, flag string
		want             metricsConfig
		wantErr          bool
	}{
		{name: "default", want: metricsConfig{Listen: devMetricsListen, optional: true}},
		{name: "flag", flag: "127.0.0.1:19464", want: metricsConfig{Listen: "127.0.0.1:19464"}},
		{name: "off", file: "127.0.0.1:9999", flag: "off", want: metricsConfig{}},
		{name: "file", file: "127.0.0.1:9999", want: metricsConfig{Listen: "127.0.0.1:9999"}},
		{name: "flag over file", file: "127.0.0.1:9999", flag: "127.0.0.1:19464", want: metricsConfig{Listen: "127.0.0.1:19464"}},
		{name: "bad flag", flag: "9464", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := metricsConfig{Listen: tc.file}
			err := devMetrics(&c, tc.flag)
			if (err != nil) != tc.wantErr {
				t.Fatalf("devMetrics: %v, want error %v", err, tc.wantErr)
			}
			if err == nil && c != tc.want {
				t.Fatalf("got %+v, want %+v", c, tc.want)
			}
		})
	}
}

// TestPrometheusScrapesDotsd runs `dotsd dev` with /metrics on, and Debian's
// prometheus scraping it every second: the target is up, and the counter
// of accepted mitigation requests moves after a PUT. promtool finds
// nothing to say about what dotsd exports.
func TestPrometheusScrapesDotsd(t *testing.T) {
	for _, bin := range []string{"/usr/bin/prometheus", "/usr/bin/promtool"} {
		if _, err := os.Stat(bin); err != nil {
			t.Skipf("skipping: %s is missing (Debian package prometheus): %v", bin, err)
		}
	}
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", freeTCPPort(t))
	_, stop := runDevServer(t, "--dir", dir, "--signal-listen", addr, "--metrics-listen", metricsAddr)
	defer stop()
	prom := startPrometheus(t, metricsAddr)

	up := `up{job="dotsd"}`
	prom.waitValue(t, up, 1)
	accepted := `levee_signal_requests_total{method="PUT",resource="mitigate",code="2.01"}`
	if v, ok := prom.query(t, accepted); ok {
		t.Fatalf("%s = %v before any request", accepted, v)
	}
	alpha := dialAlpha(t, dir, addr)
	r, err := alpha.Mitigate(reqCtx(t), 1, dots.Scope{TargetPrefix: []string{"203.0.113.5/32"}, Lifetime: dots.Ptr[int64](3600)})
	wantCode(t, "PUT mid 1", r, err, dots.Created)
	prom.waitValue(t, accepted, 1)
	prom.waitValue(t, `levee_mitigations{domain="alpha",status="attack-mitigation-in-progress"}`, 1)
	prom.waitValue(t, `levee_signal_sessions{transport="`+alpha.Transport()+`"}`, 1)

	body := get(t, "http://"+metricsAddr+"/metrics")
	check := exec.Command("/usr/bin/promtool", "check", "metrics")
	check.Stdin = bytes.NewReader(body)
	out, err := check.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
	checkDocumented(t, body)
	checkDashboard(t, prom)
}

// metricsDoc is where the metrics are documented.
const metricsDoc = "../../metrics/README.md"

// checkDocumented fails for each levee_ metric dotsd exports that
// metrics/README.md does not name.
func checkDocumented(t *testing.T, exposition []byte) {
	t.Helper()
	doc, err := os.ReadFile(metricsDoc)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(exposition), "\n") {
		name, ok := strings.CutPrefix(line, "# TYPE ")
		if !ok || !strings.HasPrefix(name, "levee_") {
			continue
		}
		name, _, _ = strings.Cut(name, " ")
		if !bytes.Contains(doc, []byte("`"+name+"`")) {
			t.Errorf("%s is exported but not documented in %s", name, metricsDoc)
		}
	}
}

// checkDashboard evaluates every query of deploy/grafana-levee.json in
// prometheus (its variables set), and fails for a query prometheus refuses
// or a levee_ metric it uses that metrics/README.md does not name.
func checkDashboard(t *testing.T, prom *prometheus) {
	t.Helper()
	raw, err := os.ReadFile("../../deploy/grafana-levee.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("deploy/grafana-levee.json: %v", err)
	}
	doc, err := os.ReadFile(metricsDoc)
	if err != nil {
		t.Fatal(err)
	}
	vars := strings.NewReplacer("$__rate_interval", "1m", "$scrub_job", ".*", "$job", "dotsd", "$instance", ".*")
	n := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			n++
			q := vars.Replace(tg.Expr)
			if msg := prom.evaluate(t, q); msg != "" {
				t.Errorf("panel %q: %s: %s", p.Title, q, msg)
			}
			for _, name := range levee.FindAllString(tg.Expr, -1) {
				name = strings.TrimSuffix(name, "_bucket")
				if !bytes.Contains(doc, []byte("`"+name+"`")) {
					t.Errorf("panel %q uses %s, which %s does not document", p.Title, name, metricsDoc)
				}
			}
		}
	}
	if n < 10 {
		t.Errorf("the dashboard has %d queries", n)
	}
}

var levee = regexp.MustCompile(`levee_[a-z_]+`)

// freeTCPPort returns a TCP port free on 127.0.0.1 at the time of the call.
func freeTCPPort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func get(t testing.TB, u string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %v\n%s", u, resp.Status, err, b)
	}
	return b
}

// prometheus is a running Debian prometheus on loopback.
type prometheus struct {
	addr string
	cmd  *exec.Cmd
	log  *bytes.Buffer
}

// startPrometheus runs prometheus with a temporary configuration and data
// directory, scraping target's /metrics every second, and stops it at the
// end of the test.
func startPrometheus(t *testing.T, target string) *prometheus {
	t.Helper()
	dir := t.TempDir()
	cfg := fmt.Sprintf("global: {scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}\n"+
		"scrape_configs:\n  - job_name: dotsd\n    static_configs: [{targets: [%q]}]\n", target)
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &prometheus{addr: fmt.Sprintf("127.0.0.1:%d", freeTCPPort(t)), log: &bytes.Buffer{}}
	p.cmd = exec.Command("/usr/bin/prometheus", "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+p.addr, "--log.level=warn")
	p.cmd.Dir = dir
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	p.cmd.WaitDelay = 5 * time.Second
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting prometheus: %v", err)
	}
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = p.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("prometheus log:\n%s", p.log)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + p.addr + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready within 30 s: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// query evaluates an instant query that selects at most one series: its
// value, and whether there is one.
func (p *prometheus) query(t testing.TB, q string) (float64, bool) {
	t.Helper()
	var res struct {
		Status string
		Error  string
		Data   struct {
			Result []struct {
				Value [2]any
			}
		}
	}
	b := get(t, "http://"+p.addr+"/api/v1/query?query="+url.QueryEscape(q))
	if err := json.Unmarshal(b, &res); err != nil || res.Status != "success" {
		t.Fatalf("query %s: %v %s\n%s", q, err, res.Error, b)
	}
	switch len(res.Data.Result) {
	case 0:
		return 0, false
	case 1:
	default:
		t.Fatalf("query %s: %d series, want at most one\n%s", q, len(res.Data.Result), b)
	}
	s, _ := res.Data.Result[0].Value[1].(string)
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("query %s: value %q: %v", q, s, err)
	}
	return v, true
}

// evaluate runs an instant query and returns prometheus' error, if any.
func (p *prometheus) evaluate(t testing.TB, q string) string {
	t.Helper()
	resp, err := http.Get("http://" + p.addr + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var res struct{ Status, Error string }
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		t.Fatalf("query %s: %v", q, err)
	}
	if res.Status != "success" {
		return res.Error
	}
	return ""
}

// waitValue waits (up to 20 scrapes) for q to have the value want.
func (p *prometheus) waitValue(t testing.TB, q string, want float64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		v, ok := p.query(t, q)
		if ok && v == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus: %s = %v (present: %v) after 20 s, want %v", q, v, ok, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
