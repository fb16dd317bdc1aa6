//go:build linux

package netlab

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/levee-dots/levee/dots"
)

// rtprotBIRD is the kernel's RTPROT_BIRD.
const rtprotBIRD = 12

// flood sends n attack packets and waits (up to 10 s) for the target to
// count want more of them; it returns how many arrived.
func (s *scenario) flood(n, want int) (Traffic, error) {
	at := s.count.Count()
	sent, err := s.l.Flood(Attacker, Flood{Src: AttackSrc, Dst: AttackDst, Count: n, Size: AttackPayload, Duration: 5 * time.Second})
	if err != nil || sent != n {
		return Traffic{Sent: sent}, fmt.Errorf("netlab: flood: sent %d of %d: %v", sent, n, err)
	}
	for end := time.Now().Add(10 * time.Second); s.count.Count()-at < want && time.Now().Before(end); {
		time.Sleep(10 * time.Millisecond)
	}
	return Traffic{Sent: sent, Reached: s.count.Count() - at}, nil
}

// ping sends n legitimate echo requests and fails unless all are answered.
func (s *scenario) ping(what string, n int) error {
	ok, err := s.l.Ping(Attacker, LegitSrc, LegitDst, n, time.Second)
	if err != nil || ok != n {
		return fmt.Errorf("netlab: %s: %d of %d legitimate echoes answered: %v", what, ok, n, err)
	}
	return nil
}

func (s *scenario) baseline(context.Context) error {
	var err error
	s.res.Before, err = s.direct("no mitigation", baseline)
	return err
}

// direct checks the path without a mitigation: 5 legitimate echoes
// answered, and every one of n attack packets at the target.
func (s *scenario) direct(what string, n int) (Traffic, error) {
	if err := s.ping(what, 5); err != nil {
		return Traffic{}, err
	}
	tr, err := s.flood(n, n)
	if err != nil {
		return tr, err
	}
	s.step("%s: attack %d packets sent, %d reached the target; legit echo 5/5 answered", what, tr.Sent, tr.Reached)
	return tr, nil
}

// returnPath builds the target's end of the return tunnel; scrubd builds
// the scrubber's (its return: section) when it gets the mitigation.
func (s *scenario) returnPath(context.Context) error {
	tu := s.div.Tunnel
	if err := s.l.Divert(s.div, false); err != nil {
		return err
	}
	s.step("return path: the target's end of %s (VXLAN %d, %s ← %s, %v); scrubd builds the scrubber's end, table %d and rule %d",
		tu.Name, tu.VNI, tu.B.Local, tu.A.Local, tu.B.Addr, ReturnTable, ReturnPriority)
	return nil
}

// start writes the configurations and starts BIRD, scrubd and dotsd.
func (s *scenario) start(context.Context) error {
	if err := s.configure(); err != nil {
		return err
	}
	if s.o.OnRamp == OnRampBGP {
		if err := s.startBIRD(); err != nil {
			return err
		}
	}
	if err := s.startScrubd(); err != nil {
		return err
	}
	var err error
	if s.dotsd, err = s.daemon("dotsd", s.o.Bins.Dotsd, 20*time.Second); err != nil {
		return err
	}
	s.step("dotsd ready (signal channel %s)", s.cfg.SignalAddr)
	if err := s.connect(); err != nil {
		return err
	}
	if s.o.OnRamp == OnRampBGP {
		if err := s.bird.WaitFor("BGP session Established", 15*time.Second, func() bool {
			return strings.Contains(s.birdc("show", "protocols", "dotsd"), "Established")
		}); err != nil {
			return err
		}
		s.step("BGP session dotsd %s (AS %d) ↔ BIRD %s (AS %d): Established", ControlAddr, DotsdAS, EdgeBGPAddr, EdgeAS)
	}
	return nil
}

func (s *scenario) birdSocket() string { return filepath.Join(s.dir, "bird.ctl") }

// birdc runs birdc against the edge's BIRD and returns its output.
func (s *scenario) birdc(args ...string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := s.l.Exec(ctx, "", "birdc", append([]string{"-s", s.birdSocket()}, args...)...)
	if err != nil {
		return out + err.Error()
	}
	return out
}

// birdRoutes is what BIRD holds from dotsd in table ("all": in every
// table), a line a route or FlowSpec rule: "TABLE: NET ATTRIBUTES"; a
// failed birdc is a line too.
func (s *scenario) birdRoutes(table string) []string {
	var rs []string
	in := ""
	for _, line := range strings.Split(s.birdc("show", "route", "table", table, "protocol", "dotsd"), "\n") {
		switch {
		case strings.TrimSpace(line) == "", strings.HasPrefix(line, "BIRD "), line[0] == ' ', line[0] == '\t':
		case strings.HasPrefix(line, "Table "):
			in = strings.TrimSuffix(strings.TrimPrefix(line, "Table "), ":")
		default:
			rs = append(rs, in+": "+strings.Join(strings.Fields(line), " "))
		}
	}
	return rs
}

// flowRules is BIRD's FlowTable.
func (s *scenario) flowRules() []string { return s.birdRoutes(FlowTable) }

func (s *scenario) startBIRD() error {
	p, err := s.l.Start(Edge, s.dir, "bird", "bird", "-f", "-c", filepath.Join(s.dir, "bird.conf"),
		"-s", s.birdSocket(), "-P", filepath.Join(s.dir, "bird.pid"))
	if err != nil {
		return err
	}
	s.bird = p
	if err := p.WaitFor("Daemon is up", 10*time.Second, func() bool {
		return strings.Contains(s.birdc("show", "status"), "Daemon is up")
	}); err != nil {
		return err
	}
	s.step("BIRD up in the edge (control socket %s)", s.birdSocket())
	return nil
}

// daemon starts dotsd or scrubd with NAME.yaml where the daemons run and
// waits for its "NAME ready" line; a daemon that fails to get ready is
// returned too, so that it is stopped with the others.
func (s *scenario) daemon(name, bin string, timeout time.Duration) (*Proc, error) {
	p, err := s.l.Start(s.daemons, s.dir, name, bin, "--config", filepath.Join(s.dir, name+".yaml"))
	if err != nil {
		return nil, err
	}
	return p, p.WaitOutput(name+" ready", timeout)
}

var bootRE = regexp.MustCompile(`"scrubd ready".* boot=(\S+)`)

// startScrubd starts scrubd and notes its boot id.
func (s *scenario) startScrubd() error {
	p, err := s.daemon("scrubd", s.o.Bins.Scrubd, 10*time.Second)
	if p != nil {
		s.scrubd = p
	}
	if err != nil {
		return err
	}
	s.boot = ""
	if m := bootRE.FindStringSubmatch(p.Out.String()); m != nil {
		s.boot = m[1]
	}
	s.step("scrubd ready (pid %d, boot %s, API %s, ingress %s in %s)", p.Pid(), s.boot, s.cfg.NodeAddr, ScrubberIface, s.cfg.NetNS)
	return nil
}

// status polls the mitigation's status until ok holds (up to 15 s) and
// returns the last scope read.
func (s *scenario) status(ctx context.Context, what string, ok func(dots.Scope) bool) (dots.Scope, error) {
	var last dots.Scope
	var lastErr error
	for end := time.Now().Add(15 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		sc, err := s.client.Status(ctx, s.res.MID)
		if err == nil {
			last = sc
			if ok(sc) {
				return sc, nil
			}
		}
		lastErr = err
	}
	return last, fmt.Errorf("netlab: %s: last status %s (%v)", what, scopeText(last), lastErr)
}

func scopeText(sc dots.Scope) string {
	p, b := dropped(sc)
	return fmt.Sprintf("status %s, pkts-dropped %d, bytes-dropped %d", statusText(sc), p, b)
}

// statusText is a scope's status as "2 (attack-successfully-mitigated)".
func statusText(sc dots.Scope) string {
	if sc.Status == nil {
		return "none"
	}
	return fmt.Sprintf("%d (%s)", *sc.Status, *sc.Status)
}

func (s *scenario) mitigate(ctx context.Context) error {
	target := netip.PrefixFrom(TargetAddr, 32)
	mid, code, err := s.client.Mitigate(ctx, target, AttackDst.Port())
	s.res.MID, s.res.MitigateCode = mid, code
	if err != nil {
		return fmt.Errorf("netlab: mitigate: %w", err)
	}
	s.step("%s mitigate %v udp/%d → %s, mid %d", s.who, target, AttackDst.Port(), code, mid)
	if code != "2.01" {
		return fmt.Errorf("netlab: mitigate: %s, want 2.01 (Created)", code)
	}
	sc, err := s.status(ctx, "mitigated", func(sc dots.Scope) bool { return sc.Status != nil && *sc.Status == dots.StatusMitigated })
	if err != nil {
		return err
	}
	s.step("%s status %d: %s", s.who, mid, scopeText(sc))
	return nil
}

// onRamp reports scrubd's return path, then waits for the edge's /32
// toward the scrubber: BIRD's, learned over BGP, or the lab's own (added
// now that the scrubber has a way back).
func (s *scenario) onRamp(context.Context) error {
	st, err := s.l.scrubberReturn()
	s.res.Return = st
	if err != nil {
		return err
	}
	s.step("scrubber, by scrubd: %s", st)
	dst := s.div.EdgeRoute.Dst
	if s.o.OnRamp == OnRampRoute {
		if err := s.l.AddRoute(Edge, s.div.EdgeRoute); err != nil {
			return err
		}
	}
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		rs, err := s.l.Routes(Edge, dst)
		if err == nil && len(rs) == 1 && rs[0].Gw.Equal(ScrubberAddr.AsSlice()) &&
			(s.o.OnRamp == OnRampRoute || rs[0].Protocol == rtprotBIRD) {
			how := "proto bird (learned over BGP from dotsd)"
			if s.o.OnRamp == OnRampRoute {
				how = "(installed by the lab with netlink)"
			}
			s.res.EdgeRoute = fmt.Sprintf("%v via %v %s", rs[0].Dst, rs[0].Gw, how)
			s.step("edge FIB: %s", s.res.EdgeRoute)
			return nil
		}
		if time.Now().After(end) {
			return fmt.Errorf("netlab: no route to the scrubber in the edge's FIB: %v %v\n%s", rs, err, s.birdc("show", "route", "all"))
		}
	}
}

// attack floods the target under mitigation and sends legitimate echoes.
func (s *scenario) attack(ctx context.Context) error {
	rx0 := s.tunnelRx()
	if err := s.ping("diverted", 5); err != nil { // also resolves the edge's neighbour entry of the scrubber
		return err
	}
	scr0, err := s.l.ScrubberDropped()
	if err != nil {
		return err
	}
	sc0, err := s.client.Status(ctx, s.res.MID)
	if err != nil {
		return err
	}
	p0, _ := dropped(sc0)
	at0 := s.count.Count()
	tr, err := s.flood(s.o.Attack, 0)
	if err != nil {
		return err
	}
	if err := s.ping("under mitigation", 20); err != nil {
		return err
	}
	s.res.Legit = Echoes{Sent: 25, Answered: 25, OverTunnel: s.tunnelRx() - rx0}
	sc, err := s.status(ctx, "attack counted", func(sc dots.Scope) bool { p, _ := dropped(sc); return p >= p0+uint64(tr.Sent) })
	tr.PktsDropped, tr.BytesDropped = dropped(sc)
	tr.PktsBefore = p0
	tr.Reached = s.count.Count() - at0 // after the wait: late arrivals count too
	scr, rerr := s.l.ScrubberDropped()
	tr.Scrubbed = NFTCount{scr.Packets - scr0.Packets, scr.Bytes - scr0.Bytes}
	s.res.Attack = tr
	s.step("attack %d packets sent, %d reached the target, scrubber dropped %d, %s status pkts-dropped %d (+%d) bytes-dropped %d",
		tr.Sent, tr.Reached, tr.Scrubbed.Packets, s.who, tr.PktsDropped, tr.PktsDropped-tr.PktsBefore, tr.BytesDropped)
	s.step("legit echo %d/%d answered through %s (%d packets over the tunnel)", s.res.Legit.Answered, s.res.Legit.Sent, ReturnTunnel, s.res.Legit.OverTunnel)
	if err != nil {
		return err
	}
	return rerr
}

// TunnelRx is the packets received by node's end of tunnel name (0 when
// it does not exist).
func (l *Lab) TunnelRx(node, name string) uint64 {
	h := l.Handle(node)
	if h == nil {
		return 0
	}
	link, err := h.LinkByName(name)
	if err != nil || link.Attrs().Statistics == nil {
		return 0
	}
	return link.Attrs().Statistics.RxPackets
}

func (s *scenario) tunnelRx() uint64 { return s.l.TunnelRx(Target, ReturnTunnel) }
