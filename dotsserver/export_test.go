package dotsserver

import "time"

// SetDTLSReportInterval sets how often the DTLS counters are logged, for
// servers started afterwards, and returns the previous value.
func SetDTLSReportInterval(d time.Duration) time.Duration {
	old := dtlsReportInterval
	dtlsReportInterval = d
	return old
}

// SessionState counts what the server holds for connections: connections,
// identified sessions, Observe registrations and connections holding them.
func (s *Server) SessionState() (conns, sessions, observers, observedConns int) {
	s.live.mu.Lock()
	conns = len(s.live.conns)
	for _, n := range s.live.sessions {
		sessions += n
	}
	s.live.mu.Unlock()
	s.obs.mu.Lock()
	observedConns = len(s.obs.byConn)
	for _, m := range s.obs.byConn {
		observers += len(m)
	}
	s.obs.mu.Unlock()
	return conns, sessions, observers, observedConns
}
