package dotsserver

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// DTLSLimits bound the DTLS handshakes the server holds before a peer has
// authenticated (see the "DTLS handshakes" section of README.md). The zero
// value of a field means its default.
type DTLSLimits struct {
	// HandshakeTimeout drops a DTLS handshake that has not completed this
	// long after its first ClientHello. Default 10 s: a handshake takes a
	// few round trips; a lost flight is resent after 1, 2 and 4 s.
	HandshakeTimeout time.Duration
	// MaxHandshakes bounds the DTLS handshakes in progress, each started
	// by a ClientHello that returned a valid cookie; at the bound a new one
	// is dropped (the peer resends it). Default 1024 (about 32 MB of
	// handshake state).
	MaxHandshakes int
	// MaxHandshakesPerPrefix bounds the DTLS handshakes in progress from
	// one source prefix (/24 for IPv4, /56 for IPv6); a ClientHello over
	// the bound is dropped. Default 64.
	MaxHandshakesPerPrefix int
}

// Default DTLS handshake limits.
const (
	DefaultDTLSHandshakeTimeout       = 10 * time.Second
	DefaultMaxDTLSHandshakes          = 1024
	DefaultMaxDTLSHandshakesPerPrefix = 64
)

func (l DTLSLimits) withDefaults() DTLSLimits {
	if l.HandshakeTimeout == 0 {
		l.HandshakeTimeout = DefaultDTLSHandshakeTimeout
	}
	if l.MaxHandshakes == 0 {
		l.MaxHandshakes = DefaultMaxDTLSHandshakes
	}
	if l.MaxHandshakesPerPrefix == 0 {
		l.MaxHandshakesPerPrefix = DefaultMaxDTLSHandshakesPerPrefix
	}
	return l
}

// Validate reports the first limit out of range (zero fields are defaults).
func (l DTLSLimits) Validate() error {
	switch {
	case l.HandshakeTimeout < 0:
		return fmt.Errorf("dtls-handshake-timeout %s: want a positive duration", l.HandshakeTimeout)
	case l.MaxHandshakes < 0:
		return fmt.Errorf("max-dtls-handshakes %d: want at least 1", l.MaxHandshakes)
	case l.MaxHandshakesPerPrefix < 0:
		return fmt.Errorf("max-dtls-handshakes-per-prefix %d: want at least 1", l.MaxHandshakesPerPrefix)
	}
	return nil
}

// DTLSStats counts what the DTLS listeners did with handshakes, summed over
// the listeners. Counters only grow; Handshakes is a gauge.
type DTLSStats struct {
	Handshakes int // in progress now

	HelloVerifySent uint64 // ClientHellos without a valid cookie, answered with no state kept
	Started         uint64 // handshakes begun (a ClientHello with a valid cookie from a new source)
	Completed       uint64 // handshakes the server finished
	TimedOut        uint64 // dropped at the handshake deadline
	Failed          uint64 // closed during the handshake before its deadline (e.g. a certificate refused)
	Replaced        uint64 // associations abandoned for a new one from their address (RFC 6347 §4.2.8)

	DroppedTotalCap  uint64 // cookie-verified ClientHellos dropped at MaxHandshakes
	DroppedPrefixCap uint64 // cookie-verified ClientHellos dropped at MaxHandshakesPerPrefix
	DroppedBadCookie uint64 // ClientHellos carrying a cookie the server did not make (answered with a fresh one)
	DroppedOther     uint64 // datagrams from unknown sources that do not start a handshake, or over a full queue
}

func (a DTLSStats) add(b DTLSStats) DTLSStats {
	a.Handshakes += b.Handshakes
	a.Started += b.Started
	a.Completed += b.Completed
	a.TimedOut += b.TimedOut
	a.Failed += b.Failed
	a.Replaced += b.Replaced
	a.HelloVerifySent += b.HelloVerifySent
	a.DroppedTotalCap += b.DroppedTotalCap
	a.DroppedPrefixCap += b.DroppedPrefixCap
	a.DroppedBadCookie += b.DroppedBadCookie
	a.DroppedOther += b.DroppedOther
	return a
}

// DTLSStats returns the counters of the DTLS listeners, for logs and metrics.
func (s *Server) DTLSStats() DTLSStats {
	var st DTLSStats
	for _, l := range s.listeners {
		if dl, ok := l.(*dtlsListener); ok {
			st = st.add(dl.gate.Stats())
		}
	}
	return st
}

// dtlsReportInterval is how often the server logs what the DTLS listeners
// did with handshakes, when they did anything.
var dtlsReportInterval = time.Minute

// since is what the counters of a grew by since b, with a's gauge.
func (a DTLSStats) since(b DTLSStats) DTLSStats {
	return DTLSStats{Handshakes: a.Handshakes,
		HelloVerifySent: a.HelloVerifySent - b.HelloVerifySent, Started: a.Started - b.Started,
		Completed: a.Completed - b.Completed, TimedOut: a.TimedOut - b.TimedOut, Failed: a.Failed - b.Failed,
		DroppedTotalCap: a.DroppedTotalCap - b.DroppedTotalCap, DroppedPrefixCap: a.DroppedPrefixCap - b.DroppedPrefixCap,
		DroppedBadCookie: a.DroppedBadCookie - b.DroppedBadCookie, DroppedOther: a.DroppedOther - b.DroppedOther}
}

// reportDTLS logs, every dtlsReportInterval in which anything happened,
// the DTLS handshake counters' growth: INFO, or WARN when handshakes were
// dropped at a cap or timed out.
func (s *Server) reportDTLS() {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(dtlsReportInterval)
		defer t.Stop()
		var last DTLSStats
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
			st := s.DTLSStats()
			d := st.since(last)
			last = st
			if d == (DTLSStats{Handshakes: d.Handshakes}) {
				continue
			}
			level := slog.LevelInfo
			if d.DroppedTotalCap+d.DroppedPrefixCap+d.TimedOut > 0 {
				level = slog.LevelWarn
			}
			s.log.Log(context.Background(), level, "dtls handshakes", "interval", dtlsReportInterval,
				"hello-verify-sent", d.HelloVerifySent, "started", d.Started, "completed", d.Completed,
				"timed-out", d.TimedOut, "failed", d.Failed, "dropped-total-cap", d.DroppedTotalCap, "dropped-prefix-cap", d.DroppedPrefixCap,
				"bad-cookie", d.DroppedBadCookie, "dropped-other", d.DroppedOther, "in-progress", st.Handshakes)
		}
	}()
}
