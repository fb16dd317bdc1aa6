package dotsserver

import (
	"time"

	"github.com/levee-dots/levee/dotsserver/session"
)

// heartbeatGrace is how far past a heartbeat interval a session may be
// silent before a newer session of the same client may take its place.
const heartbeatGrace = 5 * time.Second

// replaceableLocked returns, for a client at Limits.MaxSessionsPerClient,
// its session that has been silent the longest, if that one has missed a
// heartbeat (nothing from it for one heartbeat interval and
// heartbeatGrace): a client that starts a new session while an old one
// has gone quiet (a command killed mid-way, an address that changed, a
// reboot) is the same client moving on, and under an attack it would
// otherwise be locked out until the old sessions time out after
// missing-hb-allowed intervals (RFC 9132 §4.7). With heartbeats off
// nothing is replaceable. It must be called with l.mu held.
func (l *liveness) replaceableLocked(cuid string, now time.Time, v session.Values) *connState {
	if v.HeartbeatInterval == 0 {
		return nil
	}
	silent := time.Duration(v.HeartbeatInterval)*time.Second + heartbeatGrace
	var victim *connState
	for _, cs := range l.conns {
		if cs.peer == nil || cs.peer.cuid != cuid || now.Sub(cs.lastRx) < silent {
			continue
		}
		if victim == nil || cs.lastRx.Before(victim.lastRx) {
			victim = cs
		}
	}
	return victim
}
