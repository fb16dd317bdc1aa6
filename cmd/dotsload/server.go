package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"gopkg.in/yaml.v3"
)

// freePort returns a port free on 127.0.0.1 for both UDP and TCP (dotsd
// serves DTLS and TLS on the same number).
func freePort() (int, error) {
	for range 20 {
		u, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := u.LocalAddr().(*net.UDPAddr).Port
		t, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		u.Close()
		if err != nil {
			continue
		}
		t.Close()
		return port, nil
	}
	return 0, errors.New("no free port on 127.0.0.1 for both UDP and TCP")
}

// child is a running dotsd whose stderr is drained (a full pipe would stall it).
type child struct {
	cmd    *exec.Cmd
	name   string
	exited chan struct{}
	ready  chan struct{}

	started time.Time // just before the exec

	mu       sync.Mutex
	marks    map[string]time.Time // first appearance of each of markers
	lines    map[string]string    // and its line
	tail     []string             // last lines of stderr
	problems map[string]int       // WARN/ERROR lines by level and msg
	nProblem int
}

// startDotsd runs dotsd with args and waits (at most timeout) for "dotsd ready".
func startDotsd(ctx context.Context, path string, args []string, timeout time.Duration) (*child, error) {
	c, err := spawnDotsd(path, args)
	if err != nil {
		return nil, err
	}
	if err := c.waitReady(ctx, timeout); err != nil {
		return nil, err
	}
	return c, nil
}

// spawnDotsd starts dotsd with args and returns at once; started is the
// time just before the exec.
func spawnDotsd(path string, args []string) (*child, error) {
	cmd := exec.Command(path, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout = io.Discard
	c := &child{cmd: cmd, name: filepath.Base(path) + " " + strings.Join(args, " "),
		exited: make(chan struct{}), ready: make(chan struct{}), marks: map[string]time.Time{}}
	c.started = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", path, err)
	}
	go c.drain(stderr)
	return c, nil
}

// waitReady waits (at most timeout) for "dotsd ready"; it stops the process
// on failure.
func (c *child) waitReady(ctx context.Context, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-c.ready:
		return nil
	case <-c.exited:
		return fmt.Errorf("%s exited before it was ready: %v\n%s", c.name, c.cmd.ProcessState, c.lastLines())
	case <-t.C:
		c.stop()
		return fmt.Errorf("%s: no \"dotsd ready\" within %v\n%s", c.name, timeout, c.lastLines())
	case <-ctx.Done():
		c.stop()
		return ctx.Err()
	}
}

// markers are log messages whose first appearance a child records (see mark).
var markers = []string{"dotsd ready", "state restored"}

func (c *child) drain(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	readyOnce := sync.Once{}
	for sc.Scan() {
		line := sc.Text()
		if strings.Contains(line, "dotsd ready") {
			readyOnce.Do(func() { close(c.ready) })
		}
		now := time.Now()
		c.mu.Lock()
		for _, m := range markers {
			if _, ok := c.marks[m]; !ok && strings.Contains(line, m) {
				c.marks[m] = now
				if c.lines == nil {
					c.lines = map[string]string{}
				}
				c.lines[m] = line
			}
		}
		if len(c.tail) == 20 {
			c.tail = c.tail[1:]
		}
		c.tail = append(c.tail, line)
		if strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") {
			if c.problems == nil {
				c.problems = map[string]int{}
			}
			c.problems[logKey(line)]++
			c.nProblem++
		}
		c.mu.Unlock()
	}
	_, _ = io.Copy(io.Discard, r)
	_ = c.cmd.Wait()
	close(c.exited)
}

// mark returns when the marker (one of markers) was first logged and its
// line, or ok false.
func (c *child) mark(m string) (at time.Time, line string, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	at, ok = c.marks[m]
	return at, c.lines[m], ok
}

func (c *child) lastLines() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return "  | " + strings.Join(c.tail, "\n  | ")
}

// problemReport returns the number of WARN/ERROR lines and a count per message.
func (c *child) problemReport() (int, []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for k, n := range c.problems {
		out = append(out, fmt.Sprintf("%6d × %s", n, k))
	}
	slices.Sort(out)
	return c.nProblem, out
}

// logKey reduces a slog text line to its level and msg.
func logKey(line string) string {
	level, msg := "?", line
	if i := strings.Index(line, "level="); i >= 0 {
		level, _, _ = strings.Cut(line[i+6:], " ")
	}
	if i := strings.Index(line, "msg="); i >= 0 {
		msg = line[i+4:]
		if strings.HasPrefix(msg, `"`) {
			if j := strings.Index(msg[1:], `"`); j >= 0 {
				msg = msg[1 : j+1]
			}
		} else {
			msg, _, _ = strings.Cut(msg, " ")
		}
	}
	return level + " " + msg
}

// loadavg returns the first three fields of /proc/loadavg (the machine may be shared).
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func (c *child) pid() string { return fmt.Sprint(c.cmd.Process.Pid) }

func (c *child) alive() bool {
	select {
	case <-c.exited:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM, then SIGKILL after 5 s.
func (c *child) stop() {
	if !c.alive() {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(5 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.exited
	}
}

// kill sends SIGKILL and waits (at most 10 s) until the process is gone.
func (c *child) kill() error {
	if !c.alive() {
		return nil
	}
	_ = c.cmd.Process.Kill()
	select {
	case <-c.exited:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%s (pid %s) still running 10 s after SIGKILL", c.name, c.pid())
	}
}

// devPKI runs 'dotsd dev' once so that it writes the development PKI and
// dotsd.yaml into dir, then stops it.
func devPKI(ctx context.Context, dotsd, dir, listen string) error {
	c, err := startDotsd(ctx, dotsd, []string{"dev", "--dir", dir, "--signal-listen", listen}, 30*time.Second)
	if err != nil {
		return err
	}
	c.stop()
	for _, f := range []string{"ca.pem", "ca-key.pem", "dotsd.yaml"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return fmt.Errorf("dotsd dev did not write %s: %w", f, err)
		}
	}
	return nil
}

// writeBenchConfig writes dir/bench.yaml: dev's dotsd.yaml with the listen
// address, the bench policy and the "load" client domain added.
func writeBenchConfig(dir, listen string, memoryLimitMiB int) (string, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "dotsd.yaml"))
	if err != nil {
		return "", err
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		return "", fmt.Errorf("dotsd.yaml: %w", err)
	}
	sub := func(key string) map[string]any {
		m, _ := cfg[key].(map[string]any)
		if m == nil {
			m = map[string]any{}
			cfg[key] = m
		}
		return m
	}
	sub("signal")["listen"] = []string{listen}
	if memoryLimitMiB > 0 {
		cfg["memory-limit-mib"] = memoryLimitMiB
	}
	pol := sub("policy")
	pol["active-but-terminating"] = "1s"
	pol["max-requests-per-client"] = 100000
	clients, _ := cfg["clients"].([]any)
	cfg["clients"] = append(clients, map[string]any{
		"name":     "load",
		"prefixes": []string{"203.0.113.0/24", "2001:db8::/32"},
		"match":    map[string]any{"dns-names": []string{loadDNSName}},
		// Phases 1-6 measure what the server can do, not its per-client
		// limiter (phase 8 measures that with the defaults).
		"limits": map[string]any{"requests-per-second": 1000000, "request-burst": 1000000}, // the most dotsd accepts
	})
	out, err := yaml.Marshal(cfg)
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "bench.yaml")
	return path, os.WriteFile(path, append([]byte("# dotsload bench configuration (from dotsd dev's dotsd.yaml)\n"), out...), 0o644)
}
