package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/levee-dots/levee/dotsclient"
)

// While `dotsctl agent` runs, it serves the commands that make one
// request (mitigate, status without --watch, withdraw, efficacy) over a
// Unix socket beside the state file, mode 0600, like ssh's ControlMaster:
// they then go over the agent's established session instead of a new
// handshake, which under heavy loss is what fails (RFC 9132 §4.7 expects
// a client to keep its session). Without an agent, or when the agent has
// no session at the moment, a command opens its own session as before.

// forwardable are the commands the agent runs for others.
var forwardable = []string{"mitigate", "status", "withdraw", "efficacy"}

// agentSocket is the agent's socket for cfg: the state file's name with
// .agent.sock for its extension.
func agentSocket(cfg *ctlConfig) string {
	return strings.TrimSuffix(cfg.State, filepath.Ext(cfg.State)) + ".agent.sock"
}

// agentRequest is one command sent to the agent; agentReply its outcome.
type agentRequest struct {
	Output  string        `json:"output"`
	Timeout time.Duration `json:"timeout"`
	Command string        `json:"command"`
	Args    []string      `json:"args"`
}

type agentReply struct {
	Stdout    string `json:"stdout"`
	Stderr    string `json:"stderr"`
	Error     string `json:"error,omitempty"`
	NoSession bool   `json:"no-session,omitempty"` // the agent is between sessions: run it yourself
}

// maxAgentMessage bounds what either side reads from the socket.
const maxAgentMessage = 1 << 20

// agentServer is the agent's side of the socket.
type agentServer struct {
	g    *globals
	path string
	ln   net.Listener
	cur  atomic.Pointer[dotsclient.Client] // the session, while one is up
	wg   sync.WaitGroup
	// served is signalled after each command served: the agent then reads
	// the client's mitigations again (agent_life.go).
	served chan struct{}
}

// listenAgent opens the socket. A socket that answers belongs to another
// agent: that is an error; one that does not is a leftover and removed.
func listenAgent(g *globals, cfg *ctlConfig) (*agentServer, error) {
	path := agentSocket(cfg)
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("agent: another agent already serves %s (stop it first)", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("agent: removing the stale socket: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	old := syscall.Umask(0o177) // the socket is born 0600
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("agent: listen on %s: %w", path, err)
	}
	return &agentServer{g: g, path: path, ln: ln, served: make(chan struct{}, 1)}, nil
}

// serve answers connections until the listener is closed.
func (s *agentServer) serve(ctx context.Context) {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer c.Close()
			s.answer(ctx, c)
		}()
	}
}

// close stops serving, waits for the commands in progress and removes the
// socket.
func (s *agentServer) close() {
	s.ln.Close() // removes the socket file too
	s.wg.Wait()
}

func (s *agentServer) answer(ctx context.Context, c net.Conn) {
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var req agentRequest
	if err := json.NewDecoder(io.LimitReader(c, maxAgentMessage)).Decode(&req); err != nil {
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	reply := s.run(ctx, req)
	_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_ = json.NewEncoder(c).Encode(reply)
}

// run runs one command over the current session.
func (s *agentServer) run(ctx context.Context, req agentRequest) agentReply {
	if !slices.Contains(forwardable, req.Command) {
		return agentReply{Error: fmt.Sprintf("the agent does not run %q", req.Command)}
	}
	// Commands run side by side, as from several terminals: each is its
	// own exchange on the session (mids come from the locked state file).
	c := s.cur.Load()
	if c == nil {
		return agentReply{NoSession: true}
	}
	var out, errOut bytes.Buffer
	g := &globals{config: s.g.config, output: req.Output, timeout: min(max(req.Timeout, time.Second), 5*time.Minute),
		stdout: &out, stderr: &errOut, session: c}
	err := commands()[req.Command](ctx, g, req.Args)
	select {
	case s.served <- struct{}{}:
	default: // one signal pending is enough
	}
	reply := agentReply{Stdout: out.String(), Stderr: errOut.String()}
	if err != nil {
		reply.Error = err.Error()
	}
	fmt.Fprintf(s.g.stdout, "%s agent: served %s over the session (%s)\n", time.Now().Format(time.TimeOnly), req.Command,
		map[bool]string{true: "ok", false: "error"}[err == nil])
	return reply
}

// viaAgent runs a forwardable command through a running agent. handled
// is false when there is none to ask (or it has no session), and the
// command then runs on its own.
func viaAgent(ctx context.Context, g *globals, cmd string, args []string) (handled bool, err error) {
	if !slices.Contains(forwardable, cmd) || (cmd == "status" && slices.ContainsFunc(args, isWatchFlag)) {
		return false, nil
	}
	cfg, err := loadCtlConfig(g.config)
	if err != nil {
		return false, nil // the command reports it
	}
	var d net.Dialer
	dctx, cancel := context.WithTimeout(ctx, time.Second)
	c, err := d.DialContext(dctx, "unix", agentSocket(cfg))
	cancel()
	if err != nil {
		return false, nil
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(g.timeout + 5*time.Second))
	if err := json.NewEncoder(c).Encode(agentRequest{Output: g.output, Timeout: g.timeout, Command: cmd, Args: args}); err != nil {
		return false, nil
	}
	var reply agentReply
	if err := json.NewDecoder(io.LimitReader(c, maxAgentMessage)).Decode(&reply); err != nil {
		return true, fmt.Errorf("the agent at %s did not answer: %w (stop it, or retry)", agentSocket(cfg), err)
	}
	if reply.NoSession {
		return false, nil
	}
	_, _ = io.WriteString(g.stdout, reply.Stdout)
	_, _ = io.WriteString(g.stderr, reply.Stderr)
	if reply.Error != "" {
		return true, errors.New(reply.Error)
	}
	return true, nil
}

func isWatchFlag(a string) bool {
	name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
	return strings.HasPrefix(a, "-") && name == "watch"
}
