//go:build linux

package netlab

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// hold keeps the lab up with the mitigation active until ctx ends, after
// telling how to look at it.
func (s *scenario) hold(ctx context.Context) {
	ns := s.res.Namespaces
	var b strings.Builder
	fmt.Fprintf(&b, "lab kept up, mitigation %d active; look at it with:\n", s.res.MID)
	if s.o.OnRamp == OnRampBGP {
		fmt.Fprintf(&b, "  ip netns exec %s birdc -s %s show route\n", ns[Edge], s.birdSocket())
	}
	if s.ladder != nil {
		fmt.Fprintf(&b, "  ip netns exec %s birdc -s %s show route table %s\n", ns[Edge], s.birdSocket(), FlowTable)
	}
	fmt.Fprintf(&b, "  ip -n %s route show %v\n", ns[Edge], TargetAddr)
	fmt.Fprintf(&b, "  ip netns exec %s nft list table netdev %s\n", ns[Scrubber], LabTable)
	fmt.Fprintf(&b, "  ip -n %s -s link show %s\n", ns[Target], ReturnTunnel)
	ctl := "ip netns exec " + ns[Control] + " "
	if s.daemons == "" {
		ctl = ""
	}
	fmt.Fprintf(&b, "  %s%s --config %s status %d\n", ctl, s.o.Bins.Dotsctl, filepath.Join(s.dir, "dotsctl.yaml"), s.res.MID)
	fmt.Fprintf(&b, "  tail -f %s\n", filepath.Join(s.dir, "*.log"))
	if s.res.Dashboard != "" {
		fmt.Fprintf(&b, "dashboard: %s (log in with the token in %s)", s.res.Dashboard, filepath.Join(s.dir, DashboardToken))
		if s.daemons != "" {
			fmt.Fprintf(&b, ", on the loopback of %s: e.g. ip netns exec %s curl -H \"Authorization: Bearer $(cat %s)\" %sapi/mitigations",
				ns[Control], ns[Control], filepath.Join(s.dir, DashboardToken), s.res.Dashboard)
		}
		b.WriteString("\n")
	}
	b.WriteString("press Ctrl-C to withdraw the mitigation and remove the lab")
	s.o.Logf("%s", b.String())
	<-ctx.Done()
	s.o.Logf("interrupted: withdrawing and cleaning up")
}

var stateWithout = regexp.MustCompile(`"state set".*mitigations=0`)

// withdraw withdraws the mitigation, checks that the diversion left
// nothing behind once scrubd stopped, and floods again.
func (s *scenario) withdraw(ctx context.Context) error {
	code, err := s.client.Withdraw(ctx, s.res.MID)
	s.res.WithdrawCode = code
	if err != nil {
		return fmt.Errorf("netlab: withdraw: %w", err)
	}
	s.step("%s withdraw %d → %s", s.who, s.res.MID, code)
	switch {
	case s.ladder != nil:
		if err := s.bird.WaitFor("FlowSpec rule withdrawn", 10*time.Second, func() bool { return len(s.flowRules()) == 0 }); err != nil {
			return err
		}
		s.step("BIRD: %s empty, the FlowSpec rule withdrawn over BGP (after dotsd's active-but-terminating second)", FlowTable)
	case s.o.OnRamp == OnRampBGP:
		if err := s.edgeRouteGone(); err != nil {
			return err
		}
		s.step("edge FIB: %v withdrawn over BGP (after dotsd's active-but-terminating second)", s.div.EdgeRoute.Dst)
	}
	if err := s.scrubdState(stateWithout, 0); err != nil {
		return err
	}
	st, err := s.l.scrubberReturn()
	s.res.Withdrawn = st
	if err != nil {
		return err
	}
	s.step("scrubd got the state without the mitigation; scrubber: %s", st)
	if err := s.l.Undivert(s.div, s.o.OnRamp == OnRampRoute); err != nil {
		return err
	}
	if err := s.scrubd.Stop(); err != nil {
		return fmt.Errorf("netlab: scrubd exit: %w", err)
	}
	s.step("the target's end of %s removed; scrubd stopped (SIGTERM)", ReturnTunnel)
	left, err := s.l.Leftovers(s.div)
	if s.o.OnRamp == OnRampBGP {
		left.BIRD = s.birdRoutes("all")
	}
	s.res.Left = left
	if err != nil {
		return err
	}
	s.step("after withdraw: %s", left)
	if s.o.OnRamp == OnRampBGP && len(left.BIRD) == 0 {
		s.step("BIRD: no route and no FlowSpec rule from dotsd in any table (birdc show route table all protocol dotsd)")
	}
	s.res.After, err = s.direct("after withdraw", afterWithdraw)
	return err
}

// edgeRouteGone waits until the edge's FIB has no route to the target's
// /32 (BIRD removed the one it learned over BGP).
func (s *scenario) edgeRouteGone() error {
	return s.bird.WaitFor("route withdrawn", 10*time.Second, func() bool {
		rs, err := s.l.Routes(Edge, s.div.EdgeRoute.Dst)
		return err == nil && len(rs) == 0
	})
}

// scrubdState waits until scrubd's output after its first from bytes
// matches re (the "state set" line of a state with or without the
// mitigation).
func (s *scenario) scrubdState(re *regexp.Regexp, from int) error {
	what := "state with the mitigation"
	if re == stateWithout {
		what = "state without the mitigation"
	}
	return s.scrubd.WaitFor(what, 10*time.Second, func() bool { return re.MatchString(s.scrubd.Out.String()[from:]) })
}

// Leftovers looks inside the namespaces for what diversion d adds: its /32
// at the edge or the scrubber, nftables tables in the scrubber, the
// return tunnel at either end.
func (l *Lab) Leftovers(d Diversion) (Leftovers, error) {
	var left Leftovers
	for _, n := range []string{Edge, d.Tunnel.A.Node} {
		rs, err := l.Routes(n, d.EdgeRoute.Dst)
		if err != nil {
			return left, err
		}
		for _, r := range rs {
			left.Routes = append(left.Routes, fmt.Sprintf("%s: %v", n, r))
		}
	}
	ts, err := l.NFTTables(d.Tunnel.A.Node)
	if err != nil {
		return left, err
	}
	left.Tables = ts
	if left.Return, err = l.ReturnState(d.Tunnel.A.Node, d.Tunnel.Name, ReturnTable, ReturnPriority); err != nil {
		return left, err
	}
	for _, n := range []string{d.Tunnel.A.Node, d.Tunnel.B.Node} {
		if _, err := l.Handle(n).LinkByName(d.Tunnel.Name); err == nil {
			left.Tunnels = append(left.Tunnels, n)
		}
	}
	return left, nil
}

// Empty reports whether nothing was left behind.
func (l Leftovers) Empty() bool {
	return len(l.Routes)+len(l.Tables)+len(l.Tunnels)+len(l.BIRD) == 0 && l.Return.Empty()
}

func (l Leftovers) String() string {
	if l.Empty() {
		return fmt.Sprintf("no route to %v at the edge or the scrubber, no nftables table, no route in table %d and no rule %d in the scrubber (ip_forward %s), no %s at either end",
			TargetAddr, ReturnTable, ReturnPriority, l.Return.Forward, ReturnTunnel)
	}
	return fmt.Sprintf("left behind: routes %v, nftables tables %v, %s in %v, scrubber return path: %s, in BIRD %v",
		l.Routes, l.Tables, ReturnTunnel, l.Tunnels, l.Return, l.BIRD)
}

// Problems lists, in plain words, where the result is not what the
// scenario promises (none: it passed).
func (r *ScenarioResult) Problems() []string {
	var p []string
	add := func(ok bool, format string, args ...any) {
		if !ok {
			p = append(p, fmt.Sprintf(format, args...))
		}
	}
	a := r.Attack
	add(r.Before.Sent > 0 && r.Before.Reached == r.Before.Sent, "before the mitigation %d of %d attack packets reached the target", r.Before.Reached, r.Before.Sent)
	add(a.Sent > 0 && a.Reached == 0, "under mitigation %d of %d attack packets reached the target", a.Reached, a.Sent)
	add(a.Scrubbed.Packets == uint64(a.Sent), "the scrubber's drop counters rose by %d, %d attack packets were sent", a.Scrubbed.Packets, a.Sent)
	add(a.Scrubbed.Bytes == a.Scrubbed.Packets*attackIPBytes, "the scrubber's drop counters rose by %d bytes, want %d", a.Scrubbed.Bytes, a.Scrubbed.Packets*attackIPBytes)
	add(a.PktsDropped-a.PktsBefore == uint64(a.Sent), "dotsctl status pkts-dropped rose by %d (%d to %d), %d attack packets were sent",
		a.PktsDropped-a.PktsBefore, a.PktsBefore, a.PktsDropped, a.Sent)
	add(a.BytesDropped == a.PktsDropped*attackIPBytes, "dotsctl status bytes-dropped %d, want %d (%d packets of %d IP bytes)",
		a.BytesDropped, a.PktsDropped*attackIPBytes, a.PktsDropped, attackIPBytes)
	wantRoute := fmt.Sprintf("%v via %v dev %s", netip.PrefixFrom(TargetAddr, 32), TunnelTarget, ReturnTunnel)
	wantRule := fmt.Sprintf("%d: iif %s lookup %d", ReturnPriority, ScrubberIface, ReturnTable)
	add(r.Return.Tunnel != "" && slices.Equal(r.Return.Routes, []string{wantRoute}) && slices.Contains(r.Return.Rules, wantRule),
		"scrubd's return path under mitigation: %s; want %s, route %s, rule %s", r.Return, ReturnTunnel, wantRoute, wantRule)
	add(r.Return.Forward == "1", "under mitigation the scrubber's ip_forward is %q; scrubd's return path turns it on", r.Return.Forward)
	add(r.Left.Return.Forward == "0", "after scrubd's stop the scrubber's ip_forward is %q, want 0 as before scrubd turned it on", r.Left.Return.Forward)
	add(len(r.Withdrawn.Routes) == 0, "after withdraw scrubd's table %d still routes %v", ReturnTable, r.Withdrawn.Routes)
	add(r.Legit.Sent > 0 && r.Legit.Answered == r.Legit.Sent, "%d of %d legitimate echoes answered", r.Legit.Answered, r.Legit.Sent)
	add(r.Legit.OverTunnel >= uint64(r.Legit.Sent), "%d packets came over %s, want the %d echoes", r.Legit.OverTunnel, ReturnTunnel, r.Legit.Sent)
	if r.Restart != nil {
		p = append(p, r.Restart.Problems()...)
	}
	if r.Escalation != nil {
		p = append(p, r.Escalation.Problems(r.EdgeRoute)...)
	}
	if r.Shot != nil {
		p = append(p, r.Shot.Problems()...)
	}
	add(r.WithdrawCode == "2.02", "withdraw answered %q, want 2.02 (Deleted)", r.WithdrawCode)
	add(r.Left.Empty(), "after withdraw: %s", r.Left)
	add(r.After.Sent > 0 && r.After.Reached == r.After.Sent, "after withdraw %d of %d attack packets reached the target", r.After.Reached, r.After.Sent)
	return p
}
