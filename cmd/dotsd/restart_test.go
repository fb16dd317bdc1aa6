package main

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"net"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsclient"
	"github.com/levee-dots/levee/pki"
)

// buildDotsd compiles this command into a temporary directory with the go
// tool found on PATH, and skips the test when there is none.
func buildDotsd(t testing.TB) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("skipping: this test builds the dotsd binary and needs the go tool on PATH: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "dotsd")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	cmd := exec.CommandContext(ctx, goTool, "build", "-o", bin, ".")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Logf("built %s in %v", bin, time.Since(start).Round(time.Millisecond))
	return bin
}

// freePort returns a port number that is free on 127.0.0.1 for both UDP
// (DTLS) and TCP (TLS) at the time of the call.
func freePort(t testing.TB) int {
	t.Helper()
	for range 20 {
		u, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := u.LocalAddr().(*net.UDPAddr).Port
		u.Close()
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue // TCP port taken: try another number
		}
		l.Close()
		return port
	}
	t.Fatal("no port free for both UDP and TCP on 127.0.0.1")
	return 0
}

// logBuffer collects a daemon's output and signals its first "dotsd ready".
type logBuffer struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	ready chan struct{}
	seen  bool
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	if !l.seen && bytes.Contains(l.buf.Bytes(), []byte("dotsd ready")) {
		l.seen = true
		close(l.ready)
	}
	return len(p), nil
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// daemon is one running dotsd process.
type daemon struct {
	cmd    *exec.Cmd
	stderr *logBuffer
	stdout *logBuffer
	exited chan struct{} // closed when Wait returned
	err    error         // Wait's result, valid after exited
}

// startDotsd runs bin with args and waits until it logs "dotsd ready". The
// process is killed in t.Cleanup if it is still running.
func startDotsd(t testing.TB, bin string, args ...string) *daemon {
	t.Helper()
	d := &daemon{
		cmd:    exec.Command(bin, withDataListen(t, args)...),
		stderr: &logBuffer{ready: make(chan struct{})},
		stdout: &logBuffer{ready: make(chan struct{})},
		exited: make(chan struct{}),
	}
	d.cmd.Stderr, d.cmd.Stdout = d.stderr, d.stdout
	d.cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("starting dotsd: %v", err)
	}
	go func() {
		d.err = d.cmd.Wait()
		close(d.exited)
	}()
	t.Cleanup(func() {
		d.kill(t)
		if t.Failed() {
			t.Logf("dotsd (pid %d) stderr:\n%s", d.cmd.Process.Pid, d.stderr)
		}
	})
	select {
	case <-d.stderr.ready:
		t.Logf("dotsd (pid %d) ready in %v", d.cmd.Process.Pid, time.Since(start).Round(time.Millisecond))
	case <-d.exited:
		t.Fatalf("dotsd exited before it was ready: %v\nstderr:\n%s", d.err, d.stderr)
	case <-time.After(20 * time.Second):
		t.Fatalf("dotsd did not log \"dotsd ready\" within 20 s\nstderr:\n%s", d.stderr)
	}
	return d
}

// kill sends SIGKILL (no chance to close the store cleanly) and waits for
// the process to be gone.
func (d *daemon) kill(t testing.TB) {
	t.Helper()
	select {
	case <-d.exited:
		return
	default:
	}
	if err := d.cmd.Process.Kill(); err != nil {
		t.Errorf("kill dotsd: %v", err)
	}
	select {
	case <-d.exited:
	case <-time.After(10 * time.Second):
		t.Fatalf("dotsd (pid %d) still running 10 s after SIGKILL", d.cmd.Process.Pid)
	}
}

func dialAlpha(t *testing.T, dir, addr string) *dotsclient.Client {
	t.Helper()
	cert, _, err := pki.LoadKeyPair(filepath.Join(dir, "clients", "alpha", "cert.pem"), filepath.Join(dir, "clients", "alpha", "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	roots, err := pki.LoadCertPool(filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := dotsclient.Dial(ctx, dotsclient.Config{Servers: []string{addr}, Certificate: cert, RootCAs: roots})
	if err != nil {
		t.Fatalf("dial %s as alpha: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	t.Logf("alpha connected over %s to %s", c.Transport(), c.Remote())
	return c
}

func reqCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func wantCode(t *testing.T, what string, r *dotsclient.Response, err error, want dots.Code) *dotsclient.Response {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if r.Code != want {
		t.Fatalf("%s: code %s, want %s (diag %q)", what, r.Code, want, r.Diag)
	}
	return r
}

// TestKill9Restart checks that what the server acknowledged survives a
// SIGKILL: mitigation requests keep their targets and absolute expiry, a
// request whose lifetime ends while the server is down is gone after the
// restart, and the session configuration is kept.
func TestKill9Restart(t *testing.T) {
	bin := buildDotsd(t)
	dir := t.TempDir()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	args := []string{"dev", "--dir", dir, "--signal-listen", addr}

	first := startDotsd(t, bin, args...)
	c := dialAlpha(t, dir, addr)

	type req struct {
		mid      uint32
		target   string
		lifetime int64
	}
	long := []req{
		{101, "203.0.113.10/32", 3600},
		{102, "203.0.113.32/28", 3600},
		{103, "2001:db8:6401::10/128", 3600},
		{104, "2001:db8:6401:ff::/64", -1},
		{105, "203.0.113.64/27", 3600},
	}
	short := req{106, "203.0.113.100/32", 2}
	sent := map[uint32]time.Time{} // when each request was sent
	for _, q := range long {
		sent[q.mid] = time.Now()
		r, err := c.Mitigate(reqCtx(t), q.mid, dots.Scope{TargetPrefix: []string{q.target}, Lifetime: dots.Ptr(q.lifetime)})
		r = wantCode(t, fmt.Sprintf("PUT mid=%d", q.mid), r, err, dots.Created)
		if r.Body == nil || r.Body.MitigationScope == nil || len(r.Body.MitigationScope.Scope) != 1 {
			t.Fatalf("PUT mid=%d: 2.01 without a scope: %+v", q.mid, r.Body)
		}
		if lt := r.Body.MitigationScope.Scope[0].Lifetime; lt == nil || *lt != q.lifetime {
			t.Fatalf("PUT mid=%d: granted lifetime %v, want %d", q.mid, lt, q.lifetime)
		}
	}

	// Session configuration under sid 7.
	sc := &dots.SignalConfig{MitigatingConfig: &dots.ConfigSet{HeartbeatInterval: &dots.Uint16Param{CurrentValue: dots.Ptr[uint16](60)}}}
	r, err := c.PutConfig(reqCtx(t), 7, sc)
	wantCode(t, "PUT /config/sid=7", r, err, dots.Created)
	r, err = c.GetConfig(reqCtx(t), dots.Ptr[uint32](7))
	r = wantCode(t, "GET /config/sid=7 before the kill", r, err, dots.Content)
	checkHeartbeatInterval(t, "before the kill", r, 60)

	// The short-lived request last, so that it is still alive at the kill.
	sent[short.mid] = time.Now()
	r, err = c.Mitigate(reqCtx(t), short.mid, dots.Scope{TargetPrefix: []string{short.target}, Lifetime: dots.Ptr(short.lifetime)})
	wantCode(t, fmt.Sprintf("PUT mid=%d", short.mid), r, err, dots.Created)

	killed := time.Now()
	first.kill(t)
	if d := killed.Sub(sent[short.mid]); d >= time.Duration(short.lifetime)*time.Second {
		t.Logf("note: mid %d was sent %v before the kill and may have expired before it", short.mid, d)
	}
	if first.err == nil {
		t.Fatalf("dotsd exited cleanly; want it killed by SIGKILL")
	}
	t.Logf("dotsd killed: %v", first.err)
	c.Close()
	time.Sleep(3 * time.Second) // mid 106 (lifetime 2 s) expires while no server runs

	restart := time.Now()
	second := startDotsd(t, bin, args...)
	for _, line := range strings.Split(second.stderr.String(), "\n") {
		if strings.Contains(line, "state restored") {
			t.Logf("restarted dotsd: %s", line)
		}
	}
	c = dialAlpha(t, dir, addr)
	t.Logf("restart to a new session took %v", time.Since(restart).Round(time.Millisecond))

	before := time.Now()
	r, err = c.Status(reqCtx(t), nil, "")
	r = wantCode(t, "GET all after the restart", r, err, dots.Content)
	after := time.Now()
	if r.Body == nil || r.Body.MitigationScope == nil {
		t.Fatalf("GET all after the restart: 2.05 without a mitigation-scope")
	}
	got := map[uint32]dots.Scope{}
	for _, s := range r.Body.MitigationScope.Scope {
		if s.MID == nil {
			t.Fatalf("status scope without mid: %+v", s)
		}
		got[*s.MID] = s
	}
	for _, q := range long {
		s, ok := got[q.mid]
		if !ok {
			t.Errorf("mid %d is missing after the restart (have %v)", q.mid, slices.Sorted(maps.Keys(got)))
			continue
		}
		delete(got, q.mid)
		if !slices.Equal(s.TargetPrefix, []string{q.target}) {
			t.Errorf("mid %d: target-prefix %v after the restart, want [%s]", q.mid, s.TargetPrefix, q.target)
		}
		if s.Lifetime == nil {
			t.Errorf("mid %d: no lifetime in the status", q.mid)
			continue
		}
		lt := *s.Lifetime
		t.Logf("mid %d after the restart: target-prefix %v, lifetime %d (%v after the request)", q.mid, s.TargetPrefix, lt, before.Sub(sent[q.mid]).Round(time.Millisecond))
		if q.lifetime < 0 {
			if lt != -1 {
				t.Errorf("mid %d: lifetime %d after the restart, want -1 (indefinite)", q.mid, lt)
			}
			continue
		}
		// The server created the record between sent and the 2.01, and
		// computed the remaining lifetime (rounded up) between before and
		// after: the expiry is absolute, so the time the server was down
		// counts. At least the 3 s pause has passed since the request.
		hi := q.lifetime - int64(before.Sub(sent[q.mid])/time.Second) + 1
		lo := q.lifetime - int64(after.Sub(sent[q.mid])/time.Second) - 1
		if lt > q.lifetime || lt <= q.lifetime-10 || lt > hi || lt < lo || lt > q.lifetime-3 {
			t.Errorf("mid %d: remaining lifetime %d after the restart; want <= %d and > %d, within [%d, %d] "+
				"(%v since the request): the expiry must be absolute, not reset by the restart",
				q.mid, lt, q.lifetime, q.lifetime-10, lo, min(hi, q.lifetime-3), before.Sub(sent[q.mid]).Round(time.Millisecond))
		}
	}
	for mid, s := range got {
		if mid == short.mid {
			t.Errorf("mid %d (lifetime %d s) is still listed %v after it expired: %+v", mid, short.lifetime, after.Sub(sent[mid]).Round(time.Millisecond), s)
		} else {
			t.Errorf("unexpected mid %d after the restart: %+v", mid, s)
		}
	}
	r, err = c.Status(reqCtx(t), dots.Ptr(short.mid), "")
	wantCode(t, fmt.Sprintf("GET mid=%d (expired while the server was down)", short.mid), r, err, dots.NotFound)

	r, err = c.GetConfig(reqCtx(t), dots.Ptr[uint32](7))
	r = wantCode(t, "GET /config/sid=7 after the restart", r, err, dots.Content)
	checkHeartbeatInterval(t, "after the restart", r, 60)
}

func checkHeartbeatInterval(t *testing.T, when string, r *dotsclient.Response, want uint16) {
	t.Helper()
	if r.Body == nil || r.Body.SignalConfig == nil {
		t.Fatalf("GET /config %s: no signal-config in the body", when)
	}
	sc := r.Body.SignalConfig
	if sc.SID == nil || *sc.SID != 7 {
		t.Errorf("GET /config %s: sid %v, want 7", when, sc.SID)
	}
	mc := sc.MitigatingConfig
	if mc == nil || mc.HeartbeatInterval == nil || mc.HeartbeatInterval.CurrentValue == nil {
		t.Fatalf("GET /config %s: no mitigating-config heartbeat-interval current-value: %+v", when, sc)
	}
	if v := *mc.HeartbeatInterval.CurrentValue; v != want {
		t.Errorf("GET /config %s: mitigating-config heartbeat-interval %d, want %d", when, v, want)
	}
}
