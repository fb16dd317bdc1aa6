package main

import (
	"strings"
	"testing"
	"time"

	"github.com/levee-dots/levee/dotsserver"
	"github.com/levee-dots/levee/dotsserver/dotstest"
	"github.com/levee-dots/levee/dotsserver/session"
)

// TestAgentKeepsSessionDuringMitigation: when heartbeats go unanswered
// while the client has an active mitigation, the agent does not declare
// the session lost (RFC 9132 §4.7): it keeps heartbeating on it, opens a
// parallel session (over TLS here, UDP being blocked) and moves over once
// that one is up; commands then go over the new session.
func TestAgentKeepsSessionDuringMitigation(t *testing.T) {
	ranges := session.DefaultRanges
	ranges.Min.HeartbeatInterval, ranges.Min.MissingHBAllowed = 1, 1
	e := newCtlEnvWith(t, dotstest.Options{Mutate: func(o *dotsserver.Options) { o.Ranges = ranges }})
	f := newUDPFront(t, e.addr)
	f.open.Store(true)
	e.useServers(t, f.addr)
	e.ok(t, "session", "set", "--sid", "5", "--heartbeat-interval", "1", "--missing-hb-allowed", "2")
	a := startAgent(t, e)
	contains(t, "agent output", a.out.String(), "session up over dtls to "+f.addr)
	contains(t, "mitigate", e.ok(t, "mitigate", "--target", "203.0.113.25/32"), "mid 1 created")
	waitWithin(t, "mitigating-config", a.out, "heartbeat every 1s (mitigating-config)", 5*time.Second)

	f.open.Store(false) // the client's datagrams no longer get through
	waitWithin(t, "the move", a.out, "moved to a parallel session over tls to "+f.addr, 15*time.Second)
	// The server may close the old session first, having heard nothing
	// from the client for missing-hb-allowed intervals.
	if s := a.errOut.String(); !strings.Contains(s, "2 heartbeats unanswered during a mitigation: keeping the session") &&
		!strings.Contains(s, "the session was closed during a mitigation: opening a new one at once") {
		t.Errorf("the agent did not say why it opened a parallel session:\n%s", s)
	}
	if s := a.errOut.String(); strings.Contains(s, "session lost") || strings.Contains(s, "reconnecting") {
		t.Errorf("the agent gave the session up during a mitigation:\n%s", s)
	}
	contains(t, "status over the new session", e.ok(t, "status", "1"), "203.0.113.25/32")
	if n := strings.Count(a.out.String(), "served status"); n != 1 {
		t.Errorf("the agent served %d status commands, want 1:\n%s", n, a.out.String())
	}
}

// TestAgentTLSWaitsHeartbeatInterval: over TLS, where missing-hb-allowed
// is not negotiated, the agent waits heartbeat-interval (here 7 s, more
// than the 5 s a DTLS heartbeat waits) for the answer of a heartbeat, and
// then, no mitigation being active, concludes that the session is lost
// (RFC 9132 §4.7).
func TestAgentTLSWaitsHeartbeatInterval(t *testing.T) {
	ranges := session.DefaultRanges
	ranges.Min.HeartbeatInterval = 1
	e := newCtlEnvWith(t, dotstest.Options{Mutate: func(o *dotsserver.Options) { o.Ranges = ranges }})
	f := newUDPFront(t, e.addr)
	e.useServers(t, f.addr)
	e.ok(t, "session", "set", "--sid", "5", "--idle-heartbeat-interval", "7", "--idle-missing-hb-allowed", "15")
	a := startAgent(t, e)
	contains(t, "agent output", a.out.String(), "session up over tls to "+f.addr, "heartbeat every 7s (idle-config)")
	stalled := time.Now()
	f.tcpStalled.Store(true)
	waitWithin(t, "the loss", a.errOut, "1 heartbeats unanswered: session lost", 20*time.Second)
	if d := time.Since(stalled); d < 7*time.Second {
		t.Errorf("the session was declared lost %s after TCP stalled, want at least the heartbeat interval (7s)", d.Round(time.Millisecond))
	}
}
