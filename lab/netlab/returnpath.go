//go:build linux

package netlab

import (
	"fmt"
	"os"
	"strings"

	"github.com/vishvananda/netlink"
)

// ReturnState is a return path as a node's kernel has it: the tunnel (with
// its alias, where scrubd keeps the sysctls to restore), the routes of its
// table and the policy rules at its priority, as text; and the node's
// net.ipv4.ip_forward.
type ReturnState struct {
	Tunnel  string // "" when there is none
	Routes  []string
	Rules   []string
	Forward string
}

// ReturnState reads the return path of tunnel, table and priority in
// node's namespace.
func (l *Lab) ReturnState(node, tunnel string, table, priority int) (ReturnState, error) {
	var st ReturnState
	n, err := l.node(node)
	if err != nil {
		return st, err
	}
	if link, err := n.h.LinkByName(tunnel); err == nil {
		a := link.Attrs()
		st.Tunnel = fmt.Sprintf("%s %s index %d mtu %d %s", a.Name, link.Type(), a.Index, a.MTU, a.OperState)
		if vx, ok := link.(*netlink.Vxlan); ok {
			st.Tunnel += fmt.Sprintf(" vni %d local %v remote %v", vx.VxlanId, vx.SrcAddr, vx.Group)
		}
		if a.Alias != "" {
			st.Tunnel += fmt.Sprintf(" alias %q", a.Alias)
		}
	}
	if err := InNS(n.ns, func() error {
		b, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
		st.Forward = strings.TrimSpace(string(b))
		return err
	}); err != nil {
		return st, fmt.Errorf("netlab: %s: ip_forward: %w", node, err)
	}

	rs, err := n.h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: table}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return st, fmt.Errorf("netlab: %s: routes of table %d: %w", node, table, err)
	}
	for _, r := range rs {
		line := fmt.Sprintf("%v", r.Dst)
		if r.Gw != nil {
			line += fmt.Sprintf(" via %v", r.Gw)
		}
		if link, err := n.h.LinkByIndex(r.LinkIndex); err == nil {
			line += " dev " + link.Attrs().Name
		}
		st.Routes = append(st.Routes, line)
	}
	rules, err := n.h.RuleList(netlink.FAMILY_ALL)
	if err != nil {
		return st, fmt.Errorf("netlab: %s: rules: %w", node, err)
	}
	for _, r := range rules {
		if r.Priority == priority {
			st.Rules = append(st.Rules, fmt.Sprintf("%d: iif %s lookup %d", r.Priority, r.IifName, r.Table))
		}
	}
	return st, nil
}

// Empty reports whether no part of the return path is installed.
func (st ReturnState) Empty() bool { return st.Tunnel == "" && len(st.Routes)+len(st.Rules) == 0 }

func (st ReturnState) String() string {
	if st.Empty() {
		return "no tunnel, no route, no rule; ip_forward " + st.Forward
	}
	tu := st.Tunnel
	if tu == "" {
		tu = "no tunnel"
	}
	return fmt.Sprintf("%s; table %d: [%s]; rules: [%s]; ip_forward %s", tu, ReturnTable, strings.Join(st.Routes, ", "), strings.Join(st.Rules, ", "), st.Forward)
}

// scrubberReturn is scrubd's return path in the scrubber.
func (l *Lab) scrubberReturn() (ReturnState, error) {
	return l.ReturnState(Scrubber, ReturnTunnel, ReturnTable, ReturnPriority)
}
