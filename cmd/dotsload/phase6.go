package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsclient"
)

// Targets of phase 6.
const (
	targetRestartAnswer = time.Second      // exec until the first signal-channel answer
	targetRestartRoutes = 10 * time.Second // exec until every rule is back at every router
)

// restartPrefixes are what the "load" client owns in phase 6: the targets
// are 203.0.113.0-255/32, then /128s inside 2001:db8:100::/40.
var restartPrefixes = []string{"203.0.113.0/24", "2001:db8:100::/40"}

// restartTarget is the target of mitigation i of phase 6.
func restartTarget(i int) string {
	if i < 256 {
		return fmt.Sprintf("203.0.113.%d/32", i)
	}
	a := [16]byte{0x20, 0x01, 0x0d, 0xb8, 0x01, 0x00}
	a[12], a[13], a[14], a[15] = byte(i>>24), byte(i>>16), byte(i>>8), byte(i)
	return netip.AddrFrom16(a).String() + "/128"
}

type phase6Result struct {
	n, sessions int
	skipped     string
	created     time.Duration // creating the n mitigations
	failedPUT   int
	firstErr    string

	routers   []string
	preBack   map[string]time.Duration // first PUT until the router held all n (before the kill)
	afterKill map[string]peerState     // once the routers noticed the kill

	answer     time.Duration // exec until a GET /mitigate was answered (0: never)
	readyLog   time.Duration // exec until "dotsd ready" was logged
	restoreLog string        // the "state restored" line
	back       map[string]time.Duration
	final      map[string]peerState
	nlriMax    int // FRR log lines "nlri length maximum"
	frrDrops   int // FRR sessions dropped after the restart's first establishment
	bound      time.Duration
	watched    time.Duration // exec until the routers stopped being watched
}

// phase6: a dotsd of its own with FRR, BIRD and ExaBGP as neighbors and n
// active FlowSpec mitigations; kill -9 and restart it on the same store,
// and time the first answer and the return of every rule at each router.
func phase6(ctx context.Context, e *env) (*phase6Result, error) {
	o := e.opts
	r := &phase6Result{n: o.restartN, sessions: min(8, len(e.certs)), bound: o.restartBound}
	fmt.Fprintf(e.out, "\n== phase 6: %d FlowSpec mitigations (%d sessions) at FRR, BIRD and ExaBGP; kill -9 dotsd and restart it (phase bound %v)\n",
		r.n, r.sessions, r.bound)
	fmt.Fprintf(e.out, "  (machine load average %s)\n", loadavg())
	ctx, cancel := context.WithTimeout(ctx, r.bound)
	defer cancel()
	rt, err := startRouters(ctx, e.dir, e.out, "frr", "bird", "exabgp")
	if errors.Is(err, errSkipped) {
		fmt.Fprintf(e.out, "  phase skipped: %v\n", err)
		r.skipped = err.Error()
		return r, nil
	}
	if err != nil {
		return nil, err
	}
	defer rt.close()
	r.routers = rt.names()
	bgp := map[string]any{
		"max-routes-per-domain": r.n + 1000,
		// Without graceful restart every router drops the rules when the
		// session goes down, so that "back" means re-announced.
		"graceful-restart": map[string]any{"enabled": false},
		"domains":          map[string]any{"load": map[string]any{"countermeasure": "flowspec"}},
	}
	cfg, addr, err := e.writeDivertConfig("restart", rt, bgp, restartPrefixes)
	if err != nil {
		return nil, err
	}
	srv, err := startDotsd(ctx, o.dotsd, []string{"--config", cfg}, 30*time.Second)
	if err != nil {
		return nil, err
	}
	defer func() { srv.stop() }()
	if err := r.waitEstablished(ctx, rt); err != nil {
		return nil, err
	}

	putStart := time.Now()
	if err := r.create(ctx, e, addr); err != nil {
		return nil, err
	}
	fmt.Fprintf(e.out, "  %d created in %v (%.0f/s), %d failed%s\n", r.n, r.created.Round(time.Millisecond),
		float64(r.n)/r.created.Seconds(), r.failedPUT, firstErrNote(r.firstErr))
	var pre map[string]peerState
	r.preBack, pre = r.waitAll(ctx, rt, putStart, 30*time.Second, nil, srv.exited)
	for _, name := range r.routers {
		if d, ok := r.preBack[name]; ok {
			fmt.Fprintf(e.out, "  before the kill: %s holds all %d (%v after the first PUT)\n", name, r.n, d.Round(time.Millisecond))
		} else {
			fmt.Fprintf(e.out, "  before the kill: %s holds %d of %d when the 30 s wait ends (established %v)%s\n",
				name, pre[name].flows, r.n, pre[name].up, errNote(pre[name].err))
		}
	}

	if err := srv.kill(); err != nil {
		return nil, err
	}
	r.afterKill = r.waitDropped(ctx, rt, 10*time.Second)
	for _, name := range r.routers {
		s := r.afterKill[name]
		fmt.Fprintf(e.out, "  after the kill: %s established %v, holds %d\n", name, s.up, s.flows)
	}

	srv, err = spawnDotsd(o.dotsd, []string{"--config", cfg})
	if err != nil {
		return nil, err
	}
	exec0 := srv.started
	answered := make(chan time.Duration, 1)
	pollCtx, stopPoll := context.WithCancel(ctx)
	defer stopPoll()
	go func() { answered <- firstAnswer(pollCtx, e, addr, exec0) }()
	var drops0 map[string]int
	r.back, r.final = r.waitAll(ctx, rt, exec0, r.bound, &drops0, srv.exited)
	r.watched = time.Since(exec0)
	// The rules may be back before the first answer: wait for it too.
	got := false
	select {
	case r.answer = <-answered:
		got = true
	case <-ctx.Done():
	case <-srv.exited:
	}
	stopPoll()
	if !got {
		r.answer = <-answered
	}
	if _, ok := r.back["exabgp"]; ok { // the cheap count against lab's reader, once
		k := 0
		for _, route := range rt.exa.Routes() {
			if route.FlowSpec != nil {
				k++
			}
		}
		if k != r.n {
			fmt.Fprintf(e.out, "  WARNING: ExaBGP rules counted %d, but lab's reader holds %d: the exabgp figure is not reliable\n", r.n, k)
		}
	}
	if at, _, ok := srv.mark("dotsd ready"); ok {
		r.readyLog = at.Sub(exec0)
	}
	_, r.restoreLog, _ = srv.mark("state restored")
	if rt.frr != nil {
		r.nlriMax = frrLogCount(rt.frr, "nlri length maximum")
		if d0, ok := drops0["frr"]; ok {
			r.frrDrops = r.final["frr"].drops - d0
		}
	}
	r.print(e)
	if !srv.alive() {
		fmt.Fprintf(e.out, "  the restarted server exited: %v\n%s\n", srv.cmd.ProcessState, srv.lastLines())
	}
	if k, first := srv.problemReport(); k > 0 {
		fmt.Fprintf(e.out, "  restarted server log: %d WARN/ERROR lines\n", k)
		for i, l := range first {
			if i == 5 {
				break
			}
			fmt.Fprintf(e.out, "    %s\n", l)
		}
	}
	return r, nil
}

func firstErrNote(s string) string {
	if s == "" {
		return ""
	}
	return " (first: " + s + ")"
}

func (r *phase6Result) print(e *env) {
	if r.answer > 0 {
		fmt.Fprintf(e.out, "  restart: first answer (GET /mitigate) %v after the exec", r.answer.Round(time.Millisecond))
	} else {
		fmt.Fprintf(e.out, "  restart: no answer to GET /mitigate in the %v watched", r.watched.Round(time.Second))
	}
	fmt.Fprintf(e.out, "; \"dotsd ready\" logged at %v\n", r.readyLog.Round(time.Millisecond))
	if r.restoreLog != "" {
		fmt.Fprintf(e.out, "  restarted server: %s\n", r.restoreLog)
	}
	for _, name := range r.routers {
		s := r.final[name]
		if d, ok := r.back[name]; ok {
			fmt.Fprintf(e.out, "  restart: all %d back at %s %v after the exec\n", r.n, name, d.Round(time.Millisecond))
		} else {
			fmt.Fprintf(e.out, "  restart: %s holds %d of %d at the end (established %v)%s\n", name, s.flows, r.n, s.up, errNote(s.err))
		}
	}
	if r.routersHave("frr") {
		fmt.Fprintf(e.out, "  frr: %d sessions dropped after the restart's session came up; log lines \"nlri length maximum\": %d\n", r.frrDrops, r.nlriMax)
	}
}

func errNote(err error) string {
	if err == nil {
		return ""
	}
	return " (last error: " + err.Error() + ")"
}

func (r *phase6Result) routersHave(name string) bool {
	for _, n := range r.routers {
		if n == name {
			return true
		}
	}
	return false
}

// waitEstablished waits (at most 20 s) until every router has the session up.
func (r *phase6Result) waitEstablished(ctx context.Context, rt *routers) error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		var down []string
		for _, name := range r.routers {
			if s := rt.state(ctx, name); !s.up {
				down = append(down, name+errNote(s.err))
			}
		}
		if len(down) == 0 {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("BGP sessions not established within 20 s: %s", strings.Join(down, ", "))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// create sends the n PUTs over r.sessions sessions in parallel (a timed-out
// PUT is sent again, up to three times).
func (r *phase6Result) create(ctx context.Context, e *env, addr string) error {
	clients := make([]*dotsclient.Client, r.sessions)
	defer closeAll(clients)
	for i := range clients {
		c, err := dialSession(ctx, addr, e.opts.transport, e.roots, e.certs[i], nil)
		if err != nil {
			return err
		}
		clients[i] = c
	}
	var next atomic.Int64
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for s, c := range clients {
		wg.Go(func() {
			for mid := uint32(1); ctx.Err() == nil; mid++ { // each session numbers its own requests
				i := int(next.Add(1)) - 1
				if i >= r.n {
					return
				}
				var err error
				o := timedOut
				for try := 0; try < 3 && o == timedOut; try++ {
					o, _, err = timed(ctx, dots.Created, func(ctx context.Context) (*dotsclient.Response, error) {
						return c.Mitigate(ctx, mid, scope(restartTarget(i)))
					})
				}
				if o != okay {
					mu.Lock()
					r.failedPUT++
					if r.firstErr == "" && err != nil {
						r.firstErr = fmt.Sprintf("session %d mid %d %s: %v", s, mid, restartTarget(i), err)
					}
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	r.created = time.Since(start)
	if ctx.Err() != nil {
		return fmt.Errorf("creating %d mitigations: phase bound reached: %w", r.n, ctx.Err())
	}
	if r.failedPUT > 0 {
		return fmt.Errorf("%d of %d PUTs failed%s", r.failedPUT, r.n, firstErrNote(r.firstErr))
	}
	return nil
}

// waitAll polls every router (every 100 ms, and a router no more once it
// is done) until each is established and holds all n rules, or the bound
// passes. It returns, per router, the time from since at which that was
// first seen, and the last state read. If drops0 is not nil it receives,
// per router, its dropped-session count when first seen established. It
// also ends when quit is closed (the server exited).
func (r *phase6Result) waitAll(ctx context.Context, rt *routers, since time.Time, bound time.Duration, drops0 *map[string]int, quit <-chan struct{}) (map[string]time.Duration, map[string]peerState) {
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	back, last := map[string]time.Duration{}, map[string]peerState{}
	if drops0 != nil {
		*drops0 = map[string]int{}
	}
	for {
		for _, name := range r.routers {
			if _, done := back[name]; done {
				continue
			}
			s := rt.state(ctx, name)
			at := time.Since(since) // when the reading ended: an upper bound
			last[name] = s
			if drops0 != nil && s.up && s.err == nil {
				if _, ok := (*drops0)[name]; !ok {
					(*drops0)[name] = s.drops
				}
			}
			if s.up && s.err == nil && s.flows == r.n {
				back[name] = at
			}
		}
		if len(back) == len(r.routers) {
			for _, name := range r.routers { // a last reading for the drop counts
				last[name] = rt.state(context.WithoutCancel(ctx), name)
			}
			return back, last
		}
		select {
		case <-ctx.Done():
			return back, last
		case <-quit:
			return back, last
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitDropped waits until every router has noticed the kill (session down
// or no rules left), at most bound.
func (r *phase6Result) waitDropped(ctx context.Context, rt *routers, bound time.Duration) map[string]peerState {
	deadline := time.Now().Add(bound)
	out := map[string]peerState{}
	for {
		pending := 0
		for _, name := range r.routers {
			s := rt.state(ctx, name)
			out[name] = s
			if s.err == nil && s.up && s.flows > 0 {
				pending++
			}
		}
		if pending == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			return out
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// firstAnswer waits until the server's port is bound, then dials it (again
// if the session fails) until a GET /mitigate for mid 1 of the first session
// is answered 2.05, and returns the time since exec0 (0 if ctx ends first).
// Dialing only once the port is bound keeps the first ClientHello from being
// lost, which would cost a handshake retransmission (1 s).
func firstAnswer(ctx context.Context, e *env, addr string, exec0 time.Time) time.Duration {
	_, portText, _ := strings.Cut(addr, ":")
	var port int
	fmt.Sscan(portText, &port)
	for ctx.Err() == nil && !listening(port, e.opts.transport) {
		time.Sleep(5 * time.Millisecond)
	}
	for ctx.Err() == nil {
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		c, err := dotsclient.Dial(dctx, dotsclient.Config{Servers: []string{addr}, Certificate: e.certs[0],
			RootCAs: e.roots, Transport: e.opts.transport})
		cancel()
		if err != nil {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		d := askUntilAnswered(ctx, c, exec0)
		c.Close()
		if d > 0 {
			return d
		}
	}
	return 0
}

// askUntilAnswered repeats GET /mitigate mid=1 on c until it is answered
// 2.05 (returning the time since exec0), the session ends or ctx ends (0).
func askUntilAnswered(ctx context.Context, c *dotsclient.Client, exec0 time.Time) time.Duration {
	mid := uint32(1)
	for ctx.Err() == nil {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		resp, err := c.Status(rctx, &mid, "")
		cancel()
		if err == nil && resp.Code == dots.Content {
			return time.Since(exec0)
		}
		select {
		case <-c.Done():
			return 0
		case <-time.After(5 * time.Millisecond):
		}
	}
	return 0
}

// listening reports whether a socket is bound to 127.0.0.1:port (UDP for
// dtls, a TCP listener for tls).
func listening(port int, transport string) bool {
	file, state := "/proc/net/udp", "07"
	if transport == "tls" {
		file, state = "/proc/net/tcp", "0A"
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return true // cannot tell: dial at once
	}
	local := fmt.Sprintf(":%04X", port)
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 3 && strings.HasSuffix(f[1], local) && f[3] == state {
			return true
		}
	}
	return false
}
