package bgp

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/levee-dots/levee/flowspec"
)

// Route kinds a neighbor may receive.
const (
	KindRTBH      = "rtbh"      // RFC 7999 blackhole routes
	KindFlowSpec  = "flowspec"  // RFC 8955/8956 rules
	KindScrubbing = "scrubbing" // on-ramp: the target with the scrubbing centre as next hop
)

// Families a neighbor may negotiate.
var knownFamilies = []string{"ipv4-unicast", "ipv6-unicast", "ipv4-flowspec", "ipv6-flowspec"}

// Config is the embedded speaker's configuration (the divert.bgp section of dotsd.yaml).
type Config struct {
	LocalAS         uint32          `yaml:"local-as"`
	RouterID        string          `yaml:"router-id"`
	ListenPort      int32           `yaml:"listen-port"` // 0 (default): no listener, dial out only
	ListenAddresses []string        `yaml:"listen-addresses"`
	GracefulRestart GracefulRestart `yaml:"graceful-restart"`
	Neighbors       []Neighbor      `yaml:"neighbors"`
	// DiscardNextHopV4/V6 are the RTBH next hops (RFC 5635 discard routes at the edge).
	DiscardNextHopV4 string `yaml:"discard-next-hop-v4"`
	DiscardNextHopV6 string `yaml:"discard-next-hop-v6"`
	// Safety rails.
	MinPrefixV4        int  `yaml:"min-prefix-length-v4"` // shortest prefix that may be diverted (default 24)
	MinPrefixV6        int  `yaml:"min-prefix-length-v6"` // default 48
	MaxRoutesPerDomain int  `yaml:"max-routes-per-domain"`
	DryRun             bool `yaml:"dry-run"` // log the routes instead of announcing them
	// Scrubbing on-ramp.
	Scrubbing Scrubbing `yaml:"scrubbing"`
	// Domains holds the countermeasure policy per client domain; a domain
	// without an entry gets Default.
	Domains map[string]DomainPolicy `yaml:"domains"`
	Default DomainPolicy            `yaml:"default-policy"`
}

// GracefulRestart (RFC 4724) lets routers keep our routes while dotsd restarts.
type GracefulRestart struct {
	Enabled     bool   `yaml:"enabled"`
	RestartTime uint32 `yaml:"restart-time"` // seconds, default 120, at most 4095
	// WithdrawOnShutdown ends the sessions with a Cease at a clean stop, so
	// routers drop every route at once. By default a stop with graceful
	// restart only closes the connections: routers keep the routes as
	// stale for RestartTime, until dotsd is back and refreshes them.
	// Without graceful restart a stop always withdraws.
	WithdrawOnShutdown bool `yaml:"withdraw-on-shutdown"`
}

// maxRestartTime is the largest Restart Time the 12-bit field of the
// graceful restart capability can carry (RFC 4724 §3).
const maxRestartTime = 4095

// Neighbor is one edge router.
type Neighbor struct {
	Name         string   `yaml:"name"`
	Address      string   `yaml:"address"`
	Port         uint32   `yaml:"port"` // default 179
	PeerAS       uint32   `yaml:"peer-as"`
	LocalAddress string   `yaml:"local-address"`
	Password     string   `yaml:"password"` // TCP-MD5 (RFC 2385)
	Families     []string `yaml:"families"`
	// Receives lists the route kinds this neighbor gets (rtbh, flowspec, scrubbing).
	Receives []string `yaml:"receives"`
	// Communities are added to every route sent to this neighbor ("65000:100").
	Communities []string `yaml:"communities"`
	// FlowSpecBudget bounds the FlowSpec rules sent to this neighbor (default 1000).
	FlowSpecBudget int `yaml:"flowspec-budget"`
}

// DomainPolicy chooses the countermeasure of a client domain's requests.
type DomainPolicy struct {
	// RTBH: the domain may be blackholed (RTBH on request).
	RTBH bool `yaml:"rtbh"`
	// Countermeasure for a scope without ports or protocols: rtbh, flowspec
	// or scrubbing (default flowspec). A scope naming ports or protocols
	// always gets flowspec.
	Countermeasure string `yaml:"countermeasure"`
	// FlowSpecAction: discard (default), "rate-limit BYTES", "redirect-vrf RT", "redirect-ip A.B.C.D", "mark DSCP".
	FlowSpecAction string `yaml:"flowspec-action"`
	// Communities added to this domain's RTBH routes.
	Communities []string `yaml:"communities"`
	// NamesCountermeasure is the countermeasure for the addresses that
	// came from resolving target-fqdn or target-uri names: flowspec,
	// scrubbing or rtbh. Those addresses usually host the origin that
	// must keep receiving the cleaned traffic, so they are never
	// blackholed unless this says rtbh. Empty: the domain's
	// default-policy value, else the domain's countermeasure when that is
	// not rtbh, else flowspec.
	NamesCountermeasure string `yaml:"names-countermeasure"`
}

// Scrubbing is the on-ramp toward the scrubbing centre.
type Scrubbing struct {
	NextHopV4 string `yaml:"next-hop-v4"`
	NextHopV6 string `yaml:"next-hop-v6"`
	// Style: next-hop (announce the target more-specific with the scrubbing
	// centre as next hop, default) or flowspec-redirect (a FlowSpec rule
	// with redirect-to-IPv4 toward NextHopV4).
	Style string `yaml:"style"`
}

func (c *Config) defaults() {
	if c.DiscardNextHopV4 == "" {
		c.DiscardNextHopV4 = "192.0.2.1"
	}
	if c.DiscardNextHopV6 == "" {
		c.DiscardNextHopV6 = "100::1"
	}
	if c.MinPrefixV4 == 0 {
		c.MinPrefixV4 = 24
	}
	if c.MinPrefixV6 == 0 {
		c.MinPrefixV6 = 48
	}
	if c.MaxRoutesPerDomain == 0 {
		c.MaxRoutesPerDomain = 256
	}
	if c.GracefulRestart.RestartTime == 0 {
		c.GracefulRestart.RestartTime = 120
	}
	if c.Scrubbing.Style == "" {
		c.Scrubbing.Style = "next-hop"
	}
	for i := range c.Neighbors {
		n := &c.Neighbors[i]
		if n.Port == 0 {
			n.Port = 179
		}
		if len(n.Families) == 0 {
			n.Families = knownFamilies
		}
		if len(n.Receives) == 0 {
			// Every kind the neighbor's families can carry.
			for _, k := range []string{KindRTBH, KindFlowSpec, KindScrubbing} {
				if len(c.carriers(n, k)) > 0 {
					n.Receives = append(n.Receives, k)
				}
			}
		}
		if n.FlowSpecBudget == 0 {
			n.FlowSpecBudget = 1000
		}
		if n.Name == "" {
			n.Name = n.Address
		}
	}
}

// Validate checks the configuration and names the key at fault (relative
// to the divert.bgp section).
func (c *Config) Validate() error {
	explicit := make([]bool, len(c.Neighbors)) // receives given in the file
	for i, n := range c.Neighbors {
		explicit[i] = len(n.Receives) > 0
	}
	c.defaults()
	bad := func(key, format string, args ...any) error {
		return fmt.Errorf("divert.bgp.%s: %s", key, fmt.Sprintf(format, args...))
	}
	if c.LocalAS == 0 {
		return bad("local-as", "the speaker's AS number is required")
	}
	if a, err := netip.ParseAddr(c.RouterID); err != nil || !a.Is4() {
		return bad("router-id", "%q is not an IPv4 address", c.RouterID)
	}
	if a, err := netip.ParseAddr(c.DiscardNextHopV4); err != nil || !a.Is4() {
		return bad("discard-next-hop-v4", "%q is not an IPv4 address", c.DiscardNextHopV4)
	}
	if a, err := netip.ParseAddr(c.DiscardNextHopV6); err != nil || !a.Is6() {
		return bad("discard-next-hop-v6", "%q is not an IPv6 address", c.DiscardNextHopV6)
	}
	if c.ListenPort < 0 || c.ListenPort > 65535 {
		return bad("listen-port", "%d: use 1-65535, or 0 for no listener (dial out only)", c.ListenPort)
	}
	for i, a := range c.ListenAddresses {
		if _, err := netip.ParseAddr(a); err != nil {
			return bad(fmt.Sprintf("listen-addresses[%d]", i), "%q is not an IP address", a)
		}
	}
	if len(c.ListenAddresses) > 0 && c.ListenPort == 0 {
		return bad("listen-port", "listen-addresses is set but listen-port is 0 (no listener): set listen-port, e.g. 179")
	}
	if c.GracefulRestart.RestartTime > maxRestartTime {
		return bad("graceful-restart.restart-time", "%d s: the graceful restart capability carries at most %d s", c.GracefulRestart.RestartTime, maxRestartTime)
	}
	if err := c.validateScrubbing(); err != nil {
		return err
	}
	if c.MinPrefixV4 < 0 || c.MinPrefixV4 > 32 || c.MinPrefixV6 < 0 || c.MinPrefixV6 > 128 {
		return bad("min-prefix-length-v4", "prefix lengths must be 0-32 (v4) and 0-128 (v6)")
	}
	if len(c.Neighbors) == 0 {
		return bad("neighbors", "at least one neighbor is required")
	}
	seen := map[string]bool{}
	for i, n := range c.Neighbors {
		key := fmt.Sprintf("neighbors[%d]", i)
		if _, err := netip.ParseAddr(n.Address); err != nil {
			return bad(key+".address", "%q is not an IP address", n.Address)
		}
		if seen[n.Address] {
			return bad(key+".address", "%s is configured twice", n.Address)
		}
		seen[n.Address] = true
		if n.PeerAS == 0 {
			return bad(key+".peer-as", "the neighbor's AS number is required")
		}
		if n.Port > 65535 {
			return bad(key+".port", "%d is not a TCP port", n.Port)
		}
		if n.LocalAddress != "" {
			la, err := netip.ParseAddr(n.LocalAddress)
			if err != nil {
				return bad(key+".local-address", "%q is not an IP address", n.LocalAddress)
			}
			if a := netip.MustParseAddr(n.Address); a.Is4() != la.Is4() {
				return bad(key+".local-address", "%s and the neighbor address %s are not of the same IP version", la, a)
			}
		}
		for j, f := range n.Families {
			if !slices.Contains(knownFamilies, f) {
				return bad(fmt.Sprintf("%s.families[%d]", key, j), "%q: use %s", f, strings.Join(knownFamilies, ", "))
			}
		}
		for j, r := range n.Receives {
			if r != KindRTBH && r != KindFlowSpec && r != KindScrubbing {
				return bad(fmt.Sprintf("%s.receives[%d]", key, j), "%q: use rtbh, flowspec or scrubbing", r)
			}
			if explicit[i] && len(c.carriers(&n, r)) == 0 {
				return bad(fmt.Sprintf("%s.receives[%d]", key, j), "%s routes travel in %s, and neither is in families %v: add one to families or drop %s",
					r, strings.Join(c.familiesFor(r), " or "), n.Families, r)
			}
		}
		for j, cm := range n.Communities {
			if _, err := parseCommunity(cm); err != nil {
				return bad(fmt.Sprintf("%s.communities[%d]", key, j), "%v", err)
			}
		}
		if n.FlowSpecBudget < 0 {
			return bad(key+".flowspec-budget", "must not be negative")
		}
	}
	if err := c.validatePolicy("default-policy", c.Default); err != nil {
		return err
	}
	for name, p := range c.Domains {
		if err := c.validatePolicy("domains."+name, p); err != nil {
			return err
		}
	}
	return nil
}

// validateScrubbing checks the on-ramp: each next hop of its own IP
// version, and an IPv4 one for the flowspec-redirect style, whose
// redirect-to-IPv4 action (0x010c) can only carry an IPv4 address.
func (c *Config) validateScrubbing() error {
	s := c.Scrubbing
	if s.Style != "next-hop" && s.Style != "flowspec-redirect" {
		return fmt.Errorf("divert.bgp.scrubbing.style: %q: use next-hop or flowspec-redirect", s.Style)
	}
	for _, nh := range []struct {
		key, addr string
		v4        bool
	}{{"next-hop-v4", s.NextHopV4, true}, {"next-hop-v6", s.NextHopV6, false}} {
		if nh.addr == "" {
			continue
		}
		a, err := netip.ParseAddr(nh.addr)
		if err != nil || a.Is4() != nh.v4 || a.Is4In6() {
			want := map[bool]string{true: "IPv4", false: "IPv6"}[nh.v4]
			return fmt.Errorf("divert.bgp.scrubbing.%s: %q is not an %s address", nh.key, nh.addr, want)
		}
	}
	if s.Style == "flowspec-redirect" && s.NextHopV4 == "" && s.NextHopV6 != "" {
		return fmt.Errorf("divert.bgp.scrubbing.next-hop-v4: style flowspec-redirect redirects to an IPv4 address (redirect-to-IPv4, 0x010c), " +
			"and only next-hop-v6 is set: set next-hop-v4, or use style next-hop")
	}
	return nil
}

// scrubbingConfigured reports whether the on-ramp has a next hop.
func (c *Config) scrubbingConfigured() bool {
	return c.Scrubbing.NextHopV4 != "" || c.Scrubbing.NextHopV6 != ""
}

// familiesFor names the families that carry a kind of route.
func (c *Config) familiesFor(kind string) []string {
	switch {
	case kind == KindFlowSpec, kind == KindScrubbing && c.Scrubbing.Style == "flowspec-redirect":
		return []string{"ipv4-flowspec", "ipv6-flowspec"}
	}
	return []string{"ipv4-unicast", "ipv6-unicast"}
}

// carriers are the families of n that carry a kind of route.
func (c *Config) carriers(n *Neighbor, kind string) []string {
	var out []string
	for _, f := range c.familiesFor(kind) {
		if slices.Contains(n.Families, f) {
			out = append(out, f)
		}
	}
	return out
}

func (c *Config) validateKind(key, kind string, p DomainPolicy) error {
	switch kind {
	case "", "flowspec":
	case "rtbh":
		if !p.RTBH {
			return fmt.Errorf("divert.bgp.%s: rtbh needs rtbh: true (the domain must be allowed to be blackholed)", key)
		}
	case "scrubbing":
		if !c.scrubbingConfigured() {
			return fmt.Errorf("divert.bgp.%s: scrubbing needs divert.bgp.scrubbing.next-hop-v4 or -v6", key)
		}
	default:
		return fmt.Errorf("divert.bgp.%s: %q: use flowspec, rtbh or scrubbing", key, kind)
	}
	return nil
}

func (c *Config) validatePolicy(key string, p DomainPolicy) error {
	if err := c.validateKind(key+".countermeasure", p.Countermeasure, p); err != nil {
		return err
	}
	if err := c.validateKind(key+".names-countermeasure", p.NamesCountermeasure, p); err != nil {
		return err
	}
	if p.FlowSpecAction != "" {
		if _, err := flowspec.ParseAction(p.FlowSpecAction); err != nil {
			return fmt.Errorf("divert.bgp.%s.flowspec-action: %v", key, err)
		}
	}
	for j, cm := range p.Communities {
		if _, err := parseCommunity(cm); err != nil {
			return fmt.Errorf("divert.bgp.%s.communities[%d]: %v", key, j, err)
		}
	}
	return nil
}

// Countermeasure is the countermeasure a domain's requests get when they
// name none and cover no ports or protocols (its policy's, by default
// flowspec).
func (c *Config) Countermeasure(domain string) string {
	if k := c.policy(domain).Countermeasure; k != "" {
		return k
	}
	return KindFlowSpec
}

// AllowsRTBH reports whether the domain may be blackholed.
func (c *Config) AllowsRTBH(domain string) bool { return c.policy(domain).RTBH }

// ScrubbingConfigured reports whether a scrubbing on-ramp is configured.
func (c *Config) ScrubbingConfigured() bool { return c.scrubbingConfigured() }

func (c *Config) policy(domain string) DomainPolicy {
	if p, ok := c.Domains[domain]; ok {
		return p
	}
	return c.Default
}

// parseCommunity parses "ASN:VALUE" or a well-known name.
func parseCommunity(s string) (uint32, error) {
	switch strings.ToLower(s) {
	case "no-export":
		return 0xFFFFFF01, nil
	case "no-advertise":
		return 0xFFFFFF02, nil
	case "blackhole":
		return 0xFFFF029A, nil
	}
	a, b, ok := strings.Cut(s, ":")
	hi, err1 := strconv.ParseUint(a, 10, 16)
	lo, err2 := strconv.ParseUint(b, 10, 16)
	if !ok || err1 != nil || err2 != nil {
		return 0, fmt.Errorf("community %q: want ASN:VALUE (each 0-65535) or no-export, no-advertise, blackhole", s)
	}
	return uint32(hi)<<16 | uint32(lo), nil
}
