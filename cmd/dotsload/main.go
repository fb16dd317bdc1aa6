// Command dotsload measures a dotsd binary under load and prints the figures
// of 'make bench': mitigation request latency on one session (phase 1),
// request cycles over many sessions (2), DTLS handshake rate (3), the memory
// of many heartbeating sessions (4), the time from a PUT to the route at a
// real ExaBGP (5), a kill -9 and restart with many active FlowSpec
// mitigations at real FRR, BIRD and ExaBGP routers (6), a legitimate
// client's handshakes and PUTs during a flood of ClientHellos from spoofed
// sources in 127.0.0.0/8, with the server's RSS (7, root), and one
// client's PUT latency while another sends as fast as it can (8).
//
//	dotsload --dotsd PATH [--phases 123456] [--sessions 20000] [--cycle-sessions 100]
//	         [--duration 5s] [--hb-window 40s] [--transport dtls]
//	         [--route-requests 200] [--restart-mitigations 10000] [--restart-bound 120s]
//	         [--flood-rate 20000] [--flood-duration 30s] [--flood-sources 10000]
//	         [--figures FILE]
//
// It provisions a throw-away development PKI with 'dotsd dev', writes its own
// bench.yaml and runs 'dotsd --config bench.yaml' as a child process on
// 127.0.0.1 for phases 1-4. Phases 5 and 6 each run a dotsd of their own with
// a divert.bgp section whose neighbors are lab's routers (package lab),
// started on 127.0.0.x; a phase whose router is not installed is skipped.
// Phases 7 and 8 each run a fresh dotsd of their own too; phase 7 is
// skipped without root (raw sockets). The default phases leave 7 and 8
// out ('make bench' names them: together they take about a minute and a
// half).
// It exits non-zero only when the tool itself fails; missed targets are
// reported as FAIL. --figures writes the headline figures as "name value"
// lines, for scripts such as ab.sh.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/levee-dots/levee/dotsclient"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == workerCommand {
		os.Exit(workerMain(os.Args[2:]))
	}
	if len(os.Args) > 1 && os.Args[1] == fairCommand {
		os.Exit(fairMain(os.Args[2:]))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "dotsload:", err)
		stop()
		os.Exit(1)
	}
}

type options struct {
	dotsd                   string
	sessions, cycleSessions int
	duration, hbWindow      time.Duration
	transport               string
	hbParallel, sequentialN int
	handshakes, hsParallel  int
	keep                    bool
	phases                  string
	memoryLimitMiB          int
	routeRequests           int
	restartN                int
	restartBound            time.Duration
	figures                 string
	floodRate, floodSources int
	floodDuration           time.Duration
	floodRSSCapMiB          int
}

func parseFlags(args []string) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("dotsload", flag.ContinueOnError)
	fs.StringVar(&o.dotsd, "dotsd", "", "path of the dotsd binary to measure (required)")
	fs.IntVar(&o.sessions, "sessions", 20000, "heartbeating sessions of phase 4")
	fs.IntVar(&o.cycleSessions, "cycle-sessions", 100, "parallel sessions of phase 2")
	fs.DurationVar(&o.duration, "duration", 5*time.Second, "length of phase 2")
	fs.DurationVar(&o.hbWindow, "hb-window", 40*time.Second, "heartbeat window of phase 4, once all sessions are up")
	fs.StringVar(&o.transport, "transport", "dtls", "dtls or tls")
	fs.IntVar(&o.hbParallel, "hb-parallel", 48, "handshakes in parallel while opening phase 4 sessions (32-64)")
	fs.IntVar(&o.sequentialN, "requests", 2000, "sequential requests of phase 1")
	fs.IntVar(&o.handshakes, "handshakes", 2000, "handshakes of phase 3")
	fs.IntVar(&o.hsParallel, "handshake-parallel", 32, "handshakes in parallel in phase 3")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory (PKI, bench.yaml, database)")
	fs.StringVar(&o.phases, "phases", "123456", "phases to run, e.g. 4 or 125")
	fs.IntVar(&o.memoryLimitMiB, "server-memory-limit-mib", 1400, "dotsd's memory-limit-mib (soft GC limit; 0: none)")
	fs.IntVar(&o.routeRequests, "route-requests", 200, "sequential RTBH requests of phase 5")
	fs.IntVar(&o.restartN, "restart-mitigations", 10000, "active FlowSpec mitigations of phase 6 (≤ 65536)")
	fs.DurationVar(&o.restartBound, "restart-bound", 120*time.Second, "upper bound on the whole of phase 6")
	fs.IntVar(&o.floodRate, "flood-rate", targetFloodRate, "spoofed ClientHellos per second of phase 7")
	fs.DurationVar(&o.floodDuration, "flood-duration", targetFloodDuration, "length of phase 7's flood")
	fs.IntVar(&o.floodSources, "flood-sources", targetFloodSources, "spoofed source addresses of phase 7 (127.64.0.1 …)")
	fs.IntVar(&o.floodRSSCapMiB, "flood-rss-cap-mib", 3072, "phase 7's flood stops early if dotsd's RSS goes over this (protects the machine)")
	fs.StringVar(&o.figures, "figures", "", "also write the headline figures to this file, one \"name value\" a line")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	switch {
	case o.dotsd == "":
		return nil, errors.New("--dotsd PATH is required")
	case o.transport != "dtls" && o.transport != "tls":
		return nil, fmt.Errorf("--transport %q: use dtls or tls", o.transport)
	case o.sessions < 1 || o.sessions > 200000:
		return nil, fmt.Errorf("--sessions %d: use 1..200000", o.sessions)
	case o.cycleSessions < 1 || o.cycleSessions > 5000:
		return nil, fmt.Errorf("--cycle-sessions %d: use 1..5000", o.cycleSessions)
	case o.duration <= 0 || o.duration > 10*time.Minute:
		return nil, fmt.Errorf("--duration %v: use a positive duration up to 10m", o.duration)
	case o.hbWindow <= 0 || o.hbWindow > 30*time.Minute:
		return nil, fmt.Errorf("--hb-window %v: use a positive duration up to 30m", o.hbWindow)
	case strings.Trim(o.phases, "12345678") != "" || o.phases == "":
		return nil, fmt.Errorf("--phases %q: use digits 1-8", o.phases)
	case o.floodRate < 1 || o.floodRate > 100000:
		return nil, fmt.Errorf("--flood-rate %d: use 1..100000", o.floodRate)
	case o.floodDuration < time.Second || o.floodDuration > 5*time.Minute || int64(o.floodRate)*int64(o.floodDuration/time.Second) > 10_000_000:
		return nil, fmt.Errorf("--flood-duration %v: use 1s..5m, at most 10,000,000 packets", o.floodDuration)
	case o.floodSources < 1 || o.floodSources > 65000:
		return nil, fmt.Errorf("--flood-sources %d: use 1..65000", o.floodSources)
	case o.floodRSSCapMiB < 64:
		return nil, fmt.Errorf("--flood-rss-cap-mib %d: use at least 64", o.floodRSSCapMiB)
	case o.routeRequests < 1 || o.routeRequests > 5000:
		return nil, fmt.Errorf("--route-requests %d: use 1..5000", o.routeRequests)
	case o.restartN < 1 || o.restartN > 65536:
		return nil, fmt.Errorf("--restart-mitigations %d: use 1..65536", o.restartN)
	case o.restartBound < 10*time.Second || o.restartBound > 15*time.Minute:
		return nil, fmt.Errorf("--restart-bound %v: use 10s..15m", o.restartBound)
	case o.hbParallel < 1 || o.hsParallel < 1 || o.sequentialN < 1 || o.sequentialN > 50000 || o.handshakes < 1 || o.handshakes > 100000:
		return nil, errors.New("--hb-parallel, --handshake-parallel, --requests (≤50000) and --handshakes (≤100000) must be positive")
	}
	abs, err := filepath.Abs(o.dotsd)
	if err != nil {
		return nil, err
	}
	o.dotsd = abs
	return o, nil
}

// certsNeeded is the number of load certificates the selected phases use
// (phases 1, 5 and 6 use the first 8 at most).
func (o *options) certsNeeded() int {
	n := 8
	if strings.Contains(o.phases, "2") {
		n = max(n, o.cycleSessions+1)
	}
	if strings.Contains(o.phases, "3") {
		n = max(n, o.handshakes)
	}
	return n
}

// env is what the phases share.
type env struct {
	opts      *options
	dir       string
	addr      string
	port      int
	roots     *x509.CertPool
	certs     []tls.Certificate // load-0 … for phases 1-3
	server    *child
	out       io.Writer
	toolStart time.Time
}

// dial opens one session (10 s bound).
func (e *env) dial(ctx context.Context, cert tls.Certificate, onHB func(bool)) (*dotsclient.Client, error) {
	return dialSession(ctx, e.addr, e.opts.transport, e.roots, cert, onHB)
}

func dialSession(ctx context.Context, addr, transport string, roots *x509.CertPool, cert tls.Certificate, onHB func(bool)) (*dotsclient.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return dotsclient.Dial(ctx, dotsclient.Config{Servers: []string{addr}, Certificate: cert, RootCAs: roots,
		Transport: transport, OnHeartbeat: onHB})
}

func run(ctx context.Context, args []string, out io.Writer) error {
	o, err := parseFlags(args)
	if err != nil {
		return err
	}
	e := &env{opts: o, out: out, toolStart: time.Now()}
	if e.dir, err = os.MkdirTemp("", "dotsload-"); err != nil {
		return err
	}
	if o.keep {
		fmt.Fprintf(out, "temporary directory kept: %s\n", e.dir)
	} else {
		defer os.RemoveAll(e.dir)
	}
	if e.port, err = freePort(); err != nil {
		return err
	}
	e.addr = fmt.Sprintf("127.0.0.1:%d", e.port)
	if err := devPKI(ctx, o.dotsd, e.dir, e.addr); err != nil {
		return err
	}
	is, err := newIssuer(e.dir)
	if err != nil {
		return err
	}
	e.roots = is.roots
	t0 := time.Now()
	if e.certs, err = is.clients(0, o.certsNeeded()); err != nil {
		return err
	}
	fmt.Fprintf(out, "dotsload: %s on %s (%s), %d client certificates issued in %v\n",
		filepath.Base(o.dotsd), e.addr, o.transport, len(e.certs), time.Since(t0).Round(time.Millisecond))
	var sum summary
	if strings.ContainsAny(o.phases, "1234") {
		if err := e.benchPhases(ctx, &sum); err != nil {
			return err
		}
	}
	if strings.Contains(o.phases, "5") {
		if sum.p5, err = phase5(ctx, e); err != nil {
			return fmt.Errorf("phase 5: %w", err)
		}
	}
	if strings.Contains(o.phases, "6") {
		if sum.p6, err = phase6(ctx, e); err != nil {
			return fmt.Errorf("phase 6: %w", err)
		}
	}
	if strings.Contains(o.phases, "7") {
		if sum.p7, err = phase7(ctx, e); err != nil {
			return fmt.Errorf("phase 7: %w", err)
		}
	}
	if strings.Contains(o.phases, "8") {
		if sum.p8, err = phase8(ctx, e); err != nil {
			return fmt.Errorf("phase 8: %w", err)
		}
	}
	fmt.Fprintf(out, "machine load average at the end: %s (%d CPUs)\n", loadavg(), runtime.NumCPU())
	sum.print(out)
	fmt.Fprintf(out, "total run time %v\n", time.Since(e.toolStart).Round(100*time.Millisecond))
	if o.figures != "" {
		return os.WriteFile(o.figures, []byte(sum.figures()), 0o644)
	}
	return nil
}

// benchPhases runs phases 1-4 (those selected) against one dotsd with bench.yaml.
func (e *env) benchPhases(ctx context.Context, sum *summary) error {
	o, out := e.opts, e.out
	cfg, err := writeBenchConfig(e.dir, e.addr, o.memoryLimitMiB)
	if err != nil {
		return err
	}
	if e.server, err = startDotsd(ctx, o.dotsd, []string{"--config", cfg}, 30*time.Second); err != nil {
		return err
	}
	defer e.server.stop()
	rss, _, _ := procStatus(e.server.pid())
	fmt.Fprintf(out, "server pid %s ready, RSS %s; machine load average %s (%d CPUs); memory-limit-mib %d (0: none)\n",
		e.server.pid(), mib(rss), loadavg(), runtime.NumCPU(), o.memoryLimitMiB)
	if strings.Contains(o.phases, "1") {
		if sum.p1, err = phase1(ctx, e); err != nil {
			return fmt.Errorf("phase 1: %w", err)
		}
	}
	if strings.Contains(o.phases, "2") {
		if sum.p2, err = phase2(ctx, e); err != nil {
			return fmt.Errorf("phase 2: %w", err)
		}
	}
	if strings.Contains(o.phases, "3") {
		if sum.p3, err = phase3(ctx, e); err != nil {
			return fmt.Errorf("phase 3: %w", err)
		}
	}
	if strings.Contains(o.phases, "4") {
		if sum.p4, err = phase4(ctx, e); err != nil {
			return fmt.Errorf("phase 4: %w", err)
		}
	}
	if !e.server.alive() {
		return fmt.Errorf("the server exited during the run:\n%s", e.server.lastLines())
	}
	n, first := e.server.problemReport()
	fmt.Fprintf(out, "\nserver log: %d WARN/ERROR lines\n", n)
	for _, l := range first {
		fmt.Fprintf(out, "  %s\n", l)
	}
	return nil
}

// checkServer turns a dead server into a tool error.
func (e *env) checkServer() error {
	if !e.server.alive() {
		return fmt.Errorf("the server exited:\n%s", e.server.lastLines())
	}
	return nil
}
