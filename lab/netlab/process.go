//go:build linux

package netlab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Output is a process's combined output, kept in memory, that can be
// searched while the process runs.
type Output struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.Write(p)
}

func (o *Output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

// Proc is a daemon started by the lab: in a node's namespace (through
// ip netns exec, which execs it, so the process is the daemon) or in the
// caller's. It runs in a process group of its own (a Ctrl-C at the
// terminal reaches only the caller, which stops it in order) and is
// killed if the process that started it dies.
type Proc struct {
	Name string
	Out  Output
	cmd  *exec.Cmd
	done chan struct{}
	err  error // the exit, once done is closed
}

// Start runs bin with args in node's namespace ("" for the caller's) with
// dir as its working directory; its output is also appended to
// dir/NAME.log.
func (l *Lab) Start(node, dir, name, bin string, args ...string) (*Proc, error) {
	if node != "" {
		ns := l.Namespace(node)
		if ns == "" {
			return nil, fmt.Errorf("netlab: start %s: no node %q", name, node)
		}
		args = append([]string{"netns", "exec", ns, bin}, args...)
		bin = "ip"
	}
	f, err := os.OpenFile(filepath.Join(dir, name+".log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("netlab: start %s: %w", name, err)
	}
	p := &Proc{Name: name, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Dir = dir
	w := io.MultiWriter(&p.Out, f)
	p.cmd.Stdout, p.cmd.Stderr = w, w
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("netlab: start %s: %w", name, err)
	}
	go func() { p.err = p.cmd.Wait(); f.Close(); close(p.done) }()
	return p, nil
}

// Pid is the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// WaitOutput waits until the output contains want, the process ends or
// timeout passes.
func (p *Proc) WaitOutput(want string, timeout time.Duration) error {
	return p.WaitFor(want, timeout, func() bool { return strings.Contains(p.Out.String(), want) })
}

// WaitFor waits until ok holds, the process ends or timeout passes; what
// names the wait in the error, which carries the process's output.
func (p *Proc) WaitFor(what string, timeout time.Duration, ok func() bool) error {
	for end := time.Now().Add(timeout); !ok(); time.Sleep(20 * time.Millisecond) {
		if p.Exited() {
			return fmt.Errorf("%s exited (%v) before %q:\n%s", p.Name, p.err, what, p.Out.String())
		}
		if time.Now().After(end) {
			return fmt.Errorf("%s: no %q after %v:\n%s", p.Name, what, timeout, p.Out.String())
		}
	}
	return nil
}

// Stop sends SIGTERM and waits up to 10 s for the exit (then kills).
// It returns the exit error of a process that did not exit cleanly.
func (p *Proc) Stop() error {
	if p.Exited() {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(10 * time.Second):
		_ = p.Kill()
		return fmt.Errorf("%s: did not stop within 10s of SIGTERM", p.Name)
	}
}

// Kill sends SIGKILL and waits for the exit.
func (p *Proc) Kill() error {
	if p.Exited() {
		return nil
	}
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("%s: kill: %w", p.Name, err)
	}
	<-p.done
	return nil
}

// Exec runs bin with args in node's namespace ("" for the caller's) and
// returns its standard output; the error carries the standard error.
func (l *Lab) Exec(ctx context.Context, node, bin string, args ...string) (string, error) {
	if node != "" {
		ns := l.Namespace(node)
		if ns == "" {
			return "", fmt.Errorf("netlab: exec %s: no node %q", bin, node)
		}
		args = append([]string{"netns", "exec", ns, bin}, args...)
		bin = "ip"
	}
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s: %w: %s", strings.Join(cmd.Args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}
