package session_test

import (
	"testing"
	"time"

	"github.com/levee-dots/levee/dotsserver/session"
)

// t0 is the synthetic clock's origin; nothing here sleeps.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func at(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

// RFC 9132 §4.7: a peer is lost only when nothing at all arrived for
// missing-hb-allowed heartbeat intervals; heartbeat-interval 0 disables it.
func TestLost(t *testing.T) {
	v := session.Values{HeartbeatInterval: 30, MissingHBAllowed: 3}
	for _, tc := range []struct {
		name   string
		lastRx float64
		now    float64
		v      session.Values
		want   bool
	}{
		{"just heard", 0, 1, v, false},
		{"exactly the window", 0, 90, v, false},
		{"past the window", 0, 90.1, v, true},
		{"traffic resets", 60, 120, v, false},
		{"heartbeats off", 0, 10000, session.Values{HeartbeatInterval: 0, MissingHBAllowed: 3}, false},
		{"missing 0 counts as 1", 0, 30.1, session.Values{HeartbeatInterval: 30}, true},
		{"defaults: 15 x 30 s", 0, 451, session.Defaults, true},
		{"defaults, not yet", 0, 450, session.Defaults, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := session.Lost(at(tc.lastRx), at(tc.now), tc.v); got != tc.want {
				t.Fatalf("Lost(rx %v, now %v) = %v, want %v", tc.lastRx, tc.now, got, tc.want)
			}
		})
	}
}

func TestHeartbeatDue(t *testing.T) {
	v := session.Values{HeartbeatInterval: 30, MissingHBAllowed: 3}
	for _, tc := range []struct {
		name      string
		last, now float64
		v         session.Values
		want      bool
	}{
		{"never sent", -1e6, 0, v, true},
		{"too early", 0, 29.9, v, false},
		{"on time", 0, 30, v, true},
		{"off", 0, 1000, session.Values{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := session.HeartbeatDue(at(tc.last), at(tc.now), tc.v); got != tc.want {
				t.Fatalf("HeartbeatDue = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestPeerHBStatus(t *testing.T) {
	v := session.Values{HeartbeatInterval: 30}
	if session.PeerHBStatus(time.Time{}, at(0), v) {
		t.Fatal("true before any heartbeat")
	}
	if !session.PeerHBStatus(at(0), at(60), v) {
		t.Fatal("false within two intervals")
	}
	if session.PeerHBStatus(at(0), at(60.1), v) {
		t.Fatal("true after two intervals")
	}
}
