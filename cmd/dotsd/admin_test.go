package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/levee-dots/levee/divert/bgp"
	"github.com/levee-dots/levee/divert/dns"
	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/lab"
)

// adminGet asks the admin socket at path who serves it.
func adminServer(t *testing.T, path string) (serverInfo, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	body, err := adminRequest(ctx, path, http.MethodGet, "/v1/server")
	if err != nil {
		return serverInfo{}, err
	}
	var info serverInfo
	if err := json.Unmarshal(body, &info); err != nil {
		return serverInfo{}, fmt.Errorf("GET /v1/server: %w (%q)", err, body)
	}
	return info, nil
}

// wantServedBy fails unless the admin socket at path is answered by pid,
// through /v1/server and through `dotsd bgp neighbors`.
func wantServedBy(t *testing.T, bin, cfgPath, path string, pid int, when string) {
	t.Helper()
	info, err := adminServer(t, path)
	if err != nil {
		t.Fatalf("%s: admin socket %s does not answer: %v", when, path, err)
	}
	if info.PID != pid {
		t.Fatalf("%s: admin socket %s is served by pid %d, want the first dotsd (pid %d)", when, path, info.PID, pid)
	}
	// The operator's command reaches it too (no divert.bgp: the server
	// answers that no speaker is configured).
	out, err := exec.Command(bin, "bgp", "neighbors", "--config", cfgPath).CombinedOutput()
	if !strings.Contains(string(out), "no BGP speaker is configured") {
		t.Fatalf("%s: dotsd bgp neighbors: %v\n%s", when, err, out)
	}
}

// runRefused runs a second dotsd that must exit with an error mentioning
// every string in want, within 30 s.
func runRefused(t *testing.T, bin string, want []string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("second dotsd %q: %v, want exit status 1\n%s", args, err, out)
	}
	for _, w := range want {
		if !strings.Contains(string(out), w) {
			t.Errorf("second dotsd %q: output does not mention %q:\n%s", args, w, out)
		}
	}
	t.Logf("second dotsd refused: %s", lastLine(out))
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

// TestAdminSocketSecondDotsd runs real dotsd processes: a second server
// over the same store, or with its own store but the first one's
// admin.socket, is refused and leaves the first one's socket alone; a
// socket left by SIGKILL is taken over by the next server, and a clean
// stop removes the socket.
func TestAdminSocketSecondDotsd(t *testing.T) {
	bin := buildDotsd(t)
	dir := t.TempDir()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	first := startDotsd(t, bin, "dev", "--dir", dir, "--signal-listen", addr)
	cfgPath := filepath.Join(dir, "dotsd.yaml")
	sock := filepath.Join(dir, "dotsd.sock")
	pid := first.cmd.Process.Pid
	wantServedBy(t, bin, cfgPath, sock, pid, "first dotsd")

	// Same configuration: the store is locked (and the socket is served).
	runRefused(t, bin, []string{"store.path", "locked"}, "--config", cfgPath, "--signal-listen",
		net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t))))
	wantServedBy(t, bin, cfgPath, sock, pid, "after a second dotsd over the same store")

	// Own store, the first one's admin socket: the socket is in use. Once
	// with another signal port, once with the first one's (which would
	// fail later, at the listener).
	other := t.TempDir()
	for _, listen := range []string{net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t))), addr} {
		cfg2 := writeConfig(t, "second.yaml", fmt.Sprintf(`signal: {listen: [%q]}
tls: {certificate: %s, key: %s, client-cas: [%s]}
store: {path: %s}
admin: {socket: %s}
clients: [{name: alpha, prefixes: ["203.0.113.0/25"], match: {common-names: [alpha]}}]
`, listen, filepath.Join(dir, "server", "cert.pem"), filepath.Join(dir, "server", "key.pem"), filepath.Join(dir, "ca.pem"),
			filepath.Join(other, "levee.db"), sock))
		runRefused(t, bin, []string{"admin.socket", sock, "another dotsd", fmt.Sprintf("pid %d", pid)}, "--config", cfg2)
		wantServedBy(t, bin, cfgPath, sock, pid, "after a second dotsd with its own store on "+listen)
	}

	// SIGKILL leaves the socket file; the next dotsd replaces it.
	first.kill(t)
	if _, err := os.Lstat(sock); err != nil {
		t.Fatalf("after SIGKILL the socket file should still exist: %v", err)
	}
	third := startDotsd(t, bin, "dev", "--dir", dir, "--signal-listen", addr)
	wantServedBy(t, bin, cfgPath, sock, third.cmd.Process.Pid, "dotsd started over a crashed one's socket")

	// SIGTERM: a clean stop removes its own socket.
	if err := third.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-third.exited:
	case <-time.After(20 * time.Second):
		t.Fatal("dotsd did not stop within 20 s of SIGTERM")
	}
	if third.err != nil {
		t.Errorf("dotsd after SIGTERM: %v\n%s", third.err, third.stderr)
	}
	if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after a clean stop the socket %s should be gone: %v", sock, err)
	}
}

// TestAdminSocketCloseKeepsOthers checks that Close removes the socket
// only while it is the one this server created: after the file was
// replaced by another server's socket, that one stays and keeps answering.
func TestAdminSocketCloseKeepsOthers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dotsd.sock")
	log := slog.New(slog.DiscardHandler)
	admin, err := startAdmin(path, "a.db", nil, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want 0600", fi.Mode().Perm())
	}
	// Another process removes the file and serves its own socket there.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	other, err := startAdmin(path, "b.db", nil, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := admin.Close(); err != nil {
		t.Fatal(err)
	}
	info, err := adminServer(t, path)
	if err != nil {
		t.Fatalf("the other server's socket was removed by the first one's Close: %v", err)
	}
	if info.Store != "b.db" {
		t.Errorf("socket answered for store %q, want b.db", info.Store)
	}
}

// TestAdminSocketCheck covers what startAdmin finds at the path.
func TestAdminSocketCheck(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	t.Run("regular file is not removed", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "dotsd.sock")
		if err := os.WriteFile(path, []byte("keep"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := startAdmin(path, "a.db", nil, nil, log)
		if err == nil || !strings.Contains(err.Error(), "admin.socket") || !strings.Contains(err.Error(), "not a socket") {
			t.Fatalf("startAdmin over a regular file: %v, want an admin.socket error saying it is not a socket", err)
		}
		if b, _ := os.ReadFile(path); string(b) != "keep" {
			t.Errorf("the file was changed: %q", b)
		}
	})
	t.Run("stale socket is replaced", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "dotsd.sock")
		l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		l.SetUnlinkOnClose(false)
		l.Close() // the file stays, nobody accepts: like after a crash
		admin, err := startAdmin(path, "a.db", nil, nil, log)
		if err != nil {
			t.Fatalf("startAdmin over a stale socket: %v", err)
		}
		defer admin.Close()
		if info, err := adminServer(t, path); err != nil || info.PID != os.Getpid() {
			t.Fatalf("GET /v1/server: %+v, %v", info, err)
		}
	})
	t.Run("socket in use is kept", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "dotsd.sock")
		first, err := startAdmin(path, "first.db", nil, nil, log)
		if err != nil {
			t.Fatal(err)
		}
		defer first.Close()
		_, err = startAdmin(path, "second.db", nil, nil, log)
		if err == nil || !strings.Contains(err.Error(), "another dotsd") || !strings.Contains(err.Error(), "first.db") {
			t.Fatalf("second startAdmin: %v, want an error naming the other dotsd and its store", err)
		}
		if info, err := adminServer(t, path); err != nil || info.Store != "first.db" {
			t.Fatalf("after the refused second server: %+v, %v", info, err)
		}
	})
	t.Run("cannot listen: runs without admin", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "absent-dir", "dotsd.sock")
		admin, err := startAdmin(path, "a.db", nil, nil, log)
		if err != nil {
			t.Fatalf("startAdmin in a missing directory: %v, want a warning only", err)
		}
		admin.Close()
	})
}

// fakeConflicts is a conflictStore over a slice.
type fakeConflicts struct {
	list    []dns.Conflict
	listErr error
	cleared []string // "name type"
}

func (f *fakeConflicts) Conflicts() ([]dns.Conflict, error) { return slices.Clone(f.list), f.listErr }

func (f *fakeConflicts) ClearConflict(name, rrtype string) error {
	f.cleared = append(f.cleared, strings.TrimSpace(name+" "+rrtype))
	f.list = slices.DeleteFunc(f.list, func(c dns.Conflict) bool {
		return c.Name == name && (rrtype == "" || c.Type == rrtype)
	})
	return nil
}

var testConflicts = []dns.Conflict{
	{Name: "www.svc.example.", Type: "A", Zone: "svc.example.", Diverted: []string{"192.0.2.80"}, Found: []string{"198.51.100.7"},
		Original: []string{"203.0.113.10"}, Since: time.Date(2026, 12, 1, 22, 0, 0, 0, time.UTC), CUID: "cuid-alpha", MID: 7},
	{Name: "www.svc.example.", Type: "AAAA", Zone: "svc.example.", Diverted: []string{"2001:db8:5c::80"},
		Original: []string{"2001:db8:6401::10"}, Since: time.Date(2026, 12, 1, 22, 0, 0, 0, time.UTC), CUID: "cuid-alpha", MID: 7},
}

type fakeNeighbors []bgp.NeighborStatus

func (f fakeNeighbors) Neighbors() []bgp.NeighborStatus { return f }

func TestAdminHandler(t *testing.T) {
	for _, tc := range []struct {
		name        string
		noDNS       bool
		list        []dns.Conflict
		listErr     error
		method, url string
		wantCode    int
		wantBody    []string
		wantCleared []string
	}{
		{name: "list", list: testConflicts, method: "GET", url: "/v1/dns/conflicts", wantCode: 200,
			wantBody: []string{`"name":"www.svc.example."`, `"type":"AAAA"`, `"found":["198.51.100.7"]`, `"mid":7`}},
		{name: "empty list is []", method: "GET", url: "/v1/dns/conflicts", wantCode: 200, wantBody: []string{"[]"}},
		{name: "list error", listErr: errors.New("store broken"), method: "GET", url: "/v1/dns/conflicts", wantCode: 500, wantBody: []string{"store broken"}},
		{name: "no DNS backend", noDNS: true, method: "GET", url: "/v1/dns/conflicts", wantCode: 404, wantBody: []string{"divert.dns"}},
		{name: "clear one type", list: testConflicts, method: "DELETE", url: "/v1/dns/conflicts/www.svc.example.?type=A", wantCode: 204,
			wantCleared: []string{"www.svc.example. A"}},
		{name: "clear both types, name in other case without the dot", list: testConflicts, method: "DELETE", url: "/v1/dns/conflicts/WWW.svc.example",
			wantCode: 204, wantCleared: []string{"www.svc.example."}},
		{name: "clear lower-case type", list: testConflicts, method: "DELETE", url: "/v1/dns/conflicts/www.svc.example.?type=aaaa", wantCode: 204,
			wantCleared: []string{"www.svc.example. AAAA"}},
		{name: "clear unknown name", list: testConflicts, method: "DELETE", url: "/v1/dns/conflicts/api.svc.example.", wantCode: 404,
			wantBody: []string{"no restore conflict", "api.svc.example."}},
		{name: "clear type without conflict", list: testConflicts[:1], method: "DELETE", url: "/v1/dns/conflicts/www.svc.example.?type=AAAA", wantCode: 404,
			wantBody: []string{"www.svc.example. AAAA"}},
		{name: "clear bad type", list: testConflicts, method: "DELETE", url: "/v1/dns/conflicts/www.svc.example.?type=MX", wantCode: 400,
			wantBody: []string{`"MX"`, "A, AAAA"}},
		{name: "clear without DNS backend", noDNS: true, method: "DELETE", url: "/v1/dns/conflicts/www.svc.example.", wantCode: 404, wantBody: []string{"divert.dns"}},
		{name: "neighbors", method: "GET", url: "/v1/bgp/neighbors", wantCode: 200, wantBody: []string{`"name":"edge1"`}},
		{name: "server", method: "GET", url: "/v1/server", wantCode: 200, wantBody: []string{`"pid":42`, `"store":"x.db"`}},
		{name: "wrong method", method: "PUT", url: "/v1/dns/conflicts", wantCode: 405},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := &fakeConflicts{list: slices.Clone(tc.list), listErr: tc.listErr}
			var cs conflictStore = fake
			if tc.noDNS {
				cs = nil
			}
			h := newAdminHandler(serverInfo{PID: 42, Store: "x.db"}, fakeNeighbors{{Name: "edge1"}}, cs)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.url, nil))
			if rec.Code != tc.wantCode {
				t.Errorf("%s %s: status %d, want %d (%q)", tc.method, tc.url, rec.Code, tc.wantCode, rec.Body)
			}
			for _, w := range tc.wantBody {
				if !strings.Contains(rec.Body.String(), w) {
					t.Errorf("%s %s: body %q lacks %q", tc.method, tc.url, rec.Body, w)
				}
			}
			if !slices.Equal(fake.cleared, tc.wantCleared) {
				t.Errorf("%s %s: cleared %q, want %q", tc.method, tc.url, fake.cleared, tc.wantCleared)
			}
		})
	}
}

// TestAdminDNSConflictsCommand runs `dotsd dns conflicts` against an admin
// socket served by a fake DNS backend.
func TestAdminDNSConflictsCommand(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "dotsd.yaml")
	if err := os.WriteFile(cfgPath, []byte(goodConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "dotsd.sock") // the default: beside the store
	l, id, err := listenSocket(sock)
	if err != nil {
		t.Fatal(err)
	}
	fake := &fakeConflicts{list: slices.Clone(testConflicts)}
	srv := &http.Server{Handler: newAdminHandler(serverInfo{PID: 1}, nil, fake)}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close(); removeOwnSocket(sock, id) })

	ctx := context.Background()
	dotsd := func(args ...string) (string, error) {
		var stdout, stderr bytes.Buffer
		err := run(ctx, append([]string{"dns", "conflicts", "--config", cfgPath}, args...), &stdout, &stderr)
		return stdout.String() + stderr.String(), err
	}
	out, err := dotsd()
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"NAME", "FOUND (KEPT)", "www.svc.example.", "198.51.100.7", "203.0.113.10", "2026-12-01T22:00:00Z", "cuid-alpha/7", "--clear"} {
		if !strings.Contains(out, w) {
			t.Errorf("table lacks %q:\n%s", w, out)
		}
	}
	out, err = dotsd("-o", "json")
	var got []dns.Conflict
	if err != nil || json.Unmarshal([]byte(out), &got) != nil || len(got) != 2 {
		t.Fatalf("-o json: %v\n%s", err, out)
	}
	if out, err = dotsd("--clear", "www.svc.example", "--type", "aaaa"); err != nil || !strings.Contains(out, "cleared the restore conflict of www.svc.example. AAAA") {
		t.Fatalf("--clear --type aaaa: %v\n%s", err, out)
	}
	if out, err = dotsd("--clear", "www.svc.example.", "--type", "AAAA"); err == nil || !strings.Contains(err.Error(), "no restore conflict") {
		t.Fatalf("clearing it again: %v, want 'no restore conflict'\n%s", err, out)
	}
	if _, err = dotsd("--clear", "www.svc.example."); err != nil {
		t.Fatal(err)
	}
	if out, err = dotsd(); err != nil || !strings.Contains(out, "no DNS restore conflicts") {
		t.Fatalf("empty list: %v\n%s", err, out)
	}
	if !slices.Equal(fake.cleared, []string{"www.svc.example. AAAA", "www.svc.example."}) {
		t.Errorf("cleared %q", fake.cleared)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--type", "A"}, "--type needs --clear"},
		{[]string{"--clear", "x.example.", "--type", "MX"}, `--type "MX"`},
		{[]string{"-o", "yaml"}, `-o "yaml"`},
		{[]string{"extra"}, `unexpected argument "extra"`},
	} {
		if _, err := dotsd(tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("dns conflicts %q: %v, want an error with %q", tc.args, err, tc.want)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"dns"}, "usage: dotsd dns conflicts"},
		{[]string{"dns", "conflicts"}, "--config FILE is required"},
		{[]string{"dns", "conflicts", "--config", writeConfig(t, "other.yaml", goodConfig)}, "is dotsd running?"},
	} {
		err := run(ctx, tc.args, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("dotsd %q: %v, want an error with %q", tc.args, err, tc.want)
		}
	}
}

// TestAdminDNSConflictsBIND runs the whole path on real processes: an
// operator changes a diverted name at BIND, the restore keeps the change
// and records a conflict, `dotsd dns conflicts` lists it from the running
// dotsd, and --clear forgets it without touching DNS.
func TestAdminDNSConflictsBIND(t *testing.T) {
	bin := buildDotsd(t)
	srv := lab.StartBIND(t, lab.DNSOptions{})
	dir, port := t.TempDir(), freePort(t)
	cfg := dnsDotsdConfig(t, dir, port, srv, srv.Secret)
	startDotsd(t, bin, "--config", cfg)
	c := dialAlpha(t, dir, fmt.Sprintf("127.0.0.1:%d", port))
	dotsd := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, bin, append([]string{"dns", "conflicts", "--config", cfg}, args...)...).CombinedOutput()
		return string(out), err
	}
	if out, err := dotsd(); err != nil || !strings.Contains(out, "no DNS restore conflicts") {
		t.Fatalf("before any conflict: %v\n%s", err, out)
	}

	expectCode(t, "divert www", dots.Created)(c.Mitigate(reqCtx(t), 1, dots.Scope{TargetFQDN: []string{"www.svc.example"}, Lifetime: dots.Ptr[int64](3600)}))
	waitUntil(t, "www A diverted", lookupIs(t, srv, "www.svc.example.", mdns.TypeA, "192.0.2.80"))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := srv.Nsupdate(ctx, "zone svc.example.", "update delete www.svc.example. A", "update add www.svc.example. 60 A 198.51.100.7"); err != nil {
		t.Skipf("skipping: %v", err)
	}
	expectCode(t, "withdraw www", dots.Deleted)(c.Withdraw(reqCtx(t), 1))
	waitUntil(t, "www AAAA restored", lookupIs(t, srv, "www.svc.example.", mdns.TypeAAAA, "2001:db8:6401::10"))

	var got []dns.Conflict
	waitUntil(t, "conflict listed", func() (bool, string) {
		out, err := dotsd("-o", "json")
		if err != nil {
			return false, fmt.Sprintf("%v: %s", err, out)
		}
		got = nil
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			return false, err.Error()
		}
		return len(got) == 1, fmt.Sprintf("conflicts %+v", got)
	})
	if g := got[0]; g.Name != "www.svc.example." || g.Type != "A" || !slices.Equal(g.Found, []string{"198.51.100.7"}) ||
		!slices.Equal(g.Original, []string{"203.0.113.10"}) || !slices.Equal(g.Diverted, []string{"192.0.2.80"}) || g.MID != 1 {
		t.Errorf("conflict %+v", g)
	}
	out, err := dotsd()
	if err != nil || !strings.Contains(out, "www.svc.example.") || !strings.Contains(out, "198.51.100.7") {
		t.Errorf("table: %v\n%s", err, out)
	}
	t.Logf("dotsd dns conflicts:\n%s", out)
	if out, err := dotsd("--clear", "www.svc.example", "--type", "A"); err != nil {
		t.Fatalf("--clear: %v\n%s", err, out)
	}
	if out, err := dotsd(); err != nil || !strings.Contains(out, "no DNS restore conflicts") {
		t.Errorf("after --clear: %v\n%s", err, out)
	}
	waitUntil(t, "the operator's record is kept", lookupIs(t, srv, "www.svc.example.", mdns.TypeA, "198.51.100.7"))
}
