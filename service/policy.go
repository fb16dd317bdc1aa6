package service

import "github.com/levee-dots/levee/dotsserver/mitigation"

// SetPolicy replaces the local policy while the service runs (a
// configuration reload). Requests already accepted keep what they were
// granted; the new policy decides from the next request on.
func (s *Service) SetPolicy(p mitigation.Policy) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opts.Policy = p
	s.book.SetPolicy(p)
}
