// Command scrubbench measures the drop rate of a Levee scrubbing node's
// nftables data plane (package scrub) and prints it beside a floor: a
// hand-written one-rule nft table at the same hook on the same veth,
// measured in the same run. It is part of 'make bench'.
//
//	scrubbench [--runs 3] [--packets 3000000] [--duration 3s] [--spread 256] [--nice -20]
//
// It builds two network namespaces of its own (sbn-<pid>-snd and
// sbn-<pid>-scr) joined by a veth, and sends 64-byte UDP datagrams from
// port 123 with the AF_PACKET generator of lab/netlab into the scrubber's
// ingress hook, once with the floor, then with scrub.NFT holding 1, 100 and
// 10,000 mitigations (one target and one rule each). Every run's rate is
// confirmed by the drop counters: a run whose counters did not count
// exactly what was sent gives no figure. The cases take turns, round after
// round, so that a change in the machine's load falls on all of them; each
// case reports its best run. Without root it prints that it skipped and
// exits 0. It exits non-zero only when the tool itself fails; a missed
// target is reported as FAIL.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "scrubbench:", err)
		stop()
		os.Exit(1)
	}
}
