package scrub

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// ip6UserMetric is the metric the kernel gives an IPv6 route added with
// none; set explicitly so that an installed route compares equal.
const ip6UserMetric = 1024

// Return is the return path of cleaned traffic (see ReturnOptions), set up
// with netlink in the node's namespace. Every Set reads what is installed
// and changes only what differs, so a new Return over the state a previous
// process left (kill -9, keep-on-stop) adopts it without a moment in which
// a wanted target has no route. It is safe for concurrent use.
type Return struct {
	opts ReturnOptions
	log  *slog.Logger
	kind string // TunnelVXLAN or TunnelGRE, resolved by NewReturn

	mu       sync.Mutex
	saved    map[string]string // sysctl values before the first Set; nil: not known yet
	unrouted []netip.Prefix    // targets of the last Set without a gateway of their family
}

// NewReturn checks opts and resolves the tunnel kind: with TunnelAuto an
// existing tunnel of the configured name keeps its kind, otherwise GRE is
// chosen when the kernel can create a GRE link (probed with a throwaway
// link that is deleted at once) and VXLAN when it cannot. It installs
// nothing else until Set.
func NewReturn(opts ReturnOptions) (*Return, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	r := &Return{opts: opts, log: log}
	h, err := r.handle()
	if err != nil {
		return nil, err
	}
	defer h.Close()
	if r.kind, err = r.resolveKind(h); err != nil {
		return nil, err
	}
	return r, nil
}

// Kind is the tunnel kind in use: TunnelVXLAN or TunnelGRE.
func (r *Return) Kind() string { return r.kind }

func (r *Return) handle() (*netlink.Handle, error) {
	var (
		h   *netlink.Handle
		err error
	)
	if r.opts.NetNS != 0 {
		h, err = netlink.NewHandleAt(netns.NsHandle(r.opts.NetNS))
	} else {
		h, err = netlink.NewHandle()
	}
	if err != nil {
		return nil, fmt.Errorf("scrub: return path: netlink: %w", err)
	}
	return h, nil
}

// Unrouted lists the targets of the last Set that have no route back
// because no gateway of their family is configured.
func (r *Return) Unrouted() []netip.Prefix {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.unrouted)
}

// Set converges the return path on the targets of d: add, then prune.
func (r *Return) Set(ctx context.Context, d Desired) error {
	if err := r.add(ctx, d); err != nil {
		return err
	}
	return r.prune(ctx, d)
}

// add sets up the tunnel, routes every target of d, installs the policy
// rules and turns forwarding on. It deletes only routes it replaces and
// rules of another ingress interface.
func (r *Return) add(ctx context.Context, d Desired) error {
	return r.withHandle(ctx, d, r.addLocked)
}

func (r *Return) addLocked(h *netlink.Handle, targets []netip.Prefix) error {
	prior := r.tunnelAlias(h) // before the tunnel may be replaced
	link, err := r.ensureTunnel(h)
	if err != nil {
		return err
	}
	want, unrouted := r.wantRoutes(link, targets)
	r.noteUnrouted(unrouted)
	added := 0
	for _, fam := range []int{unix.AF_INET, unix.AF_INET6} {
		have, err := r.listRoutes(h, fam)
		if err != nil {
			return err
		}
		for _, w := range want[fam] {
			if slices.ContainsFunc(have, func(x netlink.Route) bool { return sameRoute(x, w) }) {
				continue
			}
			if err := h.RouteReplace(&w); err != nil {
				return fmt.Errorf("scrub: return path: route %s via %s table %d: %w", w.Dst, w.Gw, r.opts.Table, err)
			}
			added++
		}
	}
	if err := r.ensureRules(h); err != nil {
		return err
	}
	if err := r.enableForwarding(h, link, prior); err != nil {
		return err
	}
	r.log.Debug("scrub: return path routes added", "targets", len(targets), "added", added, "unrouted", len(unrouted))
	return nil
}

// prune deletes the routes of the table that are not those of d's targets.
func (r *Return) prune(ctx context.Context, d Desired) error {
	return r.withHandle(ctx, d, r.pruneLocked)
}

func (r *Return) pruneLocked(h *netlink.Handle, targets []netip.Prefix) error {
	link, err := h.LinkByName(r.opts.Name)
	if err != nil {
		return fmt.Errorf("scrub: return path: tunnel %s: %w", r.opts.Name, err)
	}
	want, _ := r.wantRoutes(link, targets)
	var errs []error
	deleted := 0
	for _, fam := range []int{unix.AF_INET, unix.AF_INET6} {
		have, err := r.listRoutes(h, fam)
		if err != nil {
			return err
		}
		for _, x := range have {
			if slices.ContainsFunc(want[fam], func(w netlink.Route) bool { return sameRoute(x, w) }) {
				continue
			}
			if err := h.RouteDel(&x); err != nil && !errors.Is(err, unix.ESRCH) {
				errs = append(errs, fmt.Errorf("scrub: return path: delete route %s table %d: %w", x.Dst, r.opts.Table, err))
				continue
			}
			deleted++
		}
	}
	if deleted > 0 {
		r.log.Info("scrub: return path routes removed", "removed", deleted)
	}
	return errors.Join(errs...)
}

// withHandle runs fn with d's targets and a netlink handle in the node's
// namespace, holding r.mu; an invalid target refuses d first.
func (r *Return) withHandle(ctx context.Context, d Desired, fn func(*netlink.Handle, []netip.Prefix) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	targets, err := routableTargets(d)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	h, err := r.handle()
	if err != nil {
		return err
	}
	defer h.Close()
	return fn(h, targets)
}

// routableTargets are the distinct target prefixes of d; an invalid one
// refuses d before anything is changed.
func routableTargets(d Desired) ([]netip.Prefix, error) {
	for _, m := range d.Mitigations {
		for _, p := range m.Targets {
			if !p.IsValid() || p.Addr().Zone() != "" || p.Addr().Is4In6() {
				return nil, invalid("mitigation %q: target %v is not a plain IPv4 or IPv6 prefix", m.ID, p)
			}
		}
	}
	return targetsOf(d), nil
}

func (r *Return) noteUnrouted(unrouted []netip.Prefix) {
	if len(unrouted) > 0 && !slices.Equal(unrouted, r.unrouted) {
		r.log.Warn("scrub: targets without a return route: no gateway of their family (return.gateway, return.gateway6)",
			"targets", fmt.Sprint(unrouted))
	}
	r.unrouted = unrouted
}

// wantRoutes are the routes of targets per family, and the targets of a
// family without a gateway.
func (r *Return) wantRoutes(link netlink.Link, targets []netip.Prefix) (map[int][]netlink.Route, []netip.Prefix) {
	want := map[int][]netlink.Route{}
	var unrouted []netip.Prefix
	for _, p := range targets {
		fam, gw, metric := unix.AF_INET, r.opts.Gateway, 0
		if p.Addr().Is6() {
			fam, gw, metric = unix.AF_INET6, r.opts.Gateway6, ip6UserMetric
		}
		if !gw.IsValid() {
			unrouted = append(unrouted, p)
			continue
		}
		want[fam] = append(want[fam], netlink.Route{
			Family:    fam,
			Dst:       &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())},
			Gw:        gw.AsSlice(),
			LinkIndex: link.Attrs().Index,
			Table:     r.opts.Table,
			Priority:  metric,
			Protocol:  unix.RTPROT_STATIC,
			Scope:     netlink.SCOPE_UNIVERSE,
			Type:      unix.RTN_UNICAST,
		})
	}
	return want, unrouted
}

func (r *Return) listRoutes(h *netlink.Handle, fam int) ([]netlink.Route, error) {
	rs, err := h.RouteListFiltered(fam, &netlink.Route{Table: r.opts.Table}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("scrub: return path: list table %d: %w", r.opts.Table, err)
	}
	return rs, nil
}

// sameRoute reports whether installed route x is exactly w.
func sameRoute(x, w netlink.Route) bool {
	return x.Dst != nil && x.Dst.String() == w.Dst.String() && x.Gw.Equal(w.Gw) && x.LinkIndex == w.LinkIndex &&
		x.Priority == w.Priority && x.Type == w.Type && len(x.MultiPath) == 0
}

// families are the address families with a gateway.
func (r *Return) families() []int {
	var fams []int
	if r.opts.Gateway.IsValid() {
		fams = append(fams, unix.AF_INET)
	}
	if r.opts.Gateway6.IsValid() {
		fams = append(fams, unix.AF_INET6)
	}
	return fams
}

// ownRules are the installed rules at RulePriority that look up Table.
func (r *Return) ownRules(h *netlink.Handle, fam int) ([]netlink.Rule, error) {
	filter := netlink.NewRule()
	filter.Priority = r.opts.RulePriority
	rules, err := h.RuleListFiltered(fam, filter, netlink.RT_FILTER_PRIORITY)
	if err != nil {
		return nil, fmt.Errorf("scrub: return path: list rules: %w", err)
	}
	return slices.DeleteFunc(rules, func(x netlink.Rule) bool { return x.Table != r.opts.Table }), nil
}

// isWantedRule reports whether x is exactly "iif Interface lookup Table".
func (r *Return) isWantedRule(x netlink.Rule) bool {
	return x.IifName == r.opts.Interface && x.OifName == "" && x.Src == nil && x.Dst == nil && x.Mark == 0 &&
		x.Mask == nil && !x.Invert && x.Tos == 0 && x.Dport == nil && x.Sport == nil && x.IPProto == 0 && x.UIDRange == nil
}

// ensureRules installs the rule of every family with a gateway, then
// deletes the other rules of the same priority and table (another ingress
// interface, a family no longer configured).
func (r *Return) ensureRules(h *netlink.Handle) error {
	for _, fam := range []int{unix.AF_INET, unix.AF_INET6} {
		have, err := r.ownRules(h, fam)
		if err != nil {
			return err
		}
		wanted := slices.Contains(r.families(), fam)
		if wanted && !slices.ContainsFunc(have, r.isWantedRule) {
			rule := netlink.NewRule() // a bare Rule{} would send zero selectors instead of none
			rule.Family, rule.IifName, rule.Table, rule.Priority = fam, r.opts.Interface, r.opts.Table, r.opts.RulePriority
			if err := h.RuleAdd(rule); err != nil {
				return fmt.Errorf("scrub: return path: rule %d iif %s lookup %d: %w", r.opts.RulePriority, r.opts.Interface, r.opts.Table, err)
			}
			r.log.Info("scrub: return path rule added", "family", famName(fam), "priority", r.opts.RulePriority,
				"iif", r.opts.Interface, "table", r.opts.Table)
		}
		for _, x := range have {
			if wanted && r.isWantedRule(x) {
				continue
			}
			if err := h.RuleDel(&x); err != nil && !errors.Is(err, unix.ENOENT) {
				return fmt.Errorf("scrub: return path: delete stale rule %v: %w", x, err)
			}
		}
	}
	return nil
}

func famName(fam int) string {
	if fam == unix.AF_INET6 {
		return "ipv6"
	}
	return "ipv4"
}

// Close removes the rules, the routes of the table and the tunnel, and
// restores the forwarding sysctls to the values they had before the first
// Set (also one of an earlier process: they are kept in the tunnel's
// alias). What is missing is not an error.
func (r *Return) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	h, err := r.handle()
	if err != nil {
		return err
	}
	defer h.Close()
	var errs []error
	for _, fam := range []int{unix.AF_INET, unix.AF_INET6} {
		rules, err := r.ownRules(h, fam)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, x := range rules {
			if err := h.RuleDel(&x); err != nil && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, fmt.Errorf("scrub: return path: delete rule %v: %w", x, err))
			}
		}
		routes, err := r.listRoutes(h, fam)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, x := range routes {
			if err := h.RouteDel(&x); err != nil && !errors.Is(err, unix.ESRCH) {
				errs = append(errs, fmt.Errorf("scrub: return path: delete route %s table %d: %w", x.Dst, r.opts.Table, err))
			}
		}
	}
	errs = append(errs, r.restoreForwarding(r.tunnelAlias(h)))
	if link, err := h.LinkByName(r.opts.Name); err == nil {
		if !isTunnel(link) {
			errs = append(errs, fmt.Errorf("scrub: return path: %s is a %s, not a tunnel: left alone", r.opts.Name, link.Type()))
		} else if err := h.LinkDel(link); err != nil {
			errs = append(errs, fmt.Errorf("scrub: return path: delete tunnel %s: %w", r.opts.Name, err))
		}
	} else if !isNotFound(err) {
		errs = append(errs, fmt.Errorf("scrub: return path: tunnel %s: %w", r.opts.Name, err))
	}
	r.saved, r.unrouted = nil, nil
	return errors.Join(errs...)
}

func isNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf) || errors.Is(err, unix.ENODEV)
}
