//go:build linux

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"time"

	"github.com/levee-dots/levee/lab/netlab"
	"github.com/levee-dots/levee/scrub"
)

// warmup packets are sent, uncounted, before every run.
const warmup = 100_000

func run(ctx context.Context, args []string, out io.Writer) (err error) {
	o, err := parseFlags(args)
	if err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(out, "scrubber drop rate: skipped (needs root for network namespaces)")
		return nil
	}
	h := header{runs: o.runs, packets: o.packets, duration: o.duration, nice: o.nice, loadFrom: loadavg(), cpus: runtime.NumCPU(),
		veth: fmt.Sprintf("veth %s → %s", sendIface, scrubIface)}
	l, err := newLab()
	if err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	defer func() { err = errors.Join(err, l.close()) }()
	s, err := netlab.NewRawSender(l.send, sendIface)
	if err != nil {
		return err
	}
	defer s.Close()
	b := &bench{o: o, l: l, s: s, out: out}
	rs, err := b.rounds(ctx)
	if err != nil {
		return err
	}
	h.loadTo = loadavg()
	report(out, h, rs)
	return nil
}

type bench struct {
	o   *options
	l   *lab
	s   *netlab.RawSender
	out io.Writer
}

// rounds runs every case once per round, o.runs rounds, installing each
// case's filter afresh.
func (b *bench) rounds(ctx context.Context) ([]*result, error) {
	rs := make([]*result, len(cases))
	for i, c := range cases {
		rs[i] = &result{c: c}
	}
	if _, err := exec.LookPath("nft"); err != nil {
		rs[0].skipped = "nft CLI not found"
	}
	for round := range b.o.runs {
		fmt.Fprintf(b.out, "scrubbench: round %d of %d (load average %s)\n", round+1, b.o.runs, loadavg())
		for _, r := range rs {
			if r.skipped != "" || r.err != nil {
				continue
			}
			var err error
			if r.c.floor {
				err = b.floorRun(ctx, r)
			} else {
				err = b.leveeRun(ctx, r)
			}
			if ctx.Err() != nil {
				return nil, fmt.Errorf("interrupted: %w", ctx.Err())
			}
			if err != nil {
				r.err = err
			}
		}
	}
	return rs, nil
}

// floorRun measures one run of the hand-written table.
func (b *bench) floorRun(ctx context.Context, r *result) (err error) {
	if _, err := b.nft(ctx, floorScript(scrubIface), "-f", "-"); err != nil {
		return err
	}
	defer func() {
		if _, derr := b.nft(context.WithoutCancel(ctx), "", "delete", "table", "netdev", floorTable); derr != nil {
			err = errors.Join(err, derr)
		}
	}()
	count := func(ctx context.Context) (uint64, error) {
		out, err := b.nft(ctx, "", "-j", "list", "table", "netdev", floorTable)
		if err != nil {
			return 0, err
		}
		return parseNFTCounter(out)
	}
	dsts := []netip.AddrPort{netip.AddrPortFrom(floorDst, dstPort)}
	return b.measure(ctx, r, dsts, count)
}

// leveeRun measures one run of scrub.NFT with the case's mitigations.
func (b *bench) leveeRun(ctx context.Context, r *result) (err error) {
	n, err := scrub.NewNFT(scrub.NFTOptions{Interface: scrubIface, NetNS: int(b.l.scrub)})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, n.Close()) }()
	d, dsts := desired(r.c.rules, b.o.spread)
	if err := n.Set(ctx, d); err != nil {
		return fmt.Errorf("%d mitigations: %w", r.c.rules, err)
	}
	count := func(ctx context.Context) (uint64, error) {
		c, err := n.Counters(ctx)
		if err != nil {
			return 0, err
		}
		return dropped(c), nil
	}
	return b.measure(ctx, r, dsts, count)
}

// measure warms up, then sends one bounded run to dsts and appends it to
// r with what the counters counted meanwhile.
func (b *bench) measure(ctx context.Context, r *result, dsts []netip.AddrPort, count func(context.Context) (uint64, error)) error {
	r.targets = len(dsts)
	f := netlab.RawFlood{DstMAC: b.l.peerMAC, Src: srcAddr, Dsts: dsts, Size: payloadLen,
		Count: warmup, Duration: b.o.duration, Nice: b.o.nice}
	if _, err := b.s.Send(ctx, f); err != nil {
		return err
	}
	before, err := count(ctx)
	if err != nil {
		return err
	}
	f.Count = b.o.packets
	res, err := b.s.Send(ctx, f)
	if err != nil {
		return err
	}
	after, err := count(ctx)
	if err != nil {
		return err
	}
	r.runs = append(r.runs, sample{sent: res.Sent, counted: after - before, elapsed: res.Elapsed})
	return nil
}

// nft runs the nft CLI in the scrubber's namespace, with stdin when given.
func (b *bench) nft(ctx context.Context, stdin string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", b.l.scrubName, "nft"}, args...)...)
	if stdin != "" {
		cmd.Stdin = bytes.NewBufferString(stdin)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("nft %v: %w: %s", args, err, bytes.TrimSpace(stderr.Bytes()))
	}
	return out, nil
}
