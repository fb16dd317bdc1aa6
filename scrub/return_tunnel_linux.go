package scrub

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Encapsulation overhead of the tunnel kinds, subtracted from the underlay
// MTU: VXLAN is outer IP + UDP (8) + VXLAN (8) + inner Ethernet (14); GRE
// is outer IP + GRE (4), and ip6gre adds an 8-byte encapsulation-limit
// option by default.
const (
	vxlanOverhead4 = 20 + 8 + 8 + 14 // 50
	vxlanOverhead6 = 40 + 8 + 8 + 14 // 70
	greOverhead4   = 20 + 4          // 24
	greOverhead6   = 40 + 4 + 8      // 52
	defaultMTU     = 1500            // when the underlay route is not known yet
	greProbeTTL    = 64
)

// resolveKind decides between VXLAN and GRE (see NewReturn).
func (r *Return) resolveKind(h *netlink.Handle) (string, error) {
	if r.opts.Tunnel == TunnelVXLAN {
		return TunnelVXLAN, nil
	}
	if link, err := h.LinkByName(r.opts.Name); err == nil {
		switch {
		case r.opts.Tunnel == TunnelAuto && isVXLAN(link):
			r.log.Info("scrub: return path tunnel: adopting the installed vxlan", "name", r.opts.Name)
			return TunnelVXLAN, nil
		case isGRE(link):
			r.log.Info("scrub: return path tunnel: adopting the installed gre", "name", r.opts.Name)
			return TunnelGRE, nil
		}
	} else if !isNotFound(err) {
		return "", fmt.Errorf("scrub: return path: tunnel %s: %w", r.opts.Name, err)
	}
	ok, err := r.probeGRE(h)
	if err != nil {
		return "", err
	}
	switch {
	case ok:
		r.log.Info("scrub: return path tunnel: gre", "name", r.opts.Name, "config", r.opts.Tunnel)
		return TunnelGRE, nil
	case r.opts.Tunnel == TunnelGRE:
		return "", optErr("tunnel", "gre: this kernel cannot create GRE links (no GRE support); use vxlan or auto")
	}
	r.log.Info("scrub: return path tunnel: vxlan, the kernel cannot create GRE links", "name", r.opts.Name, "config", r.opts.Tunnel)
	return TunnelVXLAN, nil
}

// probeGRE creates a GRE link between Local and Remote under a throwaway
// name and deletes it again; the kernel answers EOPNOTSUPP ("Unknown device
// type") when it has no GRE.
func (r *Return) probeGRE(h *netlink.Handle) (bool, error) {
	name := "lvgre" + strconv.Itoa(os.Getpid()%1000000)
	probe := &netlink.Gretun{LinkAttrs: netlink.LinkAttrs{Name: name},
		Local: r.opts.Local.AsSlice(), Remote: r.opts.Remote.AsSlice(), Ttl: greProbeTTL}
	err := h.LinkAdd(probe)
	switch {
	case errors.Is(err, unix.EOPNOTSUPP):
		return false, nil
	case errors.Is(err, unix.EEXIST): // a GRE link with these endpoints exists: GRE works
		return true, nil
	case err != nil:
		return false, fmt.Errorf("scrub: return path: probing for GRE: %w", err)
	}
	if err := h.LinkDel(probe); err != nil {
		return true, fmt.Errorf("scrub: return path: deleting the GRE probe %s: %w", name, err)
	}
	return true, nil
}

func isVXLAN(l netlink.Link) bool { _, ok := l.(*netlink.Vxlan); return ok }

func isGRE(l netlink.Link) bool {
	_, ok := l.(*netlink.Gretun)
	return ok
}

func isTunnel(l netlink.Link) bool { return isVXLAN(l) || isGRE(l) }

// wantLink is the tunnel to create.
func (r *Return) wantLink(mtu int, alias string) netlink.Link {
	attrs := netlink.LinkAttrs{Name: r.opts.Name, MTU: mtu, Alias: alias}
	if r.kind == TunnelGRE {
		return &netlink.Gretun{LinkAttrs: attrs, Local: r.opts.Local.AsSlice(), Remote: r.opts.Remote.AsSlice(),
			Ttl: greProbeTTL, PMtuDisc: 1}
	}
	return &netlink.Vxlan{LinkAttrs: attrs, VxlanId: int(r.opts.VNI), SrcAddr: r.opts.Local.AsSlice(),
		Group: r.opts.Remote.AsSlice(), Port: int(r.opts.Port), Learning: false}
}

// matches reports whether an installed link is the tunnel of the options.
func (r *Return) matches(l netlink.Link) bool {
	local, remote := net.IP(r.opts.Local.AsSlice()), net.IP(r.opts.Remote.AsSlice())
	switch t := l.(type) {
	case *netlink.Vxlan:
		return r.kind == TunnelVXLAN && t.VxlanId == int(r.opts.VNI) && t.SrcAddr.Equal(local) &&
			t.Group.Equal(remote) && t.Port == int(r.opts.Port) && !t.Learning
	case *netlink.Gretun:
		return r.kind == TunnelGRE && t.Local.Equal(local) && t.Remote.Equal(remote)
	}
	return false
}

// mtu is the underlay MTU toward Remote less the encapsulation.
func (r *Return) mtu(h *netlink.Handle) int {
	under := defaultMTU
	if routes, err := h.RouteGet(r.opts.Remote.AsSlice()); err == nil && len(routes) > 0 {
		if l, err := h.LinkByIndex(routes[0].LinkIndex); err == nil && l.Attrs().MTU > 0 && l.Attrs().Name != r.opts.Name {
			under = l.Attrs().MTU
		}
		if m := routes[0].MTU; m > 0 && m < under {
			under = m
		}
	}
	over := vxlanOverhead4
	switch {
	case r.kind == TunnelVXLAN && r.opts.Local.Is6():
		over = vxlanOverhead6
	case r.kind == TunnelGRE && r.opts.Local.Is4():
		over = greOverhead4
	case r.kind == TunnelGRE:
		over = greOverhead6
	}
	return under - over
}

// ensureTunnel makes the tunnel exist with the options' parameters, its
// addresses and MTU, and up. A tunnel that matches is kept as it is (same
// index, its routes stay); one with other parameters is replaced.
func (r *Return) ensureTunnel(h *netlink.Handle) (netlink.Link, error) {
	mtu := r.mtu(h)
	link, err := h.LinkByName(r.opts.Name)
	switch {
	case err == nil && !isTunnel(link):
		return nil, optErr("name", "%s exists and is a %s, not a tunnel: refusing to replace it", r.opts.Name, link.Type())
	case err == nil && !r.matches(link):
		r.log.Warn("scrub: return path tunnel has other parameters: replacing it", "name", r.opts.Name, "kind", link.Type())
		if err := h.LinkDel(link); err != nil {
			return nil, fmt.Errorf("scrub: return path: delete tunnel %s: %w", r.opts.Name, err)
		}
		link = nil
	case err != nil && !isNotFound(err):
		return nil, fmt.Errorf("scrub: return path: tunnel %s: %w", r.opts.Name, err)
	case err != nil:
		link = nil
	}
	if link == nil {
		if err := h.LinkAdd(r.wantLink(mtu, "")); err != nil {
			return nil, fmt.Errorf("scrub: return path: create %s tunnel %s: %w", r.kind, r.opts.Name, err)
		}
		if link, err = h.LinkByName(r.opts.Name); err != nil {
			return nil, fmt.Errorf("scrub: return path: tunnel %s: %w", r.opts.Name, err)
		}
		r.log.Info("scrub: return path tunnel created", "name", r.opts.Name, "kind", r.kind, "local", r.opts.Local,
			"remote", r.opts.Remote, "mtu", mtu)
	}
	if link.Attrs().MTU != mtu {
		if err := h.LinkSetMTU(link, mtu); err != nil {
			return nil, fmt.Errorf("scrub: return path: tunnel %s mtu %d: %w", r.opts.Name, mtu, err)
		}
	}
	if err := r.ensureAddrs(h, link); err != nil {
		return nil, err
	}
	if link.Attrs().Flags&net.FlagUp == 0 {
		if err := h.LinkSetUp(link); err != nil {
			return nil, fmt.Errorf("scrub: return path: tunnel %s up: %w", r.opts.Name, err)
		}
	}
	return link, nil
}

// ensureAddrs puts Address and Address6 on the tunnel and removes other
// addresses (IPv6 link-local ones stay).
func (r *Return) ensureAddrs(h *netlink.Handle, link netlink.Link) error {
	have, err := h.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("scrub: return path: addresses of %s: %w", r.opts.Name, err)
	}
	want := map[netip.Prefix]bool{}
	for _, p := range []netip.Prefix{r.opts.Address, r.opts.Address6} {
		if p.IsValid() {
			want[p] = true
		}
	}
	for _, a := range have {
		p, ok := prefixOf(a.IPNet)
		switch {
		case !ok || p.Addr().IsLinkLocalUnicast():
		case want[p]:
			delete(want, p)
		default:
			if err := h.AddrDel(link, &a); err != nil {
				return fmt.Errorf("scrub: return path: remove %s from %s: %w", p, r.opts.Name, err)
			}
		}
	}
	for p := range want {
		a := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
		if p.Addr().Is6() {
			a.Flags = unix.IFA_F_NODAD // a point-to-point tunnel: usable at once
		}
		if err := h.AddrReplace(link, a); err != nil {
			return fmt.Errorf("scrub: return path: address %s on %s: %w", p, r.opts.Name, err)
		}
	}
	return nil
}

func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	bits, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), bits), true
}

// tunnelAlias is the alias of the installed tunnel, "" when there is none.
func (r *Return) tunnelAlias(h *netlink.Handle) string {
	if link, err := h.LinkByName(r.opts.Name); err == nil && isTunnel(link) {
		return link.Attrs().Alias
	}
	return ""
}
