package scrub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
)

// Tunnel kinds of ReturnOptions.Tunnel.
const (
	TunnelAuto  = "auto"  // GRE when the kernel can create it, VXLAN otherwise
	TunnelVXLAN = "vxlan" // VXLAN over UDP, +50 bytes (IPv4 underlay) or +70 (IPv6)
	TunnelGRE   = "gre"   // GRE, +24 bytes (IPv4 underlay) or +44 (IPv6)
)

// Defaults of ReturnOptions.
const (
	DefaultReturnTable   = 4680
	DefaultRulePriority  = 4680
	DefaultVXLANPort     = 4789
	maxVNI               = 1<<24 - 1
	minRulePriority      = 1     // 0 is the kernel's "lookup local" rule
	maxRulePriority      = 32765 // 32766 and 32767 are "main" and "default"
	reservedTableDefault = 253
	reservedTableMain    = 254
	reservedTableLocal   = 255
)

// ReturnOptions configure the return path of cleaned traffic: a tunnel
// toward the target site, a routing table with one route per target into
// the tunnel, and a policy rule that sends only what arrives on Interface
// through that table. Field comments name the scrubd configuration key
// (under "return:") that sets them; an OptionError names the same key.
type ReturnOptions struct {
	// Interface is the ingress device of the diverted traffic (the same as
	// NFTOptions.Interface). Required.
	Interface string
	// NetNS is a network namespace fd to work in; 0: the current one.
	NetNS int
	// Tunnel (tunnel) is TunnelAuto (default), TunnelVXLAN or TunnelGRE.
	Tunnel string
	// Name (name) of the tunnel interface. Required.
	Name string
	// Local (local) is the underlay source address on this node; Remote
	// (remote) the target site's tunnel endpoint. Same family. Required.
	Local, Remote netip.Addr
	// VNI (vni) of the VXLAN tunnel, 1-16777215; VXLAN only.
	VNI uint32
	// Port (port) is the VXLAN UDP destination port; 0: 4789. VXLAN only.
	Port uint16
	// Address (address) is this end's IPv4 address on the tunnel with its
	// prefix, Gateway (gateway) the next hop inside it for cleaned IPv4
	// traffic. Both or neither.
	Address netip.Prefix
	Gateway netip.Addr
	// Address6 (address6) and Gateway6 (gateway6): the same for IPv6.
	Address6 netip.Prefix
	Gateway6 netip.Addr
	// Table (table) is the routing table of the targets; 0: 4680.
	Table int
	// RulePriority (rule-priority) of the policy rule; 0: 4680.
	RulePriority int
	// Logger; nil discards.
	Logger *slog.Logger
}

// OptionError is an invalid ReturnOptions field, named by its
// configuration key.
type OptionError struct {
	Key string // e.g. "gateway"
	Msg string // e.g. "192.0.2.99 is not inside address 192.0.2.13/30"
}

func (e *OptionError) Error() string { return "scrub: return path: " + e.Key + ": " + e.Msg }

func optErr(key, format string, args ...any) error {
	return &OptionError{Key: key, Msg: fmt.Sprintf(format, args...)}
}

// withDefaults fills the zero fields that have a default.
func (o ReturnOptions) withDefaults() ReturnOptions {
	if o.Tunnel == "" {
		o.Tunnel = TunnelAuto
	}
	if o.Port == 0 && o.Tunnel != TunnelGRE {
		o.Port = DefaultVXLANPort
	}
	if o.Table == 0 {
		o.Table = DefaultReturnTable
	}
	if o.RulePriority == 0 {
		o.RulePriority = DefaultRulePriority
	}
	return o
}

// Validate checks o after its defaults are applied. Errors are
// *OptionError, except for Interface.
func (o ReturnOptions) Validate() error {
	o = o.withDefaults()
	if o.Interface == "" {
		return errors.New("scrub: return path: ReturnOptions.Interface (the ingress device) is required")
	}
	switch o.Tunnel {
	case TunnelAuto, TunnelVXLAN, TunnelGRE:
	default:
		return optErr("tunnel", "%q: use auto, vxlan or gre", o.Tunnel)
	}
	if err := checkIfName("name", o.Name); err != nil {
		return err
	}
	if o.Name == o.Interface {
		return optErr("name", "%q is the ingress interface", o.Name)
	}
	if err := o.validateUnderlay(); err != nil {
		return err
	}
	if o.Tunnel == TunnelGRE {
		if o.VNI != 0 {
			return optErr("vni", "only for tunnel vxlan (tunnel is gre)")
		}
		if o.Port != 0 {
			return optErr("port", "only for tunnel vxlan (tunnel is gre)")
		}
	} else if o.VNI == 0 || o.VNI > maxVNI {
		return optErr("vni", "%d: a VXLAN tunnel needs a VNI 1-%d", o.VNI, maxVNI)
	}
	if err := checkInner("address", "gateway", o.Address, o.Gateway, false); err != nil {
		return err
	}
	if err := checkInner("address6", "gateway6", o.Address6, o.Gateway6, true); err != nil {
		return err
	}
	if !o.Gateway.IsValid() && !o.Gateway6.IsValid() {
		return optErr("gateway", "a next hop is required (gateway with address, or gateway6 with address6)")
	}
	switch {
	case o.Table < 0 || int64(o.Table) > 1<<32-1:
		return optErr("table", "%d is not a routing table id", o.Table)
	case o.Table == reservedTableDefault || o.Table == reservedTableMain || o.Table == reservedTableLocal:
		return optErr("table", "%d is a table of the kernel (default, main, local); use a dedicated one", o.Table)
	}
	if o.RulePriority < minRulePriority || o.RulePriority > maxRulePriority {
		return optErr("rule-priority", "%d: use %d-%d (0, 32766 and 32767 are the kernel's rules)",
			o.RulePriority, minRulePriority, maxRulePriority)
	}
	return nil
}

func checkIfName(key, name string) error {
	switch {
	case name == "":
		return optErr(key, "the tunnel interface name is required")
	case len(name) > 15:
		return optErr(key, "%q is longer than 15 bytes", name)
	case name == "." || name == "..":
		return optErr(key, "%q is not an interface name", name)
	}
	for _, r := range name {
		if r == '/' || r == ':' || r <= ' ' || r == 0x7f {
			return optErr(key, "%q: an interface name has no '/', ':' or white space", name)
		}
	}
	return nil
}

func (o ReturnOptions) validateUnderlay() error {
	for _, a := range []struct {
		key  string
		addr netip.Addr
	}{{"local", o.Local}, {"remote", o.Remote}} {
		switch {
		case !a.addr.IsValid():
			return optErr(a.key, "an underlay address is required")
		case a.addr.Zone() != "" || a.addr.Is4In6():
			return optErr(a.key, "%s: use a plain IPv4 or IPv6 address", a.addr)
		case a.addr.IsUnspecified() || a.addr.IsMulticast():
			return optErr(a.key, "%s is not a unicast address", a.addr)
		}
	}
	if o.Local.Is4() != o.Remote.Is4() {
		return optErr("remote", "%s is not of the family of local %s", o.Remote, o.Local)
	}
	if o.Local == o.Remote {
		return optErr("remote", "%s is local", o.Remote)
	}
	return nil
}

// checkInner checks an address on the tunnel and its gateway: both or
// neither, of the family, the gateway inside the address's prefix and not
// the address itself.
func checkInner(akey, gkey string, addr netip.Prefix, gw netip.Addr, v6 bool) error {
	fam := "IPv4"
	if v6 {
		fam = "IPv6"
	}
	switch {
	case !addr.IsValid() && !gw.IsValid():
		return nil
	case !addr.IsValid():
		return optErr(akey, "required with %s (this end's address on the tunnel)", gkey)
	case !gw.IsValid():
		return optErr(gkey, "required with %s (the next hop on the tunnel)", akey)
	case addr.Addr().Is6() != v6 || addr.Addr().Is4In6() || addr.Addr().Zone() != "":
		return optErr(akey, "%s is not an %s prefix", addr, fam)
	case gw.Is6() != v6 || gw.Is4In6() || gw.Zone() != "":
		return optErr(gkey, "%s is not an %s address", gw, fam)
	case addr.Bits() == addr.Addr().BitLen():
		return optErr(akey, "%s: give the tunnel's prefix length too (e.g. /30), the gateway must be inside it", addr)
	case !addr.Contains(gw):
		return optErr(gkey, "%s is not inside %s %s", gw, akey, addr)
	case gw == addr.Addr():
		return optErr(gkey, "%s is this end's own address (%s)", gw, akey)
	case !v6 && addr.Bits() <= 30 && (gw == addr.Masked().Addr() || gw == broadcastAddr(addr)):
		return optErr(gkey, "%s is the network or broadcast address of %s %s", gw, akey, addr)
	}
	return nil
}

// broadcastAddr is the highest address of an IPv4 prefix.
func broadcastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	for i := p.Bits(); i < 32; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	return netip.AddrFrom4(b)
}

// Routed is a Node whose Set converges both the filter and the return path
// of the cleaned traffic. New targets get their route before the filter
// diverts anything to them; a target that goes loses its route only after
// the filter has let go of it. Counters are the filter's.
type Routed struct {
	mu     sync.Mutex // one Set or Close at a time: the three steps of a Set belong together
	filter Node
	ret    *Return
}

var _ Node = (*Routed)(nil)

// NewRouted returns a node over filter and ret; it takes ownership of both.
func NewRouted(filter Node, ret *Return) *Routed { return &Routed{filter: filter, ret: ret} }

// checker is a filter that can refuse a state before anything is changed.
type checker interface{ check(Desired) error }

// Set routes the targets of d, converges the filter on d, then deletes the
// routes of targets that left. A state the filter refuses (NFT: invalid or
// beyond its bounds) changes nothing. When the filter fails otherwise, the
// new routes stay (harmless: nothing is diverted to them yet) and the old
// ones too; the next Set converges both.
func (r *Routed) Set(ctx context.Context, d Desired) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.filter.(checker); ok {
		if err := c.check(d); err != nil {
			return err
		}
	}
	if err := r.ret.add(ctx, d); err != nil {
		return err
	}
	if err := r.filter.Set(ctx, d); err != nil {
		return err
	}
	return r.ret.prune(ctx, d)
}

// Counters are the filter's.
func (r *Routed) Counters(ctx context.Context) (Counters, error) { return r.filter.Counters(ctx) }

// Close removes the filter, then the return path.
func (r *Routed) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return errors.Join(r.filter.Close(), r.ret.Close())
}

// Return is the return path: see ReturnOptions.
func (r *Routed) Return() *Return { return r.ret }

// targetsOf lists the distinct target prefixes of d, masked.
func targetsOf(d Desired) []netip.Prefix {
	seen := map[netip.Prefix]bool{}
	var out []netip.Prefix
	for _, m := range d.Mitigations {
		for _, p := range m.Targets {
			p = p.Masked()
			if p.IsValid() && !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	return out
}
