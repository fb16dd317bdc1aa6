// Command dotsctl is the Levee DOTS client (RFC 9132 signal channel): it
// requests, watches, refreshes and withdraws mitigations, manages the
// session configuration, and runs a heartbeating agent.
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
		fmt.Fprintln(os.Stderr, "dotsctl:", err)
		os.Exit(1)
	}
}
