//go:build linux

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/levee-dots/levee/lab/netlab"
)

const usage = `usage:
  dotslab run scrubbing [--bin DIR] [--dir DIR] [--keep] [--dashboard]
      build the scrubbing lab in network namespaces, run the scenario step by
      step with real dotsd, scrubd, dotsctl, BIRD and packets, and remove it
      (--keep: leave it up with the mitigation active until Ctrl-C;
      --dashboard: dotsd serves its dashboard, on loopback where it runs)
  dotslab run escalation [--bin DIR] [--dir DIR] [--keep]
      the same lab with an escalation ladder: FlowSpec first, scrubbing after
      the client reports under-attack, FlowSpec again after it reports the
      attack mitigated (--keep: leave it up at the end, back at FlowSpec)
  dotslab bench loss [--bin DIR] [--loss 50,25] [--requests 60]
      the loss lab (client and dotsd in two namespaces, random loss each way):
      the share of mitigation requests acknowledged within 10 s and the
      median time to acknowledgement, beside their targets
  dotslab screenshot [--out FILE] [--bin DIR] [--dir DIR]
      the scrubbing scenario with dotsd's dashboard on; under mitigation,
      about 90 s of bursts of attack packets, then headless Chromium's
      picture of the mitigation's dashboard page (default
      docs/dashboard-mitigation.png)
  dotslab export containerlab [--out FILE] [--image IMAGE]
      write the same lab as a containerlab topology, with its configurations
      and a development PKI beside it
`

// errNotRoot is what a non-root user is told.
var errNotRoot = errors.New("needs root (network namespaces); run: sudo make lab")

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "screenshot" {
		return screenshot(ctx, args[1:], stdout, stderr)
	}
	if len(args) < 2 {
		fmt.Fprint(stderr, usage)
		return errors.New("give a command and a lab")
	}
	switch cmd := args[0] + " " + args[1]; cmd {
	case "run scrubbing":
		return runScenario(ctx, "scrubbing", netlab.RunScrubbing, args[2:], stdout, stderr)
	case "run escalation":
		return runScenario(ctx, "escalation", netlab.RunEscalation, args[2:], stdout, stderr)
	case "export containerlab":
		return exportContainerlab(args[2:], stdout, stderr)
	case "bench loss":
		return benchLoss(ctx, args[2:], stdout, stderr)
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", cmd)
	}
}

// runScenario runs the lab's scenario (netlab.RunScrubbing or
// netlab.RunEscalation) for a person: every step on stdout, then PASS or
// each problem.
func runScenario(ctx context.Context, name string, scenario func(context.Context, netlab.ScenarioOptions) (*netlab.ScenarioResult, error),
	args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dotslab run "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	bin := fs.String("bin", "bin", "directory with dotsd, scrubd and dotsctl (make build)")
	dir := fs.String("dir", "", "directory for configurations, PKI and logs (default: a temporary one, removed)")
	keep := fs.Bool("keep", false, "leave the lab up with the mitigation active until Ctrl-C")
	dash := fs.Bool("dashboard", false, "serve dotsd's dashboard on loopback where dotsd runs (with --keep: to look at it)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("run %s: unexpected %q", name, fs.Args())
	}
	if os.Geteuid() != 0 {
		return errNotRoot
	}
	bins, err := absBins(*bin)
	if err != nil {
		return err
	}
	logf := func(format string, a ...any) { fmt.Fprintf(stdout, format+"\n", a...) }
	res, err := scenario(ctx, netlab.ScenarioOptions{Bins: bins, Dir: *dir, Logf: logf, Keep: *keep, Dashboard: *dash})
	if err != nil {
		if errors.Is(err, netlab.ErrNotRoot) {
			return errNotRoot
		}
		return err
	}
	if ps := res.Problems(); len(ps) > 0 {
		for _, p := range ps {
			fmt.Fprintln(stdout, "FAIL:", p)
		}
		return fmt.Errorf("%s: %d problems", name, len(ps))
	}
	fmt.Fprintf(stdout, "PASS: %s scenario in %v; its namespaces and daemons are gone\n", name, res.Took.Round(time.Millisecond))
	if *dir != "" {
		fmt.Fprintf(stdout, "configurations, PKI and logs: %s\n", *dir)
	}
	return nil
}

// absBins names the binaries in dir, which must hold all three.
func absBins(dir string) (netlab.Bins, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return netlab.Bins{}, err
	}
	b := netlab.BinsIn(abs)
	var missing []string
	for _, p := range []string{b.Dotsd, b.Scrubd, b.Dotsctl} {
		if _, err := os.Stat(p); err != nil {
			missing = append(missing, filepath.Base(p))
		}
	}
	if len(missing) > 0 {
		return b, fmt.Errorf("--bin %s: no %s (run make build, or make lab)", dir, strings.Join(missing, ", "))
	}
	return b, nil
}

func exportContainerlab(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dotslab export containerlab", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "scrubbing.clab.yml", "topology file; the configurations and PKI go beside it")
	image := fs.String("image", netlab.ClabImage, "image of every node (iproute2, nftables, bird2, dotsd, scrubd, dotsctl)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("export containerlab: unexpected %q", fs.Args())
	}
	if err := netlab.ExportScrubbing(*out, *image); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s with bird.conf, dotsd.yaml, scrubd.yaml, dotsctl.yaml and a development PKI beside it\n", *out)
	fmt.Fprintf(stdout, "deploy with: containerlab deploy -t %s\n", *out)
	return nil
}
