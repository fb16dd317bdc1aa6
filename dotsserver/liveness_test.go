package dotsserver_test

import (
	"testing"
	"time"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsclient"
	"github.com/levee-dots/levee/dotsserver/dotstest"
)

func TestPreconfiguredActivatedOnSignalLoss(t *testing.T) {
	clk := dotstest.NewClock()
	e := newEnv(t, "127.0.0.1:0", clk.Install)
	c := e.client(t, "alpha", "dtls")
	pre := scope("203.0.113.20/32", 3600)
	pre.TriggerMitigation = dots.Ptr(false)
	expect(t, dots.Created)(c.Mitigate(ctx(t), 10, pre))
	sc := expect(t, dots.Content)(c.Status(ctx(t), dots.Ptr[uint32](10), "")).Body.MitigationScope.Scope[0]
	if *sc.Status != dots.StatusSignalLoss || sc.MitigationStart != nil {
		t.Fatalf("preconfigured request: status %s, start %v; want attack-mitigation-signal-loss without start", sc.Status, sc.MitigationStart)
	}
	c.Close()
	// Defaults: heartbeat-interval 30 s, missing-hb-allowed 15.
	clk.Advance(30 * 15 * time.Second)
	c2 := e.client(t, "alpha", "tls")
	sc = expect(t, dots.Content)(c2.Status(ctx(t), dots.Ptr[uint32](10), "")).Body.MitigationScope.Scope[0]
	if *sc.Status != dots.StatusSignalLoss {
		t.Fatalf("activated after exactly missing-hb-allowed intervals: status %s", sc.Status)
	}
	c2.Close()
	clk.Advance(30*15*time.Second + time.Second)
	c3 := e.client(t, "alpha", "dtls")
	sc = expect(t, dots.Content)(c3.Status(ctx(t), dots.Ptr[uint32](10), "")).Body.MitigationScope.Scope[0]
	if *sc.Status != dots.StatusInProgress || sc.MitigationStart == nil {
		t.Fatalf("after signal loss: status %s start %v, want attack-mitigation-in-progress with start", sc.Status, sc.MitigationStart)
	}
	// Recovery of the signal channel does not stop it (RFC 9132 §4.4.4).
	clk.Advance(time.Second)
	sc = expect(t, dots.Content)(c3.Status(ctx(t), dots.Ptr[uint32](10), "")).Body.MitigationScope.Scope[0]
	if *sc.Status != dots.StatusInProgress {
		t.Fatalf("after reconnect: status %s", sc.Status)
	}
}

func TestHeartbeatsBothWays(t *testing.T) {
	clk := dotstest.NewClock()
	e := newEnv(t, "127.0.0.1:0", clk.Install)
	got := make(chan bool, 8)
	c, err := dotsclient.Dial(ctx(t), dotsclient.Config{Servers: []string{e.addr}, Certificate: e.ClientCert(t, "alpha"), RootCAs: e.roots,
		Transport: "dtls", OnHeartbeat: func(status bool) { got <- status }})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The server learns the session on the first request.
	expect(t, dots.Content)(c.GetConfig(ctx(t), nil))
	clk.Advance(30 * time.Second)
	if s := waitHB(t, got); s {
		t.Fatal("peer-hb-status true before the client sent any heartbeat")
	}
	expect(t, dots.Changed)(c.Heartbeat(ctx(t), true))
	clk.Advance(30 * time.Second)
	if s := waitHB(t, got); !s {
		t.Fatal("peer-hb-status false although the client sent a heartbeat within two intervals")
	}
	// A heartbeat with extra Uri-Path parameters is refused.
	r, err := c.Status(ctx(t), nil, "")
	if err != nil || r.Code != dots.NotFound {
		t.Fatalf("GET with no mitigations: %v %v", r, err)
	}
}

func waitHB(t *testing.T, got <-chan bool) bool {
	t.Helper()
	select {
	case s := <-got:
		return s
	case <-time.After(5 * time.Second):
		t.Fatal("no heartbeat from the server")
	}
	return false
}

func TestObserveNotifications(t *testing.T) {
	clk := dotstest.NewClock()
	e := newEnv(t, "127.0.0.1:0", clk.Install)
	for _, transport := range []string{"dtls", "tls"} {
		t.Run(transport, func(t *testing.T) {
			c := e.client(t, "alpha", transport)
			mid := uint32(20)
			if transport == "tls" {
				mid = 21
			}
			target := map[uint32]string{20: "203.0.113.30/32", 21: "203.0.113.31/32"}[mid]
			expect(t, dots.Created)(c.Mitigate(ctx(t), mid, scope(target, 3600)))
			notes := make(chan *dotsclient.Response, 16)
			cancel, err := c.Observe(ctx(t), &mid, "", func(r *dotsclient.Response) { notes <- r })
			if err != nil {
				t.Fatal(err)
			}
			defer cancel()
			next := func(what string) *dotsclient.Response {
				t.Helper()
				select {
				case r := <-notes:
					return r
				case <-time.After(5 * time.Second):
					t.Fatalf("no notification: %s", what)
				}
				return nil
			}
			step := 0
			status := func(r *dotsclient.Response) dots.Status {
				t.Helper()
				step++
				if r.Code != dots.Content {
					t.Fatalf("notification %d: %s %s", step, r.Code, r.Diag)
				}
				return *r.Body.MitigationScope.Scope[0].Status
			}
			// until skips repeats of the previous state (a change made just
			// before the registration, or a periodic notification, may repeat it).
			until := func(want, prev dots.Status, what string) {
				t.Helper()
				for {
					got := status(next(what))
					if got == want {
						return
					}
					if got != prev {
						t.Fatalf("%s: status %s, want %s", what, got, want)
					}
				}
			}
			until(dots.StatusInProgress, 0, "first answer")
			clk.Advance(61 * time.Second)
			until(dots.StatusInProgress, 0, "periodic")
			expect(t, dots.Deleted)(c.Withdraw(ctx(t), mid))
			// Over DTLS one notification per 3 s: the change waits for the
			// gap after the periodic one (RFC 7641 §4.5.1).
			clk.Advance(3 * time.Second)
			until(dots.StatusClientWithdrawn, dots.StatusInProgress, "after DELETE")
			clk.Advance(121 * time.Second)
			until(dots.StatusTerminated, dots.StatusClientWithdrawn, "end of active-but-terminating")
			clk.Advance(3 * time.Second)
			if r := next("end of observation"); r.Code != dots.NotFound {
				t.Fatalf("after the request vanished: %s, want 4.04", r.Code)
			}
		})
	}
}
