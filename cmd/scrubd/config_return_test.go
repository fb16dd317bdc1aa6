package main

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/levee-dots/levee/scrub"
)

const returnBase = "listen: 127.0.0.1:4680\ntls: {certificate: c.pem, key: k.pem, client-cas: [ca.pem]}\ninterface: sd0\n"

// returnSection is a valid return section with key replaced by value
// ("" drops the key).
func returnSection(edits map[string]string) string {
	keys := []string{"tunnel", "name", "local", "remote", "vni", "port", "address", "gateway", "gateway6", "address6", "table", "rule-priority"}
	vals := map[string]string{"tunnel": "auto", "name": "vx-clean", "local": "192.0.2.2", "remote": "192.0.2.9",
		"vni": "100", "port": "4789", "address": "192.0.2.13/30", "gateway": "192.0.2.14", "gateway6": `""`, "address6": `""`,
		"table": "4680", "rule-priority": "4680"}
	var b strings.Builder
	b.WriteString("return:\n")
	for _, k := range keys {
		v := vals[k]
		if e, ok := edits[k]; ok {
			v = e
		}
		if v != "" {
			fmt.Fprintf(&b, "  %s: %s\n", k, v)
		}
	}
	return b.String()
}

func loadText(t *testing.T, text string) (*fileConfig, error) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "scrubd.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return loadConfig(p)
}

func TestConfigReturnRefusals(t *testing.T) {
	cases := []struct {
		name  string
		edits map[string]string
		want  string
	}{
		{"unknown tunnel", map[string]string{"tunnel": "ipip"}, `return.tunnel: "ipip": use auto, vxlan or gre`},
		{"no name", map[string]string{"name": ""}, "return.name: the tunnel interface name is required"},
		{"long name", map[string]string{"name": "vx-clean-toolong"}, "return.name:"},
		{"name is the interface", map[string]string{"name": "sd0"}, "return.name:"},
		{"no local", map[string]string{"local": ""}, "return.local: an underlay address is required"},
		{"local not an address", map[string]string{"local": "scrubber"}, `return.local: "scrubber" is not an IP address`},
		{"remote with a length", map[string]string{"remote": "192.0.2.9/32"}, "return.remote:"},
		{"remote of another family", map[string]string{"remote": "2001:db8::9"}, "return.remote:"},
		{"remote is local", map[string]string{"remote": "192.0.2.2"}, "return.remote:"},
		{"no vni", map[string]string{"vni": ""}, "return.vni:"},
		{"vni too big", map[string]string{"vni": "16777216"}, "return.vni:"},
		{"negative vni", map[string]string{"vni": "-1"}, "return.vni:"},
		{"vni with gre", map[string]string{"tunnel": "gre", "port": ""}, "return.vni: only for tunnel vxlan"},
		{"port with gre", map[string]string{"tunnel": "gre", "vni": ""}, "return.port: only for tunnel vxlan"},
		{"port too big", map[string]string{"port": "65536"}, "return.port:"},
		{"address without length", map[string]string{"address": "192.0.2.13"}, "return.address:"},
		{"address is ipv6", map[string]string{"address": "2001:db8:ff::1/64"}, "return.address:"},
		{"gateway outside", map[string]string{"gateway": "192.0.2.99"}, "return.gateway: 192.0.2.99 is not inside address 192.0.2.13/30"},
		{"gateway is own address", map[string]string{"gateway": "192.0.2.13"}, "return.gateway:"},
		{"gateway not an address", map[string]string{"gateway": "next"}, "return.gateway:"},
		{"no gateway", map[string]string{"gateway": ""}, "return.gateway: required with address"},
		{"no gateway of any family", map[string]string{"gateway": "", "address": ""}, "return.gateway: a next hop is required"},
		{"gateway6 without address6", map[string]string{"gateway6": "2001:db8:ff::2"}, "return.address6: required with gateway6"},
		{"address6 without gateway6", map[string]string{"address6": "2001:db8:ff::1/64"}, "return.gateway6: required with address6"},
		{"gateway6 outside", map[string]string{"address6": "2001:db8:ff::1/64", "gateway6": "2001:db8:fe::2"}, "return.gateway6:"},
		{"address6 is ipv4", map[string]string{"address6": "192.0.2.17/30", "gateway6": "192.0.2.18"}, "return.address6:"},
		{"main table", map[string]string{"table": "254"}, "return.table:"},
		{"table out of range", map[string]string{"table": "4294967296"}, "return.table:"},
		{"priority of main", map[string]string{"rule-priority": "32766"}, "return.rule-priority:"},
		{"negative priority", map[string]string{"rule-priority": "-5"}, "return.rule-priority:"},
		{"unknown key", map[string]string{"name": "vx-clean\n  mtu: 1400"}, "field mtu not found"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadText(t, returnBase+returnSection(tc.edits))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want %q", err, tc.want)
			}
		})
	}
}

func TestConfigReturn(t *testing.T) {
	addr, pfx := netip.MustParseAddr, netip.MustParsePrefix
	cases := []struct {
		name string
		text string
		want *scrub.ReturnOptions
	}{
		{"absent: filter only", returnBase, nil},
		{"the documented example", returnBase + returnSection(nil), &scrub.ReturnOptions{Interface: "sd0", Tunnel: "auto",
			Name: "vx-clean", Local: addr("192.0.2.2"), Remote: addr("192.0.2.9"), VNI: 100, Port: 4789,
			Address: pfx("192.0.2.13/30"), Gateway: addr("192.0.2.14"), Table: 4680, RulePriority: 4680}},
		{"defaults", returnBase + returnSection(map[string]string{"tunnel": "", "port": "", "table": "", "rule-priority": "",
			"gateway6": "", "address6": ""}), &scrub.ReturnOptions{Interface: "sd0", Tunnel: "auto",
			Name: "vx-clean", Local: addr("192.0.2.2"), Remote: addr("192.0.2.9"), VNI: 100, Port: 4789,
			Address: pfx("192.0.2.13/30"), Gateway: addr("192.0.2.14"), Table: 4680, RulePriority: 4680}},
		{"gre, ipv6 too", returnBase + returnSection(map[string]string{"tunnel": "gre", "vni": "", "port": "",
			"address6": "2001:db8:ff::1/64", "gateway6": "2001:db8:ff::2", "table": "100", "rule-priority": "900"}),
			&scrub.ReturnOptions{Interface: "sd0", Tunnel: "gre", Name: "vx-clean", Local: addr("192.0.2.2"), Remote: addr("192.0.2.9"),
				Address: pfx("192.0.2.13/30"), Gateway: addr("192.0.2.14"), Address6: pfx("2001:db8:ff::1/64"),
				Gateway6: addr("2001:db8:ff::2"), Table: 100, RulePriority: 900}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := loadText(t, tc.text)
			if err != nil {
				t.Fatal(err)
			}
			if (c.ret == nil) != (tc.want == nil) || (c.ret != nil && *c.ret != *tc.want) {
				t.Errorf("got %+v\nwant %+v", c.ret, tc.want)
			}
		})
	}
}
