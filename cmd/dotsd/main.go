// Command dotsd is the Levee DOTS server (RFC 9132 signal channel).
//
//	dotsd --config dotsd.yaml
//	dotsd dev --dir var/dev [--signal-listen 127.0.0.1:4646]
//	dotsd bgp neighbors --config dotsd.yaml [-o json]
//	dotsd dns conflicts --config dotsd.yaml [-o json] [--clear NAME [--type A|AAAA]]
//	dotsd redirect --config dotsd.yaml [--to NAME [--to ADDR]... [--ttl 1h] [--clients CUID,...] | --clear]
//
// The last three reach the running server over its admin socket
// (admin.socket). SIGHUP makes the server read its configuration again and
// apply what changed (reload.go).
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
		fmt.Fprintln(os.Stderr, "dotsd:", err)
		os.Exit(1)
	}
}
