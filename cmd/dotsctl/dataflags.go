package main

import (
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dots/data"
)

// aliasFlags are the flags of alias create (RFC 8783 §6.1).
type aliasFlags struct {
	name                                string
	targets, ports, protos, fqdns, uris multiFlag
	file                                string
}

func (f *aliasFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.name, "name", "", "alias name")
	fs.Var(&f.targets, "target", "target prefix, e.g. 203.0.113.0/28 (repeatable)")
	fs.Var(&f.ports, "port", "target port or range, e.g. 443 or 8080-8088 (repeatable)")
	fs.Var(&f.protos, "protocol", "target protocol: tcp, udp, icmp or a number (repeatable)")
	fs.Var(&f.fqdns, "fqdn", "target domain name (repeatable)")
	fs.Var(&f.uris, "uri", "target URI (repeatable)")
	fs.StringVar(&f.file, "file", "", "JSON or YAML file with the aliases body instead of the flags")
}

// aliases returns the aliases body: the file's, or one alias from the flags.
func (f *aliasFlags) aliases() (*data.Aliases, error) {
	if f.file != "" {
		if f.name != "" || len(f.targets)+len(f.ports)+len(f.protos)+len(f.fqdns)+len(f.uris) > 0 {
			return nil, errors.New("--file: give the alias in the file or with flags, not both")
		}
		b, err := readDataFile(f.file)
		if err != nil {
			return nil, err
		}
		a, err := data.DecodeAliases(b, data.Request)
		if err != nil {
			return nil, fmt.Errorf("--file %s: %w", f.file, err)
		}
		return a, nil
	}
	if f.name == "" {
		return nil, errors.New("--name is required (or --file with the aliases body)")
	}
	if len(f.targets)+len(f.fqdns)+len(f.uris) == 0 {
		return nil, errors.New("give at least one --target, --fqdn or --uri (RFC 8783 §6.1)")
	}
	a := data.Alias{Name: f.name, TargetFQDN: f.fqdns, TargetURI: f.uris}
	for _, t := range f.targets {
		p, err := parsePrefixFlag("--target", t)
		if err != nil {
			return nil, err
		}
		a.TargetPrefix = append(a.TargetPrefix, p)
	}
	for _, s := range f.ports {
		pr, err := parsePort(s)
		if err != nil {
			return nil, err
		}
		a.TargetPortRange = append(a.TargetPortRange, data.PortRange{LowerPort: pr.LowerPort, UpperPort: pr.UpperPort})
	}
	for _, s := range f.protos {
		n, err := parseProto(s)
		if err != nil {
			return nil, fmt.Errorf("--protocol %q: use tcp, udp, icmp, icmpv6, sctp or a number 0-255", s)
		}
		a.TargetProtocol = append(a.TargetProtocol, data.Protocol(n))
	}
	return &data.Aliases{Alias: []data.Alias{a}}, nil
}

// parsePrefixFlag parses a prefix; an address alone is a host prefix.
func parsePrefixFlag(flagName, s string) (data.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return data.Prefix{}, fmt.Errorf("%s %q: want a prefix like 192.0.2.0/24 or an address", flagName, s)
		}
		return data.Prefix{Prefix: netip.PrefixFrom(a, a.BitLen())}, nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return data.Prefix{}, fmt.Errorf("%s %q: want a prefix like 192.0.2.0/24 or an address", flagName, s)
	}
	return data.Prefix{Prefix: p}, nil
}

// aclFlags are the flags of acl create: one ACL of one ACE (RFC 8783 §7.2
// with the matches of RFC 8519 and the DOTS additions of RFC 8783 §4.2).
type aclFlags struct {
	name, ace, family, src, dst, protocol string
	dstPort, srcPort, tcpFlags, fragment  string
	action, activation, file              string
}

func (f *aclFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.name, "name", "", "ACL name (1-64 characters)")
	fs.StringVar(&f.ace, "ace", "rule1", "name of the ACL's one entry (ACE)")
	fs.StringVar(&f.family, "family", "", "ipv4 or ipv6 (default: that of --src/--dst, else ipv4 where a layer-3 match is given)")
	fs.StringVar(&f.src, "src", "", "source prefix, e.g. 192.0.2.0/24")
	fs.StringVar(&f.dst, "dst", "", "destination prefix in your domain (default: all of it)")
	fs.StringVar(&f.protocol, "protocol", "", "tcp, udp, icmp, icmpv6 or a number")
	fs.StringVar(&f.dstPort, "dst-port", "", "destination port: 80, 80-99, >=1024, <=1023 or !=80 (tcp or udp)")
	fs.StringVar(&f.srcPort, "src-port", "", "source port, as --dst-port")
	fs.StringVar(&f.tcpFlags, "tcp-flags", "", `TCP flags-bitmask: [not] [any] FLAGS with FLAGS like syn, syn,ack or 4095 ("not any 4095": a NULL scan)`)
	fs.StringVar(&f.fragment, "fragment", "", "fragment match: [not] [any] TYPES with TYPES of df, isf, ff, lf, e.g. isf,ff,lf")
	fs.StringVar(&f.action, "action", "drop", "drop, accept or rate-limit=BYTES/S (accept up to that rate)")
	fs.StringVar(&f.activation, "activation", "", "activate-when-mitigating (the server's default), immediate or deactivate")
	fs.StringVar(&f.file, "file", "", "JSON or YAML file with the acls body instead of the flags")
}

// acls returns the acls body: the file's, or one ACL from the flags.
func (f *aclFlags) acls(fs *flag.FlagSet) (*data.ACLs, error) {
	if f.file != "" {
		var other []string
		fs.Visit(func(fl *flag.Flag) {
			if fl.Name != "file" {
				other = append(other, "--"+fl.Name)
			}
		})
		if len(other) > 0 {
			return nil, fmt.Errorf("--file: give the ACLs in the file or with flags, not both (drop %s)", strings.Join(other, " "))
		}
		b, err := readDataFile(f.file)
		if err != nil {
			return nil, err
		}
		a, err := data.DecodeACLs(b, data.Request)
		if err != nil {
			return nil, fmt.Errorf("--file %s: %w", f.file, err)
		}
		return a, nil
	}
	if f.name == "" {
		return nil, errors.New("--name is required (or --file with the acls body)")
	}
	ace, typ, err := f.entry()
	if err != nil {
		return nil, err
	}
	acl := data.ACL{Name: f.name, Type: typ, ACEs: data.ACEs{ACE: []data.ACE{ace}}}
	if f.activation != "" {
		if _, err := parseActivation(f.activation); err != nil {
			return nil, fmt.Errorf("--activation: %w", err)
		}
		at := data.ActivationType(f.activation)
		acl.ActivationType = &at
	}
	return &data.ACLs{ACL: []data.ACL{acl}}, nil
}

// entry builds the ACE and the ACL type from the match and action flags.
func (f *aclFlags) entry() (data.ACE, data.ACLType, error) {
	ace := data.ACE{Name: f.ace}
	var src, dst *data.Prefix
	for _, p := range []struct {
		flag, v string
		to      **data.Prefix
	}{{"--src", f.src, &src}, {"--dst", f.dst, &dst}} {
		if p.v == "" {
			continue
		}
		pfx, err := parsePrefixFlag(p.flag, p.v)
		if err != nil {
			return ace, "", err
		}
		*p.to = &pfx
	}
	v6, err := f.isIPv6(src, dst)
	if err != nil {
		return ace, "", err
	}
	var proto *uint8
	if f.protocol != "" {
		n, err := parseProto(f.protocol)
		if err != nil {
			return ace, "", fmt.Errorf("--protocol %q: use tcp, udp, icmp, icmpv6 or a number 0-255", f.protocol)
		}
		proto = dots.Ptr(uint8(n))
	}
	var frag *data.Fragment
	if f.fragment != "" {
		op, names, err := parseBitsSpec("--fragment", f.fragment)
		if err != nil {
			return ace, "", err
		}
		for _, n := range names {
			if !slices.Contains(data.FragmentBits, n) {
				return ace, "", fmt.Errorf("--fragment %q: %q is not a fragment type: use df, isf, ff or lf", f.fragment, n)
			}
		}
		frag = &data.Fragment{Operator: op, Type: data.Bits(strings.Join(names, " "))}
	}
	// The acl-type follows the layer-3 match; an ACL of layer-4 matches
	// only has none (as RFC 8783's TCP flags examples).
	var typ data.ACLType
	l3 := src != nil || dst != nil || proto != nil || frag != nil
	switch {
	case v6 && (l3 || f.family != ""):
		typ = data.IPv6ACLType
		if l3 {
			ace.Matches.IPv6 = &data.IPv6Match{Source: src, Destination: dst, Protocol: proto, Fragment: frag}
		}
	case l3 || f.family != "":
		typ = data.IPv4ACLType
		if l3 {
			ace.Matches.IPv4 = &data.IPv4Match{Source: src, Destination: dst, Protocol: proto, Fragment: frag}
		}
	}
	if err := f.l4(&ace.Matches, proto); err != nil {
		return ace, "", err
	}
	act, err := parseAction(f.action)
	if err != nil {
		return ace, "", err
	}
	ace.Actions = act
	return ace, typ, nil
}

// isIPv6 is the family of the ACL: --family, else that of the prefixes.
func (f *aclFlags) isIPv6(src, dst *data.Prefix) (bool, error) {
	var fam []bool
	for _, p := range []*data.Prefix{src, dst} {
		if p != nil {
			fam = append(fam, p.Addr().Is6())
		}
	}
	if len(fam) == 2 && fam[0] != fam[1] {
		return false, errors.New("--src and --dst are of different address families: give two IPv4 or two IPv6 prefixes")
	}
	switch f.family {
	case "":
		return len(fam) > 0 && fam[0], nil
	case "ipv4", "ipv6":
		if len(fam) > 0 && fam[0] != (f.family == "ipv6") {
			return false, fmt.Errorf("--family %s does not fit the prefixes given: drop --family or change them", f.family)
		}
		return f.family == "ipv6", nil
	}
	return false, fmt.Errorf("--family %q: use ipv4 or ipv6", f.family)
}

// l4 sets the tcp or udp match of the port and TCP flag flags.
func (f *aclFlags) l4(m *data.Matches, proto *uint8) error {
	var sp, dp *data.PortRangeOrOp
	for _, p := range []struct {
		flag, v string
		to      **data.PortRangeOrOp
	}{{"--src-port", f.srcPort, &sp}, {"--dst-port", f.dstPort, &dp}} {
		if p.v == "" {
			continue
		}
		pr, err := parsePortMatch(p.flag, p.v)
		if err != nil {
			return err
		}
		*p.to = pr
	}
	var fb *data.FlagsBitmask
	if f.tcpFlags != "" {
		b, err := parseTCPFlags(f.tcpFlags)
		if err != nil {
			return err
		}
		fb = b
	}
	switch {
	case sp == nil && dp == nil && fb == nil:
		return nil
	case proto != nil && *proto == 6, proto == nil && fb != nil:
		m.TCP = &data.TCPMatch{SourcePort: sp, DestinationPort: dp, FlagsBitmask: fb}
	case fb != nil:
		return fmt.Errorf("--tcp-flags is a TCP match: it does not go with --protocol %s", f.protocol)
	case proto != nil && *proto == 17:
		m.UDP = &data.UDPMatch{SourcePort: sp, DestinationPort: dp}
	default:
		return errors.New("--src-port and --dst-port need --protocol tcp or udp")
	}
	return nil
}

// parsePortMatch parses RFC 8519's port-range-or-operator: a range LOW-HIGH,
// or a port with an optional operator (>=, <=, !=, =; eq by default).
func parsePortMatch(flagName, s string) (*data.PortRangeOrOp, error) {
	bad := fmt.Errorf("%s %q: use a port (80), a range (80-99) or an operator and a port (>=1024, <=1023, !=80)", flagName, s)
	port := func(v string) (*uint16, error) {
		n, err := strconv.ParseUint(v, 10, 16)
		if err != nil {
			return nil, bad
		}
		return dots.Ptr(uint16(n)), nil
	}
	if lo, hi, ok := strings.Cut(s, "-"); ok {
		l, err := port(lo)
		if err != nil {
			return nil, err
		}
		h, err := port(hi)
		if err != nil {
			return nil, err
		}
		if *h < *l {
			return nil, fmt.Errorf("%s %q: the range must be LOW-HIGH with LOW <= HIGH", flagName, s)
		}
		return &data.PortRangeOrOp{LowerPort: l, UpperPort: h}, nil
	}
	var op *data.Operator
	for _, o := range []struct {
		p  string
		op data.Operator
	}{{">=", data.GTE}, {"<=", data.LTE}, {"!=", data.NEQ}, {"=", data.EQ}} {
		if rest, ok := strings.CutPrefix(s, o.p); ok {
			op, s = dots.Ptr(o.op), rest
			break
		}
	}
	p, err := port(s)
	if err != nil {
		return nil, err
	}
	return &data.PortRangeOrOp{Operator: op, Port: p}, nil
}

// tcpFlagBits are the bits of RFC 8783's flags-bitmask: the last 4 bits of
// byte 12 and byte 13 of the TCP header.
var tcpFlagBits = map[string]uint16{"fin": 0x001, "syn": 0x002, "rst": 0x004, "psh": 0x008, "ack": 0x010,
	"urg": 0x020, "ece": 0x040, "cwr": 0x080, "ae": 0x100}

// parseTCPFlags parses "[not] [any] FLAGS" into a flags-bitmask (RFC 8783
// §4.2), FLAGS being flag names joined by commas or a number up to 4095.
func parseTCPFlags(s string) (*data.FlagsBitmask, error) {
	op, names, err := parseBitsSpec("--tcp-flags", s)
	if err != nil {
		return nil, err
	}
	var mask uint16
	if len(names) == 1 && names[0] != "" && names[0][0] >= '0' && names[0][0] <= '9' {
		n, err := strconv.ParseUint(names[0], 0, 16)
		if err != nil || n > 0xfff {
			return nil, fmt.Errorf("--tcp-flags %q: a bitmask is a number from 0 to 4095 (12 bits)", s)
		}
		mask = uint16(n)
	} else {
		for _, n := range names {
			b, ok := tcpFlagBits[n]
			if !ok {
				return nil, fmt.Errorf("--tcp-flags %q: %q is not a TCP flag: use fin, syn, rst, psh, ack, urg, ece, cwr, ae or a number", s, n)
			}
			mask |= b
		}
	}
	return &data.FlagsBitmask{Operator: op, Bitmask: mask}, nil
}

// parseBitsSpec splits "[not] [match|any] A,B" into the DOTS operator bits
// (nil for the default, match) and the names A and B.
func parseBitsSpec(flagName, s string) (*data.Bits, []string, error) {
	words := strings.Fields(s)
	if len(words) == 0 {
		return nil, nil, fmt.Errorf("%s: empty", flagName)
	}
	var ops []string
	for _, w := range words[:len(words)-1] {
		if w != "not" && w != "match" && w != "any" || slices.Contains(ops, w) {
			return nil, nil, fmt.Errorf("%s %q: %q is not an operator: use not, match or any before the values", flagName, s, w)
		}
		ops = append(ops, w)
	}
	if slices.Contains(ops, "match") && slices.Contains(ops, "any") {
		return nil, nil, fmt.Errorf("%s %q: match and any do not go together (RFC 8783 §4.2)", flagName, s)
	}
	var op *data.Bits
	if len(ops) > 0 {
		op = dots.Ptr(data.Bits(strings.Join(ops, " ")))
	}
	names := strings.Split(words[len(words)-1], ",")
	for _, n := range names {
		if n == "" {
			return nil, nil, fmt.Errorf("%s %q: an empty value between commas", flagName, s)
		}
	}
	return op, names, nil
}

// parseAction parses drop, accept or rate-limit=BYTES/S.
func parseAction(s string) (data.Actions, error) {
	switch s {
	case "drop":
		return data.Actions{Forwarding: data.Drop}, nil
	case "accept":
		return data.Actions{Forwarding: data.Accept}, nil
	}
	if v, ok := strings.CutPrefix(s, "rate-limit="); ok {
		v = strings.TrimSuffix(strings.TrimSuffix(v, "/s"), "B")
		d, err := dots.ParseDecimal(v)
		if err != nil || d <= 0 {
			return data.Actions{}, fmt.Errorf("--action %q: the rate is bytes per second, a positive number with up to 2 decimals, e.g. rate-limit=20000", s)
		}
		return data.Actions{Forwarding: data.Accept, RateLimit: &d}, nil
	}
	return data.Actions{}, fmt.Errorf("--action %q: use drop, accept or rate-limit=BYTES/S", s)
}
