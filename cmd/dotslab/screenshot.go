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
	"time"

	"github.com/levee-dots/levee/lab/netlab"
)

// screenshot runs the scrubbing scenario with dotsd's dashboard on and,
// under mitigation, bursts of real attack packets, and writes the
// dashboard's page of the mitigation as a PNG.
func screenshot(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dotslab screenshot", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "docs/dashboard-mitigation.png", "the PNG to write")
	bin := fs.String("bin", "bin", "directory with dotsd, scrubd and dotsctl (make build)")
	dir := fs.String("dir", "", "directory for configurations, PKI and logs (default: a temporary one, removed)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("screenshot: unexpected %q", fs.Args())
	}
	if os.Geteuid() != 0 {
		return errNotRoot
	}
	bins, err := absBins(*bin)
	if err != nil {
		return err
	}
	path, err := filepath.Abs(*out)
	if err != nil {
		return err
	}
	logf := func(format string, a ...any) { fmt.Fprintf(stdout, format+"\n", a...) }
	res, err := netlab.RunScrubbing(ctx, netlab.ScenarioOptions{Bins: bins, Dir: *dir, Logf: logf, Screenshot: path})
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
		return fmt.Errorf("screenshot: %d problems", len(ps))
	}
	fmt.Fprintf(stdout, "PASS: scrubbing scenario with the screenshot in %v; its namespaces and daemons are gone\nwrote %s\n",
		res.Took.Round(time.Millisecond), path)
	return nil
}
