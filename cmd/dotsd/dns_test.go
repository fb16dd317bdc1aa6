package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsclient"
	"github.com/levee-dots/levee/lab"
	"github.com/levee-dots/levee/pki"
)

// dnsDotsdConfig writes a dotsd configuration whose divert.dns section
// updates srv's zones; alpha owns www.svc.example. and www.other.example.
func dnsDotsdConfig(t *testing.T, dir string, port int, srv *lab.DNSServer, secret string, extra ...string) string {
	t.Helper()
	if _, err := pki.Dev(dir, []string{"alpha", "beta"}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "dots-key"), []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`signal: {listen: ["127.0.0.1:%d"]}
tls: {certificate: server/cert.pem, key: server/key.pem, client-cas: [ca.pem]}
store: {path: levee.db}
resolver: {servers: [%q], timeout: 2s}
policy: {active-but-terminating: 1s}
log: {level: debug}
clients:
  - name: alpha
    prefixes: ["203.0.113.0/25", "2001:db8:6401::/48", "198.51.100.0/24"]
    match: {common-names: [alpha]}
  - name: beta
    prefixes: ["203.0.113.128/25"]
    match: {common-names: [beta]}
divert:
  dns:
    ttl: 30
    retries: -1
%s    zones:
      - name: svc.example.
        primary: %q
        key-name: dots-key.
        secret-file: dots-key
        scrubbing: [192.0.2.80, "2001:db8:5c::80"]
        clients: {alpha: [www.svc.example.]}
      - name: other.example.
        primary: %q
        key-name: dots-key.
        secret-file: dots-key
        scrubbing: [192.0.2.81]
        clients: {alpha: [www.other.example.]}
`, port, srv.Addr, strings.Join(extra, ""), srv.Addr, srv.Addr)
	path := filepath.Join(dir, "dotsd.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func lookupIs(t *testing.T, srv *lab.DNSServer, name string, qtype uint16, want ...string) func() (bool, string) {
	return func() (bool, string) {
		got, err := srv.Lookup(context.Background(), name, qtype)
		if err != nil {
			return false, err.Error()
		}
		slices.Sort(got)
		return slices.Equal(got, want), fmt.Sprintf("%s %s = %v, want %v", name, mdns.TypeToString[qtype], got, want)
	}
}

func waitUntil(t *testing.T, what string, fn func() (bool, string)) {
	t.Helper()
	if err := lab.WaitFor(context.Background(), 15*time.Second, fn); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func statusNote(t *testing.T, c *dotsclient.Client, mid uint32) (dots.Status, string) {
	t.Helper()
	r := expectCode(t, "status", dots.Content)(c.Status(reqCtx(t), &mid, ""))
	sc := r.Body.MitigationScope.Scope[0]
	return *sc.Status, sc.Note
}

// expectCode checks a client call's result: expectCode(t, what, code)(c.Call(...)).
func expectCode(t *testing.T, what string, want dots.Code) func(*dotsclient.Response, error) *dotsclient.Response {
	return func(r *dotsclient.Response, err error) *dotsclient.Response {
		t.Helper()
		return wantCode(t, what, r, err, want)
	}
}

// TestDNSDiversion: a DOTS request for a name ends with the name resolving
// to the scrubbing address, and after withdrawal to the original again, on
// BIND and on Knot; a kill -9 of dotsd in between loses nothing.
func TestDNSDiversion(t *testing.T) {
	bin := buildDotsd(t)
	for _, tc := range []struct {
		name  string
		start func(testing.TB, lab.DNSOptions) *lab.DNSServer
	}{{"bind", lab.StartBIND}, {"knot", lab.StartKnot}} {
		t.Run(tc.name, func(t *testing.T) {
			srv := tc.start(t, lab.DNSOptions{})
			dir, port := t.TempDir(), freePort(t)
			cfg := dnsDotsdConfig(t, dir, port, srv, srv.Secret)
			addr := fmt.Sprintf("127.0.0.1:%d", port)
			d := startDotsd(t, bin, "--config", cfg)
			c := dialAlpha(t, dir, addr)

			www := dots.Scope{TargetFQDN: []string{"www.svc.example"}, Lifetime: dots.Ptr[int64](3600)}
			expectCode(t, "divert www", dots.Created)(c.Mitigate(reqCtx(t), 1, www))
			waitUntil(t, "www A diverted", lookupIs(t, srv, "www.svc.example.", mdns.TypeA, "192.0.2.80"))
			waitUntil(t, "www AAAA diverted", lookupIs(t, srv, "www.svc.example.", mdns.TypeAAAA, "2001:db8:5c::80"))
			waitUntil(t, "status mitigated", func() (bool, string) {
				st, note := statusNote(t, c, 1)
				return st == dots.StatusMitigated && strings.Contains(note, "www.svc.example."), fmt.Sprintf("status %s note %q", st, note)
			})

			// A name alpha does not own is refused before anything changes.
			r := expectCode(t, "api not owned", dots.Forbidden)(c.Mitigate(reqCtx(t), 2, dots.Scope{TargetFQDN: []string{"api.svc.example"}, Lifetime: dots.Ptr[int64](60)}))
			if !strings.Contains(r.Diag, "api.svc.example") {
				t.Fatalf("diagnostic %q does not name the target", r.Diag)
			}
			waitUntil(t, "api unchanged", lookupIs(t, srv, "api.svc.example.", mdns.TypeA, "203.0.113.11"))

			// A zone the key may not update: accepted by DOTS, refused by the DNS server, reported in the status.
			expectCode(t, "other zone", dots.Created)(c.Mitigate(reqCtx(t), 3, dots.Scope{TargetFQDN: []string{"www.other.example"}, Lifetime: dots.Ptr[int64](60)}))
			waitUntil(t, "other zone refused in status", func() (bool, string) {
				st, note := statusNote(t, c, 3)
				return st == dots.StatusInProgress && strings.Contains(note, "www.other.example."), fmt.Sprintf("status %s note %q", st, note)
			})
			waitUntil(t, "other zone unchanged", lookupIs(t, srv, "www.other.example.", mdns.TypeA, "198.51.100.20"))

			// kill -9 while www is diverted; the restarted server withdraws it correctly.
			d.kill(t)
			startDotsd(t, bin, "--config", cfg)
			c2 := dialAlpha(t, dir, addr)
			waitUntil(t, "still diverted after restart", lookupIs(t, srv, "www.svc.example.", mdns.TypeA, "192.0.2.80"))
			expectCode(t, "withdraw www", dots.Deleted)(c2.Withdraw(reqCtx(t), 1))
			waitUntil(t, "www A restored", lookupIs(t, srv, "www.svc.example.", mdns.TypeA, "203.0.113.10"))
			waitUntil(t, "www AAAA restored", lookupIs(t, srv, "www.svc.example.", mdns.TypeAAAA, "2001:db8:6401::10"))
		})
	}
}

// TestDNSWrongSecret: with a wrong TSIG secret nothing changes in DNS and
// the status says why.
func TestDNSWrongSecret(t *testing.T) {
	bin := buildDotsd(t)
	srv := lab.StartBIND(t, lab.DNSOptions{})
	dir, port := t.TempDir(), freePort(t)
	cfg := dnsDotsdConfig(t, dir, port, srv, "d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldC13cm9uZyE=")
	startDotsd(t, bin, "--config", cfg)
	c := dialAlpha(t, dir, fmt.Sprintf("127.0.0.1:%d", port))
	expectCode(t, "divert www", dots.Created)(c.Mitigate(reqCtx(t), 1, dots.Scope{TargetFQDN: []string{"www.svc.example"}, Lifetime: dots.Ptr[int64](60)}))
	waitUntil(t, "TSIG failure in status", func() (bool, string) {
		st, note := statusNote(t, c, 1)
		return st == dots.StatusInProgress && strings.Contains(strings.ToLower(note), "tsig"), fmt.Sprintf("status %s note %q", st, note)
	})
	waitUntil(t, "www unchanged", lookupIs(t, srv, "www.svc.example.", mdns.TypeA, "203.0.113.10"))
}

// TestDNSRestoreOnShutdown: with restore-on-shutdown, stopping dotsd
// (SIGTERM) puts the original records back.
func TestDNSRestoreOnShutdown(t *testing.T) {
	bin := buildDotsd(t)
	srv := lab.StartKnot(t, lab.DNSOptions{})
	dir, port := t.TempDir(), freePort(t)
	cfg := dnsDotsdConfig(t, dir, port, srv, srv.Secret, "    restore-on-shutdown: true\n")
	d := startDotsd(t, bin, "--config", cfg)
	c := dialAlpha(t, dir, fmt.Sprintf("127.0.0.1:%d", port))
	expectCode(t, "divert www", dots.Created)(c.Mitigate(reqCtx(t), 1, dots.Scope{TargetFQDN: []string{"www.svc.example"}, Lifetime: dots.Ptr[int64](3600)}))
	waitUntil(t, "www diverted", lookupIs(t, srv, "www.svc.example.", mdns.TypeA, "192.0.2.80"))
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.exited:
	case <-time.After(20 * time.Second):
		t.Fatal("dotsd did not stop within 20 s of SIGTERM")
	}
	if !strings.Contains(d.stderr.String(), "diverted names restored at shutdown") {
		t.Fatalf("no restore logged:\n%s", d.stderr)
	}
	waitUntil(t, "www restored", lookupIs(t, srv, "www.svc.example.", mdns.TypeA, "203.0.113.10"))
}

// TestDNSRefreshDiverted: refreshing a mitigation whose target-fqdn the
// DNS backend diverted succeeds (2.04), although the name now resolves to
// the scrubbing addresses the server wrote itself; and it still succeeds
// when the resolver (here named) does not answer any more.
func TestDNSRefreshDiverted(t *testing.T) {
	bin := buildDotsd(t)
	srv := lab.StartBIND(t, lab.DNSOptions{})
	dir, port := t.TempDir(), freePort(t)
	cfg := dnsDotsdConfig(t, dir, port, srv, srv.Secret)
	startDotsd(t, bin, "--config", cfg)
	c := dialAlpha(t, dir, fmt.Sprintf("127.0.0.1:%d", port))

	www := dots.Scope{TargetFQDN: []string{"www.svc.example"}, Lifetime: dots.Ptr[int64](3600)}
	expectCode(t, "divert www", dots.Created)(c.Mitigate(reqCtx(t), 1, www))
	waitUntil(t, "www A diverted", lookupIs(t, srv, "www.svc.example.", mdns.TypeA, "192.0.2.80"))
	waitUntil(t, "www AAAA diverted", lookupIs(t, srv, "www.svc.example.", mdns.TypeAAAA, "2001:db8:5c::80"))

	// Same mid, same scope, new lifetime: the name resolves to 192.0.2.80
	// and 2001:db8:5c::80 now, which are the diversion, not the target.
	www.Lifetime = dots.Ptr[int64](1800)
	expectCode(t, "refresh while diverted", dots.Changed)(c.Mitigate(reqCtx(t), 1, www))
	waitUntil(t, "still diverted after the refresh", lookupIs(t, srv, "www.svc.example.", mdns.TypeA, "192.0.2.80"))

	// The resolver is down: the addresses already known still stand.
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	www.Lifetime = dots.Ptr[int64](900)
	expectCode(t, "refresh with the resolver down", dots.Changed)(c.Mitigate(reqCtx(t), 1, www))
}

// TestDNSPartialRestore: an operator changes A during the diversion. The
// withdrawal puts AAAA back and keeps the operator's A; the conflict is
// listed by `dotsd dns conflicts`, survives a kill -9 of dotsd, and goes
// away with --clear.
func TestDNSPartialRestore(t *testing.T) {
	bin := buildDotsd(t)
	srv := lab.StartBIND(t, lab.DNSOptions{})
	dir, port := t.TempDir(), freePort(t)
	cfg := dnsDotsdConfig(t, dir, port, srv, srv.Secret)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	d := startDotsd(t, bin, "--config", cfg)
	c := dialAlpha(t, dir, addr)
	conflicts := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, bin, append([]string{"dns", "conflicts", "--config", cfg}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("dotsd dns conflicts %v: %v\n%s", args, err, out)
		}
		return string(out)
	}

	expectCode(t, "divert www", dots.Created)(c.Mitigate(reqCtx(t), 1, dots.Scope{TargetFQDN: []string{"www.svc.example"}, Lifetime: dots.Ptr[int64](3600)}))
	waitUntil(t, "www A diverted", lookupIs(t, srv, "www.svc.example.", mdns.TypeA, "192.0.2.80"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Nsupdate(ctx, "zone svc.example.", "update delete www.svc.example. A", "update add www.svc.example. 60 A 198.51.100.7"); err != nil {
		t.Fatal(err)
	}
	expectCode(t, "withdraw www", dots.Deleted)(c.Withdraw(reqCtx(t), 1))
	waitUntil(t, "www AAAA restored", lookupIs(t, srv, "www.svc.example.", mdns.TypeAAAA, "2001:db8:6401::10"))
	waitUntil(t, "operator's A kept", lookupIs(t, srv, "www.svc.example.", mdns.TypeA, "198.51.100.7"))
	waitUntil(t, "restore conflict logged", func() (bool, string) {
		log := d.stderr.String()
		ok := strings.Contains(log, "level=WARN msg=\"restore conflict") && strings.Contains(log, "name=www.svc.example.") &&
			strings.Contains(log, "type=A ") && strings.Contains(log, "found=198.51.100.7")
		return ok, "no WARN restore conflict with name, type and found in the log"
	})
	for _, w := range []string{"www.svc.example.", "198.51.100.7", "203.0.113.10"} {
		if out := conflicts(); !strings.Contains(out, w) {
			t.Fatalf("conflicts lack %q:\n%s", w, out)
		}
	}

	d.kill(t)
	startDotsd(t, bin, "--config", cfg)
	if out := conflicts(); !strings.Contains(out, "198.51.100.7") {
		t.Fatalf("conflict gone after a restart:\n%s", out)
	}
	conflicts("--clear", "www.svc.example.", "--type", "A")
	if out := conflicts(); !strings.Contains(out, "no DNS restore conflicts") {
		t.Fatalf("after --clear:\n%s", out)
	}
	waitUntil(t, "operator's A still there", lookupIs(t, srv, "www.svc.example.", mdns.TypeA, "198.51.100.7"))
}
