package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// FRR is a running FRR bgpd (without zebra), queried through vtysh.
type FRR struct {
	d     *daemon
	o     Options
	vtysh string
}

var _ Peer = (*FRR)(nil)

// StartFRR starts bgpd -Z as a passive peer. It skips the test when FRR is
// not installed (fails it when CI is set) and stops bgpd at cleanup.
func StartFRR(t testing.TB, o Options) *FRR {
	t.Helper()
	bgpd := need(t, "frr", "/usr/lib/frr/bgpd", "/usr/libexec/frr/bgpd", "bgpd")
	vtysh := need(t, "frr", "vtysh", "/usr/bin/vtysh")
	o = o.withDefaults(t, "127.0.0.2")
	f := &FRR{vtysh: vtysh}
	f.d = launch(t, "frr", &o, func(ap netip.AddrPort) (*daemon, error) {
		dir, err := makeDir("frr")
		if err != nil {
			return nil, err
		}
		conf := filepath.Join(dir, "bgpd.conf")
		if err := os.WriteFile(conf, []byte(frrConfig(ap, o)), 0o644); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		d, err := spawn("frr", dir, bgpd, []string{"-Z", "-S", "-p", strconv.Itoa(int(ap.Port())),
			"-l", ap.Addr().String(), "-f", conf, "--vty_socket", dir, "-i", filepath.Join(dir, "bgpd.pid"), "-P", "0"}, nil)
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		err = d.waitReady(t.Context(), ap, func(ctx context.Context) error {
			_, err := run(ctx, vtysh, "--vty_socket", dir, "-d", "bgpd", "-c", "show bgp summary json")
			return err
		})
		if err != nil {
			d.stop()
			return nil, err
		}
		return d, nil
	})
	f.o = o
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("lab: frr on %v output:\n%s", o.Addr, f.d.output())
		}
		if err := f.Close(); err != nil {
			t.Errorf("lab: %v", err)
		}
	})
	return f
}

func frrConfig(ap netip.AddrPort, o Options) string {
	rid := "192.0.2.253"
	if ap.Addr().Is4() {
		rid = ap.Addr().String()
	}
	spk := o.SpeakerAddr.String()
	var b strings.Builder
	fmt.Fprintf(&b, "frr defaults traditional\nhostname lab-frr\nlog stdout informational\n!\n")
	fmt.Fprintf(&b, "router bgp %d\n bgp router-id %s\n", PeerAS, rid)
	b.WriteString(" no bgp ebgp-requires-policy\n no bgp default ipv4-unicast\n no bgp network import-check\n")
	fmt.Fprintf(&b, " neighbor %s remote-as %d\n neighbor %[1]s passive\n neighbor %[1]s disable-connected-check\n",
		spk, o.SpeakerAS)
	for _, fam := range []struct{ name, af string }{
		{IPv4Unicast, "ipv4 unicast"}, {IPv6Unicast, "ipv6 unicast"},
		{IPv4FlowSpec, "ipv4 flowspec"}, {IPv6FlowSpec, "ipv6 flowspec"},
	} {
		if o.has(fam.name) {
			fmt.Fprintf(&b, " address-family %s\n  neighbor %s activate\n exit-address-family\n", fam.af, spk)
		}
	}
	return b.String()
}

func (f *FRR) Name() string         { return "frr" }
func (f *FRR) Addr() netip.AddrPort { return f.o.Addr }

// Dir is the directory holding the configuration and logs (removed by Close).
func (f *FRR) Dir() string { return f.d.dir }

func (f *FRR) AS() uint32 { return PeerAS }

// Close stops bgpd and removes its directory. It is idempotent.
func (f *FRR) Close() error { return f.d.stop() }

// Vtysh runs one vtysh command against this bgpd and returns its output.
func (f *FRR) Vtysh(ctx context.Context, command string) (string, error) {
	out, err := run(ctx, f.vtysh, "--vty_socket", f.d.dir, "-d", "bgpd", "-c", command)
	return string(out), err
}

func (f *FRR) showJSON(ctx context.Context, command string, v any) error {
	out, err := f.Vtysh(ctx, command)
	if err != nil {
		return err
	}
	if s := strings.TrimSpace(out); s == "" || s[0] != '{' {
		return fmt.Errorf("lab: frr %q: not JSON: %s", command, truncate(s, 300))
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		return fmt.Errorf("lab: frr %q: %w", command, err)
	}
	return nil
}

// Established reports whether the session with the speaker is established.
func (f *FRR) Established(ctx context.Context) (bool, error) {
	var nb map[string]struct {
		State string `json:"bgpState"`
	}
	if err := f.showJSON(ctx, "show bgp neighbors "+f.o.SpeakerAddr.String()+" json", &nb); err != nil {
		return false, err
	}
	return nb[f.o.SpeakerAddr.String()].State == "Established", nil
}

// frrPath is one path of "show bgp ... json detail" (FRR 8.4).
type frrPath struct {
	Peer      *struct{} `json:"peer"` // present only on path entries
	Stale     bool      `json:"stale"`
	Community *struct {
		String string `json:"string"`
	} `json:"community"`
	ExtendedCommunity *struct {
		String string `json:"string"`
	} `json:"extendedCommunity"`
	Nexthops []struct {
		IP    string `json:"ip"`
		Scope string `json:"scope"`
	} `json:"nexthops"`
}

// Routes returns every path bgpd holds from the speaker, normalised and
// sorted. It reads "show bgp <afi> <safi> json detail" for the families in
// use: unicast paths carry their communities there, and FlowSpec paths their
// extended communities, with the match only in the route's key, which is
// parsed (FRR's JSON has no separate fields in detail mode). FRR 8.4 does not
// print the AND bit of numeric FlowSpec items; see frrNumericItems for how
// ranges are recovered.
func (f *FRR) Routes(ctx context.Context) ([]Route, error) {
	var routes []Route
	for _, fam := range []struct{ name, cmd string }{
		{IPv4Unicast, "ipv4 unicast"}, {IPv6Unicast, "ipv6 unicast"},
		{IPv4FlowSpec, "ipv4 flowspec"}, {IPv6FlowSpec, "ipv6 flowspec"},
	} {
		if !f.o.has(fam.name) {
			continue
		}
		cmd := "show bgp " + fam.cmd + " json detail"
		out, err := f.Vtysh(ctx, cmd)
		if err != nil {
			return nil, err
		}
		rs, err := parseFRRTable(fam.name, []byte(out))
		if err != nil {
			return nil, fmt.Errorf("lab: frr %q: %w", cmd, err)
		}
		routes = append(routes, rs...)
	}
	SortRoutes(routes)
	return routes, nil
}

// parseFRRTable reads the output of "show bgp <afi> <safi> json detail".
func parseFRRTable(family string, out []byte) ([]Route, error) {
	if s := strings.TrimSpace(string(out)); s == "" || s[0] != '{' {
		return nil, fmt.Errorf("not JSON: %s", truncate(s, 300))
	}
	var table struct {
		Routes map[string][]json.RawMessage `json:"routes"`
	}
	if err := json.Unmarshal(out, &table); err != nil {
		return nil, err
	}
	var routes []Route
	for key, entries := range table.Routes {
		for _, raw := range entries {
			var p frrPath
			if err := json.Unmarshal(raw, &p); err != nil {
				return nil, fmt.Errorf("%q: %w", key, err)
			}
			if p.Peer == nil {
				continue // the prefix header entry
			}
			r, err := frrRoute(family, key, p)
			if err != nil {
				return nil, err
			}
			routes = append(routes, r)
		}
	}
	return routes, nil
}

func frrRoute(family, key string, p frrPath) (Route, error) {
	r := Route{Family: family, Stale: p.Stale}
	if strings.HasSuffix(family, "flowspec") {
		fs, err := parseFRRFlowSpecKey(key)
		if err != nil {
			return r, err
		}
		r.FlowSpec = fs
	} else {
		r.Prefix = fsPrefix(key, 0)
		for _, nh := range p.Nexthops {
			if nh.Scope != "link-local" {
				if a, err := netip.ParseAddr(nh.IP); err == nil {
					r.NextHop = a.String()
				} else {
					r.NextHop = nh.IP
				}
				break
			}
		}
	}
	if p.Community != nil {
		var cs []uint32
		for _, s := range strings.Fields(p.Community.String) {
			c, ok := community(s)
			if !ok {
				return r, fmt.Errorf("lab: frr: unknown community %q in %q", s, p.Community.String)
			}
			cs = append(cs, c)
		}
		r.Communities = communityStrings(cs)
	}
	if p.ExtendedCommunity != nil {
		r.Actions = sortedOrNil(frrExtCommunities(p.ExtendedCommunity.String))
	}
	return r, nil
}

// frrFSNames are FRR's short component names (NLRI_STRING_FORMAT_MIN).
var frrFSNames = map[string]bool{"to": true, "from": true, "proto": true, "port": true, "dstp": true,
	"srcp": true, "type": true, "code": true, "tcp": true, "flags": true, "pktlen": true, "dscp": true,
	"pktfrag": true, "flwlbl": true}

// parseFRRFlowSpecKey parses a FlowSpec route key such as
// "to 203.0.113.10/32 proto = 6  dstp = 80 , = 443 , >= 8000 , <= 8080  tcp = 2,&∋ ! 16/36"
// (the trailing "/36" is the NLRI length).
func parseFRRFlowSpecKey(key string) (map[string]string, error) {
	if i := strings.LastIndexByte(key, '/'); i > 0 {
		if _, err := strconv.Atoi(key[i+1:]); err == nil {
			key = key[:i]
		}
	}
	raw := map[string][]string{}
	var cur string
	for _, tok := range strings.Fields(key) {
		if frrFSNames[tok] {
			cur = tok
			continue
		}
		if cur == "" {
			return nil, fmt.Errorf("lab: frr: cannot read flowspec key %q", key)
		}
		raw[cur] = append(raw[cur], tok)
	}
	fs := map[string]string{}
	for name, toks := range raw {
		comp := canonicalComponent(name)
		val := strings.Join(toks, " ")
		switch {
		case comp == "destination" || comp == "source":
			p, off, _ := strings.Cut(val, "/off ")
			n, _ := strconv.Atoi(strings.TrimSpace(off))
			fs[comp] = fsPrefix(p, n)
		case bitmaskComponents[comp]:
			fs[comp] = formatItems(comp, frrBitmaskItems(val))
		default:
			fs[comp] = formatItems(comp, frrNumericItems(val))
		}
	}
	return fs, nil
}

// frrNumericItems reads "= 80 , = 443 , >= 8000 , <= 8080". FRR 8.4 does not
// print the AND bit of numeric items, so a ">"/">=" item followed by a
// "<"/"<=" item with a value not below it is taken as a range (ANDed): that
// is how ranges are sent, and an OR of the two would match nearly anything.
func frrNumericItems(s string) []fsItem {
	var items []fsItem
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		i := strings.IndexFunc(part, func(r rune) bool { return !strings.ContainsRune("<>=", r) })
		if i < 0 {
			i = len(part)
		}
		op, ok := symbolsOp(part[:i]) // "" is FALSE, "<>" is !=, "<>=" is TRUE
		if !ok {
			op = part[:i]
		}
		items = append(items, fsItem{op: op, val: strings.TrimSpace(part[i:])})
	}
	for i := 1; i < len(items); i++ {
		prev, cur := items[i-1], items[i]
		pv, err1 := strconv.ParseUint(prev.val, 10, 64)
		cv, err2 := strconv.ParseUint(cur.val, 10, 64)
		if err1 == nil && err2 == nil && (prev.op == ">" || prev.op == ">=") &&
			(cur.op == "<" || cur.op == "<=") && cv >= pv {
			items[i].and = true
		}
	}
	return items
}

// frrBitmaskItems reads "= 2,&∋ ! 16": "," then "&" (AND) or "|" (OR)
// between items, "=" for the match bit or "∋" without it, "!" for not.
func frrBitmaskItems(s string) []fsItem {
	var items []fsItem
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		var it fsItem
		if rest, ok := strings.CutPrefix(part, "&"); ok {
			it.and, part = true, rest
		} else {
			part = strings.TrimPrefix(part, "|")
		}
		part = strings.TrimSpace(part)
		match := strings.HasPrefix(part, "=")
		part = strings.TrimSpace(strings.TrimPrefix(strings.TrimPrefix(part, "="), "∋"))
		not := strings.HasPrefix(part, "!")
		part = strings.TrimSpace(strings.TrimPrefix(part, "!"))
		it.op, it.val = bitmaskOp(not, match), part
		items = append(items, it)
	}
	return items
}

// frrExtCommunities splits FRR's extended community string (ecommunity_ecom2str),
// whose items may themselves contain spaces.
func frrExtCommunities(s string) []string {
	var out []string
	s = strings.TrimSpace(s)
	for s != "" {
		f := strings.Fields(s)
		at := func(i int) string {
			if i < len(f) {
				return f[i]
			}
			return ""
		}
		n, item := len(f[0]), ""
		switch {
		case f[0] == "FS:rate":
			n = len(f[0]) + 1 + len(at(1))
			if r, err := strconv.ParseFloat(at(1), 64); err == nil {
				item = rateText(r)
			}
		case f[0] == "FS:marking":
			n, item = len(f[0])+1+len(at(1)), "mark "+at(1)
		case f[0] == "FS:redirect" && at(1) == "VRF":
			n, item = len("FS:redirect VRF ")+len(at(2)), "redirect "+strings.TrimPrefix(at(2), "RT:")
		case f[0] == "FS:redirect" && at(1) == "IP":
			n, item = len("FS:redirect IP ")+len(at(2)), "redirect-nexthop"
			if v, err := strconv.ParseUint(at(2), 0, 8); err == nil && v&1 == 1 {
				item += " copy"
			}
		case f[0] == "FS:action":
			rest := strings.TrimPrefix(s, "FS:action ")
			terminal := strings.HasPrefix(rest, "terminate (apply)")
			rest = strings.TrimPrefix(strings.TrimPrefix(rest, "terminate (apply)"), "eval stops")
			sample := strings.HasPrefix(rest, ", sample")
			rest = strings.TrimPrefix(rest, ", sample")
			n, item = len(s)-len(rest), actionText(sample, terminal)
		case strings.HasPrefix(f[0], "NH:"):
			body := strings.TrimPrefix(f[0], "NH:")
			ip, flag := body, ""
			if i := strings.LastIndexByte(body, ':'); i > 0 {
				ip, flag = body[:i], body[i+1:]
			}
			item = "redirect-ip " + ip
			if v, err := strconv.Atoi(flag); err == nil && v&1 == 1 {
				item += " copy"
			}
		case strings.HasPrefix(f[0], "UNK:"):
			var t, st int
			if _, err := fmt.Sscanf(s, "UNK:%d, %d", &t, &st); err == nil {
				n, item = len(f[0])+1+len(at(1)), fmt.Sprintf("ext-0x%02x%02x", t, st)
			}
		case strings.HasPrefix(f[0], "RT:"), strings.HasPrefix(f[0], "SoO:"):
			k, v, _ := strings.Cut(f[0], ":")
			item = strings.ToLower(k) + " " + v
		}
		n = min(max(n, 1), len(s))
		if item == "" {
			item = "frr:" + s[:n]
		}
		out = append(out, item)
		s = strings.TrimSpace(s[n:])
	}
	return out
}
