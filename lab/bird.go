package lab

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// BIRD is a running BIRD 2 daemon, queried through birdc.
type BIRD struct {
	d     *daemon
	o     Options
	birdc string
	sock  string
}

var _ Peer = (*BIRD)(nil)

// birdProto is the name of the BGP protocol in the generated configuration.
const birdProto = "speaker"

// StartBIRD starts bird -f as a passive peer. Unicast routes are imported
// with a filter that makes RTBH routes (community 65535:666) blackholes, as
// their next hop cannot be resolved here; other unicast routes are kept
// (shown as unreachable). FlowSpec goes to tables flowtab4 and flowtab6
// without validation. It skips the test when BIRD is not installed (fails it
// when CI is set) and stops bird at cleanup.
func StartBIRD(t testing.TB, o Options) *BIRD {
	t.Helper()
	bird := need(t, "bird2", "bird", "/usr/sbin/bird")
	birdc := need(t, "bird2", "birdc", "/usr/sbin/birdc")
	o = o.withDefaults(t, "127.0.0.3")
	b := &BIRD{birdc: birdc}
	b.d = launch(t, "bird", &o, func(ap netip.AddrPort) (*daemon, error) {
		dir, err := makeDir("bird")
		if err != nil {
			return nil, err
		}
		conf, sock := filepath.Join(dir, "bird.conf"), filepath.Join(dir, "bird.ctl")
		if err := os.WriteFile(conf, []byte(birdConfig(ap, o)), 0o644); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		d, err := spawn("bird", dir, bird, []string{"-f", "-c", conf, "-s", sock, "-P", filepath.Join(dir, "bird.pid")}, nil)
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		err = d.waitReady(t.Context(), ap, func(ctx context.Context) error {
			_, err := run(ctx, birdc, "-s", sock, "show", "status")
			return err
		})
		if err != nil {
			d.stop()
			return nil, err
		}
		b.sock = sock
		return d, nil
	})
	b.o = o
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("lab: bird on %v output:\n%s", o.Addr, b.d.output())
		}
		if err := b.Close(); err != nil {
			t.Errorf("lab: %v", err)
		}
	})
	return b
}

func birdConfig(ap netip.AddrPort, o Options) string {
	rid := "192.0.2.253"
	if ap.Addr().Is4() {
		rid = ap.Addr().String()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "router id %s;\nlog stderr all;\n", rid)
	b.WriteString("flow4 table flowtab4;\nflow6 table flowtab6;\nprotocol device { }\n")
	b.WriteString("filter lab_import {\n  if (65535,666) ~ bgp_community then dest = RTD_BLACKHOLE;\n  accept;\n}\n")
	fmt.Fprintf(&b, "protocol bgp %s {\n  local %s port %d as %d;\n  neighbor %s as %d;\n",
		birdProto, ap.Addr(), ap.Port(), PeerAS, o.SpeakerAddr, o.SpeakerAS)
	b.WriteString("  passive on;\n  strict bind on;\n  multihop;\n")
	if o.has(IPv4Unicast) {
		b.WriteString("  ipv4 { import filter lab_import; export none; };\n")
	}
	if o.has(IPv6Unicast) {
		b.WriteString("  ipv6 { import filter lab_import; export none; };\n")
	}
	if o.has(IPv4FlowSpec) {
		b.WriteString("  flow4 { table flowtab4; import all; export none; };\n")
	}
	if o.has(IPv6FlowSpec) {
		b.WriteString("  flow6 { table flowtab6; import all; export none; };\n")
	}
	b.WriteString("}\n")
	return b.String()
}

func (b *BIRD) Name() string         { return "bird" }
func (b *BIRD) Addr() netip.AddrPort { return b.o.Addr }

// Dir is the directory holding the configuration and logs (removed by Close).
func (b *BIRD) Dir() string { return b.d.dir }

func (b *BIRD) AS() uint32 { return PeerAS }

// Close stops bird and removes its directory. It is idempotent.
func (b *BIRD) Close() error { return b.d.stop() }

// Birdc runs one birdc command (words as separate arguments) and returns
// its output.
func (b *BIRD) Birdc(ctx context.Context, command ...string) (string, error) {
	out, err := run(ctx, b.birdc, append([]string{"-s", b.sock}, command...)...)
	return string(out), err
}

// Established reports whether the session with the speaker is established.
func (b *BIRD) Established(ctx context.Context) (bool, error) {
	out, err := b.Birdc(ctx, "show", "protocols", birdProto)
	if err != nil {
		return false, err
	}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == birdProto {
			return strings.Contains(line, "Established"), nil
		}
	}
	return false, fmt.Errorf("lab: bird: protocol %s not listed:\n%s", birdProto, out)
}

// Routes returns every route in BIRD's tables ("show route all"),
// normalised and sorted.
func (b *BIRD) Routes(ctx context.Context) ([]Route, error) {
	out, err := b.Birdc(ctx, "show", "route", "all")
	if err != nil {
		return nil, err
	}
	routes, err := parseBIRDRoutes(out)
	if err != nil {
		return nil, err
	}
	SortRoutes(routes)
	return routes, nil
}

var (
	birdCommunityRE = regexp.MustCompile(`\((\d+),\s*(\d+)\)`)
	birdExtRE       = regexp.MustCompile(`\(([^,()]+),\s*([^,()]+),\s*([^,()]+)\)`)
)

// parseBIRDRoutes reads birdc "show route all" output: a route line per
// network, further paths on indented lines, attributes on tab-indented lines.
func parseBIRDRoutes(out string) ([]Route, error) {
	var routes []Route
	var cur *Route
	var net string
	flush := func() {
		if cur != nil {
			cur.Actions = sortedOrNil(cur.Actions)
			routes = append(routes, *cur)
			cur = nil
		}
	}
	begin := func() error {
		flush()
		r, err := birdNet(net)
		if err != nil {
			return err
		}
		cur = &r
		return nil
	}
	for _, line := range strings.Split(out, "\n") {
		switch {
		case strings.TrimSpace(line) == "", strings.HasPrefix(line, "BIRD "), strings.HasPrefix(line, "Table "):
			continue
		case line[0] != ' ' && line[0] != '\t':
			net = strings.Fields(line)[0]
			if strings.HasPrefix(line, "flow") {
				end := strings.IndexByte(line, '}')
				if end < 0 {
					return nil, fmt.Errorf("lab: bird: unterminated flow in %q", line)
				}
				net = line[:end+1]
			}
			if err := begin(); err != nil {
				return nil, err
			}
		case line[0] == ' ' && strings.Contains(line, "[") && net != "":
			if err := begin(); err != nil { // another path for the same network
				return nil, err
			}
		case line[0] == '\t' && cur != nil:
			key, val, _ := strings.Cut(strings.TrimSpace(line), ":")
			val = strings.TrimSpace(val)
			switch key {
			case "BGP.next_hop":
				if cur.FlowSpec == nil && val != "" {
					cur.NextHop = fsPrefixAddr(strings.Fields(val)[0])
				}
			case "BGP.community":
				var cs []uint32
				for _, m := range birdCommunityRE.FindAllStringSubmatch(val, -1) {
					hi, _ := strconv.ParseUint(m[1], 10, 16)
					lo, _ := strconv.ParseUint(m[2], 10, 16)
					cs = append(cs, uint32(hi)<<16|uint32(lo))
				}
				cur.Communities = communityStrings(cs)
			case "BGP.ext_community":
				for _, m := range birdExtRE.FindAllStringSubmatch(val, -1) {
					cur.Actions = append(cur.Actions, birdExtCommunity(m[1], m[2], m[3]))
				}
			}
		}
	}
	flush()
	return routes, nil
}

func fsPrefixAddr(s string) string {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.String()
	}
	return s
}

// birdNet reads "203.0.113.10/32", "2001:db8::10/128" or "flow4 { ... }".
func birdNet(net string) (Route, error) {
	for _, f := range []struct{ prefix, family string }{{"flow4 {", IPv4FlowSpec}, {"flow6 {", IPv6FlowSpec}} {
		if body, ok := strings.CutPrefix(net, f.prefix); ok {
			fs, err := birdFlow(strings.TrimSuffix(body, "}"))
			return Route{Family: f.family, FlowSpec: fs}, err
		}
	}
	p, err := netip.ParsePrefix(net)
	if err != nil {
		return Route{}, fmt.Errorf("lab: bird: cannot read network %q", net)
	}
	fam := IPv4Unicast
	if p.Addr().Is6() {
		fam = IPv6Unicast
	}
	return Route{Family: fam, Prefix: p.String()}, nil
}

var birdFSNames = []string{"tcp flags", "icmp type", "icmp code", "next header", "dst", "src", "proto",
	"port", "dport", "sport", "length", "dscp", "fragment", "label"}

// birdFlow reads "dst 203.0.113.10/32; proto 6; dport 80,443,8000..8080; tcp flags 0x2/0x2 && 0x0/0x10; "
func birdFlow(body string) (map[string]string, error) {
	fs := map[string]string{}
	for _, part := range strings.Split(body, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name := ""
		for _, n := range birdFSNames {
			if strings.HasPrefix(part, n+" ") {
				name = n
				break
			}
		}
		if name == "" {
			return nil, fmt.Errorf("lab: bird: unknown flow component %q", part)
		}
		comp, val := canonicalComponent(name), strings.TrimSpace(part[len(name):])
		switch {
		case comp == "destination" || comp == "source":
			p, off, _ := strings.Cut(val, " offset ")
			n, _ := strconv.Atoi(off)
			fs[comp] = fsPrefix(p, n)
		case bitmaskComponents[comp]:
			fs[comp] = formatItems(comp, birdBitmaskItems(val))
		default:
			fs[comp] = formatItems(comp, birdNumericItems(val))
		}
	}
	return fs, nil
}

// birdNumericItems reads BIRD's numeric syntax: "80,443,8000..8080",
// "> 1000 && < 2000", "!= 5 || 7", "true 0" (net_format_flow_num).
func birdNumericItems(s string) []fsItem {
	var items []fsItem
	and, op := false, ""
	for _, tok := range strings.Fields(s) {
		switch tok {
		case "&&":
			and = true
			continue
		case "||":
			and = false
			continue
		case ">", ">=", "<", "<=", "!=", "=", "true", "false":
			op = tok
			continue
		}
		for j, piece := range strings.Split(tok, ",") {
			if piece == "" {
				continue
			}
			if j > 0 {
				and = false
			}
			if lo, hi, ok := strings.Cut(piece, ".."); ok {
				items = append(items, fsItem{and: and, op: ">=", val: lo}, fsItem{and: true, op: "<=", val: hi})
			} else {
				o := op
				if o == "" {
					o = "="
				}
				items = append(items, fsItem{and: and, op: o, val: piece})
			}
			and, op = false, ""
		}
	}
	return items
}

var birdFragments = map[string]uint64{"dont_fragment": 1, "is_fragment": 2, "first_fragment": 4, "last_fragment": 8}

// birdBitmaskItems reads "0x2/0x2 && 0x0/0x10" or "!is_fragment": value/mask
// where BIRD shows not=0,match=0 as !0/B, match as B/B, not as 0/B and
// not+match as !B/B (net_format_flow_bitmask).
func birdBitmaskItems(s string) []fsItem {
	var items []fsItem
	and := false
	for _, tok := range strings.Fields(s) {
		switch tok {
		case "&&":
			and = true
			continue
		case "||":
			and = false
			continue
		}
		bang := len(tok) - len(strings.TrimLeft(tok, "!"))
		term := tok[bang:]
		var not, match bool
		var val string
		if v, m, ok := strings.Cut(term, "/"); ok {
			vv, err1 := strconv.ParseUint(v, 0, 64)
			mm, err2 := strconv.ParseUint(m, 0, 64)
			if err1 != nil || err2 != nil {
				items = append(items, fsItem{and: and, op: "?", val: tok})
				and = false
				continue
			}
			match = vv == mm && mm != 0
			not = bang == 0
			if match {
				not = bang > 0
			}
			val = strconv.FormatUint(mm, 10)
		} else {
			n, ok := birdFragments[term]
			if !ok {
				val = tok
			} else {
				val = strconv.FormatUint(n, 10)
			}
			match, not = bang == 0, bang == 1
		}
		items = append(items, fsItem{and: and, op: bitmaskOp(not, match), val: val})
		and = false
	}
	return items
}

// birdExtCommunity rebuilds the raw value of one BIRD extended community,
// "(generic, 0x80060000, 0x0)", "(unknown 0x10c, 192.0.2.50, 0)" or
// "(rt, 65000, 666)" (ec_format), and decodes it.
func birdExtCommunity(kind, key, val string) string {
	kind, key, val = strings.TrimSpace(kind), strings.TrimSpace(key), strings.TrimSpace(val)
	if kind == "generic" {
		hi, err1 := strconv.ParseUint(key, 0, 32)
		lo, err2 := strconv.ParseUint(val, 0, 32)
		if err1 != nil || err2 != nil {
			return "bird:(" + kind + ", " + key + ", " + val + ")"
		}
		return extCommunity(hi<<32 | lo)
	}
	var typ uint64
	ip, ipErr := netip.ParseAddr(key)
	k, kErr := strconv.ParseUint(key, 10, 32)
	v, vErr := strconv.ParseUint(val, 10, 32)
	switch {
	case strings.HasPrefix(kind, "unknown "):
		t, err := strconv.ParseUint(strings.TrimPrefix(kind, "unknown "), 0, 16)
		if err != nil {
			return "bird:(" + kind + ", " + key + ", " + val + ")"
		}
		typ = t
	case kind == "rt" || kind == "ro":
		typ = 0x0002
		if kind == "ro" {
			typ = 0x0003
		}
		if ipErr == nil {
			typ |= 0x0100
		} else if k > 0xFFFF {
			typ |= 0x0200
		}
	default:
		return "bird:(" + kind + ", " + key + ", " + val + ")"
	}
	switch {
	case ipErr == nil && ip.Is4() && vErr == nil:
		b := ip.As4()
		return extCommunity(typ<<48 | uint64(b[0])<<40 | uint64(b[1])<<32 | uint64(b[2])<<24 | uint64(b[3])<<16 | v&0xFFFF)
	case kErr == nil && vErr == nil && typ>>8&0x3F == 0x02:
		return extCommunity(typ<<48 | k<<16 | v&0xFFFF)
	case kErr == nil && vErr == nil:
		return extCommunity(typ<<48 | (k&0xFFFF)<<32 | v)
	}
	return "bird:(" + kind + ", " + key + ", " + val + ")"
}
