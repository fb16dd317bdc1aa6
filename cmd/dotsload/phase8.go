package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsclient"
)

// Phase 8: fairness. Client B's PUT latency alone, then while client A, of
// another client domain, sends PUT/GET/DELETE as fast as it can over
// several sessions and workers, from its own process (phase8_child.go).

// The target of phase 8 (issue 9): B's p50 and p99 at most twice the quiet ones.
const targetFairRatio = 2.0

// tooManyRequests is CoAP 4.29 (RFC 8516).
const tooManyRequests dots.Code = 4<<5 | 29

const (
	fairSamples   = 250         // B's PUTs in each window, one every putInterval
	fairSessions  = 4           // A's sessions (one certificate: one client)
	fairWorkers   = 2           // A's workers per session
	fairWarmup    = time.Second // A's load before B measures
	fairADNSName  = "a.load.levee.test"
	fairBDNSName  = "b.load.levee.test"
	fairATargetIP = "198.51.100."
)

type phase8Result struct {
	quiet, loaded window
	aCodes        map[dots.Code]int // A's answers by code
	aTimeouts     int
	aErrors       int
	aFirstErr     string
	aElapsed      time.Duration
}

func (r *phase8Result) aRequests() int {
	n := r.aTimeouts + r.aErrors
	for _, k := range r.aCodes {
		n += k
	}
	return n
}

// ratios are B's loaded p50 and p99 over its quiet ones (failures count at the bound).
func (r *phase8Result) ratios() (p50, p99 float64) {
	q, l := r.quiet.putLat(), r.loaded.putLat()
	if q.p50 <= 0 || q.p99 <= 0 {
		return 0, 0
	}
	return float64(l.p50) / float64(q.p50), float64(l.p99) / float64(q.p99)
}

func phase8(ctx context.Context, e *env) (*phase8Result, error) {
	fmt.Fprintf(e.out, "\n== phase 8: fairness, client B's PUT latency (%d PUTs, one every %v) alone, then while client A sends PUT/GET/DELETE as fast as it can (%d sessions × %d workers)\n",
		fairSamples, putInterval, fairSessions, fairWorkers)
	fmt.Fprintf(e.out, "  (machine load average %s)\n", loadavg())
	ctx, cancel := context.WithTimeout(ctx, 120*time.Second)
	defer cancel()
	is, err := newIssuer(e.dir)
	if err != nil {
		return nil, err
	}
	certB, err := is.clientFor(1_000_002, fairBDNSName)
	if err != nil {
		return nil, err
	}
	srv, addr, err := e.startOwnDotsd(ctx, "fair", []any{
		loadClient("load-a", fairADNSName, fairATargetIP+"0/24"),
		loadClient("load-b", fairBDNSName, "203.0.113.0/24"),
	})
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	r, err := runFairness(ctx, e, addr, certB)
	if err == nil {
		err = checkAlive(srv)
	}
	reportServerLog(e, srv)
	return r, err
}

func checkAlive(srv *child) error {
	if !srv.alive() {
		return errors.New("dotsd exited")
	}
	return nil
}

func runFairness(ctx context.Context, e *env, addr string, certB tls.Certificate) (*phase8Result, error) {
	b, err := dialSession(ctx, addr, e.opts.transport, e.roots, certB, nil)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	lc := &legitClient{e: e, addr: addr, c: b}
	r := &phase8Result{aCodes: map[dots.Code]int{}}
	r.quiet = lc.samplePUTs(ctx)
	r.quiet.print(e, "B alone")
	a, err := startFairLoad(ctx, e, addr)
	if err != nil {
		return nil, err
	}
	select {
	case <-time.After(fairWarmup):
	case <-ctx.Done():
	}
	r.loaded = lc.samplePUTs(ctx)
	rep, err := a.stop()
	if err != nil {
		return nil, err
	}
	r.aCodes, r.aTimeouts, r.aErrors, r.aFirstErr, r.aElapsed = rep.Codes, rep.Timeouts, rep.Errors, rep.FirstErr, time.Duration(rep.ElapsedNS)
	if ctx.Err() != nil {
		return nil, fmt.Errorf("phase bound reached: %w", ctx.Err())
	}
	r.loaded.print(e, "B under A's load")
	n := r.aRequests()
	fmt.Fprintf(e.out, "  client A (its own process, nice %d): %d requests in %v (%.0f/s): %s; %d timeouts, %d other errors",
		fairNice, n, r.aElapsed.Round(time.Millisecond), float64(n)/r.aElapsed.Seconds(), codeCounts(r.aCodes), r.aTimeouts, r.aErrors)
	if r.aFirstErr != "" {
		fmt.Fprintf(e.out, " (first: %s)", r.aFirstErr)
	}
	fmt.Fprintln(e.out)
	return r, nil
}

// samplePUTs sends fairSamples PUTs, one every putInterval.
func (lc *legitClient) samplePUTs(ctx context.Context) window {
	w := window{putCodes: map[dots.Code]int{}}
	done := make(chan struct{})
	start := time.Now()
	go func() {
		// puts stops at done; fairSamples intervals is its share of time.
		defer close(done)
		t := time.NewTimer(time.Duration(fairSamples) * putInterval)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
	}()
	lc.puts(ctx, done, &w)
	w.elapsed = time.Since(start)
	return w
}

// hammer is one of A's workers: PUT, GET, DELETE of its own mid on its own
// target, as fast as the answers come, whatever they are.
func (r *phase8Result) hammer(ctx context.Context, c *dotsclient.Client, id int, stop <-chan struct{}, mu *sync.Mutex) {
	target := fmt.Sprintf("%s%d/32", fairATargetIP, id+1)
	codes := map[dots.Code]int{}
	var timeouts, errs int
	var firstErr string
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for k, n := range codes {
			r.aCodes[k] += n
		}
		r.aTimeouts += timeouts
		r.aErrors += errs
		if r.aFirstErr == "" {
			r.aFirstErr = firstErr
		}
	}()
	do := func(f func(context.Context) (*dotsclient.Response, error)) {
		rctx, cancel := context.WithTimeout(ctx, requestTimeout)
		defer cancel()
		resp, err := f(rctx)
		switch {
		case err == nil:
			codes[resp.Code]++
		case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
			timeouts++
		default:
			errs++
			if firstErr == "" {
				firstErr = err.Error()
			}
		}
	}
	for mid := uint32(id)<<20 + 1; ctx.Err() == nil; mid++ {
		select {
		case <-stop:
			return
		default:
		}
		do(func(ctx context.Context) (*dotsclient.Response, error) { return c.Mitigate(ctx, mid, scope(target)) })
		do(func(ctx context.Context) (*dotsclient.Response, error) { return c.Status(ctx, &mid, "") })
		do(func(ctx context.Context) (*dotsclient.Response, error) { return c.Withdraw(ctx, mid) })
	}
}
