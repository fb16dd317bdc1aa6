package session_test

import (
	"testing"
	"time"

	"github.com/levee-dots/levee/dotsserver/session"
)

// t0 is the synthetic clock's origin; nothing here sleeps.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func at(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

type step struct {
	t  float64
	op string // "due" (expects send/lost), "rx" (any traffic), "hb" (a heartbeat)
	// for "due":
	send, lost bool
}

func due(t float64, send, lost bool) step { return step{t: t, op: "due", send: send, lost: lost} }
func rx(t float64) step                   { return step{t: t, op: "rx"} }
func hb(t float64) step                   { return step{t: t, op: "hb"} }

// RFC 9132 §4.7: heartbeats go out every heartbeat-interval; the peer is
// lost only after missing-hb-allowed heartbeats with nothing at all
// received; any traffic from the peer resets the count.
func TestLivenessDue(t *testing.T) {
	v := session.Values{HeartbeatInterval: 30, MissingHBAllowed: 3}
	for _, tc := range []struct {
		name  string
		v     session.Values
		steps []step
	}{
		{name: "silent peer is lost after missing-hb-allowed intervals", v: v, steps: []step{
			due(0, true, false), due(10, false, false), due(29.9, false, false),
			due(30, true, false), due(45, false, false), due(60, true, false),
			due(89.9, false, false), due(90, false, true), due(95, false, true), due(120, false, true),
		}},
		{name: "answered heartbeats keep the peer", v: v, steps: []step{
			due(0, true, false), hb(1), due(30, true, false), hb(31), due(60, true, false), hb(61),
			due(90, true, false), hb(91), due(120, true, false), hb(121), due(150, true, false), hb(151),
			due(180, true, false), due(210, true, false), due(240, true, false),
		}},
		{name: "any traffic counts, not only heartbeats", v: v, steps: []step{
			due(0, true, false), rx(5), due(30, true, false), rx(35), due(60, true, false), rx(65),
			due(90, true, false), rx(95), due(120, true, false), rx(125), due(150, true, false),
		}},
		{name: "traffic resets the count", v: v, steps: []step{
			due(0, true, false), due(30, true, false), due(60, true, false), rx(61),
			due(90, true, false), due(120, true, false), due(150, true, false), due(179, false, false),
			due(180, false, true),
		}},
		{name: "traffic after loss revives", v: v, steps: []step{
			due(0, true, false), due(30, true, false), due(60, true, false), due(90, false, true),
			hb(100), due(100, true, false), due(130, true, false), due(160, true, false), due(190, false, true),
		}},
		{name: "missing-hb-allowed 1", v: session.Values{HeartbeatInterval: 15, MissingHBAllowed: 1}, steps: []step{
			due(0, true, false), due(14, false, false), due(15, false, true),
		}},
		{name: "traffic before the first heartbeat does not answer it", v: v, steps: []step{
			rx(-5), due(0, true, false), due(30, true, false), due(60, true, false), due(90, false, true),
		}},
		{name: "heartbeat-interval 0 disables heartbeats and loss", v: session.Values{HeartbeatInterval: 0, MissingHBAllowed: 3}, steps: []step{
			due(0, false, false), due(30, false, false), due(1e6, false, false),
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var l session.Liveness
			for i, s := range tc.steps {
				switch s.op {
				case "rx":
					l.Received(at(s.t), false)
				case "hb":
					l.Received(at(s.t), true)
				case "due":
					send, lost := l.Due(at(s.t), tc.v)
					if send != s.send || lost != s.lost {
						t.Fatalf("step %d: Due(t0+%vs) = send %v lost %v, want %v %v (state %+v)", i, s.t, send, lost, s.send, s.lost, l)
					}
					if send && !l.LastHBSent.Equal(at(s.t)) {
						t.Fatalf("step %d: LastHBSent = %v", i, l.LastHBSent)
					}
				}
			}
		})
	}
}

func TestLivenessReceived(t *testing.T) {
	var l session.Liveness
	l.Unanswered = 4
	l.Received(at(5), false)
	if !l.LastRx.Equal(at(5)) || l.Unanswered != 0 || !l.LastHBRx.IsZero() {
		t.Errorf("after traffic: %+v", l)
	}
	l.Received(at(6), true)
	if !l.LastRx.Equal(at(6)) || !l.LastHBRx.Equal(at(6)) {
		t.Errorf("after heartbeat: %+v", l)
	}
}

// RFC 9132 §4.7: peer-hb-status is true when a heartbeat arrived from the
// peer within the last two heartbeat intervals.
func TestPeerHBStatus(t *testing.T) {
	v := session.Values{HeartbeatInterval: 30, MissingHBAllowed: 3}
	for _, tc := range []struct {
		name  string
		setup func(l *session.Liveness)
		now   float64
		v     session.Values
		want  bool
	}{
		{"never heard", func(l *session.Liveness) {}, 0, v, false},
		{"only other traffic", func(l *session.Liveness) { l.Received(at(0), false) }, 1, v, false},
		{"just now", func(l *session.Liveness) { l.Received(at(0), true) }, 0, v, true},
		{"one interval ago", func(l *session.Liveness) { l.Received(at(0), true) }, 30, v, true},
		{"exactly two intervals ago", func(l *session.Liveness) { l.Received(at(0), true) }, 60, v, true},
		{"just over two intervals", func(l *session.Liveness) { l.Received(at(0), true) }, 60.001, v, false},
		{"later traffic does not refresh it", func(l *session.Liveness) { l.Received(at(0), true); l.Received(at(50), false) }, 61, v, false},
		{"the latest heartbeat counts", func(l *session.Liveness) { l.Received(at(0), true); l.Received(at(50), true) }, 110, v, true},
		{"longer interval", func(l *session.Liveness) { l.Received(at(0), true) }, 400, session.Values{HeartbeatInterval: 240}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var l session.Liveness
			tc.setup(&l)
			if got := l.PeerHBStatus(at(tc.now), tc.v); got != tc.want {
				t.Errorf("PeerHBStatus(t0+%vs) = %v, want %v", tc.now, got, tc.want)
			}
		})
	}
}
