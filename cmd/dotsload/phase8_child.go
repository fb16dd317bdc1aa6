package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsclient"
)

// Client A of phase 8 runs in a child process at a lower CPU priority
// (nice 10): on a small machine the load generator shares the cores with
// dotsd and with client B, and A's own client-side work (DTLS, CBOR,
// goroutines, GC) must not be what B's latency measures. What B measures
// is then what dotsd does with A's requests, as when A is elsewhere.
const fairCommand = "fair-load"

// fairNice is client A's nice value.
const fairNice = 10

// fairReport is the line of JSON the child prints when it stops.
type fairReport struct {
	Codes     map[dots.Code]int `json:"codes"`
	Timeouts  int               `json:"timeouts"`
	Errors    int               `json:"errors"`
	FirstErr  string            `json:"first_err,omitempty"`
	ElapsedNS int64             `json:"elapsed_ns"`
}

// fairMain is the child: it opens A's sessions, prints "up", hammers until
// its standard input closes, then prints its fairReport.
func fairMain(args []string) int {
	fs := flag.NewFlagSet(fairCommand, flag.ContinueOnError)
	addr := fs.String("addr", "", "server address")
	dir := fs.String("dir", "", "directory with ca.pem and ca-key.pem")
	transport := fs.String("transport", "dtls", "dtls or tls")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := fairChild(*addr, *dir, *transport); err != nil {
		fmt.Fprintln(os.Stderr, "dotsload fair-load:", err)
		return 1
	}
	return 0
}

func fairChild(addr, dir, transport string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
	defer cancel()
	is, err := newIssuer(dir)
	if err != nil {
		return err
	}
	cert, err := is.clientFor(1_000_001, fairADNSName)
	if err != nil {
		return err
	}
	var as []*dotsclient.Client
	defer func() { closeAll(as) }()
	for range fairSessions {
		a, err := dialSession(ctx, addr, transport, is.roots, cert, nil)
		if err != nil {
			return fmt.Errorf("client A: %w", err)
		}
		as = append(as, a)
	}
	fmt.Println("up")
	stop := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); close(stop) }()
	r := &phase8Result{aCodes: map[dots.Code]int{}}
	var wg sync.WaitGroup
	var mu sync.Mutex
	start := time.Now()
	for s, a := range as {
		for w := range fairWorkers {
			id := s*fairWorkers + w
			wg.Go(func() { r.hammer(ctx, a, id, stop, &mu) })
		}
	}
	wg.Wait()
	return json.NewEncoder(os.Stdout).Encode(fairReport{Codes: r.aCodes, Timeouts: r.aTimeouts, Errors: r.aErrors,
		FirstErr: r.aFirstErr, ElapsedNS: int64(time.Since(start))})
}

// fairLoad is the parent's handle on the child.
type fairLoad struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Scanner
}

// startFairLoad starts client A's child at nice fairNice and waits until
// its sessions are up.
func startFairLoad(ctx context.Context, e *env, addr string) (*fairLoad, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, self, fairCommand, "--addr", addr, "--dir", e.dir, "--transport", e.opts.transport)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("client A: %w", err)
	}
	_ = syscall.Setpriority(syscall.PRIO_PROCESS, cmd.Process.Pid, fairNice)
	fl := &fairLoad{cmd: cmd, stdin: stdin, out: bufio.NewScanner(stdout)}
	if !fl.out.Scan() || fl.out.Text() != "up" {
		_ = stdin.Close()
		_ = cmd.Wait()
		return nil, errors.New("client A: its sessions did not come up")
	}
	return fl, nil
}

// stop ends the child's load and returns its report.
func (fl *fairLoad) stop() (fairReport, error) {
	_ = fl.stdin.Close()
	var rep fairReport
	if !fl.out.Scan() {
		_ = fl.cmd.Wait()
		return rep, errors.New("client A: no report")
	}
	err := json.Unmarshal(fl.out.Bytes(), &rep)
	if werr := fl.cmd.Wait(); err == nil {
		err = werr
	}
	return rep, err
}
