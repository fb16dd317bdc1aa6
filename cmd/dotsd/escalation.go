package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/levee-dots/levee/escalate"
)

// validateEscalation checks the escalation ladders against the client
// domains and the configured backends: every step must be one this server
// can take for that domain.
func (c *fileConfig) validateEscalation(file string, names map[string]bool) error {
	bad := func(key, format string, args ...any) error {
		return &configError{file: file, key: key, problem: fmt.Sprintf(format, args...)}
	}
	domains := make([]string, 0, len(c.Escalation))
	for d := range c.Escalation {
		domains = append(domains, d)
	}
	slices.Sort(domains)
	for _, d := range domains {
		l := c.Escalation[d]
		key := "escalation." + d
		if !names[d] {
			return bad(key, "no client domain is named %q", d)
		}
		if err := l.Validate(); err != nil {
			field, problem, _ := strings.Cut(err.Error(), ": ")
			return bad(key+"."+field, "%s", problem)
		}
		b, sc := c.Divert.BGP, c.Divert.Scrub
		for i, step := range l.Steps {
			skey := fmt.Sprintf("%s.steps[%d]", key, i)
			switch step {
			case escalate.FlowSpec:
				if b == nil {
					return bad(skey, "flowspec needs divert.bgp (the FlowSpec rules go to its neighbors)")
				}
			case escalate.RTBH:
				if b == nil {
					return bad(skey, "rtbh needs divert.bgp (the blackhole routes go to its neighbors)")
				}
				if !b.AllowsRTBH(d) {
					return bad(skey, "client domain %q may not be blackholed: set divert.bgp.domains.%s.rtbh: true, or drop rtbh from the ladder", d, d)
				}
			case escalate.Scrubbing:
				if (b == nil || !b.ScrubbingConfigured()) && sc == nil {
					return bad(skey, "scrubbing needs an on-ramp (divert.bgp.scrubbing) or scrubbing nodes (divert.scrub)")
				}
				if sc != nil && !slices.Contains(sc.Domains, d) {
					return bad(skey, "client domain %q is not in divert.scrub.domains: the scrubbing nodes would have no filter for it", d)
				}
			}
		}
	}
	return nil
}
