package mitigation

// SetPolicy replaces the book's policy (a configuration reload). Requests
// already in the book keep what they were granted; the new policy applies
// from the next request, refresh or withdrawal on.
func (b *Book) SetPolicy(p Policy) {
	p.defaults()
	b.policy = p
}
