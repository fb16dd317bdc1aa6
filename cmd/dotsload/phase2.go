package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsclient"
)

type phase2Result struct {
	sessions, cycles int
	create, get, del opStats
	elapsed          time.Duration
	udp              string
	cpu              cpuMeter
}

func (r *phase2Result) rate() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.cycles) / r.elapsed.Seconds()
}

func (r *phase2Result) failures() (timeouts, errs int) {
	for _, s := range []*opStats{&r.create, &r.get, &r.del} {
		timeouts += s.timeouts
		errs += s.errors
	}
	return
}

// openSessions dials certs[first … first+n-1] with par handshakes in parallel.
func (e *env) openSessions(ctx context.Context, first, n, par int) ([]*dotsclient.Client, error) {
	out := make([]*dotsclient.Client, n)
	errs := make([]error, n)
	sem := make(chan struct{}, par)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			out[i], errs[i] = e.dial(ctx, e.certs[first+i], nil)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			closeAll(out)
			return nil, fmt.Errorf("session %d: %w", i, err)
		}
	}
	return out, nil
}

func closeAll(cs []*dotsclient.Client) {
	for _, c := range cs {
		if c != nil {
			_ = c.Close()
		}
	}
}

// phase2: sessions in parallel, each looping create+get+delete.
func phase2(ctx context.Context, e *env) (*phase2Result, error) {
	n, dur := e.opts.cycleSessions, e.opts.duration
	fmt.Fprintf(e.out, "\n== phase 2: %d sessions in parallel, create+get+delete cycles for %v\n", n, dur)
	fmt.Fprintf(e.out, "  (machine load average %s)\n", loadavg())
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second+dur+time.Duration(n)*20*time.Millisecond)
	defer cancel()
	clients, err := e.openSessions(ctx, 1, n, 32)
	if err != nil {
		return nil, err
	}
	defer closeAll(clients)
	r := &phase2Result{sessions: n}
	per := make([]struct {
		create, get, del opStats
		cycles           int
	}, n)
	before := readUDPCounters(e.port)
	cpu := startCPU(e.server.pid())
	start := time.Now()
	deadline := start.Add(dur)
	var wg sync.WaitGroup
	for i, c := range clients {
		st := &per[i]
		target := fmt.Sprintf("203.0.113.%d/32", i%256)
		wg.Go(func() {
			for mid := uint32(1); time.Now().Before(deadline) && ctx.Err() == nil; mid++ {
				o1, d, err := timed(ctx, dots.Created, func(ctx context.Context) (*dotsclient.Response, error) {
					return c.Mitigate(ctx, mid, scope(target))
				})
				st.create.add(o1, d, err)
				o2, d, err := timed(ctx, dots.Content, func(ctx context.Context) (*dotsclient.Response, error) {
					return c.Status(ctx, &mid, "")
				})
				st.get.add(o2, d, err)
				o3, d, err := timed(ctx, dots.Deleted, func(ctx context.Context) (*dotsclient.Response, error) {
					return c.Withdraw(ctx, mid)
				})
				st.del.add(o3, d, err)
				if o1 == okay && o2 == okay && o3 == okay {
					st.cycles++
				}
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
	r.cpu = cpu
	for i := range per {
		r.create.merge(&per[i].create)
		r.get.merge(&per[i].get)
		r.del.merge(&per[i].del)
		r.cycles += per[i].cycles
	}
	to, errs := r.failures()
	fmt.Fprintf(e.out, "  %d cycles in %v: %.0f cycles/s (%.0f requests/s)\n", r.cycles, r.elapsed.Round(time.Millisecond), r.rate(), 3*r.rate())
	fmt.Fprintln(e.out, r.create.line("create"))
	fmt.Fprintln(e.out, r.get.line("get"))
	fmt.Fprintln(e.out, r.del.line("delete"))
	fmt.Fprintf(e.out, "  timeouts (no answer in %v) %d, errors %d\n", requestTimeout, to, errs)
	fmt.Fprintf(e.out, "  %s\n", r.cpu.report(r.cycles, "cycle"))
	fmt.Fprintf(e.out, "  %s\n", r.udp)
	return r, nil
}
