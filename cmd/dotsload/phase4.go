package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"
)

type phase4Result struct {
	sessions, up, failed, workers       int
	hs                                  latencies
	rampRate                            float64
	ramp, window                        hbTotals
	serverHB                            int64
	noServerHB, lost                    int
	rssBase, rssUp, rssMax, rssEnd, hwm int64
	toolUp, toolMax                     int64
	udp                                 string
}

// hbWorker is a phase 4 child process.
type hbWorker struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	msgs  chan workerMsg
	done  chan struct{}
}

// sessionsPerWorker is bounded by RLIMIT_NOFILE: dotsclient uses one socket per session.
func sessionsPerWorker() int {
	var rl syscall.Rlimit
	per := 10000
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err == nil && rl.Max > 0 && rl.Max < 1<<40 {
		per = min(per, int(rl.Max)-1000)
	}
	return max(per, 100)
}

func (e *env) startWorker(first, count, par int) (*hbWorker, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, workerCommand, "--addr", e.addr, "--dir", e.dir, "--transport", e.opts.transport,
		"--first", fmt.Sprint(first), "--count", fmt.Sprint(count), "--parallel", fmt.Sprint(par),
		"--hb-window", e.opts.hbWindow.String())
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Stderr = os.Stderr
	w := &hbWorker{cmd: cmd, msgs: make(chan workerMsg, 4), done: make(chan struct{})}
	if w.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		dec := json.NewDecoder(bufio.NewReader(stdout))
		for {
			var m workerMsg
			if err := dec.Decode(&m); err != nil {
				break
			}
			w.msgs <- m
		}
		_ = cmd.Wait()
		close(w.done)
	}()
	return w, nil
}

// await returns the next message of the worker, failing at the deadline or if it exits.
func (w *hbWorker) await(ctx context.Context, event string) (workerMsg, error) {
	select {
	case m := <-w.msgs:
		if m.Event != event {
			return m, fmt.Errorf("worker %d: got %q, want %q", w.cmd.Process.Pid, m.Event, event)
		}
		return m, nil
	case <-w.done:
		return workerMsg{}, fmt.Errorf("worker %d exited: %v", w.cmd.Process.Pid, w.cmd.ProcessState)
	case <-ctx.Done():
		return workerMsg{}, fmt.Errorf("waiting for worker %q: %w", event, ctx.Err())
	}
}

func (w *hbWorker) stop() {
	_ = w.stdin.Close()
	select {
	case <-w.done:
	case <-time.After(5 * time.Second):
		_ = w.cmd.Process.Kill()
		<-w.done
	}
}

// toolCPUTotal is the CPU time of this process and its workers.
func toolCPUTotal(ws []*hbWorker) time.Duration {
	total := procCPU("self")
	for _, w := range ws {
		total += procCPU(fmt.Sprint(w.cmd.Process.Pid))
	}
	return total
}

// toolCPU describes the load tool's CPU use since (start, at0).
func toolCPU(ws []*hbWorker, start time.Time, at0 time.Duration) string {
	used := toolCPUTotal(ws) - at0
	return fmt.Sprintf("%.2f s (%.0f%% of a core)", used.Seconds(), 100*used.Seconds()/time.Since(start).Seconds())
}

// toolRSS is this process's RSS plus its workers'.
func toolRSS(ws []*hbWorker) int64 {
	total, _, _ := procStatus("self")
	for _, w := range ws {
		r, _, _ := procStatus(fmt.Sprint(w.cmd.Process.Pid))
		total += r
	}
	return total
}

// phase4: many sessions heartbeating, and the server's memory.
func phase4(ctx context.Context, e *env) (*phase4Result, error) {
	o := e.opts
	per := sessionsPerWorker()
	nw := (o.sessions + per - 1) / per
	par := max(1, min(64, max(32, o.hbParallel))/nw)
	r := &phase4Result{sessions: o.sessions, workers: nw}
	fmt.Fprintf(e.out, "\n== phase 4: %d %s sessions (%d worker processes, %d handshakes in parallel), client heartbeat every 15 s, window %v\n",
		o.sessions, o.transport, nw, par*nw, o.hbWindow)
	fmt.Fprintf(e.out, "  (machine load average %s)\n", loadavg())
	before := readUDPCounters(e.port)
	r.rssBase, _, _ = procStatus(e.server.pid())
	var ws []*hbWorker
	defer func() {
		for _, w := range ws {
			w.stop()
		}
	}()
	cpu := startCPU(e.server.pid())
	toolCPU0 := procCPU("self")
	start := time.Now()
	for i := range nw {
		first := i * per
		w, err := e.startWorker(first, min(per, o.sessions-first), par)
		if err != nil {
			return nil, err
		}
		ws = append(ws, w)
	}
	rampCtx, cancel := context.WithTimeout(ctx, 60*time.Second+time.Duration(o.sessions)*10*time.Millisecond)
	defer cancel()
	var hs []time.Duration
	var ramp, certs float64
	goroutines := 0
	for _, w := range ws {
		m, err := w.await(rampCtx, "up")
		if err != nil {
			return nil, err
		}
		r.up += m.Up
		r.failed += m.Failed
		ramp, certs = max(ramp, m.RampMS), max(certs, m.CertsMS)
		goroutines += m.Goroutines
		for _, h := range m.Handshakes {
			hs = append(hs, time.Duration(h))
		}
		if m.Failed > 0 || m.Retries > 0 {
			fmt.Fprintf(e.out, "  worker: %d sessions failed to open, %d failed attempts (first error: %s)\n", m.Failed, m.Retries, m.FirstErr)
		}
	}
	r.hs = summarize(hs)
	if ramp > 0 {
		r.rampRate = float64(r.up) / (ramp / 1000)
	}
	if err := e.checkServer(); err != nil {
		return nil, err
	}
	r.rssUp, _, _ = procStatus(e.server.pid())
	r.toolUp = toolRSS(ws)
	fmt.Fprintf(e.out, "  %d sessions up (%d failed) in %v since start (handshakes %.0f/s, %s)\n",
		r.up, r.failed, time.Since(start).Round(100*time.Millisecond), r.rampRate, r.hs)
	fmt.Fprintf(e.out, "  all up: server RSS %s (%s per 1,000 sessions); load tool RSS %s (%d processes)\n",
		mib(r.rssUp), mib(r.rssUp*1000/int64(max(r.up, 1))), mib(r.toolUp), nw+1)
	fmt.Fprintf(e.out, "  load tool: %d goroutines in %d workers (GOGC 300), certificates issued in %.1f s\n", goroutines, nw, certs/1000)
	fmt.Fprintf(e.out, "  opening: %s; load tool CPU %s\n", cpu.report(r.up, "session"), toolCPU(ws, cpu.start, toolCPU0))
	cpu = startCPU(e.server.pid())
	toolCPU0 = toolCPUTotal(ws)
	for _, w := range ws {
		if _, err := fmt.Fprintln(w.stdin, "go"); err != nil {
			return nil, fmt.Errorf("starting the window: %w", err)
		}
	}
	winEnd := time.Now().Add(o.hbWindow)
	stopSampling := e.sampleRSS(ws, r)
	doneCtx, cancel2 := context.WithTimeout(ctx, o.hbWindow+40*time.Second)
	defer cancel2()
	for _, w := range ws {
		m, err := w.await(doneCtx, "done")
		if err != nil {
			stopSampling()
			return nil, err
		}
		r.ramp.add(&m.Ramp)
		r.window.add(&m.Window)
		r.serverHB += m.ServerHB
		r.noServerHB += m.NoServerHB
		r.lost += m.Lost
	}
	stopSampling()
	if err := e.checkServer(); err != nil {
		return nil, err
	}
	r.rssEnd, r.hwm, _ = procStatus(e.server.pid())
	r.rssMax = max(r.rssMax, r.rssEnd)
	r.udp = readUDPCounters(e.port).since(before)
	fmt.Fprintf(e.out, "  window ended %v ago; client heartbeats (answered = 2.04, missed = no answer in 5 s):\n", time.Since(winEnd).Round(100*time.Millisecond))
	r.ramp.print(e.out, "while opening")
	r.window.print(e.out, "in the window")
	fmt.Fprintf(e.out, "  window: %s; load tool CPU %s\n", cpu.report(0, ""), toolCPU(ws, cpu.start, toolCPU0))
	fmt.Fprintf(e.out, "  server heartbeats received %d (%.2f per session), sessions with none %d, sessions lost %d\n",
		r.serverHB, float64(r.serverHB)/float64(max(r.up, 1)), r.noServerHB, r.lost)
	fmt.Fprintf(e.out, "  server RSS: all up %s, max in window %s, end %s, VmHWM %s; %s per 1,000 sessions (max)\n",
		mib(r.rssUp), mib(r.rssMax), mib(r.rssEnd), mib(r.hwm), mib(r.rssMax*1000/int64(max(r.up, 1))))
	if r.up < targetHBSessions {
		fmt.Fprintf(e.out, "  server RSS before phase 4 %s; projected to %d sessions: %s\n", mib(r.rssBase), targetHBSessions, mib(r.projected()))
	}
	fmt.Fprintf(e.out, "  load tool RSS: all up %s, max %s (parent + %d workers)\n", mib(r.toolUp), mib(r.toolMax), nw)
	fmt.Fprintf(e.out, "  %s\n", r.udp)
	return r, nil
}

// sampleRSS records the maximum server and tool RSS every 2 s until the returned func is called.
func (e *env) sampleRSS(ws []*hbWorker, r *phase4Result) (stop func()) {
	r.rssMax, r.toolMax = r.rssUp, r.toolUp
	quit, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
			}
			if rss, _, err := procStatus(e.server.pid()); err == nil {
				r.rssMax = max(r.rssMax, rss)
			}
			r.toolMax = max(r.toolMax, toolRSS(ws))
		}
	}()
	return func() {
		select {
		case <-quit:
		default:
			close(quit)
		}
		<-finished
	}
}

// projected extrapolates the server's RSS to the bench's 20,000 sessions
// from the growth over the RSS before phase 4.
func (r *phase4Result) projected() int64 {
	if r.up == 0 {
		return 0
	}
	return r.rssBase + (r.rssMax-r.rssBase)*targetHBSessions/int64(r.up)
}

// hbTotals sums the heartbeat reports of the workers.
type hbTotals struct {
	sent, answered, missed, errors int64
	firstErr                       string
	lat                            []time.Duration
}

func (t *hbTotals) add(r *hbReport) {
	t.sent += r.Sent
	t.answered += r.Answered
	t.missed += r.Missed
	t.errors += r.Errors
	if t.firstErr == "" {
		t.firstErr = r.FirstErr
	}
	for _, d := range r.Latency {
		t.lat = append(t.lat, time.Duration(d))
	}
}

func (t *hbTotals) print(w io.Writer, when string) {
	fmt.Fprintf(w, "    %-13s sent %d, answered %d, missed %d, errors %d; round trip %s\n",
		when, t.sent, t.answered, t.missed, t.errors, summarize(t.lat))
	if t.firstErr != "" {
		fmt.Fprintf(w, "    first error: %s\n", t.firstErr)
	}
}
