package main

import (
	"errors"
	"flag"
	"fmt"
	"time"
)

// Bounds of the flags: every run is bounded in packets and in time.
const (
	maxPackets  = 20_000_000
	maxDuration = 20 * time.Second
	maxRuns     = 10
	maxSpread   = 256 // the destinations of 203.0.113.0/24
)

type options struct {
	runs     int
	packets  int
	duration time.Duration
	spread   int
	nice     int
}

func parseFlags(args []string) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("scrubbench", flag.ContinueOnError)
	fs.IntVar(&o.runs, "runs", 3, "runs per case; each case reports its best")
	fs.IntVar(&o.packets, "packets", 3_000_000, "packets per run (a run also stops at --duration)")
	fs.DurationVar(&o.duration, "duration", 3*time.Second, "upper bound on one run")
	fs.IntVar(&o.spread, "spread", maxSpread, "targets the packets go round-robin over (at most one per mitigation)")
	fs.IntVar(&o.nice, "nice", -20, "nice value of the sending thread, which on veth also runs the filter (-20..19; 0: unchanged)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	switch {
	case fs.NArg() != 0:
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case o.runs < 1 || o.runs > maxRuns:
		return nil, fmt.Errorf("--runs %d: use 1..%d", o.runs, maxRuns)
	case o.packets < 1000 || o.packets > maxPackets:
		return nil, fmt.Errorf("--packets %d: use 1000..%d", o.packets, maxPackets)
	case o.duration <= 0 || o.duration > maxDuration:
		return nil, fmt.Errorf("--duration %v: use a positive duration up to %v", o.duration, maxDuration)
	case o.spread < 1 || o.spread > maxSpread:
		return nil, errors.New("--spread: use 1..256")
	case o.nice < -20 || o.nice > 19:
		return nil, fmt.Errorf("--nice %d: use -20..19", o.nice)
	}
	return o, nil
}
