package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsclient"
	"gopkg.in/yaml.v3"
)

// Phase 7: a legitimate client's DTLS handshakes and PUTs, quiet and then
// during a flood of ClientHellos from spoofed sources in 127.0.0.0/8, with
// the RSS of the dotsd under attack.

// The targets of phase 7 (issue 9).
const (
	targetFloodRSSGrowth = int64(64) << 20
	targetFloodHSRatio   = 3.0
	targetFloodRate      = 20000
	targetFloodDuration  = 30 * time.Second
	targetFloodSources   = 10000
)

const (
	quietWindow = 10 * time.Second
	hsInterval  = 40 * time.Millisecond // a legitimate handshake starts every 40 ms
	hsInFlight  = 16                    // at most this many at once
	hsBound     = 10 * time.Second      // dialSession's bound: a failed handshake counts as this long
	// A PUT every 40 ms: 25 requests/s, well under dotsd's default
	// per-client rate (50/s), so that the legitimate client is never the
	// one rate-limited.
	putInterval       = 40 * time.Millisecond
	rssInterval       = 250 * time.Millisecond
	afterFloodWindow  = 10 * time.Second
	conntrackHeadroom = 2 // the flood stops if it fills 1/2 of nf_conntrack_max
)

// window is what the legitimate client measured over one stretch of time.
type window struct {
	hs       []time.Duration // completed handshakes
	hsFailed int
	hsFirst  string
	put      opStats
	putCodes map[dots.Code]int // answers other than 2.01
	elapsed  time.Duration     // until the window closed (handshakes in flight then may end later)
}

// hsLat and putLat count a failure at its bound, so that a p99 is never
// better than the failures allow.
func (w *window) hsLat() latencies { return summarize(censored(w.hs, w.hsFailed, hsBound)) }
func (w *window) putLat() latencies {
	return summarize(censored(w.put.lat, w.put.timeouts+w.put.errors, requestTimeout))
}

func censored(ok []time.Duration, failed int, bound time.Duration) []time.Duration {
	out := append([]time.Duration(nil), ok...)
	for range failed {
		out = append(out, bound)
	}
	return out
}

func (w *window) print(e *env, name string) {
	fmt.Fprintf(e.out, "  %s (%v):", name, w.elapsed.Round(100*time.Millisecond))
	if len(w.hs)+w.hsFailed > 0 {
		fmt.Fprintf(e.out, " handshake %s, %d failed", summarize(w.hs), w.hsFailed)
		if w.hsFirst != "" {
			fmt.Fprintf(e.out, " (first: %s)", w.hsFirst)
		}
		fmt.Fprintf(e.out, "\n  %s", strings.Repeat(" ", len(name)+1))
	}
	fmt.Fprintf(e.out, " PUT %s", summarize(w.put.lat))
	if n := w.put.timeouts + w.put.errors; n > 0 {
		fmt.Fprintf(e.out, ", %d timeouts, %d errors", w.put.timeouts, w.put.errors)
		if len(w.putCodes) > 0 {
			fmt.Fprintf(e.out, ", answers %s", codeCounts(w.putCodes))
		}
		if w.put.firstErr != "" {
			fmt.Fprintf(e.out, " (first: %s)", w.put.firstErr)
		}
	}
	fmt.Fprintln(e.out)
}

type phase7Result struct {
	skipped            string
	plan               floodPlan
	flood              floodResult
	quiet, during      window
	rssBefore, rssPeak int64
	rssEnd, rssAfter   int64
	serverExited       bool
}

func (r *phase7Result) growth() int64 { return max(0, r.rssPeak-r.rssBefore) }

// hsRatio is the flood's handshake p99 over the quiet one.
func (r *phase7Result) hsRatio() float64 {
	q := r.quiet.hsLat().p99
	if q <= 0 {
		return 0
	}
	return float64(r.during.hsLat().p99) / float64(q)
}

func phase7(ctx context.Context, e *env) (*phase7Result, error) {
	o := e.opts
	plan := floodPlan{rate: o.floodRate, total: int(int64(o.floodRate) * int64(o.floodDuration) / int64(time.Second)), sources: o.floodSources}
	fmt.Fprintf(e.out, "\n== phase 7: spoofed ClientHello flood, %d packets/s for %v from %d sources (127.64.0.1 …), legitimate DTLS handshakes and PUTs quiet and during it\n",
		plan.rate, o.floodDuration, plan.sources)
	fmt.Fprintf(e.out, "  (machine load average %s)\n", loadavg())
	if os.Geteuid() != 0 {
		fmt.Fprintln(e.out, "  phase skipped: raw sockets need root")
		return &phase7Result{skipped: "raw sockets need root"}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second+quietWindow+afterFloodWindow+o.floodDuration)
	defer cancel()
	tmpl, err := captureClientHello(ctx, e.certs[0], e.roots)
	if err != nil {
		return nil, err
	}
	h, _ := parseClientHello(tmpl)
	fmt.Fprintf(e.out, "  ClientHello: %d bytes, captured from a pion client (%d cipher suites, %d bytes of extensions, no cookie); each flood packet gets its own client_random\n",
		len(tmpl), len(h.CipherSuites), len(h.Extensions))
	srv, addr, err := e.startOwnDotsd(ctx, "flood", []any{loadClient("load", loadDNSName, "203.0.113.0/24")})
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	plan.dst, plan.template = netip.MustParseAddrPort(addr), tmpl
	r := &phase7Result{plan: plan}
	err = r.run(ctx, e, srv, addr)
	r.serverExited = !srv.alive()
	reportServerLog(e, srv)
	return r, err
}

func (r *phase7Result) run(ctx context.Context, e *env, srv *child, addr string) error {
	c, err := dialSession(ctx, addr, "dtls", e.roots, e.certs[0], nil)
	if err != nil {
		return err
	}
	defer c.Close()
	rss := startRSS(srv.pid())
	defer rss.stop()
	lc := legitClient{addr: addr, e: e, c: c, certs: e.certs[1:]}
	quietDone := make(chan struct{})
	time.AfterFunc(quietWindow, func() { close(quietDone) })
	r.quiet = lc.measure(ctx, quietDone)
	r.quiet.print(e, "quiet")
	r.rssBefore = rss.last()
	before, cpu := readUDPCounters(int(r.plan.dst.Port())), startCPU(srv.pid())
	ctMax := readInt("/proc/sys/net/netfilter/nf_conntrack_max")
	r.plan.stop = func() string {
		switch cur := rss.last(); {
		case !srv.alive():
			return "dotsd exited"
		case cur > int64(e.opts.floodRSSCapMiB)<<20:
			return fmt.Sprintf("dotsd's RSS %s is over the safety cap (--flood-rss-cap-mib %d)", mib(cur), e.opts.floodRSSCapMiB)
		case ctMax > 0 && readInt("/proc/sys/net/netfilter/nf_conntrack_count")*conntrackHeadroom > ctMax:
			return "the conntrack table is half full"
		}
		return ""
	}
	floodStart := time.Now()
	floodDone := make(chan struct{})
	var floodErr error
	go func() {
		defer close(floodDone)
		r.flood, floodErr = runFlood(ctx, r.plan)
	}()
	r.during = lc.measure(ctx, floodDone)
	<-floodDone
	if floodErr != nil {
		return fmt.Errorf("flood: %w", floodErr)
	}
	floodEnd := time.Now()
	r.rssEnd = rss.last()
	r.printFlood(e)
	r.during.print(e, "during the flood")
	fmt.Fprintf(e.out, "  %s; %s\n", cpu.report(r.flood.sent, "spoofed ClientHello"), readUDPCounters(int(r.plan.dst.Port())).since(before))
	select {
	case <-time.After(afterFloodWindow):
	case <-ctx.Done():
		return ctx.Err()
	}
	r.rssAfter = rss.last()
	r.rssPeak = rss.peakSince(floodStart)
	fmt.Fprintf(e.out, "  dotsd RSS: before %s, peak %s (growth %s), at the flood's end %s, %v later %s\n",
		mib(r.rssBefore), mib(r.rssPeak), mib(r.growth()), mib(r.rssEnd), afterFloodWindow, mib(r.rssAfter))
	fmt.Fprintf(e.out, "  dotsd RSS every 5 s from the flood's start: %s\n", rss.timeline(floodStart, floodEnd.Add(afterFloodWindow), 5*time.Second))
	return nil
}

func (r *phase7Result) printFlood(e *env) {
	f, p := r.flood, r.plan
	verdict := "as planned"
	if !f.asPlanned(p) {
		verdict = "NOT as planned"
	}
	fmt.Fprintf(e.out, "  flood to %v: %d of %d packets in %v (%.0f/s), %d send errors: %s", p.dst, f.sent, p.total,
		f.elapsed.Round(time.Millisecond), float64(f.sent)/max(f.elapsed.Seconds(), 1e-9), f.sendErrors, verdict)
	if f.stopped != "" {
		fmt.Fprintf(e.out, " (stopped: %s)", f.stopped)
	}
	if f.firstErr != "" {
		fmt.Fprintf(e.out, " (first send error: %s)", f.firstErr)
	}
	fmt.Fprintln(e.out)
}

// legitClient is the client whose service the flood should not degrade.
type legitClient struct {
	e     *env
	addr  string
	c     *dotsclient.Client // for the PUTs
	certs []tls.Certificate  // for the handshakes, in turn
	mid   uint32
}

// measure starts a handshake every hsInterval (at most hsInFlight at once)
// and sends a PUT every putInterval until done is closed,
// then waits for the handshakes in flight.
func (lc *legitClient) measure(ctx context.Context, done <-chan struct{}) window {
	w := window{putCodes: map[dots.Code]int{}}
	start := time.Now()
	var mu sync.Mutex
	var wg sync.WaitGroup
	wg.Go(func() { lc.puts(ctx, done, &w) })
	sem := make(chan struct{}, hsInFlight)
	tick := time.NewTicker(hsInterval)
	defer tick.Stop()
	for k := 0; ; k++ {
		select {
		case <-done:
		case <-ctx.Done():
		case <-tick.C:
			select {
			case sem <- struct{}{}:
			default:
				continue // hsInFlight handshakes are slower than the interval
			}
			cert := lc.certs[k%len(lc.certs)]
			wg.Go(func() {
				defer func() { <-sem }()
				t := time.Now()
				s, err := dialSession(ctx, lc.addr, "dtls", lc.e.roots, cert, nil)
				d := time.Since(t)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					w.hsFailed++
					if w.hsFirst == "" {
						w.hsFirst = err.Error()
					}
					return
				}
				w.hs = append(w.hs, d)
				_ = s.Close()
			})
			continue
		}
		break
	}
	w.elapsed = time.Since(start)
	wg.Wait()
	return w
}

// puts is measure's PUT loop: each PUT creates mitigation mid+1 on the
// same target, which replaces mid ("higher mid wins" among one client's
// overlapping requests), so the server's state stays the same.
func (lc *legitClient) puts(ctx context.Context, done <-chan struct{}, w *window) {
	tick := time.NewTicker(putInterval)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		lc.mid++
		mid := lc.mid
		var code dots.Code
		o, d, err := timed(ctx, dots.Created, func(ctx context.Context) (*dotsclient.Response, error) {
			resp, err := lc.c.Mitigate(ctx, mid, scope("203.0.113.7/32"))
			if resp != nil {
				code = resp.Code
			}
			return resp, err
		})
		w.put.add(o, d, err)
		if o == failed && code != 0 {
			w.putCodes[code]++
		}
	}
}

// rssSampler reads a process's VmRSS every rssInterval.
type rssSampler struct {
	pid  string
	quit chan struct{}
	mu   sync.Mutex
	at   []time.Time
	rss  []int64
}

func startRSS(pid string) *rssSampler {
	s := &rssSampler{pid: pid, quit: make(chan struct{})}
	s.sample()
	go func() {
		t := time.NewTicker(rssInterval)
		defer t.Stop()
		for {
			select {
			case <-s.quit:
				return
			case <-t.C:
				s.sample()
			}
		}
	}()
	return s
}

func (s *rssSampler) sample() {
	rss, _, err := procStatus(s.pid)
	if err != nil {
		return
	}
	s.mu.Lock()
	s.at, s.rss = append(s.at, time.Now()), append(s.rss, rss)
	s.mu.Unlock()
}

func (s *rssSampler) stop() { close(s.quit) }

func (s *rssSampler) last() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.rss) == 0 {
		return 0
	}
	return s.rss[len(s.rss)-1]
}

func (s *rssSampler) peakSince(t time.Time) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var peak int64
	for i, at := range s.at {
		if !at.Before(t) {
			peak = max(peak, s.rss[i])
		}
	}
	return peak
}

// timeline renders the first sample at or after from, from+step, … until.
func (s *rssSampler) timeline(from, until time.Time, step time.Duration) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var parts []string
	next := from
	for i, at := range s.at {
		if at.Before(next) || at.After(until) {
			continue
		}
		parts = append(parts, fmt.Sprintf("%.0f", float64(s.rss[i])/(1<<20)))
		next = next.Add(step)
	}
	return strings.Join(parts, " ") + " MiB"
}

func readInt(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

func codeCounts(m map[dots.Code]int) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for c, n := range m {
		parts = append(parts, fmt.Sprintf("%s × %d", c, n))
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}

// loadClient is a client domain of the configurations of phases 7 and 8.
func loadClient(name, dnsName string, prefixes ...string) map[string]any {
	return map[string]any{"name": name, "prefixes": prefixes, "match": map[string]any{"dns-names": []string{dnsName}}}
}

// startOwnDotsd runs a dotsd of its own for a phase (e.dir/name/dotsd.yaml,
// its own store and port) with the given client domains and the bench
// policy; it returns it and its signal address.
func (e *env) startOwnDotsd(ctx context.Context, name string, clients []any) (*child, string, error) {
	dir := filepath.Join(e.dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", err
	}
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cfg := map[string]any{
		"signal": map[string]any{"listen": []string{addr}},
		"tls": map[string]any{"certificate": filepath.Join(e.dir, "server", "cert.pem"),
			"key": filepath.Join(e.dir, "server", "key.pem"), "client-cas": []string{filepath.Join(e.dir, "ca.pem")}},
		"store":   map[string]any{"path": filepath.Join(dir, "levee.db")},
		"log":     map[string]any{"level": "info"},
		"policy":  map[string]any{"active-but-terminating": "1s", "max-requests-per-client": 100000},
		"clients": clients,
	}
	if e.opts.memoryLimitMiB > 0 {
		cfg["memory-limit-mib"] = e.opts.memoryLimitMiB
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		return nil, "", err
	}
	path := filepath.Join(dir, "dotsd.yaml")
	if err := os.WriteFile(path, append([]byte("# dotsload "+name+" configuration\n"), out...), 0o644); err != nil {
		return nil, "", err
	}
	c, err := startDotsd(ctx, e.opts.dotsd, []string{"--config", path}, 30*time.Second)
	if err != nil {
		return nil, "", err
	}
	rss, _, _ := procStatus(c.pid())
	fmt.Fprintf(e.out, "  dotsd pid %s on %s ready, RSS %s\n", c.pid(), addr, mib(rss))
	return c, addr, nil
}

// reportServerLog prints a phase's dotsd WARN/ERROR lines, counted by message.
func reportServerLog(e *env, srv *child) {
	if !srv.alive() {
		fmt.Fprintf(e.out, "  dotsd exited:\n%s\n", srv.lastLines())
	}
	n, first := srv.problemReport()
	fmt.Fprintf(e.out, "  server log: %d WARN/ERROR lines\n", n)
	for _, l := range first {
		fmt.Fprintf(e.out, "    %s\n", l)
	}
}
