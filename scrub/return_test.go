package scrub

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestReturnOptionsValidate(t *testing.T) {
	good := ReturnOptions{Interface: "eth0", Name: "vx-clean",
		Local: netip.MustParseAddr("192.0.2.2"), Remote: netip.MustParseAddr("192.0.2.9"), VNI: 100,
		Address: netip.MustParsePrefix("192.0.2.13/30"), Gateway: netip.MustParseAddr("192.0.2.14")}
	addr := netip.MustParseAddr
	pfx := netip.MustParsePrefix
	cases := []struct {
		name    string
		edit    func(*ReturnOptions)
		key     string // "" : valid
		wantMsg string
	}{
		{"good", func(*ReturnOptions) {}, "", ""},
		{"gre needs no vni", func(o *ReturnOptions) { o.Tunnel, o.VNI = TunnelGRE, 0 }, "", ""},
		{"ipv6 only", func(o *ReturnOptions) {
			o.Address, o.Gateway = netip.Prefix{}, netip.Addr{}
			o.Address6, o.Gateway6 = pfx("2001:db8:ff::1/64"), addr("2001:db8:ff::2")
		}, "", ""},
		{"ipv6 underlay", func(o *ReturnOptions) { o.Local, o.Remote = addr("2001:db8::2"), addr("2001:db8::9") }, "", ""},
		{"unknown tunnel", func(o *ReturnOptions) { o.Tunnel = "ipip" }, "tunnel", `"ipip"`},
		{"no name", func(o *ReturnOptions) { o.Name = "" }, "name", "required"},
		{"long name", func(o *ReturnOptions) { o.Name = "a-name-of-16-byt" }, "name", "longer than 15"},
		{"slash in name", func(o *ReturnOptions) { o.Name = "vx/1" }, "name", "no '/'"},
		{"name is the ingress", func(o *ReturnOptions) { o.Name = "eth0" }, "name", "ingress"},
		{"no local", func(o *ReturnOptions) { o.Local = netip.Addr{} }, "local", "required"},
		{"multicast remote", func(o *ReturnOptions) { o.Remote = addr("239.1.1.1") }, "remote", "not a unicast"},
		{"mixed underlay", func(o *ReturnOptions) { o.Remote = addr("2001:db8::9") }, "remote", "not of the family"},
		{"remote is local", func(o *ReturnOptions) { o.Remote = o.Local }, "remote", "is local"},
		{"no vni", func(o *ReturnOptions) { o.VNI = 0 }, "vni", "needs a VNI"},
		{"vni too big", func(o *ReturnOptions) { o.VNI = 1 << 24 }, "vni", "needs a VNI"},
		{"vni with gre", func(o *ReturnOptions) { o.Tunnel = TunnelGRE }, "vni", "only for tunnel vxlan"},
		{"port with gre", func(o *ReturnOptions) { o.Tunnel, o.VNI, o.Port = TunnelGRE, 0, 4789 }, "port", "only for tunnel vxlan"},
		{"gateway outside", func(o *ReturnOptions) { o.Gateway = addr("192.0.2.99") }, "gateway", "192.0.2.99 is not inside address 192.0.2.13/30"},
		{"gateway is own", func(o *ReturnOptions) { o.Gateway = addr("192.0.2.13") }, "gateway", "own address"},
		{"gateway is the network", func(o *ReturnOptions) { o.Gateway = addr("192.0.2.12") }, "gateway", "network or broadcast"},
		{"gateway is the broadcast", func(o *ReturnOptions) { o.Gateway = addr("192.0.2.15") }, "gateway", "network or broadcast"},
		{"point-to-point /31", func(o *ReturnOptions) {
			o.Address, o.Gateway = pfx("192.0.2.12/31"), addr("192.0.2.13")
		}, "", ""},
		{"address without length", func(o *ReturnOptions) { o.Address = pfx("192.0.2.13/32") }, "address", "prefix length"},
		{"address6 is ipv4", func(o *ReturnOptions) {
			o.Address6, o.Gateway6 = pfx("192.0.2.13/30"), addr("192.0.2.14")
		}, "address6", "not an IPv6 prefix"},
		{"gateway without address", func(o *ReturnOptions) { o.Address = netip.Prefix{} }, "address", "required with gateway"},
		{"gateway6 without address6", func(o *ReturnOptions) { o.Gateway6 = addr("2001:db8:ff::2") }, "address6", "required with gateway6"},
		{"no gateway at all", func(o *ReturnOptions) { o.Address, o.Gateway = netip.Prefix{}, netip.Addr{} }, "gateway", "next hop is required"},
		{"main table", func(o *ReturnOptions) { o.Table = 254 }, "table", "kernel"},
		{"negative table", func(o *ReturnOptions) { o.Table = -1 }, "table", "not a routing table"},
		{"priority 32766", func(o *ReturnOptions) { o.RulePriority = 32766 }, "rule-priority", "1-32765"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := good
			tc.edit(&o)
			err := o.Validate()
			if tc.key == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			var oe *OptionError
			if !errors.As(err, &oe) || oe.Key != tc.key || !strings.Contains(oe.Msg, tc.wantMsg) {
				t.Fatalf("Validate: %v, want an OptionError on %s with %q", err, tc.key, tc.wantMsg)
			}
		})
	}
	o := good
	o.Interface = ""
	if err := o.Validate(); err == nil || !strings.Contains(err.Error(), "Interface") {
		t.Errorf("no interface: %v", err)
	}
}
