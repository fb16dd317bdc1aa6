package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsclient"
)

// workerCommand runs a share of the phase 4 sessions in a child process:
// dotsclient uses one UDP socket per session and RLIMIT_NOFILE may be
// below the session count, so the sessions are spread over processes.
const workerCommand = "hb-worker"

// workerMsg is a line of JSON a worker prints on stdout.
type workerMsg struct {
	Event      string  `json:"event"` // "up" or "done"
	Up         int     `json:"up,omitempty"`
	Failed     int     `json:"failed,omitempty"`
	Retries    int     `json:"retries,omitempty"`
	FirstErr   string  `json:"first_err,omitempty"`
	RampMS     float64 `json:"ramp_ms,omitempty"`
	CertsMS    float64 `json:"certs_ms,omitempty"`
	Handshakes []int64 `json:"handshakes,omitempty"` // ns
	Goroutines int     `json:"goroutines,omitempty"`

	Ramp       hbReport `json:"ramp"`   // heartbeats sent before the window (while sessions were opening)
	Window     hbReport `json:"window"` // heartbeats sent in the window
	ServerHB   int64    `json:"server_hb,omitempty"`
	NoServerHB int      `json:"no_server_hb,omitempty"`
	Lost       int      `json:"lost,omitempty"`
}

func workerMain(args []string) int {
	fs := flag.NewFlagSet(workerCommand, flag.ContinueOnError)
	addr := fs.String("addr", "", "server address")
	dir := fs.String("dir", "", "directory with ca.pem and ca-key.pem")
	transport := fs.String("transport", "dtls", "dtls or tls")
	first := fs.Int("first", 0, "first certificate number")
	count := fs.Int("count", 0, "sessions")
	par := fs.Int("parallel", 24, "handshakes in parallel")
	interval := fs.Duration("hb-interval", 15*time.Second, "client heartbeat interval")
	window := fs.Duration("hb-window", 40*time.Second, "heartbeat window after 'go'")
	gcPercent := fs.Int("gc-percent", 300, "GOGC of the worker (its GC cycles otherwise show up as heartbeat latency)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	debug.SetGCPercent(*gcPercent)
	if err := worker(*addr, *dir, *transport, *first, *count, *par, *interval, *window); err != nil {
		fmt.Fprintln(os.Stderr, "dotsload worker:", err)
		return 1
	}
	return 0
}

type hbSession struct {
	c        *dotsclient.Client
	serverHB atomic.Int64
}

// hbReport counts client heartbeats.
type hbReport struct {
	Sent, Answered, Missed, Errors int64
	FirstErr                       string  `json:",omitempty"`
	Latency                        []int64 `json:",omitempty"` // ns, answered heartbeats
}

// hbCounters counts heartbeats before ([0]) and in ([1]) the window.
type hbCounters struct {
	mu       sync.Mutex
	inWindow bool
	r        [2]hbReport
}

func (h *hbCounters) window() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.inWindow
}

// add counts a heartbeat, in the window if it was sent in the window.
func (h *hbCounters) add(inWindow bool, d time.Duration, resp *dotsclient.Response, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := &h.r[0]
	if inWindow {
		r = &h.r[1]
	}
	r.Sent++
	switch {
	case err == nil && resp.Code == dots.Changed:
		r.Answered++
		r.Latency = append(r.Latency, int64(d))
	case err != nil && errors.Is(err, context.DeadlineExceeded):
		r.Missed++
	default:
		r.Errors++
		if err == nil {
			err = fmt.Errorf("heartbeat answered %s", resp.Code)
		}
		if r.FirstErr == "" {
			r.FirstErr = err.Error()
		}
	}
}

func worker(addr, dir, transport string, first, count, par int, interval, window time.Duration) error {
	is, err := newIssuer(dir)
	if err != nil {
		return err
	}
	t0 := time.Now()
	certs, err := is.clients(first, count)
	if err != nil {
		return err
	}
	certsMS := msOf(time.Since(t0))
	out := json.NewEncoder(os.Stdout)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdin := bufio.NewScanner(os.Stdin)

	// Ramp: open every session, up to three attempts each.
	sessions := make([]*hbSession, count)
	hs := make([]int64, count)
	var failed, retries atomic.Int64
	var firstErr atomic.Value
	rctx, rcancel := context.WithTimeout(ctx, 30*time.Second+time.Duration(count)*10*time.Millisecond)
	sem := make(chan struct{}, par)
	var wg, loops sync.WaitGroup
	end := make(chan struct{}) // closed when the window is over
	var hb hbCounters
	start := time.Now()
	for i := range count {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			s := &hbSession{}
			for attempt := 0; attempt < 3 && rctx.Err() == nil; attempt++ {
				t := time.Now()
				c, err := dialSession(rctx, addr, transport, is.roots, certs[i], func(bool) { s.serverHB.Add(1) })
				if err == nil {
					s.c, hs[i] = c, int64(time.Since(t))
					sessions[i] = s
					// Heartbeats start once the session is up, the first at a
					// uniform random offset within the interval.
					loops.Go(func() { heartbeatLoop(ctx, s, time.Now().Add(rand.N(interval)), interval, end, &hb) })
					return
				}
				firstErr.CompareAndSwap(nil, err.Error())
				retries.Add(1)
			}
			failed.Add(1)
		})
	}
	wg.Wait()
	rcancel()
	certs = nil
	up := workerMsg{Event: "up", Failed: int(failed.Load()), Retries: int(retries.Load()),
		RampMS: msOf(time.Since(start)), CertsMS: certsMS, Goroutines: runtime.NumGoroutine()}
	if v, ok := firstErr.Load().(string); ok {
		up.FirstErr = v
	}
	for i, s := range sessions {
		if s != nil {
			up.Up++
			up.Handshakes = append(up.Handshakes, hs[i])
		}
	}

	if err := out.Encode(up); err != nil {
		return err
	}
	if !stdin.Scan() || stdin.Text() != "go" {
		return errors.New("parent went away before 'go'")
	}
	hb.mu.Lock()
	hb.inWindow = true
	hb.mu.Unlock()
	time.AfterFunc(window, func() { close(end) })
	loops.Wait() // in-flight heartbeats finish (≤ 5 s) after the window
	done := workerMsg{Event: "done", Ramp: hb.r[0], Window: hb.r[1], Goroutines: runtime.NumGoroutine()}
	for _, s := range sessions {
		if s == nil {
			continue
		}
		n := s.serverHB.Load()
		done.ServerHB += n
		if n == 0 {
			done.NoServerHB++
		}
		select {
		case <-s.c.Done():
			done.Lost++
		default:
		}
	}
	if err := out.Encode(done); err != nil {
		return err
	}
	// Wait for the parent to close stdin; the sessions die with the process.
	for stdin.Scan() {
	}
	return nil
}

func heartbeatLoop(ctx context.Context, s *hbSession, next time.Time, interval time.Duration, end <-chan struct{}, hb *hbCounters) {
	t := time.NewTimer(time.Until(next))
	defer t.Stop()
	for {
		select {
		case <-end:
			return
		case <-t.C:
		}
		inWindow, start := hb.window(), time.Now()
		resp, err := s.c.Heartbeat(ctx, true) // the library bounds it by 5 s
		hb.add(inWindow, time.Since(start), resp, err)
		next = next.Add(interval)
		if now := time.Now(); next.Before(now) {
			next = now
		}
		t.Reset(time.Until(next))
	}
}

func msOf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
