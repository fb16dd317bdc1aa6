package bgp

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/levee-dots/levee/divert"
)

func validConfig() Config {
	return Config{LocalAS: 65001, RouterID: "192.0.2.254",
		Neighbors: []Neighbor{{Name: "edge1", Address: "192.0.2.11", PeerAS: 65000}},
		Domains:   map[string]DomainPolicy{"alpha": {RTBH: true, Countermeasure: "rtbh"}}}
}

// TestValidate: every combination that would later fail, or panic, on a
// request is refused at start with the key to fix.
func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(c *Config)
		want string // "" for valid
	}{
		{"valid", func(c *Config) {}, ""},
		{"redirect style with an IPv4 next hop", func(c *Config) {
			c.Scrubbing = Scrubbing{Style: "flowspec-redirect", NextHopV4: "198.51.100.1"}
		}, ""},
		{"redirect style with only an IPv6 next hop", func(c *Config) {
			c.Scrubbing = Scrubbing{Style: "flowspec-redirect", NextHopV6: "2001:db8:ffff::1"}
		}, "divert.bgp.scrubbing.next-hop-v4: style flowspec-redirect"},
		{"IPv6 address as next-hop-v4", func(c *Config) {
			c.Scrubbing = Scrubbing{Style: "flowspec-redirect", NextHopV4: "2001:db8:ffff::1"}
		}, "divert.bgp.scrubbing.next-hop-v4: \"2001:db8:ffff::1\" is not an IPv4 address"},
		{"IPv4 address as next-hop-v6", func(c *Config) { c.Scrubbing.NextHopV6 = "198.51.100.1" },
			"divert.bgp.scrubbing.next-hop-v6: \"198.51.100.1\" is not an IPv6 address"},
		{"IPv4-mapped next-hop-v6", func(c *Config) { c.Scrubbing.NextHopV6 = "::ffff:198.51.100.1" },
			"divert.bgp.scrubbing.next-hop-v6"},
		{"unknown scrubbing style", func(c *Config) { c.Scrubbing.Style = "gre" }, "divert.bgp.scrubbing.style"},
		{"restart time beyond the capability's 12 bits", func(c *Config) { c.GracefulRestart.RestartTime = 5000 },
			"divert.bgp.graceful-restart.restart-time: 5000 s"},
		{"negative listen port", func(c *Config) { c.ListenPort = -1 }, "divert.bgp.listen-port"},
		{"listen address that is not an IP", func(c *Config) { c.ListenPort, c.ListenAddresses = 179, []string{"edge"} },
			"divert.bgp.listen-addresses[0]"},
		{"listen addresses without a port", func(c *Config) { c.ListenAddresses = []string{"192.0.2.10"} },
			"divert.bgp.listen-port: listen-addresses is set"},
		{"neighbor port out of range", func(c *Config) { c.Neighbors[0].Port = 70000 }, "divert.bgp.neighbors[0].port"},
		{"local address of the other IP version", func(c *Config) { c.Neighbors[0].LocalAddress = "2001:db8::10" },
			"divert.bgp.neighbors[0].local-address"},
		{"receives flowspec without a flowspec family", func(c *Config) {
			c.Neighbors[0].Families = []string{"ipv4-unicast"}
			c.Neighbors[0].Receives = []string{"rtbh", "flowspec"}
		}, "divert.bgp.neighbors[0].receives[1]: flowspec routes travel in ipv4-flowspec or ipv6-flowspec, and neither is in families [ipv4-unicast]"},
		{"receives rtbh without a unicast family", func(c *Config) {
			c.Neighbors[0].Families = []string{"ipv4-flowspec"}
			c.Neighbors[0].Receives = []string{"rtbh"}
		}, "divert.bgp.neighbors[0].receives[0]: rtbh routes travel in ipv4-unicast or ipv6-unicast"},
		{"redirect scrubbing to a unicast-only neighbor", func(c *Config) {
			c.Scrubbing = Scrubbing{Style: "flowspec-redirect", NextHopV4: "198.51.100.1"}
			c.Neighbors[0].Families = []string{"ipv4-unicast"}
			c.Neighbors[0].Receives = []string{"scrubbing"}
		}, "divert.bgp.neighbors[0].receives[0]: scrubbing routes travel in ipv4-flowspec"},
		{"default receives follow the families", func(c *Config) { c.Neighbors[0].Families = []string{"ipv4-unicast"} }, ""},
		{"names-countermeasure rtbh without rtbh rights", func(c *Config) {
			c.Domains["beta"] = DomainPolicy{NamesCountermeasure: "rtbh"}
		}, "divert.bgp.domains.beta.names-countermeasure: rtbh needs rtbh: true"},
		{"names-countermeasure scrubbing without a scrubbing centre", func(c *Config) {
			c.Default.NamesCountermeasure = "scrubbing"
		}, "divert.bgp.default-policy.names-countermeasure: scrubbing needs"},
		{"unknown names-countermeasure", func(c *Config) { c.Default.NamesCountermeasure = "null" },
			"divert.bgp.default-policy.names-countermeasure: \"null\""},
		{"names-countermeasure rtbh opted in", func(c *Config) {
			c.Domains["alpha"] = DomainPolicy{RTBH: true, Countermeasure: "rtbh", NamesCountermeasure: "rtbh"}
		}, ""},
		{"withdraw-on-shutdown", func(c *Config) {
			c.GracefulRestart = GracefulRestart{Enabled: true, WithdrawOnShutdown: true}
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			tc.edit(&c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Validate: %v, want no error", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Validate: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestDefaultReceives: without receives, a neighbor gets the kinds its
// families can carry.
func TestDefaultReceives(t *testing.T) {
	c := validConfig()
	c.Neighbors[0].Families = []string{"ipv6-flowspec"}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.Neighbors[0].Receives, ","); got != "flowspec" {
		t.Fatalf("receives %s, want flowspec", got)
	}
}

// TestPlanDoesNotPanic: a configuration that skipped Validate (the
// redirect style with only an IPv6 next hop) makes a scrubbing request an
// error, not a panic.
func TestPlanDoesNotPanic(t *testing.T) {
	c := validConfig()
	c.defaults()
	c.Scrubbing = Scrubbing{Style: "flowspec-redirect", NextHopV6: "2001:db8:ffff::1"}
	b := &Backend{cfg: c}
	_, err := b.plan(divert.Diversion{Domain: "alpha", Countermeasure: "scrubbing",
		Prefixes: []netip.Prefix{netip.MustParsePrefix("203.0.113.10/32")}})
	if err == nil || !strings.Contains(err.Error(), "next-hop-v4") {
		t.Fatalf("plan: %v, want an error naming next-hop-v4", err)
	}
}
