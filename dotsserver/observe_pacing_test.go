package dotsserver_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	udpCoder "github.com/plgd-dev/go-coap/v3/udp/coder"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsclient"
	"github.com/levee-dots/levee/dotsserver/dotstest"
)

// sendRST answers the server's message mid with an RST (RFC 7252 §4.2).
func (rc *rawConn) sendRST(mid int32) {
	rc.t.Helper()
	b, err := encode(udpCoder.DefaultCoder, message.Message{Type: message.Reset, Code: codes.Empty, MessageID: mid})
	if err == nil {
		_, err = rc.dc.Write(b)
	}
	if err != nil {
		rc.t.Fatalf("send RST: %v", err)
	}
}

// note returns the next message carrying tok within wait, skipping the
// server's heartbeats and anything else; ok is false when none came.
func (rc *rawConn) note(tok message.Token, wait time.Duration) (message.Message, bool) {
	deadline := time.Now().Add(wait)
	for {
		m, err := rc.read(deadline)
		if err != nil {
			return m, false
		}
		if string(m.Token) == string(tok) && m.Code >= codes.Created && m.Code < codes.CSM {
			return m, true
		}
	}
}

// register sends a GET with Observe 0 and checks it was registered.
func (rc *rawConn) register(t *testing.T, tok message.Token, segs ...string) uint32 {
	t.Helper()
	r := rc.roundTrip(t, rc.get(tok, 0, segs...))
	seq, ok := optUint(r, message.Observe)
	if r.Code != codes.Content || !ok {
		t.Fatalf("GET %v with Observe 0: %v %q, want 2.05 with Observe", segs, r.Code, diagOf(r))
	}
	return seq
}

func putHB(t *testing.T, c *dotsclient.Client, sid uint32, hb uint16, want dots.Code) {
	t.Helper()
	sc := &dots.SignalConfig{MitigatingConfig: &dots.ConfigSet{HeartbeatInterval: &dots.Uint16Param{CurrentValue: dots.Ptr(hb)}}}
	expect(t, want)(c.PutConfig(ctx(t), sid, sc))
}

// TestObserveRST: an RST in answer to a notification cancels that
// observation (RFC 7641 §3.6), on /config and on /mitigate; an RST that
// answers no notification cancels nothing.
func TestObserveRST(t *testing.T) {
	clk := dotstest.NewClock()
	e := newEnv(t, "127.0.0.1:0", clk.Install)
	for i, tc := range []struct {
		name   string
		segs   func(cuid string) []string
		change func(t *testing.T, c *dotsclient.Client, n int)
	}{
		{"config", func(string) []string { return []string{"config"} },
			func(t *testing.T, c *dotsclient.Client, n int) {
				putHB(t, c, uint32(100+n), uint16(20+n), dots.Created)
			}},
		{"mitigate", func(cuid string) []string { return []string{"mitigate", "cuid=" + cuid} },
			func(t *testing.T, c *dotsclient.Client, n int) {
				expect(t, dots.Created)(c.Mitigate(ctx(t), uint32(200+n), scope(fmt.Sprintf("203.0.113.%d/32", 100+n), 3600)))
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := e.client(t, "alpha", "dtls")
			tc.change(t, c, 10*i) // /mitigate needs a request to observe
			rc := dialRaw(t, e, "alpha", "dtls")
			tok := rc.token()
			rc.register(t, tok, tc.segs(rc.cuid)...)
			waitObservers(t, e, 1)

			tc.change(t, c, 10*i+1)
			n, ok := rc.note(tok, 5*time.Second)
			if !ok || n.Code != codes.Content || n.Type != message.NonConfirmable {
				t.Fatalf("notification after a change: %v %v (received %v), want a NON 2.05", n.Type, n.Code, ok)
			}
			rc.sendRST(n.MessageID + 1000) // answers nothing the server sent
			tc.change(t, c, 10*i+2)
			clk.Advance(3 * time.Second) // past the pacing gap
			n, ok = rc.note(tok, 5*time.Second)
			if !ok || n.Code != codes.Content {
				t.Fatalf("after an unrelated RST: %v (received %v), want the notification of the next change", n.Code, ok)
			}

			rc.sendRST(n.MessageID)
			waitObservers(t, e, 0)
			tc.change(t, c, 10*i+3)
			clk.Advance(3 * time.Second)
			if n, ok := rc.note(tok, 500*time.Millisecond); ok {
				t.Fatalf("after the RST a notification came: %v %v", n.Type, n.Code)
			}
		})
	}
}

// TestObservePacing: over DTLS, with no RTT estimate, one notification per
// 3 s per observer (RFC 7641 §4.5.1); the changes in between are not lost
// but coalesce into one notification of the latest state.
func TestObservePacing(t *testing.T) {
	clk := dotstest.NewClock()
	e := newEnv(t, "127.0.0.1:0", clk.Install)
	c := e.client(t, "alpha", "dtls")
	rc := dialRaw(t, e, "alpha", "dtls")
	tok := rc.token()
	seq := rc.register(t, tok, "config")
	hbOf := func(n message.Message) uint16 {
		t.Helper()
		if n.Code != codes.Content {
			t.Fatalf("notification %v %q, want 2.05", n.Code, diagOf(n))
		}
		got, ok := optUint(n, message.Observe)
		if !ok || got <= seq {
			t.Fatalf("notification Observe %d (present %v), want above %d", got, ok, seq)
		}
		seq = got
		return mitigatingHB(t, n.Payload)
	}

	putHB(t, c, 1, 41, dots.Created)
	n, ok := rc.note(tok, 5*time.Second)
	if !ok {
		t.Fatal("no notification of the first change")
	}
	if hb := hbOf(n); hb != 41 {
		t.Fatalf("first notification: heartbeat-interval %d, want 41", hb)
	}

	putHB(t, c, 2, 42, dots.Created)
	putHB(t, c, 3, 43, dots.Created)
	if n, ok := rc.note(tok, 500*time.Millisecond); ok {
		t.Fatalf("a notification %v within 3 s of the previous one", n.Code)
	}
	clk.Advance(2 * time.Second)
	if n, ok := rc.note(tok, 500*time.Millisecond); ok {
		t.Fatalf("a notification %v 2 s after the previous one", n.Code)
	}
	clk.Advance(time.Second)
	n, ok = rc.note(tok, 5*time.Second)
	if !ok {
		t.Fatal("the held-back changes were never notified")
	}
	if hb := hbOf(n); hb != 43 {
		t.Fatalf("held-back notification: heartbeat-interval %d, want 43 (the latest state)", hb)
	}
	clk.Advance(3 * time.Second)
	if n, ok := rc.note(tok, 500*time.Millisecond); ok {
		t.Fatalf("a second notification %v for the coalesced changes", n.Code)
	}
}

// TestObserveEndDiagnostic: the 4.04 that ends the observation of a
// request that is gone carries a diagnostic, like every 4.xx (RFC 9132
// §4.4.2.1, RFC 7641 §3.2), and the registration is dropped.
func TestObserveEndDiagnostic(t *testing.T) {
	clk := dotstest.NewClock()
	e := newEnv(t, "127.0.0.1:0", clk.Install)
	c := e.client(t, "alpha", "dtls")
	expect(t, dots.Created)(c.Mitigate(ctx(t), 40, scope("203.0.113.40/32", 3600)))
	rc := dialRaw(t, e, "alpha", "dtls")
	tok := rc.token()
	rc.register(t, tok, "mitigate", "cuid="+rc.cuid, "mid=40")
	expect(t, dots.Deleted)(c.Withdraw(ctx(t), 40))
	clk.Advance(121 * time.Second) // active-but-terminating ends: the request vanishes
	for try := 0; ; try++ {
		n, ok := rc.note(tok, time.Second)
		if ok && n.Code == codes.Content {
			continue // the withdrawn and terminated states
		}
		if ok {
			if n.Code != codes.NotFound {
				t.Fatalf("end of observation %v %q, want 4.04", n.Code, diagOf(n))
			}
			if cf, err := n.Options.ContentFormat(); err != nil || cf != message.TextPlain || diagOf(n) == "" {
				t.Fatalf("4.04 notification Content-Format %v (%v), payload %q: want a text/plain diagnostic", cf, err, diagOf(n))
			}
			break
		}
		if try == 5 {
			t.Fatal("no 4.04 ended the observation")
		}
		clk.Advance(3 * time.Second) // the 4.04 may wait for the pacing gap
	}
	waitObservers(t, e, 0)
}

// TestObserveTLSUnpaced: over TLS, TCP's congestion control paces, so
// notifications of changes in a row leave at once, one per change.
func TestObserveTLSUnpaced(t *testing.T) {
	clk := dotstest.NewClock()
	e := newEnv(t, "127.0.0.1:0", clk.Install)
	c := e.client(t, "alpha", "dtls")
	rc := dialRaw(t, e, "alpha", "tls")
	tok := rc.token()
	rc.register(t, tok, "config")
	for i, hb := range []uint16{51, 52, 53} {
		putHB(t, c, uint32(1+i), hb, dots.Created)
		n, ok := rc.note(tok, 5*time.Second)
		if !ok {
			t.Fatalf("no notification of change %d", i+1)
		}
		if got := mitigatingHB(t, n.Payload); got != hb {
			t.Fatalf("notification %d: heartbeat-interval %d, want %d", i+1, got, hb)
		}
	}
}
