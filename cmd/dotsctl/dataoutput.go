package main

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/levee-dots/levee/dataclient"
	"github.com/levee-dots/levee/dots/data"
)

// jsonData is the -o json form of a data-channel answer: the HTTP status
// and the RFC 7951 body, if any.
type jsonData struct {
	Code string          `json:"code"`
	Body json.RawMessage `json:"body,omitempty"`
}

func printDataJSON(g *globals, r *dataclient.Response, body []byte) error {
	return printJSON(g, jsonData{Code: strconv.Itoa(r.Status), Body: body})
}

// printDataDone prints the answer to a create, change or delete.
func printDataDone(g *globals, r *dataclient.Response, text string) error {
	if g.output == "json" {
		var body []byte
		if json.Valid(r.Body) {
			body = r.Body
		}
		return printDataJSON(g, r, body)
	}
	_, err := fmt.Fprintf(g.stdout, "%s (%d)\n", text, r.Status)
	return err
}

func printAliases(g *globals, r *dataclient.Response, as []data.Alias) error {
	if g.output == "json" {
		b, err := data.EncodeAliases(&data.Aliases{Alias: as})
		if err != nil {
			return err
		}
		return printDataJSON(g, r, b)
	}
	if len(as) == 0 {
		_, err := fmt.Fprintln(g.stdout, "no aliases")
		return err
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tTARGETS\tPORTS\tPROTOCOLS\tEXPIRES IN")
	for _, a := range as {
		var t []string
		for _, p := range a.TargetPrefix {
			t = append(t, p.String())
		}
		t = append(append(t, a.TargetFQDN...), a.TargetURI...)
		var ports, protos []string
		for _, p := range a.TargetPortRange {
			ports = append(ports, portRange(p.LowerPort, p.UpperPort))
		}
		for _, p := range a.TargetProtocol {
			protos = append(protos, strconv.Itoa(int(p)))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", a.Name, list(t), list(ports), list(protos), pending(a.PendingLifetime))
	}
	return tw.Flush()
}

func portRange(lo uint16, hi *uint16) string {
	if hi == nil || *hi == lo {
		return strconv.Itoa(int(lo))
	}
	return fmt.Sprintf("%d-%d", lo, *hi)
}

func list(s []string) string {
	if len(s) == 0 {
		return "-"
	}
	return strings.Join(s, ",")
}

// pending renders a pending-lifetime (minutes).
func pending(m *int32) string {
	if m == nil {
		return "-"
	}
	if *m < 0 {
		return "indefinite"
	}
	return (time.Duration(*m) * time.Minute).String()
}

func printACLs(g *globals, r *dataclient.Response, as []data.ACL) error {
	if g.output == "json" {
		b, err := data.EncodeACLs(&data.ACLs{ACL: as})
		if err != nil {
			return err
		}
		return printDataJSON(g, r, b)
	}
	if len(as) == 0 {
		_, err := fmt.Fprintln(g.stdout, "no ACLs")
		return err
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tTYPE\tACTIVATION\tEXPIRES IN\tACE\tMATCHES\tACTION\tMATCHED")
	for _, a := range as {
		for i, e := range a.ACEs.ACE {
			name, typ, act, exp := a.Name, string(a.Type), string(a.Activation()), pending(a.PendingLifetime)
			if i > 0 {
				name, typ, act, exp = "", "", "", ""
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", name, typ, act, exp, e.Name, matches(e.Matches), action(e.Actions), stats(e.Statistics))
		}
	}
	return tw.Flush()
}

func matches(m data.Matches) string {
	var parts []string
	add := func(k string, v any) {
		rv := reflect.ValueOf(v)
		if rv.Kind() == reflect.Pointer && rv.IsNil() {
			return
		}
		parts = append(parts, k+" "+fmt.Sprint(reflect.Indirect(rv).Interface()))
	}
	if v := m.IPv4; v != nil {
		add("src", v.Source)
		add("dst", v.Destination)
		add("proto", v.Protocol)
		add("length", v.Length)
		add("flags", v.Flags)
		fragment(&parts, v.Fragment)
	}
	if v := m.IPv6; v != nil {
		add("src", v.Source)
		add("dst", v.Destination)
		add("proto", v.Protocol)
		add("length", v.Length)
		add("flow-label", v.FlowLabel)
		fragment(&parts, v.Fragment)
	}
	if v := m.TCP; v != nil {
		ports(&parts, v.SourcePort, v.DestinationPort)
		if fb := v.FlagsBitmask; fb != nil {
			parts = append(parts, "tcp-flags "+opText(fb.Operator)+flagNames(fb.Bitmask))
		}
		add("flags", v.Flags)
	}
	if v := m.UDP; v != nil {
		ports(&parts, v.SourcePort, v.DestinationPort)
		add("length", v.Length)
	}
	if v := m.ICMP; v != nil {
		add("icmp-type", v.Type)
		add("icmp-code", v.Code)
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

// flagNames renders a flags-bitmask by flag names where every bit has one,
// else as the number.
func flagNames(mask uint16) string {
	var names []string
	left := mask
	for _, n := range []string{"ae", "cwr", "ece", "urg", "ack", "psh", "rst", "syn", "fin"} {
		if b := tcpFlagBits[n]; mask&b != 0 {
			names = append(names, n)
			left &^= b
		}
	}
	if left != 0 || len(names) == 0 {
		return strconv.Itoa(int(mask))
	}
	return strings.Join(names, ",")
}

func fragment(parts *[]string, f *data.Fragment) {
	if f != nil {
		*parts = append(*parts, "fragment "+opText(f.Operator)+strings.Join(f.Type.Names(), ","))
	}
}

func opText(op *data.Bits) string {
	if op == nil || *op == "" {
		return ""
	}
	return string(*op) + " "
}

func ports(parts *[]string, src, dst *data.PortRangeOrOp) {
	for _, p := range []struct {
		k string
		v *data.PortRangeOrOp
	}{{"src-port", src}, {"dst-port", dst}} {
		if p.v == nil {
			continue
		}
		switch {
		case p.v.LowerPort != nil:
			*parts = append(*parts, p.k+" "+portRange(*p.v.LowerPort, p.v.UpperPort))
		case p.v.Port != nil:
			op := ""
			if p.v.Operator != nil && *p.v.Operator != data.EQ {
				op = map[data.Operator]string{data.GTE: ">=", data.LTE: "<=", data.NEQ: "!="}[*p.v.Operator]
			}
			*parts = append(*parts, fmt.Sprintf("%s %s%d", p.k, op, *p.v.Port))
		}
	}
}

func action(a data.Actions) string {
	if a.RateLimit != nil {
		return fmt.Sprintf("%s, rate-limit %s B/s", a.Forwarding, a.RateLimit)
	}
	return string(a.Forwarding)
}

// stats renders the ACE's statistics, "-" when the server has none (an ACL
// not run where counters exist).
func stats(s *data.Statistics) string {
	if s == nil || s.MatchedPackets == nil && s.MatchedOctets == nil {
		return "-"
	}
	var pk, oc uint64
	if s.MatchedPackets != nil {
		pk = uint64(*s.MatchedPackets)
	}
	if s.MatchedOctets != nil {
		oc = uint64(*s.MatchedOctets)
	}
	return fmt.Sprintf("%d pkt / %d B", pk, oc)
}

func printCapabilities(g *globals, r *dataclient.Response, c *data.Capabilities) error {
	if g.output == "json" {
		b, err := data.EncodeCapabilities(c)
		if err != nil {
			return err
		}
		return printDataJSON(g, r, b)
	}
	var protos, fwd []string
	for _, p := range c.TransportProtocols {
		protos = append(protos, strconv.Itoa(int(p)))
	}
	for _, f := range c.ForwardingActions {
		fwd = append(fwd, string(f))
	}
	fmt.Fprintf(g.stdout, "address families:    %s\n", list(c.AddressFamily))
	fmt.Fprintf(g.stdout, "forwarding actions:  %s\n", list(fwd))
	fmt.Fprintf(g.stdout, "rate-limit:          %s\n", yesNo(c.RateLimit))
	fmt.Fprintf(g.stdout, "transport protocols: %s\n", list(protos))
	for _, m := range []struct {
		name string
		v    any
	}{{"ipv4", c.IPv4}, {"ipv6", c.IPv6}, {"tcp", c.TCP}, {"udp", c.UDP}, {"icmp", c.ICMP}} {
		fmt.Fprintf(g.stdout, "%-20s %s\n", m.name+" matches:", list(trueFields(m.v)))
	}
	return nil
}

func yesNo(b *bool) string {
	if b != nil && *b {
		return "yes"
	}
	return "no"
}

// trueFields lists the JSON names of a capabilities struct's true fields.
func trueFields(v any) []string {
	rv := reflect.ValueOf(v)
	if rv.IsNil() {
		return nil
	}
	rv = rv.Elem()
	var out []string
	for i := 0; i < rv.NumField(); i++ {
		f := rv.Field(i)
		if p, ok := f.Interface().(*bool); ok && p != nil && *p {
			name, _, _ := strings.Cut(rv.Type().Field(i).Tag.Get("json"), ",")
			out = append(out, name)
		}
	}
	return out
}
