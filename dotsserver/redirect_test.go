package dotsserver_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"net/netip"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsserver"
	"github.com/levee-dots/levee/dotsserver/dotstest"
)

// libcoapHex matches the hex dump libcoap 4.3 logs at -v 6 under a binary
// payload it does not write to the -o file (it writes none for 4.xx/5.xx).
var libcoapHex = regexp.MustCompile(`<<([0-9a-f]+)>>`)

// redirectedSignal decodes the payload logged after the first 5.03 in log:
// the redirected-signal body (RFC 9132 §4.6), and the Max-Age option.
func redirectedSignal(t *testing.T, log string) (*dots.RedirectedSignal, string) {
	t.Helper()
	for _, m := range libcoapResponse.FindAllStringSubmatchIndex(log, -1) {
		if log[m[4]:m[5]] != "5.03" {
			continue
		}
		options := log[m[6]:m[7]]
		if !strings.Contains(options, "Content-Format:application/dots+cbor") {
			t.Fatalf("5.03 options [%s], want Content-Format application/dots+cbor\n%s", options, log)
		}
		h := libcoapHex.FindStringSubmatch(log[m[1]:])
		if h == nil {
			t.Fatalf("no payload dump after the 5.03\n%s", log)
		}
		b, err := hex.DecodeString(h[1])
		if err != nil {
			t.Fatal(err)
		}
		msg, err := dots.Decode(b)
		if err != nil {
			t.Fatalf("decoding the 5.03 payload %x: %v", b, err)
		}
		if msg.RedirectedSignal == nil || msg.MitigationScope != nil {
			t.Fatalf("5.03 payload %+v: want ietf-dots-signal-channel:redirected-signal alone", msg)
		}
		maxAge := ""
		for _, o := range strings.Split(options, ", ") {
			if v, ok := strings.CutPrefix(o, "Max-Age:"); ok {
				maxAge = v
			}
		}
		return msg.RedirectedSignal, maxAge
	}
	t.Fatalf("no 5.03 logged\n%s", log)
	return nil, ""
}

func wantRedirect(t *testing.T, r coapResult, maxAge string) {
	t.Helper()
	if r.code != "5.03" {
		t.Fatalf("response %s, want 5.03 (diagnostic %q)\n%s", r.code, r.text, r.log)
	}
	rs, got := redirectedSignal(t, r.log)
	if rs.AltServer != "alt-server.example" || !slices.Equal(rs.AltServerRecord, []string{"2001:db8:6401::1", "2001:db8:6401::2"}) {
		t.Fatalf("redirected-signal %+v: want alt-server.example with the Figure 26 addresses", rs)
	}
	if got != maxAge {
		t.Fatalf("5.03 Max-Age %q, want %q", got, maxAge)
	}
}

// fig26 is the redirect of RFC 9132 Figure 26.
func fig26(ttl time.Duration, clients ...string) dotsserver.Redirect {
	return dotsserver.Redirect{AltServer: "alt-server.example",
		AltServerRecord: []netip.Addr{netip.MustParseAddr("2001:db8:6401::1"), netip.MustParseAddr("2001:db8:6401::2")}, TTL: ttl, Clients: clients}
}

// TestRedirectLibcoap: after the operator's redirect, coap-client gets
// 5.03 with the redirected-signal body and the TTL left as Max-Age (RFC
// 9132 §4.6), on /mitigate and /config, over DTLS and TLS; a client the
// redirect does not name, a cleared redirect and one whose TTL ran out
// are served again.
func TestRedirectLibcoap(t *testing.T) {
	requireLibcoap(t)
	bodyFile := fig8File(t)
	for _, scheme := range []string{"coaps", "coaps+tcp"} {
		t.Run(scheme, func(t *testing.T) {
			clock := dotstest.NewClock()
			e := newEnv(t, "127.0.0.1:0", clock.Install)
			alpha := e.dev.Clients["alpha"]
			as := func(name string) []string {
				c := e.dev.Clients[name]
				return []string{"-N", "-c", c.Cert, "-j", c.Key, "-C", e.dev.CAPath}
			}
			put := func(name, cuid string, mid string) coapResult {
				t.Helper()
				args := append([]string{"-m", "put", "-t", "271", "-f", bodyFile}, as(name)...)
				return coapClient(t, append(args, scheme+"://"+e.addr+"/.well-known/dots/mitigate/cuid="+cuid+"/mid="+mid)...)
			}
			udp := scheme == "coaps"
			getConfig := func(name string) coapResult {
				t.Helper()
				return coapClient(t, append(append([]string{"-m", "get"}, as(name)...), scheme+"://"+e.addr+"/.well-known/dots/config")...)
			}

			if err := e.Srv.SetRedirect(fig26(time.Hour, alpha.CUID)); err != nil {
				t.Fatal(err)
			}
			wantRedirect(t, put("alpha", alpha.CUID, "1"), "3600")
			clock.Advance(20 * time.Minute)
			wantRedirect(t, put("alpha", alpha.CUID, "1"), "2400")
			wantRedirect(t, getConfig("alpha"), "2400")
			// beta is not redirected.
			getConfig("beta").want(t, "2.05", udp, true)

			e.Srv.ClearRedirect()
			put("alpha", alpha.CUID, "2").want(t, "2.01", udp, true)

			// A redirect of every client, until its TTL runs out.
			if err := e.Srv.SetRedirect(fig26(10 * time.Minute)); err != nil {
				t.Fatal(err)
			}
			wantRedirect(t, getConfig("beta"), "600")
			clock.Advance(10 * time.Minute)
			getConfig("beta").want(t, "2.05", udp, true)
			if _, _, ok := e.Srv.CurrentRedirect(); ok {
				t.Fatal("the redirect is still in force after its TTL")
			}

			// Until cleared: Max-Age 2^32-1, an infinite TTL.
			if err := e.Srv.SetRedirect(fig26(dotsserver.RedirectForever)); err != nil {
				t.Fatal(err)
			}
			wantRedirect(t, put("alpha", alpha.CUID, "4"), "4294967295")
		})
	}
}

// TestRedirectObserveNotification: an observer (coap-client -s) of a
// redirected client gets the redirect as a 5.03 notification, and its
// registration ends (RFC 7641 §3.2).
func TestRedirectObserveNotification(t *testing.T) {
	requireLibcoap(t)
	e := newEnv(t, "127.0.0.1:0", nil)
	alpha := e.dev.Clients["alpha"]
	cl := e.client(t, "alpha", "dtls")
	expect(t, dots.Created)(cl.Mitigate(ctx(t), 1, scope("2001:db8:6401::1/128", 3600)))
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(c, libcoapClient, "-v", "6", "-s", "4", "-N", "-m", "get", "-c", alpha.Cert, "-j", alpha.Key, "-C", e.dev.CAPath,
		"coaps://"+e.addr+"/.well-known/dots/mitigate/cuid="+alpha.CUID)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "coap-client registered no observation", func() bool {
		_, _, n, _ := e.Srv.SessionState()
		return n == 1
	})
	if err := e.Srv.SetRedirect(fig26(2 * time.Hour)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the observation was not dropped after the 5.03", func() bool {
		_, _, n, _ := e.Srv.SessionState()
		return n == 0
	})
	if err := cmd.Wait(); err != nil {
		t.Fatalf("coap-client: %v\n%s", err, out.String())
	}
	log := out.String()
	var codes []string
	for _, m := range libcoapResponse.FindAllStringSubmatch(log, -1) {
		codes = append(codes, m[1]+" "+m[2])
		if m[2] == "5.03" && !strings.Contains(m[3], "Observe:") {
			t.Errorf("the 5.03 carries no Observe option: [%s]", m[3])
		}
	}
	if !slices.Equal(codes, []string{"NON 2.05", "NON 5.03"}) {
		t.Fatalf("coap-client received %q, want the 2.05 answer and a NON 5.03 notification\n%s", codes, log)
	}
	rs, maxAge := redirectedSignal(t, log)
	if rs.AltServer != "alt-server.example" || len(rs.AltServerRecord) != 2 || maxAge != "7200" {
		t.Fatalf("notification %+v Max-Age %s: want alt-server.example, two addresses, 7200", rs, maxAge)
	}
}

// TestRedirectSessionsOver: with a SessionRedirect, a session that starts
// while the server holds more sessions than the number is redirected;
// the sessions within it are served.
func TestRedirectSessionsOver(t *testing.T) {
	requireLibcoap(t)
	e := newEnv(t, "127.0.0.1:0", func(o *dotsserver.Options) {
		o.SessionRedirect = &dotsserver.SessionRedirect{Over: 1, Redirect: fig26(time.Hour)}
	})
	cl := e.client(t, "alpha", "dtls")
	expect(t, dots.Created)(cl.Mitigate(ctx(t), 1, scope("2001:db8:6401::1/128", 3600)))
	beta := e.dev.Clients["beta"]
	r := coapClient(t, "-m", "get", "-N", "-c", beta.Cert, "-j", beta.Key, "-C", e.dev.CAPath,
		"coaps://"+e.addr+"/.well-known/dots/mitigate/cuid="+beta.CUID)
	wantRedirect(t, r, "3600")
	// The first session is still served.
	expect(t, dots.Created)(cl.Mitigate(ctx(t), 2, scope("2001:db8:6401::2/128", 3600)))
}

func TestRedirectValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    dotsserver.Redirect
		want string // "" valid
	}{
		{"fig26", fig26(time.Hour), ""},
		{"forever", fig26(dotsserver.RedirectForever), ""},
		{"no name", dotsserver.Redirect{TTL: time.Hour}, "mandatory"},
		{"address as name", dotsserver.Redirect{AltServer: "192.0.2.7", TTL: time.Hour}, "is an address"},
		{"bad label", dotsserver.Redirect{AltServer: "a..example", TTL: time.Hour}, "not a domain name"},
		{"ttl zero", dotsserver.Redirect{AltServer: "alt.example", TTL: 0}, "whole seconds"},
		{"ttl fraction", dotsserver.Redirect{AltServer: "alt.example", TTL: 1500 * time.Millisecond}, "whole seconds"},
		{"ttl too long", dotsserver.Redirect{AltServer: "alt.example", TTL: dotsserver.RedirectForever + time.Second}, "whole seconds"},
		{"empty cuid", dotsserver.Redirect{AltServer: "alt.example", TTL: time.Hour, Clients: []string{""}}, "empty cuid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.r.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Validate: %v, want an error with %q", err, tc.want)
			}
		})
	}
}
