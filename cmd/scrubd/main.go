// Command scrubd is the agent of a Levee scrubbing node: it serves the
// scrub/agent HTTPS API with mutual TLS to dotsd and programs the node's
// nftables data plane (package scrub) with the state dotsd sends, and, when
// configured, the return path of the cleaned traffic (tunnel, routes, rule).
//
//	scrubd --config FILE
//
// See README.md beside this file for the configuration and the API.
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
		fmt.Fprintln(os.Stderr, "scrubd:", err)
		os.Exit(1)
	}
}
