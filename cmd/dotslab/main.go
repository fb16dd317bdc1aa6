// Command dotslab runs Levee's labs of network namespaces for a person at
// a terminal, and exports them for containerlab.
//
//	dotslab run scrubbing [--bin DIR] [--dir DIR] [--keep] [--dashboard]
//	dotslab run escalation [--bin DIR] [--dir DIR] [--keep]
//	dotslab screenshot [--out FILE] [--bin DIR] [--dir DIR]
//	dotslab export containerlab [--out FILE] [--image IMAGE]
//
// It builds nothing: `make lab` builds bin/ and runs
// `bin/dotslab run scrubbing --bin bin`. See lab/netlab/README.md.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "dotslab:", err)
		os.Exit(1)
	}
}
