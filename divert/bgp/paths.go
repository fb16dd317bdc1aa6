package bgp

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/osrg/gobgp/v4/pkg/apiutil"
	gbgp "github.com/osrg/gobgp/v4/pkg/packet/bgp"

	"github.com/levee-dots/levee/divert"
	"github.com/levee-dots/levee/flowspec"
)

// plan is the set of routes a diversion becomes.
type plan struct {
	kind   string // the countermeasure of the prefixes named by the client
	routes []*route
	note   string // why some routes are of another kind
}

const (
	communityBlackhole = 0xFFFF029A // 65535:666, RFC 7999
	communityNoExport  = 0xFFFFFF01 // RFC 1997
)

// countermeasure picks the kind of routes for d under its domain's policy.
func (b *Backend) countermeasure(d divert.Diversion) (string, DomainPolicy, error) {
	p := b.cfg.policy(d.Domain)
	kind := p.Countermeasure
	if kind == "" {
		kind = KindFlowSpec
	}
	if len(d.Ports) > 0 || len(d.Protocols) > 0 {
		kind = KindFlowSpec // only FlowSpec can match ports and protocols
	}
	switch d.Countermeasure {
	case "":
	case KindRTBH:
		if !p.RTBH {
			return "", p, fmt.Errorf("client domain %q may not request RTBH (blackholing): its policy does not allow it", d.Domain)
		}
		if len(d.Ports) > 0 || len(d.Protocols) > 0 {
			return "", p, fmt.Errorf("RTBH drops all traffic to a target; it cannot be limited to ports or protocols: drop them or ask for flowspec")
		}
		kind = KindRTBH
	case KindFlowSpec, KindScrubbing:
		kind = d.Countermeasure
	default:
		return "", p, fmt.Errorf("unknown countermeasure %q: use rtbh, flowspec or scrubbing", d.Countermeasure)
	}
	if kind == KindRTBH && !p.RTBH {
		return "", p, fmt.Errorf("client domain %q may not be blackholed", d.Domain)
	}
	if kind == KindScrubbing && !b.cfg.scrubbingConfigured() {
		return "", p, fmt.Errorf("no scrubbing centre is configured")
	}
	return kind, p, nil
}

func (b *Backend) plan(d divert.Diversion) (*plan, error) {
	if isACL(d) {
		return b.aclPlan(d)
	}
	kind, pol, err := b.countermeasure(d)
	if err != nil {
		return nil, err
	}
	if len(d.Prefixes) == 0 {
		return nil, fmt.Errorf("no target prefix to divert (names alone are diverted by DNS)")
	}
	for _, p := range d.Prefixes {
		min := b.cfg.MinPrefixV4
		if p.Addr().Is6() {
			min = b.cfg.MinPrefixV6
		}
		if p.Bits() < min {
			return nil, fmt.Errorf("target %s is shorter than /%d, the shortest prefix this server diverts", p, min)
		}
	}
	pl := &plan{kind: kind}
	named, direct := splitNamed(d)
	if len(direct) > 0 {
		if err := b.planKind(pl, kind, pol, d, direct); err != nil {
			return nil, err
		}
	}
	if len(named) > 0 {
		nk := b.namesKind(d, kind, pol)
		if nk != kind {
			pl.note = fmt.Sprintf("%s from names: %s, not %s (names-countermeasure)", joinPrefixes(named), nk, kind)
		}
		if err := b.planKind(pl, nk, pol, d, named); err != nil {
			return nil, err
		}
	}
	return pl, nil
}

// splitNamed separates the prefixes of d that came from resolving names.
func splitNamed(d divert.Diversion) (named, direct []netip.Prefix) {
	for _, p := range d.Prefixes {
		if slices.Contains(d.FromNames, p) {
			named = append(named, p)
		} else {
			direct = append(direct, p)
		}
	}
	return named, direct
}

func joinPrefixes(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}

// namesKind is the countermeasure for the addresses of names: the
// configured names-countermeasure, by default the domain's kind unless
// that is RTBH, then FlowSpec. A scope with ports or protocols keeps its
// kind (only FlowSpec can match them).
func (b *Backend) namesKind(d divert.Diversion, kind string, pol DomainPolicy) string {
	if len(d.Ports) > 0 || len(d.Protocols) > 0 {
		return kind
	}
	nc := pol.NamesCountermeasure
	if nc == "" {
		nc = b.cfg.Default.NamesCountermeasure
	}
	switch {
	case nc == "" && kind == KindRTBH, nc == KindRTBH && !pol.RTBH, nc == KindScrubbing && !b.cfg.scrubbingConfigured():
		return KindFlowSpec
	case nc == "":
		return kind
	}
	return nc
}

// planKind adds the routes of one kind for prefixes.
func (b *Backend) planKind(pl *plan, kind string, pol DomainPolicy, d divert.Diversion, prefixes []netip.Prefix) error {
	d.Prefixes = prefixes
	switch kind {
	case KindRTBH:
		comms := []uint32{communityBlackhole, communityNoExport}
		for _, c := range pol.Communities {
			v, _ := parseCommunity(c)
			comms = append(comms, v)
		}
		return b.unicastRoutes(pl, kind, prefixes, b.cfg.DiscardNextHopV4, b.cfg.DiscardNextHopV6, comms)
	case KindScrubbing:
		if b.cfg.Scrubbing.Style == "flowspec-redirect" {
			nh, err := netip.ParseAddr(b.cfg.Scrubbing.NextHopV4)
			if err != nil || !nh.Is4() {
				return fmt.Errorf("no IPv4 scrubbing next hop to redirect to (divert.bgp.scrubbing.next-hop-v4)")
			}
			return b.flowRoutes(pl, kind, d, flowspec.Action{Kind: flowspec.RedirectIPv4, RedirectIP: nh})
		}
		return b.unicastRoutes(pl, kind, prefixes, b.cfg.Scrubbing.NextHopV4, b.cfg.Scrubbing.NextHopV6, []uint32{communityNoExport})
	}
	act := flowspec.Action{Kind: flowspec.Discard}
	spec := pol.FlowSpecAction
	if spec == "" {
		spec = b.cfg.Default.FlowSpecAction
	}
	if spec != "" {
		a, err := flowspec.ParseAction(spec)
		if err != nil {
			return fmt.Errorf("flowspec-action %q: %w", spec, err)
		}
		act = a
	}
	return b.flowRoutes(pl, kind, d, act)
}

// unicastRoutes adds one route per prefix toward the next hop of its IP version.
func (b *Backend) unicastRoutes(pl *plan, kind string, prefixes []netip.Prefix, nh4, nh6 string, comms []uint32) error {
	for _, p := range prefixes {
		s := nh4
		if p.Addr().Is6() {
			s = nh6
		}
		nh, err := netip.ParseAddr(s)
		if err != nil || nh.Is4() != p.Addr().Is4() {
			return fmt.Errorf("no %s next hop for %s is configured", kind, p)
		}
		r, err := unicastRoute(kind, p, nh, comms)
		if err != nil {
			return err
		}
		pl.routes = append(pl.routes, r)
	}
	return nil
}

func (b *Backend) flowRoutes(pl *plan, kind string, d divert.Diversion, act flowspec.Action) error {
	comm, err := actionCommunity(act)
	if err != nil {
		return err
	}
	var matches []flowspec.Match
	for _, m := range flowspec.FromScope(d.Prefixes, d.Ports, d.Protocols) {
		if err := m.Validate(); err != nil {
			return err
		}
		matches = append(matches, fitMatch(m)...)
	}
	for _, m := range matches {
		r, err := flowRoute(kind, m, act, comm)
		if err != nil {
			return err
		}
		pl.routes = append(pl.routes, r)
	}
	return nil
}

// actionCommunity is the extended community that carries act.
func actionCommunity(act flowspec.Action) (gbgp.ExtendedCommunityInterface, error) {
	ec, err := act.ExtendedCommunity()
	if err != nil {
		return nil, err
	}
	comm, err := gbgp.ParseExtended(ec[:])
	if err != nil {
		return nil, fmt.Errorf("extended community %s: %w", act, err)
	}
	return comm, nil
}

// flowRoute is the FlowSpec route of one match with one action, in the
// family of the match. Its id is the same for every user of the rule, so a
// mitigation and an ACL asking for the same rule share one route.
func flowRoute(kind string, m flowspec.Match, act flowspec.Action, comm gbgp.ExtendedCommunityInterface) (*route, error) {
	raw, err := m.NLRI()
	if err != nil {
		return nil, err
	}
	fam := gbgp.RF_FS_IPv4_UC
	if m.Family() == flowspec.IPv6 {
		fam = gbgp.RF_FS_IPv6_UC
	}
	nlri, err := gbgp.NLRIFromSlice(fam, raw)
	if err != nil {
		return nil, fmt.Errorf("flowspec rule %s: %w", m, err)
	}
	mp, err := gbgp.NewPathAttributeMpReachNLRI(fam, []gbgp.PathNLRI{{NLRI: nlri}})
	if err != nil {
		return nil, err
	}
	path := &apiutil.Path{Family: fam, Nlri: nlri, Attrs: []gbgp.PathAttributeInterface{
		gbgp.NewPathAttributeOrigin(gbgp.BGP_ORIGIN_ATTR_TYPE_IGP), mp,
		gbgp.NewPathAttributeExtendedCommunities([]gbgp.ExtendedCommunityInterface{comm}),
	}}
	text := fmt.Sprintf("{%s} %s", m, act)
	return &route{id: familyName(fam) + " " + m.String() + " " + act.String(), kind: kind, family: fam, path: path, text: text}, nil
}

func unicastRoute(kind string, p netip.Prefix, nh netip.Addr, comms []uint32) (*route, error) {
	nlri, err := gbgp.NewIPAddrPrefix(p)
	if err != nil {
		return nil, err
	}
	fam := gbgp.RF_IPv4_UC
	if p.Addr().Is6() {
		fam = gbgp.RF_IPv6_UC
	}
	attrs := []gbgp.PathAttributeInterface{
		gbgp.NewPathAttributeOrigin(gbgp.BGP_ORIGIN_ATTR_TYPE_IGP),
		gbgp.NewPathAttributeCommunities(comms),
	}
	var a gbgp.PathAttributeInterface
	if fam == gbgp.RF_IPv4_UC && nh.Is4() {
		a, err = gbgp.NewPathAttributeNextHop(nh)
	} else {
		a, err = gbgp.NewPathAttributeMpReachNLRI(fam, []gbgp.PathNLRI{{NLRI: nlri}}, nh)
	}
	if err != nil {
		return nil, fmt.Errorf("route %s via %s: %w", p, nh, err)
	}
	text := fmt.Sprintf("%s via %s", p, nh)
	return &route{id: familyName(fam) + " " + p.String() + " " + kind, kind: kind, family: fam,
		path: &apiutil.Path{Family: fam, Nlri: nlri, Attrs: append(attrs, a)}, text: text}, nil
}

// maxNLRI keeps FlowSpec NLRIs in the one-octet length form: GoBGP v4.8.0
// mis-handles the two-octet form used from 240 bytes on (osrg/gobgp#3596).
const maxNLRI = 239

// fitMatch splits a rule whose NLRI would be too long into rules over parts
// of its port list (the union of the parts matches the same traffic).
func fitMatch(m flowspec.Match) []flowspec.Match {
	raw, err := m.NLRI()
	if err != nil || len(raw) <= maxNLRI || len(m.DstPorts) < 2 {
		return []flowspec.Match{m}
	}
	half := len(m.DstPorts) / 2
	a, b := m, m
	a.DstPorts, b.DstPorts = m.DstPorts[:half], m.DstPorts[half:]
	return append(fitMatch(a), fitMatch(b)...)
}
