package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsclient"
)

// requestTimeout is how long a request may wait for its answer before it
// counts as a timeout. It is a per-request context: the library's NON
// retransmission loop never gets a second attempt.
const requestTimeout = 2 * time.Second

// outcome of one request.
type outcome int

const (
	okay outcome = iota
	timedOut
	failed
)

// opStats collects one kind of request.
type opStats struct {
	lat              []time.Duration
	timeouts, errors int
	firstErr         string
}

func (s *opStats) add(o outcome, d time.Duration, err error) {
	switch o {
	case okay:
		s.lat = append(s.lat, d)
	case timedOut:
		s.timeouts++
	default:
		s.errors++
		if s.firstErr == "" && err != nil {
			s.firstErr = err.Error()
		}
	}
}

func (s *opStats) merge(o *opStats) {
	s.lat = append(s.lat, o.lat...)
	s.timeouts += o.timeouts
	s.errors += o.errors
	if s.firstErr == "" {
		s.firstErr = o.firstErr
	}
}

func (s *opStats) line(name string) string {
	l := fmt.Sprintf("  %-7s %s", name, summarize(s.lat))
	if s.timeouts+s.errors > 0 {
		l += fmt.Sprintf("  timeouts %d  errors %d", s.timeouts, s.errors)
		if s.firstErr != "" {
			l += "  (first: " + s.firstErr + ")"
		}
	}
	return l
}

// timed runs one request with its own 2 s deadline and checks the answer code.
func timed(ctx context.Context, want dots.Code, f func(context.Context) (*dotsclient.Response, error)) (outcome, time.Duration, error) {
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	start := time.Now()
	resp, err := f(rctx)
	d := time.Since(start)
	switch {
	case err != nil && errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		return timedOut, d, err
	case err != nil:
		return failed, d, err
	case resp.Code != want:
		return failed, d, fmt.Errorf("answer %s, want %s: %v", resp.Code, want, resp.Err())
	}
	return okay, d, nil
}

// scope is a mitigation request for one target, lifetime 3600 s.
func scope(target string) dots.Scope {
	return dots.Scope{TargetPrefix: []string{target}, Lifetime: dots.Ptr(int64(3600))}
}

// seqTarget gives request i of phase 1 its own target: 203.0.113.i/32 for
// the first 256, then 2001:db8::i/128, so that no request replaces another
// ("higher mid wins" among one client's overlapping requests) and every
// get and delete finds its request.
func seqTarget(i int) string {
	if i < 256 {
		return fmt.Sprintf("203.0.113.%d/32", i)
	}
	a := netip.MustParseAddr("2001:db8::").As16()
	a[12], a[13], a[14], a[15] = byte(i>>24), byte(i>>16), byte(i>>8), byte(i)
	return netip.AddrFrom16(a).String() + "/128"
}

type phase1Result struct {
	n                       int
	create, get, del        opStats
	createFirst, createLast latencies
	elapsed                 time.Duration
}

// phase1: one session, N sequential creates, then N gets, then N deletes.
func phase1(ctx context.Context, e *env) (*phase1Result, error) {
	n := e.opts.sequentialN
	fmt.Fprintf(e.out, "\n== phase 1: one session, %d sequential creates (PUT, lifetime 3600), gets, deletes\n", n)
	fmt.Fprintf(e.out, "  (machine load average %s)\n", loadavg())
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second+time.Duration(n)*30*time.Millisecond)
	defer cancel()
	c, err := e.dial(ctx, e.certs[0], nil)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	r := &phase1Result{n: n}
	cpu := startCPU(e.server.pid())
	start := time.Now()
	steps := []struct {
		st   *opStats
		want dots.Code
		f    func(context.Context, uint32, int) (*dotsclient.Response, error)
	}{
		{&r.create, dots.Created, func(ctx context.Context, mid uint32, i int) (*dotsclient.Response, error) {
			return c.Mitigate(ctx, mid, scope(seqTarget(i)))
		}},
		{&r.get, dots.Content, func(ctx context.Context, mid uint32, _ int) (*dotsclient.Response, error) {
			return c.Status(ctx, &mid, "")
		}},
		{&r.del, dots.Deleted, func(ctx context.Context, mid uint32, _ int) (*dotsclient.Response, error) {
			return c.Withdraw(ctx, mid)
		}},
	}
	for _, s := range steps {
		for i := range n {
			mid := uint32(i + 1)
			o, d, err := timed(ctx, s.want, func(ctx context.Context) (*dotsclient.Response, error) { return s.f(ctx, mid, i) })
			if ctx.Err() != nil {
				return nil, fmt.Errorf("phase bound reached: %w", ctx.Err())
			}
			s.st.add(o, d, err)
		}
		if err := e.checkServer(); err != nil {
			return nil, err
		}
	}
	r.elapsed = time.Since(start)
	k := min(200, len(r.create.lat))
	r.createFirst, r.createLast = summarize(r.create.lat[:k]), summarize(r.create.lat[len(r.create.lat)-k:])
	fmt.Fprintln(e.out, r.create.line("create"))
	fmt.Fprintf(e.out, "          first %d: p50 %s p99 %s; last %d: p50 %s p99 %s\n", k, ms(r.createFirst.p50), ms(r.createFirst.p99), k, ms(r.createLast.p50), ms(r.createLast.p99))
	fmt.Fprintln(e.out, r.get.line("get"))
	fmt.Fprintln(e.out, r.del.line("delete"))
	fmt.Fprintf(e.out, "  %d requests in %v (%.0f/s); %s\n", 3*n, r.elapsed.Round(time.Millisecond), float64(3*n)/r.elapsed.Seconds(), cpu.report(3*n, "request"))
	return r, nil
}
