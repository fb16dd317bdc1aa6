package dotsserver

// SessionCounts returns the identified signal-channel sessions by cuid,
// for the operator's views.
func (s *Server) SessionCounts() map[string]int {
	s.live.mu.Lock()
	defer s.live.mu.Unlock()
	out := make(map[string]int, len(s.live.sessions))
	for cuid, n := range s.live.sessions {
		out[cuid] = n
	}
	return out
}
