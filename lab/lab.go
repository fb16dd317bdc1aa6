// Package lab starts real routing daemons as test peers on loopback (FRR
// bgpd, BIRD 2 and ExaBGP 4.2 from Debian), has them accept one BGP session
// from a speaker under test, and reads back what they received.
//
// Each Start* function runs its daemon passively on a 127.0.0.x address and a
// free high port, with peer AS [PeerAS], expecting the speaker at
// Options.SpeakerAddr with AS Options.SpeakerAS, for the families in
// Options.Families (all four by default). It skips the test when the daemon is
// not installed, or fails it when the environment variable CI is set.
//
// The readers (FRR.Routes, BIRD.Routes, ExaBGP.Routes) return [Route] values
// normalised to one form for all daemons, so that a test can compare them
// with an expected list built once; see [Route] for the forms.
//
// The package is Linux-only in practice: it reads /proc/net/tcp to check that
// a daemon is listening, and it signals process groups.
package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// PeerAS is the AS number of every test peer.
const PeerAS uint32 = 65000

// Family names used in Options.Families and Route.Family.
const (
	IPv4Unicast  = "ipv4-unicast"
	IPv6Unicast  = "ipv6-unicast"
	IPv4FlowSpec = "ipv4-flowspec"
	IPv6FlowSpec = "ipv6-flowspec"
)

// AllFamilies is the default for Options.Families.
var AllFamilies = []string{IPv4Unicast, IPv6Unicast, IPv4FlowSpec, IPv6FlowSpec}

// Peer is a running test peer.
type Peer interface {
	Name() string         // "frr", "bird", "exabgp"
	Addr() netip.AddrPort // where it listens (passive)
	AS() uint32           // PeerAS
	Close() error         // stops the daemon and removes its files; idempotent
}

// Options configures a test peer. Zero fields take defaults.
type Options struct {
	// Addr is where the daemon listens. The zero value means the daemon's
	// default address (FRR 127.0.0.2, BIRD 127.0.0.3, ExaBGP 127.0.0.4); port
	// 0 means a random free port in 20000-39999, retried if the bind fails.
	Addr netip.AddrPort
	// SpeakerAddr is the address the speaker connects from (default 127.0.0.1).
	SpeakerAddr netip.Addr
	// SpeakerAS is the speaker's AS (default 65001).
	SpeakerAS uint32
	// Families restricts the negotiated families (default AllFamilies).
	Families []string
}

func (o Options) withDefaults(t testing.TB, defaultAddr string) Options {
	t.Helper()
	if !o.Addr.Addr().IsValid() {
		o.Addr = netip.AddrPortFrom(netip.MustParseAddr(defaultAddr), o.Addr.Port())
	}
	if !o.SpeakerAddr.IsValid() {
		o.SpeakerAddr = netip.MustParseAddr("127.0.0.1")
	}
	if o.SpeakerAS == 0 {
		o.SpeakerAS = 65001
	}
	if len(o.Families) == 0 {
		o.Families = AllFamilies
	}
	for _, f := range o.Families {
		if !slices.Contains(AllFamilies, f) {
			t.Fatalf("lab: unknown family %q (want one of %v)", f, AllFamilies)
		}
	}
	if o.Addr.Addr().Is4() != o.SpeakerAddr.Is4() {
		t.Fatalf("lab: peer address %v and speaker address %v differ in family", o.Addr, o.SpeakerAddr)
	}
	return o
}

func (o Options) has(family string) bool { return slices.Contains(o.Families, family) }

// Route is one path as a peer received it, in a form that is the same for
// every daemon:
//   - Family is one of the IPv4Unicast ... IPv6FlowSpec constants.
//   - Prefix and NextHop (unicast only) are in netip's canonical text form.
//   - Communities are "high:low" numbers, well-known names translated
//     ("blackhole" is "65535:666", "no-export" is "65535:65281"), sorted
//     numerically.
//   - FlowSpec maps each component's name (destination, source, protocol
//     (also IPv6 next-header), port, destination-port, source-port,
//     icmp-type, icmp-code, tcp-flags, packet-length, dscp (also IPv6
//     traffic-class), fragment, flow-label) to its match in ExaBGP-like text:
//     prefixes as "203.0.113.10/32" (IPv6 with a non-zero offset:
//     "2001:db8::/32 offset 8"); numeric items as "=6", ">=8000", "!=",
//     "true", "false"; bitmask items as "=2" (match), "!16" (not), "!=18"
//     (not match) or "18" (any); values in decimal, names translated
//     (tcp is 6, syn is 2, is-fragment is 2); items ANDed to the previous one
//     joined by "&", ORed ones by a space: "=80 =443 >=8000&<=8080". A
//     single-bit bitmask is written with "=" or "!" whatever its match bit,
//     since both mean the same.
//   - Actions are the extended communities, sorted: "discard" (traffic-rate
//     0), "rate-limit 125000" (bytes/s), "redirect 65000:666" (to VRF, also
//     "redirect 192.0.2.1:666"), "redirect-ip 192.0.2.50" (0x010c, with
//     " copy" when the copy bit is set), "redirect-nexthop" (0x0800),
//     "mark 8" (DSCP), "action sample terminal", "rt 65000:1", and
//     "ext-0xTTSS" for any other type.
//   - Stale is set for paths FRR keeps stale during graceful restart.
type Route struct {
	Family      string
	Prefix      string
	NextHop     string
	Communities []string
	FlowSpec    map[string]string
	Actions     []string
	Stale       bool
}

// fsOrder is the canonical component order (by RFC 8955 type).
var fsOrder = []string{"destination", "source", "protocol", "port", "destination-port", "source-port",
	"icmp-type", "icmp-code", "tcp-flags", "packet-length", "dscp", "fragment", "flow-label"}

// Key identifies the route's NLRI: the prefix, or the FlowSpec match.
func (r Route) Key() string {
	if r.FlowSpec == nil {
		return r.Prefix
	}
	var b strings.Builder
	b.WriteByte('{')
	seen := 0
	write := func(k string) {
		if seen > 0 {
			b.WriteString("; ")
		}
		seen++
		fmt.Fprintf(&b, "%s %s", k, r.FlowSpec[k])
	}
	for _, k := range fsOrder {
		if _, ok := r.FlowSpec[k]; ok {
			write(k)
		}
	}
	var rest []string
	for k := range r.FlowSpec {
		if !slices.Contains(fsOrder, k) {
			rest = append(rest, k)
		}
	}
	slices.Sort(rest)
	for _, k := range rest {
		write(k)
	}
	b.WriteByte('}')
	return b.String()
}

// String renders every field of r on one line; two routes are equal exactly
// when their strings are.
func (r Route) String() string {
	s := r.Family + " " + r.Key()
	if r.NextHop != "" {
		s += " nh " + r.NextHop
	}
	if len(r.Communities) > 0 {
		s += " comm [" + strings.Join(r.Communities, " ") + "]"
	}
	if len(r.Actions) > 0 {
		s += " ext [" + strings.Join(r.Actions, ", ") + "]"
	}
	if r.Stale {
		s += " stale"
	}
	return s
}

// SortRoutes sorts routes by family, then key, then the rest.
func SortRoutes(rs []Route) {
	slices.SortFunc(rs, func(a, b Route) int {
		if c := strings.Compare(a.Family, b.Family); c != 0 {
			return c
		}
		if c := strings.Compare(a.Key(), b.Key()); c != 0 {
			return c
		}
		return strings.Compare(a.String(), b.String())
	})
}

// FormatRoutes renders routes one per line, for test messages.
func FormatRoutes(rs []Route) string {
	if len(rs) == 0 {
		return "(no routes)"
	}
	lines := make([]string, len(rs))
	for i, r := range rs {
		lines[i] = "  " + r.String()
	}
	return strings.Join(lines, "\n")
}

// Diff compares route lists regardless of order. It returns "" when they hold
// the same routes, or the missing and unexpected ones.
func Diff(want, got []Route) string {
	count := map[string]int{}
	for _, r := range got {
		count[r.String()]++
	}
	var missing, extra []string
	for _, r := range want {
		s := r.String()
		if count[s] > 0 {
			count[s]--
			continue
		}
		missing = append(missing, "  - "+s)
	}
	for _, r := range got {
		s := r.String()
		if count[s] > 0 {
			count[s]--
			extra = append(extra, "  + "+s)
		}
	}
	if len(missing)+len(extra) == 0 {
		return ""
	}
	return strings.Join(append(missing, extra...), "\n")
}

// WaitFor calls fn every 50 ms until it returns true, the timeout passes or
// ctx ends. On failure the error carries the text of fn's last call, such as
// the routes seen.
func WaitFor(ctx context.Context, timeout time.Duration, fn func() (bool, string)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	for {
		ok, last := fn()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("lab: condition not met after %v (%w); last seen:\n%s",
				time.Since(start).Round(time.Millisecond), ctx.Err(), last)
		case <-tick.C:
		}
	}
}

// need finds a daemon's binary; it skips the test when it is missing, or
// fails it when CI is set.
func need(t testing.TB, pkg string, candidates ...string) string {
	t.Helper()
	for _, c := range candidates {
		if strings.Contains(c, "/") {
			if fi, err := os.Stat(c); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
				return c
			}
			continue
		}
		if p, err := lookPath(c); err == nil {
			return p
		}
	}
	msg := fmt.Sprintf("%s not installed: apt-get install %s (looked for %s)", pkg, pkg, strings.Join(candidates, ", "))
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// errRetry marks start-up failures that another port may avoid.
var errRetry = errors.New("lab: address in use")
