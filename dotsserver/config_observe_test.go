package dotsserver_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsserver/dotstest"
)

// configBody writes a PUT /config body setting the mitigating-config
// heartbeat-interval (and, with bodySID, a sid in the body) to a file for
// coap-client's -f.
func configBody(t *testing.T, hb uint16, bodySID *uint32) string {
	t.Helper()
	m := &dots.Message{SignalConfig: &dots.SignalConfig{SID: bodySID,
		MitigatingConfig: &dots.ConfigSet{HeartbeatInterval: &dots.Uint16Param{CurrentValue: dots.Ptr(hb)}}}}
	b, err := dots.Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "config.cbor")
	if err := os.WriteFile(f, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// mitigatingHB is the current mitigating-config heartbeat-interval of a
// GET /config answer.
func mitigatingHB(t *testing.T, payload []byte) uint16 {
	t.Helper()
	m, err := dots.Decode(payload)
	if err != nil {
		t.Fatalf("decoding the /config payload %x: %v", payload, err)
	}
	if m.SignalConfig == nil || m.SignalConfig.MitigatingConfig == nil || m.SignalConfig.MitigatingConfig.HeartbeatInterval == nil ||
		m.SignalConfig.MitigatingConfig.HeartbeatInterval.CurrentValue == nil {
		t.Fatalf("/config payload %+v: no mitigating-config heartbeat-interval", m)
	}
	return *m.SignalConfig.MitigatingConfig.HeartbeatInterval.CurrentValue
}

// TestConfigSIDReplay: a foreign client (libcoap) sets sid 124, then a PUT
// with sid 123 arrives late (or replayed): it is refused with a diagnostic
// and the configuration of sid 124 stays (RFC 9132 §4.5.2, sids increase
// monotonically). A sid in the body is refused too: it belongs in the
// Uri-Path.
func TestConfigSIDReplay(t *testing.T) {
	requireLibcoap(t)
	e := newEnv(t, "127.0.0.1:0", nil)
	alpha := e.dev.Clients["alpha"]
	for _, scheme := range []string{"coaps", "coaps+tcp"} {
		t.Run(scheme, func(t *testing.T) {
			udp := scheme == "coaps"
			tlsArgs := []string{"-c", alpha.Cert, "-j", alpha.Key, "-C", e.dev.CAPath}
			uri := func(sid string) string { return scheme + "://" + e.addr + "/.well-known/dots/config" + sid }
			run := func(u string, args ...string) coapResult {
				t.Helper()
				return coapClient(t, append(append(args, tlsArgs...), u)...)
			}
			// Each subtest starts from the defaults.
			run(uri(""), "-m", "delete").want(t, "2.02", udp, false)

			run(uri("/sid=124"), "-m", "put", "-t", "271", "-f", configBody(t, 45, nil)).want(t, "2.01", udp, false)
			r := run(uri("/sid=123"), "-m", "put", "-t", "271", "-f", configBody(t, 90, nil)).want(t, "4.00", udp, false)
			if !strings.Contains(r.options, "Content-Format:text/plain") || !strings.Contains(r.text, "lower than the current sid 124") {
				t.Fatalf("stale sid refused with options [%s] diagnostic %q: want a text/plain diagnostic naming sid 124", r.options, r.text)
			}
			r = run(uri("/sid=125"), "-m", "put", "-t", "271", "-f", configBody(t, 120, dots.Ptr(uint32(125)))).want(t, "4.00", udp, false)
			if !strings.Contains(r.text, "Uri-Path") {
				t.Fatalf("sid in the body refused with diagnostic %q: want it to name the Uri-Path", r.text)
			}

			r = run(uri(""), "-m", "get").want(t, "2.05", udp, false)
			if hb := mitigatingHB(t, r.payload); hb != 45 {
				t.Fatalf("after the stale PUT, mitigating heartbeat-interval %d, want 45 (sid 124's)", hb)
			}
			run(uri("/sid=124"), "-m", "get").want(t, "2.05", udp, false)
			run(uri("/sid=123"), "-m", "get").want(t, "4.04", udp, false)
		})
	}
}

// TestConfigObserveLibcoap: libcoap observes /config (GET with Observe 0,
// coap-client -s); a PUT /config from another session of the same client
// reaches it as a notification, Non-confirmable over DTLS (RFC 9132
// §4.5.2, §4.4.2.1). The server's clock stands still, so no periodic
// notification can stand in for it.
func TestConfigObserveLibcoap(t *testing.T) {
	requireLibcoap(t)
	clk := dotstest.NewClock()
	e := newEnv(t, "127.0.0.1:0", clk.Install)
	alpha := e.dev.Clients["alpha"]
	for i, tc := range []struct{ scheme, transport string }{{"coaps", "dtls"}, {"coaps+tcp", "tls"}} {
		t.Run(tc.transport, func(t *testing.T) {
			waitObservers(t, e, 0) // the previous coap-client's session is gone
			c := e.client(t, "alpha", tc.transport)
			expect(t, dots.Deleted)(c.DeleteConfig(ctx(t)))
			done := make(chan coapResult, 1)
			go func() {
				done <- coapClient(t, "-m", "get", "-s", "4", "-c", alpha.Cert, "-j", alpha.Key, "-C", e.dev.CAPath,
					tc.scheme+"://"+e.addr+"/.well-known/dots/config")
			}()
			waitObservers(t, e, 1)
			hb := uint16(40 + i)
			sc := &dots.SignalConfig{MitigatingConfig: &dots.ConfigSet{HeartbeatInterval: &dots.Uint16Param{CurrentValue: dots.Ptr(hb)}}}
			expect(t, dots.Created)(c.PutConfig(ctx(t), uint32(10+i), sc))
			r := <-done
			all := libcoapResponse.FindAllStringSubmatch(r.log, -1)
			var contents int
			for _, m := range all {
				if m[2] != "2.05" {
					t.Fatalf("coap-client received %s, want only 2.05\n%s", m[2], r.log)
				}
				contents++
				if contents == 2 && tc.transport == "dtls" && m[1] != "NON" {
					t.Errorf("notification has type %s, want NON", m[1])
				}
			}
			if contents < 2 {
				t.Fatalf("coap-client received %d 2.05 (the answer and no notification), want the answer and a notification\n%s", contents, r.log)
			}
			// -o holds the payloads received one after the other: the
			// answer's (the defaults), then the notification's.
			first, last := splitCBOR(t, r.payload)
			if got := mitigatingHB(t, first); got != 30 {
				t.Fatalf("first answer shows mitigating heartbeat-interval %d, want the default 30", got)
			}
			if got := mitigatingHB(t, last); got != hb {
				t.Fatalf("notification shows mitigating heartbeat-interval %d, want %d (the PUT's)", got, hb)
			}
		})
	}
}

// splitCBOR splits two DOTS bodies written one after the other.
func splitCBOR(t *testing.T, b []byte) (first, second []byte) {
	t.Helper()
	for k := 1; k < len(b); k++ {
		if _, err := dots.Decode(b[:k]); err != nil {
			continue
		}
		if _, err := dots.Decode(b[k:]); err == nil {
			return b[:k], b[k:]
		}
	}
	t.Fatalf("payloads %x: not two DOTS bodies", b)
	return nil, nil
}

// waitObservers waits until the server holds n Observe registrations.
func waitObservers(t *testing.T, e *env, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, _, obs, _ := e.Srv.SessionState()
		if obs == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server holds %d Observe registrations, want %d", obs, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestConfigObserveCancel: an observation of /config ends with a GET with
// Observe 1 (RFC 7641 §3.6) and with its session, and no notification
// follows a change after either.
func TestConfigObserveCancel(t *testing.T) {
	clk := dotstest.NewClock()
	e := newEnv(t, "127.0.0.1:0", clk.Install)
	for i, tc := range []struct {
		name, transport string
		cancel          func(t *testing.T, rc *rawConn, tok message.Token)
	}{
		{"Observe 1 over DTLS", "dtls", cancelObserve},
		{"Observe 1 over TLS", "tls", cancelObserve},
		{"session end over DTLS", "dtls", func(_ *testing.T, rc *rawConn, _ message.Token) { rc.close() }},
		{"session end over TLS", "tls", func(_ *testing.T, rc *rawConn, _ message.Token) { rc.close() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := e.client(t, "alpha", "dtls")
			rc := dialRaw(t, e, "alpha", tc.transport)
			tok := rc.token()
			rc.register(t, tok, "config")
			waitObservers(t, e, 1)
			tc.cancel(t, rc, tok)
			waitObservers(t, e, 0)
			putHB(t, c, uint32(300+i), uint16(25+i), dots.Created)
			clk.Advance(3 * time.Second)
			if n, ok := rc.note(tok, 300*time.Millisecond); ok {
				t.Fatalf("after the cancellation a notification came: %v", n.Code)
			}
		})
	}
}

func cancelObserve(t *testing.T, rc *rawConn, tok message.Token) {
	t.Helper()
	r := rc.roundTrip(t, rc.get(tok, 1, "config"))
	if _, ok := optUint(r, message.Observe); r.Code != codes.Content || ok {
		t.Fatalf("GET /config with Observe 1: %v (Observe present %v), want 2.05 without Observe", r.Code, ok)
	}
}
