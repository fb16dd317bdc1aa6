package service

import (
	"slices"

	"github.com/levee-dots/levee/dots"
)

// expandAliases adds the targets of the request's alias-name entries
// (aliases the client created over the data channel, RFC 8783 §6) to the
// request's scope, at request time (RFC 9132 §4.4.1). The targets are then
// checked like the request's own; an unknown alias is 4.00. The request is
// changed in place: the stored scope holds the expanded targets. A refresh
// repeats the expansion, so it compares equal while the alias is unchanged.
func (s *Service) expandAliases(cuid string, mr *dots.Request) error {
	aliases, unknown := s.aliasTargets(cuid, mr.Scope.AliasName)
	if unknown != "" {
		return dots.Errorf(dots.BadRequest, "alias-name %q is unknown: create it over the data channel first (RFC 8783 §6.1)", unknown)
	}
	sc := &mr.Scope
	for _, a := range aliases {
		for _, p := range a.TargetPrefix {
			pm := p.Masked()
			if !slices.Contains(mr.Prefixes, pm) {
				mr.Prefixes = append(mr.Prefixes, pm)
				sc.TargetPrefix = append(sc.TargetPrefix, pm.String())
			}
		}
		for _, r := range a.TargetPortRange {
			pr := dots.PortRange{LowerPort: r.LowerPort, UpperPort: r.UpperPort}
			if !slices.ContainsFunc(sc.TargetPortRange, func(x dots.PortRange) bool { return samePorts(x, pr) }) {
				sc.TargetPortRange = append(sc.TargetPortRange, pr)
			}
		}
		for _, p := range a.TargetProtocol {
			if !slices.Contains(sc.TargetProtocol, uint32(p)) {
				sc.TargetProtocol = append(sc.TargetProtocol, uint32(p))
			}
		}
		for _, f := range a.TargetFQDN {
			if !slices.Contains(sc.TargetFQDN, f) {
				sc.TargetFQDN = append(sc.TargetFQDN, f)
			}
		}
		for _, u := range a.TargetURI {
			if !slices.Contains(sc.TargetURI, u) {
				sc.TargetURI = append(sc.TargetURI, u)
			}
		}
	}
	return nil
}

func samePorts(a, b dots.PortRange) bool {
	if a.LowerPort != b.LowerPort || (a.UpperPort == nil) != (b.UpperPort == nil) {
		return false
	}
	return a.UpperPort == nil || *a.UpperPort == *b.UpperPort
}
