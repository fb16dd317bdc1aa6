//go:build linux

package netlab

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/levee-dots/levee/escalate"
	"github.com/levee-dots/levee/pki"
)

// Bins are the paths of the binaries a scenario runs.
type Bins struct {
	Dotsd, Scrubd, Dotsctl string
}

// BinsIn names the binaries in dir (as `make build` leaves them in bin/).
func BinsIn(dir string) Bins {
	return Bins{Dotsd: filepath.Join(dir, "dotsd"), Scrubd: filepath.Join(dir, "scrubd"), Dotsctl: filepath.Join(dir, "dotsctl")}
}

// OnRamp is how the edge learns to send the target's traffic to the
// scrubber.
type OnRamp int

const (
	// OnRampBGP: dotsd, scrubd and dotsctl run in the control node, and
	// dotsd announces the target's /32 with the scrubber as next hop to a
	// real BIRD in the edge, whose kernel protocol installs it.
	OnRampBGP OnRamp = iota
	// OnRampRoute: the lab installs the edge's /32 with netlink; dotsd and
	// scrubd run in the caller's namespace on loopback ports.
	OnRampRoute
)

// ScenarioOptions configure RunScrubbing.
type ScenarioOptions struct {
	Bins Bins
	// Dir holds the configurations, the PKI, the store and BIRD's control
	// socket; "": a temporary directory, removed at the end.
	Dir string
	// Logf receives each step in plain words (nil: discarded).
	Logf   func(format string, args ...any)
	OnRamp OnRamp
	// Keep holds the lab up once the attack is scrubbed, with the
	// mitigation active, until ctx ends; the scenario then withdraws and
	// cleans up as usual.
	Keep bool
	// Client, if set, makes the DOTS client (default: dotsctl).
	Client func(ClientFiles) (Client, error)
	// Attack is the number of attack packets sent under mitigation
	// (default 5000).
	Attack int
	// Restart, if set, kills scrubd with SIGKILL under mitigation and
	// starts it again (see RestartOptions).
	Restart *RestartOptions
	// Dashboard serves dotsd's dashboard on loopback where dotsd runs
	// (ScenarioResult.Dashboard), with a fresh token in
	// Dir/dashboard.token.
	Dashboard bool
	// Screenshot, if set, is a PNG file: after the attack, under
	// mitigation, bursts of attack packets (ShotBursts) go to the target
	// for about 90 s, and headless Chromium, in dotsd's namespace, takes
	// a picture of the dashboard's page of the mitigation, its plots
	// drawn from scrubd's drop counters. It implies Dashboard.
	Screenshot string
}

// Attack traffic: 64-byte UDP payloads to the target's port 123.
const (
	AttackPayload = 64
	attackIPBytes = 20 + 8 + AttackPayload // what the netdev counters count per packet
	baseline      = 1000
	afterWithdraw = 100
)

// Flows of the scenario: the attack, and the legitimate UDP echo.
var (
	AttackSrc = netip.AddrPortFrom(AttackerAddr, 123)
	AttackDst = netip.AddrPortFrom(TargetAddr, 123)
	LegitSrc  = netip.AddrPortFrom(AttackerAddr, 40007)
	LegitDst  = netip.AddrPortFrom(TargetAddr, 7)
)

// ScenarioResult is what RunScrubbing observed.
type ScenarioResult struct {
	Namespaces   map[string]string // node → namespace
	Dir          string
	Before       Traffic // the attack with no mitigation
	MID          uint32
	MitigateCode string
	EdgeRoute    string      // the on-ramp in the edge's FIB
	Return       ReturnState // scrubd's return path in the scrubber, under mitigation
	Attack       Traffic     // under mitigation
	Legit        Echoes      // under mitigation
	Restart      *RestartResult
	Escalation   *EscalationResult // RunEscalation's
	WithdrawCode string
	// Withdrawn is scrubd's return path once it has the state without the
	// mitigation (scrubd still running).
	Withdrawn ReturnState
	Left      Leftovers // after withdraw and scrubd's stop
	After     Traffic   // after withdraw
	Took      time.Duration
	// Dashboard is the dashboard's URL (with ScenarioOptions.Dashboard),
	// reachable where dotsd runs.
	Dashboard string
	Shot      *ShotResult // with ScenarioOptions.Screenshot
}

// Traffic is one bounded flood and what became of it.
type Traffic struct {
	Sent, Reached int      // packets sent; received at the target
	Scrubbed      NFTCount // the scrubber's drop counters' increase
	// PktsDropped and BytesDropped are the mitigation's totals in dotsctl
	// status after the flood, PktsBefore its pkts-dropped before it.
	PktsDropped, BytesDropped, PktsBefore uint64
}

// Echoes is the legitimate flow: requests sent, answered, and packets that
// came to the target over the return tunnel meanwhile.
type Echoes struct {
	Sent, Answered int
	OverTunnel     uint64
}

// Leftovers is what the diversion left behind after withdraw (all empty
// when it cleaned up).
type Leftovers struct {
	Routes  []string    // to the target's /32, at the edge or the scrubber
	Tables  []string    // nftables tables in the scrubber
	Tunnels []string    // nodes where the return tunnel still exists
	Return  ReturnState // scrubd's rule, routes and tunnel in the scrubber
	BIRD    []string    // BIRD's routes and FlowSpec rules from dotsd (OnRampBGP)
}

// scenario is one run of RunScrubbing or RunEscalation.
type scenario struct {
	o                   ScenarioOptions
	l                   *Lab
	dir, tmp            string
	cfg                 DaemonConfig
	files               ClientFiles
	daemons             string // where dotsd and scrubd run ("": here)
	bird, scrubd, dotsd *Proc
	boot                string // scrubd's boot id
	client              Client
	who                 string // the client, in the steps
	echo                *Echo
	count               *Counter
	div                 Diversion
	res                 *ScenarioResult
	n                   int
	ladder              *escalate.Ladder // RunEscalation's; nil: RunScrubbing
	token               string           // the dashboard's
}

// RunScrubbing runs the scrubbing scenario with real packets, real dotsd,
// scrubd and dotsctl, and (OnRampBGP) a real BIRD as the edge router:
//
//  1. the lab's namespaces; an echo service and a counter at the target;
//  2. the attack with no mitigation reaches the target;
//  3. the target's end of the return path (VXLAN from the scrubber; scrubd
//     builds the scrubber's end, its routing table and rule);
//  4. BIRD, scrubd and dotsd start, BGP comes up;
//  5. the client asks for a mitigation of 203.0.113.10/32 UDP port 123;
//  6. the on-ramp reaches the edge's FIB;
//  7. the attack is dropped at the scrubber and counted by dotsd, while
//     the legitimate echo is answered through the tunnel;
//  8. (Restart) scrubd is killed and started again;
//  9. withdraw: the route, the node's table and the tunnel go, and the
//     attack reaches the target again.
//
// Every step is reported through Logf. Everything it started and built is
// removed before it returns; the result is returned also with an error,
// as far as the scenario got.
func RunScrubbing(ctx context.Context, o ScenarioOptions) (*ScenarioResult, error) {
	return execute(ctx, o, nil)
}

// execute runs a scenario: RunScrubbing's, or with ladder RunEscalation's.
func execute(ctx context.Context, o ScenarioOptions, ladder *escalate.Ladder) (res *ScenarioResult, err error) {
	s, err := newScenario(o)
	if err != nil {
		return nil, err
	}
	s.ladder = ladder
	defer func() { err = errors.Join(err, s.close()) }()
	began := time.Now()
	if err = s.run(ctx); err != nil && ctx.Err() == nil {
		err = fmt.Errorf("%w\n%s", err, s.logs()) // a failure, not an interruption: the daemons' side of it
	}
	s.res.Took = time.Since(began)
	return s.res, err
}

func newScenario(o ScenarioOptions) (*scenario, error) {
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	if o.Attack <= 0 {
		o.Attack = 5000
	}
	if o.Screenshot != "" {
		o.Dashboard = true
	}
	if err := checkTools(o); err != nil {
		return nil, err
	}
	s := &scenario{o: o, dir: o.Dir, div: ScrubdDiversion(), res: &ScenarioResult{}}
	if s.dir == "" {
		d, err := os.MkdirTemp("", "netlab-") // short: it holds BIRD's control socket
		if err != nil {
			return nil, fmt.Errorf("netlab: scenario: %w", err)
		}
		s.dir, s.tmp = d, d
	} else if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return nil, fmt.Errorf("netlab: scenario: %w", err)
	}
	s.res.Dir = s.dir
	return s, nil
}

// checkTools checks for the binaries and the tools a scenario runs.
func checkTools(o ScenarioOptions) error {
	for name, p := range map[string]string{"dotsd": o.Bins.Dotsd, "scrubd": o.Bins.Scrubd, "dotsctl": o.Bins.Dotsctl} {
		if p == "" {
			return fmt.Errorf("netlab: scenario: no %s binary", name)
		}
		if _, err := exec.LookPath(p); err != nil {
			return fmt.Errorf("netlab: scenario: %s: %w", name, err)
		}
	}
	tools := []string{"ip", "nft"}
	if o.OnRamp == OnRampBGP {
		tools = append(tools, "bird", "birdc")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("netlab: scenario needs %s (Debian packages iproute2, nftables, bird2): %w", tool, err)
		}
	}
	return nil
}

// step reports one step.
func (s *scenario) step(format string, args ...any) {
	s.n++
	s.o.Logf("step %d: %s", s.n, fmt.Sprintf(format, args...))
}

// steps are the scenario's steps up to the withdrawal.
func (s *scenario) steps() []func(context.Context) error {
	steps := []func(context.Context) error{s.build, s.baseline, s.returnPath, s.start, s.mitigate}
	if s.ladder != nil {
		return append(steps, s.firstStep, s.escalateUp, s.onRamp, s.attack, s.escalateDown)
	}
	steps = append(steps, s.onRamp, s.attack)
	if s.o.Screenshot != "" {
		steps = append(steps, s.screenshot)
	}
	return steps
}

func (s *scenario) run(ctx context.Context) error {
	for _, f := range s.steps() {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("netlab: scenario interrupted: %w", err)
		}
		if err := f(ctx); err != nil {
			return err
		}
	}
	if s.o.Restart != nil {
		if err := s.restart(ctx, *s.o.Restart); err != nil {
			return err
		}
	}
	if s.o.Keep {
		s.hold(ctx)
	} else if err := ctx.Err(); err != nil {
		return fmt.Errorf("netlab: scenario interrupted: %w", err)
	}
	return s.withdraw(context.WithoutCancel(ctx))
}

func (s *scenario) build(context.Context) error {
	topo := Scrubbing()
	s.daemons = ""
	if s.o.OnRamp == OnRampBGP {
		topo, s.daemons = ScrubbingWithControl(), Control
	}
	ScrubdForwards(&topo)
	l, err := New(topo)
	if err != nil {
		return err
	}
	s.l = l
	s.res.Namespaces = map[string]string{}
	var names []string
	for _, n := range topo.Nodes {
		s.res.Namespaces[n.Name] = l.Namespace(n.Name)
		names = append(names, l.Namespace(n.Name))
	}
	s.step("lab up: %d namespaces (%s)", len(names), strings.Join(names, ", "))
	if s.echo, err = l.EchoUDP(Target, LegitDst); err != nil {
		return err
	}
	if s.count, err = l.CountUDP(Target, AttackDst); err != nil {
		return err
	}
	return nil
}

func (s *scenario) close() error {
	var errs []error
	for _, p := range []*Proc{s.dotsd, s.scrubd, s.bird} {
		if p != nil {
			errs = append(errs, p.Stop())
		}
	}
	if s.echo != nil {
		errs = append(errs, s.echo.Close())
	}
	if s.count != nil {
		errs = append(errs, s.count.Close())
	}
	if s.l != nil {
		errs = append(errs, s.l.Close())
	}
	if s.tmp != "" {
		errs = append(errs, os.RemoveAll(s.tmp))
	}
	return errors.Join(errs...)
}

// logs returns the daemons' output so far (for a failed run).
func (s *scenario) logs() string {
	var b strings.Builder
	for _, p := range []*Proc{s.dotsd, s.scrubd, s.bird} {
		if p != nil {
			fmt.Fprintf(&b, "--- %s:\n%s\n", p.Name, p.Out.String())
		}
	}
	return b.String()
}

func (s *scenario) write(name, text string) (string, error) {
	p := filepath.Join(s.dir, name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		return "", fmt.Errorf("netlab: scenario: %w", err)
	}
	return p, nil
}

// freePort is a port on 127.0.0.1 of the caller's namespace free for
// both TCP and UDP.
func freePort() (string, error) {
	// dotsd listens on the port over TCP (TLS) and UDP (DTLS): both must be
	// free, or its start fails on "address already in use".
	var err error
	for range 20 {
		var ln net.Listener
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			break
		}
		addr := ln.Addr().String()
		pc, uerr := net.ListenPacket("udp", addr)
		ln.Close()
		if uerr == nil {
			pc.Close()
			return addr, nil
		}
		err = uerr
	}
	return "", fmt.Errorf("netlab: free port: %w", err)
}

// configure writes the PKI and the daemons' configurations, and removes
// the state of an earlier run in the same directory (dotsd's store,
// dotsctl's mids, the daemons' logs).
func (s *scenario) configure() error {
	for _, name := range []string{"levee.db", "alpha-state.json", "dotsd.log", "scrubd.log", "bird.log", DashboardToken} {
		if err := os.Remove(filepath.Join(s.dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("netlab: scenario: %w", err)
		}
	}
	dev, err := pki.Dev(s.dir, []string{"alpha", "dotsd"})
	if err != nil {
		return fmt.Errorf("netlab: scenario: pki: %w", err)
	}
	s.cfg = DaemonConfig{NodeAddr: "127.0.0.1:8443", SignalAddr: "127.0.0.1:4646", // inside the control namespace
		Interface: ScrubberIface, NetNS: s.l.Namespace(Scrubber), BGP: s.o.OnRamp == OnRampBGP, Return: ReturnSection(s.div),
		Escalation: s.ladder}
	if s.daemons == "" {
		if s.cfg.NodeAddr, err = freePort(); err != nil {
			return err
		}
		if s.cfg.SignalAddr, err = freePort(); err != nil {
			return err
		}
	}
	if s.o.Dashboard {
		if err := s.dashboard(); err != nil {
			return err
		}
	}
	for name, text := range map[string]string{"scrubd.yaml": s.cfg.Scrubd(), "dotsd.yaml": s.cfg.Dotsd(),
		"dotsctl.yaml": s.cfg.Dotsctl(), "bird.conf": s.cfg.BIRD()} {
		if _, err := s.write(name, text); err != nil {
			return err
		}
	}
	alpha := dev.Clients["alpha"]
	s.files = ClientFiles{Signal: s.cfg.SignalAddr, Cert: alpha.Cert, Key: alpha.Key, CAs: dev.CAPath}
	return nil
}

// connect makes the client, once dotsd is ready.
func (s *scenario) connect() error {
	if s.o.Client == nil {
		c := dotsctl{l: s.l, node: s.daemons, bin: s.o.Bins.Dotsctl, cfg: filepath.Join(s.dir, "dotsctl.yaml"), countermeasure: "scrubbing"}
		if s.ladder != nil {
			c.countermeasure = "" // the ladder chooses
		}
		s.client, s.who = c, "dotsctl"
		return nil
	}
	c, err := s.o.Client(s.files)
	if err != nil {
		return fmt.Errorf("netlab: client: %w", err)
	}
	s.client, s.who = c, "client"
	return nil
}
