package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/levee-dots/levee/dotsserver/dotstest"
)

// ctlEnv is an in-process server with a development PKI and a dotsctl
// configuration for the client alpha.
type ctlEnv struct {
	srv    *dotstest.Server
	dir    string
	config string // dotsctl.yaml of alpha
	state  string // alpha's mid counter
	addr   string
}

func newCtlEnv(t *testing.T) *ctlEnv {
	t.Helper()
	return newCtlEnvWith(t, dotstest.Options{})
}

// newCtlEnvWith is newCtlEnv with a server started with o.
func newCtlEnvWith(t *testing.T, o dotstest.Options) *ctlEnv {
	t.Helper()
	t.Setenv("DOTSCTL_CONFIG", "")
	s := dotstest.Start(t, o)
	dir := s.Dir
	e := &ctlEnv{srv: s, dir: dir, addr: s.Addr, config: filepath.Join(dir, "dotsctl.yaml"), state: filepath.Join(dir, "state", "alpha.json")}
	// Relative paths are relative to the configuration file (dotstest puts
	// the PKI in dir/pki).
	yml := fmt.Sprintf(`servers: [%q]
certificate: pki/clients/alpha/cert.pem
key: pki/clients/alpha/key.pem
ca: pki/ca.pem
state: state/alpha.json
`, e.addr)
	if err := os.WriteFile(e.config, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

// syncBuffer is a bytes.Buffer safe for a writer goroutine and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// ctl runs dotsctl with alpha's configuration.
func (e *ctlEnv) ctl(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out, errOut syncBuffer
	err = run(ctx, append([]string{"--config", e.config, "--timeout", "5s"}, args...), &out, &errOut)
	return out.String(), errOut.String(), err
}

// ok runs dotsctl and fails the test on an error.
func (e *ctlEnv) ok(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, err := e.ctl(t, args...)
	if err != nil {
		t.Fatalf("dotsctl %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// fails runs dotsctl and returns its error, failing the test on success.
func (e *ctlEnv) fails(t *testing.T, args ...string) error {
	t.Helper()
	out, _, err := e.ctl(t, args...)
	if err == nil {
		t.Fatalf("dotsctl %s succeeded, want an error; stdout:\n%s", strings.Join(args, " "), out)
	}
	return err
}

func contains(t *testing.T, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%s does not contain %q:\n%s", what, sub, s)
		}
	}
}

func (e *ctlEnv) nextMIDOnDisk(t *testing.T) uint32 {
	t.Helper()
	b, err := os.ReadFile(e.state)
	if err != nil {
		t.Fatal(err)
	}
	var st ctlState
	if err := json.Unmarshal(b, &st); err != nil || st.NextMID == nil {
		t.Fatalf("state file %s: %v, want a next_mid", b, err)
	}
	return uint32(*st.NextMID)
}

// row returns the line of a status table for mid.
func row(t *testing.T, table string, mid uint32) string {
	t.Helper()
	for _, l := range strings.Split(table, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == strconv.Itoa(int(mid)) {
			return l
		}
	}
	t.Fatalf("no row for mid %d in\n%s", mid, table)
	return ""
}

type jsonOut struct {
	Code string  `json:"code"`
	MID  *uint32 `json:"mid"`
	Body struct {
		Scope struct {
			Scope []struct {
				MID          uint32   `json:"mid"`
				TargetPrefix []string `json:"target-prefix"`
				Lifetime     int64    `json:"lifetime"`
				Status       string   `json:"status"`
			} `json:"scope"`
		} `json:"ietf-dots-signal-channel:mitigation-scope"`
	} `json:"body"`
}

func decodeJSON(t *testing.T, s string) jsonOut {
	t.Helper()
	var j jsonOut
	dec := json.NewDecoder(strings.NewReader(s))
	if err := dec.Decode(&j); err != nil {
		t.Fatalf("-o json output is not JSON: %v\n%s", err, s)
	}
	if dec.More() {
		t.Fatalf("-o json printed more than one value:\n%s", s)
	}
	return j
}

func TestLifecycle(t *testing.T) {
	e := newCtlEnv(t)

	out := e.ok(t, "mitigate", "--target", "203.0.113.10/32", "--port", "443", "--proto", "tcp", "--lifetime", "600")
	contains(t, "mitigate output", out, "mid 1 created (2.01)\n", "lifetime granted: 10m0s\n")
	if n := e.nextMIDOnDisk(t); n != 2 {
		t.Fatalf("state next_mid %d after one request, want 2", n)
	}

	// A new run reads the counter back from the state file.
	out = e.ok(t, "mitigate", "--target", "203.0.113.11/32")
	contains(t, "second mitigate", out, "mid 2 created (2.01)", "lifetime granted: 1h0m0s")

	out = e.ok(t, "-o", "json", "mitigate", "--target", "203.0.113.12/32", "--lifetime", "indefinite")
	j := decodeJSON(t, out)
	if j.Code != "2.01" || j.MID == nil || *j.MID != 3 {
		t.Fatalf("-o json mitigate: code %q mid %v, want 2.01 and 3:\n%s", j.Code, j.MID, out)
	}
	if n := e.nextMIDOnDisk(t); n != 4 {
		t.Fatalf("state next_mid %d after three requests, want 4", n)
	}

	// Refresh with an explicit mid: no new mid is consumed.
	out = e.ok(t, "mitigate", "--mid", "2", "--target", "203.0.113.11/32", "--lifetime", "300")
	contains(t, "refresh", out, "mid 2 refreshed (2.04)", "lifetime granted: 5m0s")
	if n := e.nextMIDOnDisk(t); n != 4 {
		t.Fatalf("state next_mid %d after a refresh with --mid, want 4", n)
	}

	out = e.ok(t, "status")
	contains(t, "status table", out, "MID", "STATUS", "LIFETIME", "TARGETS")
	r1 := row(t, out, 1)
	contains(t, "status row of mid 1", r1, "attack-mitigation-in-progress", "203.0.113.10/32 port 443 proto [6]")
	contains(t, "status row of mid 2", row(t, out, 2), "203.0.113.11/32")
	contains(t, "status row of mid 3", row(t, out, 3), "203.0.113.12/32")

	out = e.ok(t, "-o", "json", "status", "1")
	j = decodeJSON(t, out)
	if j.Code != "2.05" || len(j.Body.Scope.Scope) != 1 {
		t.Fatalf("-o json status 1: %+v\n%s", j, out)
	}
	if sc := j.Body.Scope.Scope[0]; sc.MID != 1 || sc.Status != "attack-mitigation-in-progress" || len(sc.TargetPrefix) != 1 || sc.TargetPrefix[0] != "203.0.113.10/32" {
		t.Fatalf("-o json status 1: scope %+v", sc)
	}
	// -o is a global option: after the command it is not accepted.
	err := e.fails(t, "status", "1", "-o", "json")
	contains(t, "misplaced -o", err.Error(), "-o is a global option", "before the command")
	err = e.fails(t, "withdraw", "1", "--config="+e.config)
	contains(t, "misplaced --config", err.Error(), "-config is a global option")

	out = e.ok(t, "efficacy", "1", "under-attack")
	contains(t, "efficacy", out, "mid 1: efficacy under-attack reported (2.04)")
	// attack-status is the client's to send: the server keeps it and does
	// not echo it back (RFC 9132 §4.4.2).
	if r := row(t, e.ok(t, "status", "1"), 1); strings.Contains(r, "under-attack") {
		t.Errorf("status after efficacy echoes attack-status: %s", r)
	}
	out = e.ok(t, "efficacy", "2", "mitigated")
	contains(t, "efficacy mitigated", out, "efficacy attack-successfully-mitigated reported (2.04)")
	err = e.fails(t, "efficacy", "1", "fine")
	contains(t, "bad efficacy word", err.Error(), `"fine"`, "under-attack or mitigated")

	out = e.ok(t, "withdraw", "1")
	contains(t, "withdraw", out, "mid 1 withdrawn (2.02)")
	contains(t, "status after withdraw", row(t, e.ok(t, "status", "1"), 1), "dots-client-withdrawn-mitigation")

	// beta's prefix: refused, with the server's diagnostic, so main exits non-zero.
	err = e.fails(t, "mitigate", "--target", "203.0.113.200/32")
	contains(t, "refused request", err.Error(), "mid 4", "4.03", "203.0.113.200/32", "not owned by client domain")
	err = e.fails(t, "mitigate", "--target", "2001:db8:6402::1/128")
	contains(t, "refused IPv6 request", err.Error(), "4.03", "not owned")

	// Unknown mid.
	err = e.fails(t, "status", "999")
	contains(t, "status of an unknown mid", err.Error(), "4.04")
}

func TestBadInvocations(t *testing.T) {
	e := newCtlEnv(t)
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"mitigate", "--target", "203.0.113.1/32", "--port", "99999"}, []string{`--port "99999"`, "want a port or a range"}},
		{[]string{"mitigate", "--target", "203.0.113.1/32", "--port", "444-443"}, []string{`--port "444-443"`, "LOW <= HIGH"}},
		{[]string{"mitigate", "--target", "203.0.113.1/32", "--proto", "foo"}, []string{`--proto "foo"`, "tcp, udp"}},
		{[]string{"mitigate", "--target", "203.0.113.1/32", "--proto", "256"}, []string{`--proto "256"`, "0-255"}},
		{[]string{"mitigate", "--target", "203.0.113.1/32", "--lifetime", "0"}, []string{`--lifetime "0"`, "indefinite"}},
		{[]string{"mitigate", "--target", "203.0.113.1/32", "--lifetime", "soon"}, []string{`--lifetime "soon"`, "seconds"}},
		{[]string{"mitigate"}, []string{"at least one --target"}},
		{[]string{"mitigate", "--bogus"}, []string{"-bogus"}},
		{[]string{"frobnicate"}, []string{`unknown command "frobnicate"`}},
		{[]string{}, []string{"a command is required"}},
		{[]string{"-o", "xml", "status"}, []string{`-o "xml"`, "table or json"}},
		{[]string{"withdraw"}, []string{"exactly one MID"}},
		{[]string{"withdraw", "one"}, []string{`mid "one"`, "number"}},
		{[]string{"status", "1", "2"}, []string{"at most one MID"}},
		{[]string{"status", "--watch", "--interval", "500ms"}, []string{"-interval", "500ms is too short", "at least 1s"}},
		{[]string{"status", "--watch", "--interval", "soon"}, []string{"-interval", "like 5s"}},
		{[]string{"status", "--interval", "10s"}, []string{"--interval applies only with --watch"}},
		{[]string{"efficacy", "1"}, []string{"under-attack or mitigated"}},
		{[]string{"agent", "extra"}, []string{"no arguments"}},
		{[]string{"session"}, []string{"get, set or reset"}},
		{[]string{"session", "frob"}, []string{`unknown subcommand "frob"`}},
		{[]string{"session", "set", "--heartbeat-interval", "60"}, []string{"--sid N is required"}},
		{[]string{"session", "set", "--sid", "3"}, []string{"at least one value"}},
	} {
		err := e.fails(t, tc.args...)
		contains(t, fmt.Sprintf("error of %q", tc.args), err.Error(), tc.want...)
	}
	if _, err := os.Stat(e.state); err == nil {
		t.Errorf("invalid invocations consumed a mid: %s exists", e.state)
	}

	// Unknown commands and missing commands print the usage.
	_, stderr, _ := e.ctl(t, "frobnicate")
	contains(t, "stderr of an unknown command", stderr, "usage: dotsctl", "commands:")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	// No configuration at all (DOTSCTL_CONFIG is cleared by newCtlEnv).
	err := run(ctx, []string{"status"}, &out, &errOut)
	if err == nil {
		t.Fatal("status without configuration succeeded")
	}
	contains(t, "missing configuration", err.Error(), "--config FILE", "DOTSCTL_CONFIG")
	// DOTSCTL_CONFIG is honoured.
	t.Setenv("DOTSCTL_CONFIG", e.config)
	out.Reset()
	if err := run(ctx, []string{"status"}, &out, &errOut); err != nil || !strings.Contains(out.String(), "no mitigations") {
		t.Fatalf("status via DOTSCTL_CONFIG with no mitigations: %v %q, want \"no mitigations\"", err, out.String())
	}
	if err := run(ctx, []string{"status", "77"}, &out, &errOut); err == nil || !strings.Contains(err.Error(), "4.04") {
		t.Fatalf("status of an unknown mid: %v, want the server's 4.04", err)
	}
	// A configuration file that does not exist.
	err = run(ctx, []string{"--config", filepath.Join(e.dir, "nope.yaml"), "status"}, &out, &errOut)
	if err == nil {
		t.Fatal("status with a missing configuration file succeeded")
	}
	contains(t, "missing configuration file", err.Error(), "reading configuration", "nope.yaml")

	// Broken configurations say which key to fix.
	for _, tc := range []struct{ yml, want string }{
		{"certificate: a\nkey: b\nca: c\n", "servers:"},
		{"servers: [\"127.0.0.1:4646\"]\nca: c\n", "certificate and key"},
		{"servers: [\"127.0.0.1:4646\"]\ncertificate: a\nkey: b\n", "ca:"},
		{"servers: [\"127.0.0.1:4646\"]\ncertificate: a\nkey: b\nca: c\ntransport: quic\n", `transport: "quic"`},
		{"servers: [\"127.0.0.1:4646\"]\ncertificat: a\n", "certificat"},
	} {
		p := filepath.Join(t.TempDir(), "bad.yaml")
		if err := os.WriteFile(p, []byte(tc.yml), 0o600); err != nil {
			t.Fatal(err)
		}
		err := run(ctx, []string{"--config", p, "status"}, &out, &errOut)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("configuration %q: %v, want an error with %q", tc.yml, err, tc.want)
		}
	}
}

func TestSession(t *testing.T) {
	e := newCtlEnv(t)
	out := e.ok(t, "session", "get")
	contains(t, "session get", out, "SET", "PARAMETER", "CURRENT", "MIN", "MAX", "heartbeat-interval", "missing-hb-allowed",
		"valid for 1h0m0s (Max-Age)")
	if !regexp.MustCompile(`(?m)^mitigating\s+heartbeat-interval\s+30\s+15\s+240\s*$`).MatchString(out) {
		t.Errorf("session get: no mitigating heartbeat-interval row 30/15/240:\n%s", out)
	}

	err := e.fails(t, "session", "set", "--sid", "5", "--heartbeat-interval", "500")
	contains(t, "out-of-range heartbeat interval", err.Error(), "4.22")

	out = e.ok(t, "session", "set", "--sid", "5", "--heartbeat-interval", "60")
	contains(t, "session set", out, "session configuration sid 5 set (2.0")
	out = e.ok(t, "session", "get")
	if !regexp.MustCompile(`(?m)^mitigating\s+heartbeat-interval\s+60\s`).MatchString(out) {
		t.Errorf("session get after set: heartbeat-interval not 60:\n%s", out)
	}

	out = e.ok(t, "-o", "json", "session", "get")
	var j struct {
		Code string                     `json:"code"`
		Body map[string]json.RawMessage `json:"body"`
	}
	if err := json.Unmarshal([]byte(out), &j); err != nil || j.Code != "2.05" || j.Body["ietf-dots-signal-channel:signal-config"] == nil {
		t.Fatalf("-o json session get: %v\n%s", err, out)
	}

	out = e.ok(t, "session", "reset")
	contains(t, "session reset", out, "reset to the server defaults")
	if out := e.ok(t, "session", "get"); !regexp.MustCompile(`(?m)^mitigating\s+heartbeat-interval\s+30\s`).MatchString(out) {
		t.Errorf("session get after reset: heartbeat-interval not back to 30:\n%s", out)
	}
}

// waitFor polls a buffer until it contains want.
func waitFor(t *testing.T, what string, buf *syncBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(buf.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %q did not appear in:\n%s", what, want, buf.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestStatusWatch(t *testing.T) {
	e := newCtlEnv(t)
	e.ok(t, "mitigate", "--target", "203.0.113.30/32")
	for _, args := range [][]string{{"status", "--watch"}, {"status", "1", "--watch"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			if len(args) == 3 {
				e.ok(t, "mitigate", "--mid", "1", "--target", "203.0.113.30/32") // back from the first subtest's withdrawal
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var out, errOut syncBuffer
			done := make(chan error, 1)
			go func() {
				done <- run(ctx, append([]string{"--config", e.config, "--timeout", "5s"}, args...), &out, &errOut)
			}()
			waitFor(t, "watch, first answer", &out, "attack-mitigation-in-progress")
			contains(t, "watch output", out.String(), "--- ", "MID", "203.0.113.30/32")
			e.ok(t, "withdraw", "1")
			waitFor(t, "watch, after withdraw", &out, "dots-client-withdrawn-mitigation")
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("status --watch ended with %v; stderr:\n%s", err, errOut.String())
				}
			case <-time.After(5 * time.Second):
				t.Fatal("status --watch did not stop when its context was cancelled")
			}
			if n := strings.Count(out.String(), "--- "); n < 2 {
				t.Fatalf("watch printed %d updates, want at least 2:\n%s", n, out.String())
			}
		})
	}
}

func TestAgent(t *testing.T) {
	e := newCtlEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut syncBuffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"--config", e.config, "agent"}, &out, &errOut) }()
	waitFor(t, "agent", &out, "session up")
	contains(t, "agent output", out.String(), "over dtls to "+e.addr, "heartbeat every 30s")
	// The agent's session is usable by the server: another run works meanwhile.
	e.ok(t, "session", "get")
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("agent ended with %v after cancel", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("agent did not stop when its context was cancelled")
	}
	if s := errOut.String(); strings.Contains(s, "unanswered") || strings.Contains(s, "reconnecting") {
		t.Fatalf("agent complained:\n%s", s)
	}
}

func TestConcurrentMitigateNeverReusesMID(t *testing.T) {
	e := newCtlEnv(t)
	const n = 5
	var wg sync.WaitGroup
	outs := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs[i], _, errs[i] = e.ctl(t, "mitigate", "--target", fmt.Sprintf("203.0.113.%d/32", 40+i))
		}()
	}
	wg.Wait()
	re := regexp.MustCompile(`^mid (\d+) created \(2\.01\)`)
	var mids []int
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("run %d: %v", i, errs[i])
		}
		m := re.FindStringSubmatch(outs[i])
		if m == nil {
			t.Fatalf("run %d printed %q", i, outs[i])
		}
		mid, _ := strconv.Atoi(m[1])
		mids = append(mids, mid)
	}
	sort.Ints(mids)
	for i, mid := range mids {
		if mid != i+1 {
			t.Fatalf("mids %v, want 1..%d each once", mids, n)
		}
	}
	if next := e.nextMIDOnDisk(t); next != n+1 {
		t.Fatalf("next_mid %d, want %d", next, n+1)
	}
	out := e.ok(t, "status")
	for i := 1; i <= n; i++ {
		row(t, out, uint32(i))
	}
}

func TestNextMID(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "sub", "state.json") // the directory is created
	for want := uint32(1); want <= 3; want++ {
		got, err := nextMID(p, nil)
		if err != nil || got != want {
			t.Fatalf("nextMID = %d, %v; want %d", got, err, want)
		}
	}
	// Once a mid has reached 3/4 of the mid space the mids restart where
	// the rollover says, if it may (RFC 9132 §4.4.1); else they go on.
	at := func(next uint64) {
		t.Helper()
		if err := os.WriteFile(p, []byte(fmt.Sprintf(`{"next_mid":%d}`, next)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var asked []uint32
	roll := func(next uint32, ok bool, err error) rolloverFunc {
		return func(first uint32, _ *ctlState) (uint32, bool, error) {
			asked = append(asked, first)
			return next, ok, err
		}
	}
	for _, tc := range []struct {
		name     string
		next     uint64
		rollover rolloverFunc
		want     uint32
		asked    []uint32
		err      string
	}{
		{"the rollover point itself", uint64(midRollover), roll(0, true, nil), midRollover, nil, ""},
		{"past it: restart at 0", uint64(midRollover) + 1, roll(0, true, nil), 0, []uint32{0}, ""},
		{"past it: two preconfigured requests took 0 and 1", uint64(midRollover) + 1, roll(2, true, nil), 2, []uint32{0}, ""},
		{"past it: an attack mitigation is active", uint64(midRollover) + 1, roll(0, false, nil), midRollover + 1, []uint32{0}, ""},
		{"past it: no server to ask", uint64(midRollover) + 1, nil, midRollover + 1, nil, ""},
		{"the rollover fails", uint64(midRollover) + 1, roll(0, false, errors.New("no answer")), 0, []uint32{0}, "no answer"},
		{"the last mid", math.MaxUint32, roll(0, false, nil), math.MaxUint32, []uint32{0}, ""},
		{"none left", math.MaxUint32 + 1, roll(0, false, nil), 0, []uint32{0}, "withdraw"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			at(tc.next)
			asked = nil
			got, err := nextMID(p, tc.rollover)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("nextMID = %d, %v; want an error with %q", got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want || !slices.Equal(asked, tc.asked) {
				t.Fatalf("nextMID = %d, %v (rollover asked %v); want %d (asked %v)", got, err, asked, tc.want, tc.asked)
			}
			if again, err := nextMID(p, nil); got < math.MaxUint32 && (err != nil || again != got+1) {
				t.Fatalf("the mid after %d: %d, %v", got, again, err)
			}
		})
	}
	if err := os.WriteFile(p, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := nextMID(p, nil); err == nil || !strings.Contains(err.Error(), "corrupt") || !strings.Contains(err.Error(), p) {
		t.Fatalf("corrupt counter: %v", err)
	}

	// Many goroutines at once: every mid exactly once.
	q := filepath.Join(dir, "concurrent.json")
	const n = 40
	got := make(chan uint32, n)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, err := nextMID(q, nil)
			if err != nil {
				t.Error(err)
			}
			got <- m
		}()
	}
	wg.Wait()
	close(got)
	seen := map[uint32]bool{}
	for m := range got {
		if seen[m] || m < 1 || m > n {
			t.Fatalf("mid %d handed out twice or out of 1..%d", m, n)
		}
		seen[m] = true
	}
}

// TestAgentServesCommands: while the agent runs, mitigate, status and
// withdraw go over its session (no new handshake reaches the server) through
// a 0600 socket beside the state file; once it stopped, the socket is gone
// and the commands open their own sessions again.
func TestAgentServesCommands(t *testing.T) {
	e := newCtlEnv(t)
	a := startAgent(t, e)
	sock := strings.TrimSuffix(e.state, ".json") + ".agent.sock"
	fi, err := os.Stat(sock)
	if err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("agent socket %s: %v, mode %v; want a socket, 0600", sock, err, fi.Mode())
	}
	handshakes := e.srv.Srv.DTLSStats().Completed
	contains(t, "mitigate", e.ok(t, "mitigate", "--target", "203.0.113.9/32"), "mid 1", "2.01")
	contains(t, "status", e.ok(t, "-o", "json", "status", "1"), "203.0.113.9/32")
	contains(t, "withdraw", e.ok(t, "withdraw", "1"), "2.02")
	if _, _, err := e.ctl(t, "withdraw", "x"); err == nil || !strings.Contains(err.Error(), "mid") {
		t.Errorf("a bad argument through the agent: %v, want the command's own error", err)
	}
	if n := e.srv.Srv.DTLSStats().Completed; n != handshakes {
		t.Errorf("%d DTLS handshakes while the agent served the commands, want none", n-handshakes)
	}
	if got := strings.Count(a.out.String(), "agent: served"); got != 4 {
		t.Errorf("the agent served %d commands, want 4:\n%s", got, a.out.String())
	}
	a.stop()
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("socket left after the agent stopped: %v", err)
	}
	contains(t, "mitigate without the agent", e.ok(t, "mitigate", "--target", "203.0.113.10/32"), "2.01")
	if n := e.srv.Srv.DTLSStats().Completed; n != handshakes+1 {
		t.Errorf("without the agent: %d new handshakes, want 1", n-handshakes)
	}
}
