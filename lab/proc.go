package lab

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var lookPath = exec.LookPath

const (
	startTimeout = 15 * time.Second // per attempt, until listening and answering
	stopTimeout  = 3 * time.Second  // SIGTERM to SIGKILL
	attempts     = 8                // random ports tried when Options.Addr has port 0
)

// daemon is one started process (in its own process group) and its directory.
type daemon struct {
	name    string
	dir     string
	logPath string
	cmd     *exec.Cmd
	cancel  context.CancelFunc
	done    chan struct{} // closed when the process has been reaped
	extra   func() []int  // more pids to kill on stop (e.g. ExaBGP's helper)
	logs    []string      // more files worth showing on failure

	once    sync.Once
	err     error
	mu      sync.Mutex
	lastLog string // output kept by stop, for failure messages
}

// makeDir creates a short private directory: Unix socket paths must stay
// under 108 bytes, which t.TempDir() (named after the test) may not.
func makeDir(name string) (string, error) {
	base := os.TempDir()
	if len(base) > 60 {
		base = "/tmp"
	}
	return os.MkdirTemp(base, "lab-"+name+"-")
}

// spawn starts bin in dir with stdout and stderr going to dir/<name>.out.
func spawn(name, dir, bin string, args, env []string) (*daemon, error) {
	logPath := filepath.Join(dir, name+".out")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = sysProcAttr()
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = stopTimeout
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, fmt.Errorf("lab: start %s: %w", name, err)
	}
	d := &daemon{name: name, dir: dir, logPath: logPath, cmd: cmd, cancel: cancel, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(d.done)
	}()
	return d, nil
}

func (d *daemon) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// stop terminates the process group, sweeps leftovers and removes the
// directory. It is idempotent.
func (d *daemon) stop() error {
	d.once.Do(func() {
		d.cancel() // SIGTERM to the group; SIGKILL to the leader after stopTimeout
		select {
		case <-d.done:
		case <-time.After(stopTimeout + 2*time.Second):
			d.err = fmt.Errorf("lab: %s (pid %d) did not exit", d.name, d.cmd.Process.Pid)
		}
		d.mu.Lock()
		d.lastLog = d.logTail(d.logs...)
		d.mu.Unlock()
		_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL) // anything left in the group
		if d.extra != nil {
			for _, pid := range d.extra() {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if err := os.RemoveAll(d.dir); err != nil && d.err == nil {
			d.err = err
		}
	})
	return d.err
}

// output returns the end of the daemon's output files, also after stop.
func (d *daemon) output() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.lastLog != "" {
		return d.lastLog
	}
	return d.logTail(d.logs...)
}

// logTail returns the end of the daemon's output, for failure messages.
func (d *daemon) logTail(paths ...string) string {
	var b strings.Builder
	for _, p := range append([]string{d.logPath}, paths...) {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		if len(data) > 4000 {
			data = data[len(data)-4000:]
		}
		fmt.Fprintf(&b, "--- %s\n%s\n", filepath.Base(p), bytes.TrimRight(data, "\n"))
	}
	return b.String()
}

// waitReady waits until the process listens on ap and ready returns nil.
// It returns an errRetry error when the address is taken by someone else.
func (d *daemon) waitReady(ctx context.Context, ap netip.AddrPort, ready func(context.Context) error) error {
	deadline := time.Now().Add(startTimeout)
	var last error
	for time.Now().Before(deadline) {
		if d.exited() {
			if strings.Contains(strings.ToLower(d.logTail()), "in use") {
				return fmt.Errorf("%w: %v:\n%s", errRetry, ap, d.logTail())
			}
			return fmt.Errorf("lab: %s exited during start-up:\n%s", d.name, d.logTail())
		}
		switch owner := listenerOwner(ap); {
		case owner == 0:
			last = fmt.Errorf("not listening on %v", ap)
		case !d.inGroup(owner):
			return fmt.Errorf("%w: %v is held by pid %d", errRetry, ap, owner)
		default:
			if last = ready(ctx); last == nil {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("lab: %s not ready after %v: %v\n%s", d.name, startTimeout, last, d.logTail())
}

// inGroup reports whether pid belongs to the daemon's process group.
func (d *daemon) inGroup(pid int) bool {
	if pid == -1 { // cannot tell (no /proc/<pid>/fd access): assume ours
		return true
	}
	pgid, err := syscall.Getpgid(pid)
	return err == nil && pgid == d.cmd.Process.Pid
}

// launch runs attempt on o.Addr, or on random free ports if o.Addr has port 0
// and attempt returns errRetry. It fails the test on any other error.
func launch(t testing.TB, name string, o *Options, attempt func(ap netip.AddrPort) (*daemon, error)) *daemon {
	t.Helper()
	tries := 1
	if o.Addr.Port() == 0 {
		tries = attempts
	}
	var err error
	for i := 0; i < tries; i++ {
		ap := o.Addr
		if ap.Port() == 0 {
			ap = netip.AddrPortFrom(o.Addr.Addr(), uint16(20000+rand.IntN(20000)))
			if l, lerr := net.Listen("tcp", ap.String()); lerr != nil {
				err = lerr
				continue
			} else {
				l.Close()
			}
		}
		var d *daemon
		d, err = attempt(ap)
		if err == nil {
			o.Addr = ap
			return d
		}
		if !errors.Is(err, errRetry) {
			break
		}
	}
	t.Fatalf("lab: start %s on %v: %v", name, o.Addr, err)
	return nil
}

// listenerOwner returns the pid holding a TCP listening socket bound exactly
// to ap or to the wildcard address with ap's port, -1 when a listener exists
// but its owner cannot be found, or 0 when there is none.
func listenerOwner(ap netip.AddrPort) int {
	file := "/proc/net/tcp"
	if ap.Addr().Is6() {
		file = "/proc/net/tcp6"
	}
	f, err := os.Open(file)
	if err != nil {
		return -1
	}
	defer f.Close()
	var inode string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 10 || fs[3] != "0A" { // 0A: LISTEN
			continue
		}
		local, ok := parseProcAddr(fs[1])
		if !ok || local.Port() != ap.Port() {
			continue
		}
		if local.Addr() == ap.Addr() || local.Addr().IsUnspecified() {
			inode = fs[9]
			break
		}
	}
	if inode == "" {
		return 0
	}
	if pid := socketOwner(inode); pid > 0 {
		return pid
	}
	return -1
}

// parseProcAddr parses "0200007F:27B3" (address words in host byte order).
func parseProcAddr(s string) (netip.AddrPort, bool) {
	h, p, ok := strings.Cut(s, ":")
	if !ok {
		return netip.AddrPort{}, false
	}
	raw, err := hex.DecodeString(h)
	port, perr := strconv.ParseUint(p, 16, 16)
	if err != nil || perr != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.AddrPort{}, false
	}
	for i := 0; i < len(raw); i += 4 { // each 32-bit word is little-endian
		binary.BigEndian.PutUint32(raw[i:], binary.LittleEndian.Uint32(raw[i:]))
	}
	a, _ := netip.AddrFromSlice(raw)
	return netip.AddrPortFrom(a.Unmap(), uint16(port)), true
}

// socketOwner finds the process with an open socket of this inode.
func socketOwner(inode string) int {
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	target := "socket:[" + inode + "]"
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		fds, err := os.ReadDir(filepath.Join("/proc", p.Name(), "fd"))
		if err != nil {
			continue
		}
		for _, fd := range fds {
			if l, err := os.Readlink(filepath.Join("/proc", p.Name(), "fd", fd.Name())); err == nil && l == target {
				return pid
			}
		}
	}
	return 0
}

// run executes a control command (vtysh, birdc) with a bounded time.
func run(ctx context.Context, bin string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		return out.Bytes(), fmt.Errorf("%s %s: %w: %s%s", filepath.Base(bin), strings.Join(args, " "), err,
			strings.TrimSpace(errb.String()), truncate(out.String(), 500))
	}
	return out.Bytes(), nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
