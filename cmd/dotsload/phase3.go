package main

import (
	"context"
	"fmt"
	"sync"
	"time"
)

type phase3Result struct {
	n, ok, failed int
	hs            latencies
	elapsed       time.Duration
	firstErr      string
	udp           string
}

func (r *phase3Result) rate() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.ok) / r.elapsed.Seconds()
}

// phase3: n handshakes, par at a time; each session is closed once up.
func phase3(ctx context.Context, e *env) (*phase3Result, error) {
	n, par := e.opts.handshakes, e.opts.hsParallel
	fmt.Fprintf(e.out, "\n== phase 3: %d %s handshakes, %d in parallel (each session closed once up)\n", n, e.opts.transport, par)
	fmt.Fprintf(e.out, "  (machine load average %s)\n", loadavg())
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second+time.Duration(n)*10*time.Millisecond)
	defer cancel()
	r := &phase3Result{n: n}
	lat := make([]time.Duration, n)
	errs := make([]error, n)
	before := readUDPCounters(e.port)
	sem := make(chan struct{}, par)
	var wg sync.WaitGroup
	cpu := startCPU(e.server.pid())
	start := time.Now()
	for i := range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			t := time.Now()
			c, err := e.dial(ctx, e.certs[i%len(e.certs)], nil)
			lat[i], errs[i] = time.Since(t), err
			if err == nil {
				_ = c.Close()
			}
		})
	}
	wg.Wait()
	r.elapsed = time.Since(start)
	if ctx.Err() != nil {
		return nil, fmt.Errorf("phase bound reached: %w", ctx.Err())
	}
	if err := e.checkServer(); err != nil {
		return nil, err
	}
	r.udp = readUDPCounters(e.port).since(before)
	cpuLine := cpu.report(n, "handshake")
	var good []time.Duration
	for i, err := range errs {
		if err != nil {
			r.failed++
			if r.firstErr == "" {
				r.firstErr = err.Error()
			}
			continue
		}
		good = append(good, lat[i])
	}
	r.ok = len(good)
	r.hs = summarize(good)
	fmt.Fprintf(e.out, "  %d handshakes in %v: %.0f handshakes/s, failed %d\n", r.ok, r.elapsed.Round(time.Millisecond), r.rate(), r.failed)
	fmt.Fprintf(e.out, "  handshake time %s\n", r.hs)
	if r.firstErr != "" {
		fmt.Fprintf(e.out, "  first failure: %s\n", r.firstErr)
	}
	fmt.Fprintf(e.out, "  %s\n", cpuLine)
	fmt.Fprintf(e.out, "  %s\n", r.udp)
	return r, nil
}
