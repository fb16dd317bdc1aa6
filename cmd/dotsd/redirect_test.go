package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsclient"
)

// TestRedirectCommand runs `dotsd redirect` against a running dotsd over
// its admin socket: the named client's requests are answered 5.03 with
// the redirected-signal body and the TTL as Max-Age (RFC 9132 §4.6), the
// other client is served, and --clear ends it.
func TestRedirectCommand(t *testing.T) {
	dir := t.TempDir()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	_, stop := runDevServer(t, "--dir", dir, "--signal-listen", addr)
	defer stop()
	cfgPath := filepath.Join(dir, "dotsd.yaml")
	dotsd := func(args ...string) (string, error) {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), append([]string{"redirect", "--config", cfgPath}, args...), &stdout, &stderr)
		return stdout.String() + stderr.String(), err
	}
	if out, err := dotsd(); err == nil || !strings.Contains(err.Error(), "no redirect is in force") {
		t.Fatalf("before any redirect: %v, want 'no redirect is in force'\n%s", err, out)
	}
	alpha, beta := dialAs(t, dir, "alpha", addr), dialAs(t, dir, "beta", addr)
	mitigate := func(c *dotsclient.Client, mid uint32, prefix string) *dotsclient.Response {
		t.Helper()
		r, err := c.Mitigate(reqCtx(t), mid, dots.Scope{TargetPrefix: []string{prefix}, Lifetime: dots.Ptr[int64](3600)})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := mitigate(alpha, 1, "203.0.113.1/32"); r.Code != dots.Created {
		t.Fatalf("before the redirect: %s %s", r.Code, r.Diag)
	}

	out, err := dotsd("--to", "alt-server.example", "--to", "2001:db8:6401::1", "--to", "2001:db8:6401::2", "--ttl", "30m", "--clients", alpha.CUID())
	if err != nil {
		t.Fatalf("redirect: %v\n%s", err, out)
	}
	for _, w := range []string{"ALT-SERVER", "alt-server.example", "2001:db8:6401::1,2001:db8:6401::2", "30m0s", alpha.CUID(), "--clear"} {
		if !strings.Contains(out, w) {
			t.Errorf("redirect output lacks %q:\n%s", w, out)
		}
	}
	r := mitigate(alpha, 2, "203.0.113.2/32")
	if r.Code != dots.ServiceUnavailable || r.Body == nil || r.Body.RedirectedSignal == nil {
		t.Fatalf("alpha after the redirect: %s %+v %q, want 5.03 with a redirected-signal body", r.Code, r.Body, r.Diag)
	}
	rs := r.Body.RedirectedSignal
	if rs.AltServer != "alt-server.example" || !slices.Equal(rs.AltServerRecord, []string{"2001:db8:6401::1", "2001:db8:6401::2"}) {
		t.Fatalf("redirected-signal %+v", rs)
	}
	if r.MaxAge == nil || *r.MaxAge > 1800 || *r.MaxAge < 1790 {
		t.Fatalf("Max-Age %v, want the 30 minutes left (1800 s)", r.MaxAge)
	}
	if r := mitigate(beta, 1, "203.0.113.129/32"); r.Code != dots.Created {
		t.Fatalf("beta, not redirected: %s %s", r.Code, r.Diag)
	}

	out, err = dotsd("-o", "json")
	var st redirectState
	if err != nil || json.Unmarshal([]byte(out), &st) != nil {
		t.Fatalf("-o json: %v\n%s", err, out)
	}
	if st.AltServer != "alt-server.example" || st.TTL != 1800 || st.Expires == nil || time.Until(*st.Expires) > 30*time.Minute ||
		!slices.Equal(st.Clients, []string{alpha.CUID()}) {
		t.Fatalf("-o json: %+v", st)
	}

	if out, err = dotsd("--clear"); err != nil || !strings.Contains(out, "redirect cleared") {
		t.Fatalf("--clear: %v\n%s", err, out)
	}
	if r := mitigate(alpha, 3, "203.0.113.3/32"); r.Code != dots.Created {
		t.Fatalf("alpha after --clear: %s %s", r.Code, r.Diag)
	}
	if out, err = dotsd("--clear"); err == nil || !strings.Contains(err.Error(), "no redirect is in force") {
		t.Fatalf("--clear again: %v, want 'no redirect is in force'\n%s", err, out)
	}

	// Every client, until cleared: Max-Age 2^32-1.
	if out, err = dotsd("--to", "alt-server.example", "--ttl", "forever"); err != nil || !strings.Contains(out, "forever") {
		t.Fatalf("--ttl forever: %v\n%s", err, out)
	}
	if r := mitigate(beta, 2, "203.0.113.130/32"); r.Code != dots.ServiceUnavailable || r.MaxAge == nil || *r.MaxAge != 1<<32-1 {
		t.Fatalf("beta after --ttl forever: %s Max-Age %v, want 5.03 with 4294967295", r.Code, r.MaxAge)
	}
}

// TestRedirectCommandErrors: flags that cannot make a redirect are refused
// before the server is asked, with what to fix.
func TestRedirectCommandErrors(t *testing.T) {
	cfgPath := writeConfig(t, "dotsd.yaml", goodConfig)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--clear", "--to", "alt.example"}, "--clear takes no --to"},
		{[]string{"--ttl", "1h"}, "need --to NAME"},
		{[]string{"--clients", "abc"}, "need --to NAME"},
		{[]string{"--to", "192.0.2.7"}, "is an address: name the alternate server too"},
		{[]string{"--to", "a.example", "--to", "b.example"}, "give one name"},
		{[]string{"--to", "a.example", "--ttl", "500ms"}, `--ttl "500ms": use whole seconds`},
		{[]string{"--to", "a.example", "--ttl", "1.5s"}, `--ttl "1.5s"`},
		{[]string{"--to", "a.example", "--ttl", "soon"}, `--ttl "soon"`},
		{[]string{"--to", "a..example"}, "is not a domain name"},
		{[]string{"--to", "a.example", "--clients", "x,,y"}, "an empty cuid"},
		{[]string{"--to", "a.example", "-o", "yaml"}, `-o "yaml"`},
		{[]string{"--to", "a.example", "extra"}, `unexpected argument "extra"`},
		{[]string{"--to", "a.example"}, "is dotsd running?"},
	} {
		err := run(context.Background(), append([]string{"redirect", "--config", cfgPath}, tc.args...), &bytes.Buffer{}, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("dotsd redirect %q: %v, want an error with %q", tc.args, err, tc.want)
		}
	}
	if err := run(context.Background(), []string{"redirect", "--to", "a.example"}, &bytes.Buffer{}, &bytes.Buffer{}); err == nil ||
		!strings.Contains(err.Error(), "--config FILE is required") {
		t.Errorf("dotsd redirect without --config: %v", err)
	}
}

// TestRedirectConfig: signal.redirect-when-sessions-over and
// signal.redirect-to are checked at load, and become the server's
// SessionRedirect.
func TestRedirectConfig(t *testing.T) {
	const at = "  notify-interval: 5s\n"
	for _, tc := range []struct {
		name, add string
		want      string // "" valid
	}{
		{"valid", "  redirect-when-sessions-over: 100\n  redirect-to: {alt-server: dots-b.example.net, alt-server-record: [192.0.2.7], ttl: 10m}\n", ""},
		{"no redirect-to", "  redirect-when-sessions-over: 100\n", "signal.redirect-to: signal.redirect-when-sessions-over needs the alternate server"},
		{"no number", "  redirect-to: {alt-server: dots-b.example.net}\n", "signal.redirect-when-sessions-over: signal.redirect-to is set but no session"},
		{"zero", "  redirect-when-sessions-over: 0\n  redirect-to: {alt-server: dots-b.example.net}\n", "must be at least 1; leave the key out"},
		{"negative", "  redirect-when-sessions-over: -1\n  redirect-to: {alt-server: dots-b.example.net}\n", "signal.redirect-when-sessions-over: -1"},
		{"no name", "  redirect-when-sessions-over: 5\n  redirect-to: {ttl: 1h}\n", "signal.redirect-to: alt-server: the alternate server's name is mandatory"},
		{"address as name", "  redirect-when-sessions-over: 5\n  redirect-to: {alt-server: 192.0.2.7}\n", "is an address"},
		{"bad record", "  redirect-when-sessions-over: 5\n  redirect-to: {alt-server: b.example, alt-server-record: [b.example]}\n", "signal.redirect-to.alt-server-record[0]"},
		{"zero ttl", "  redirect-when-sessions-over: 5\n  redirect-to: {alt-server: b.example, ttl: 0s}\n", "signal.redirect-to.ttl"},
		{"fraction ttl", "  redirect-when-sessions-over: 5\n  redirect-to: {alt-server: b.example, ttl: 1500ms}\n", "whole seconds"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := loadConfig(writeConfig(t, "dotsd.yaml", edit(t, at, at+tc.add)))
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("load: %v, want an error with %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			sr := cfg.sessionRedirect()
			if sr == nil || sr.Over != 100 || sr.AltServer != "dots-b.example.net" || sr.TTL != 10*time.Minute ||
				len(sr.AltServerRecord) != 1 || sr.AltServerRecord[0].String() != "192.0.2.7" {
				t.Fatalf("session redirect %+v", sr)
			}
		})
	}
	cfg, err := loadConfig(writeConfig(t, "dotsd.yaml", goodConfig))
	if err != nil || cfg.sessionRedirect() != nil {
		t.Fatalf("without the keys: %v, session redirect %+v", err, cfg.sessionRedirect())
	}
}
