package dotsserver

// DedupeState returns the number of answers kept for repeated DTLS
// requests and their bytes.
func (s *Server) DedupeState() (entries, bytes int) { return s.dedupe.state() }

// SetDedupeBounds sets the bounds of the answer cache.
func (s *Server) SetDedupeBounds(sessionEntries, sessionBytes, totalBytes int) {
	s.dedupe.mu.Lock()
	defer s.dedupe.mu.Unlock()
	s.dedupe.sessionEntries, s.dedupe.sessionBytes, s.dedupe.totalBytes = sessionEntries, sessionBytes, totalBytes
}
