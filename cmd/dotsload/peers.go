package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/levee-dots/levee/lab"
)

// labTB is the testing.TB that lab's Start functions need, for a program
// that is not a test: it implements every method lab calls, turns Fatal and
// Skip into a panic that labTB.do recovers as an error, and runs the
// cleanups (which stop the daemons) at close. The embedded interface is nil
// and only supplies testing.TB's unexported method.
type labTB struct {
	testing.TB
	ctx context.Context
	dir string    // parent of TempDir's directories
	log io.Writer // Logf and Errorf

	mu       sync.Mutex
	cleanups []func()
	failed   bool
	skipped  bool
	tmp      int
}

// tbAbort is the panic value of Fatal and Skip.
type tbAbort struct {
	skip bool
	msg  string
}

// errSkipped wraps the message of a Skip: a daemon is not installed.
var errSkipped = errors.New("skipped")

func newLabTB(ctx context.Context, dir string, log io.Writer) *labTB {
	return &labTB{ctx: ctx, dir: dir, log: log}
}

// do runs f, returning a Fatal as an error and a Skip as errSkipped.
func (t *labTB) do(f func()) (err error) {
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		a, ok := r.(tbAbort)
		if !ok {
			panic(r)
		}
		if a.skip {
			err = fmt.Errorf("%w: %s", errSkipped, a.msg)
		} else {
			err = errors.New(a.msg)
		}
	}()
	f()
	return nil
}

// close runs the cleanups, last registered first.
func (t *labTB) close() {
	t.mu.Lock()
	fs := t.cleanups
	t.cleanups = nil
	t.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}

func (t *labTB) Helper()                  {}
func (t *labTB) Name() string             { return "dotsload" }
func (t *labTB) Context() context.Context { return t.ctx }
func (t *labTB) Cleanup(f func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cleanups = append(t.cleanups, f)
}
func (t *labTB) Log(args ...any)                 { fmt.Fprintln(t.log, append([]any{"  lab:"}, args...)...) }
func (t *labTB) Logf(format string, args ...any) { fmt.Fprintf(t.log, "  "+format+"\n", args...) }
func (t *labTB) Fail() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.failed = true
}
func (t *labTB) Failed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.failed
}
func (t *labTB) Error(args ...any)                 { t.Fail(); t.Log(args...) }
func (t *labTB) Errorf(format string, args ...any) { t.Fail(); t.Logf(format, args...) }
func (t *labTB) FailNow()                          { t.Fail(); panic(tbAbort{msg: "lab: FailNow"}) }
func (t *labTB) Fatal(args ...any)                 { t.Fail(); panic(tbAbort{msg: fmt.Sprint(args...)}) }
func (t *labTB) Fatalf(format string, args ...any) {
	t.Fail()
	panic(tbAbort{msg: fmt.Sprintf(format, args...)})
}
func (t *labTB) SkipNow() { t.Skip("SkipNow") }
func (t *labTB) Skip(args ...any) {
	t.skipped = true
	panic(tbAbort{skip: true, msg: fmt.Sprint(args...)})
}
func (t *labTB) Skipped() bool               { return t.skipped }
func (t *labTB) Skipf(f string, args ...any) { t.Skip(fmt.Sprintf(f, args...)) }
func (t *labTB) TempDir() string {
	t.mu.Lock()
	t.tmp++
	n := t.tmp
	t.mu.Unlock()
	d := filepath.Join(t.dir, fmt.Sprintf("labtmp-%d", n))
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatalf("TempDir: %v", err)
	}
	return d
}

// routers are the lab peers of phases 5 and 6 (nil when not started).
type routers struct {
	tb   *labTB
	frr  *lab.FRR
	bird *lab.BIRD
	exa  *lab.ExaBGP

	exaTab *exaTable // what state reads of ExaBGP
}

// startRouters starts the named routers (frr, bird, exabgp). It returns an
// errSkipped error when one is not installed.
func startRouters(ctx context.Context, dir string, log io.Writer, names ...string) (*routers, error) {
	r := &routers{tb: newLabTB(ctx, dir, log)}
	err := r.tb.do(func() {
		for _, n := range names {
			switch n {
			case "frr":
				r.frr = lab.StartFRR(r.tb, lab.Options{})
			case "bird":
				r.bird = lab.StartBIRD(r.tb, lab.Options{})
			case "exabgp":
				r.exa = lab.StartExaBGP(r.tb, lab.Options{})
			}
		}
	})
	if err != nil {
		r.close()
		return nil, err
	}
	return r, nil
}

func (r *routers) close() { r.tb.close() }

// names lists the started routers in a fixed order.
func (r *routers) names() []string {
	var out []string
	if r.frr != nil {
		out = append(out, "frr")
	}
	if r.bird != nil {
		out = append(out, "bird")
	}
	if r.exa != nil {
		out = append(out, "exabgp")
	}
	return out
}

// neighborsYAML is the divert.bgp.neighbors list for the started routers,
// each with the given FlowSpec budget.
func (r *routers) neighborsYAML(budget int) []any {
	var out []any
	add := func(name string, ap netip.AddrPort) {
		out = append(out, map[string]any{"name": name, "address": ap.Addr().String(), "port": int(ap.Port()),
			"peer-as": int(lab.PeerAS), "local-address": "127.0.0.1", "flowspec-budget": budget})
	}
	if r.frr != nil {
		add("frr", r.frr.Addr())
	}
	if r.bird != nil {
		add("bird", r.bird.Addr())
	}
	if r.exa != nil {
		add("exabgp", r.exa.Addr())
	}
	return out
}

// peerState is what one router holds from the speaker.
type peerState struct {
	up       bool
	flows    int // FlowSpec rules, IPv4 and IPv6
	drops    int // FRR: sessions dropped so far; -1 elsewhere
	err      error
	readTime time.Duration // how long the query took
}

// state queries one router: cheap counters, no full route dumps except at
// ExaBGP (whose reader keeps the table in memory).
func (r *routers) state(ctx context.Context, name string) peerState {
	start := time.Now()
	var s peerState
	switch name {
	case "frr":
		s = frrState(ctx, r.frr)
	case "bird":
		s = birdState(ctx, r.bird)
	case "exabgp":
		if r.exaTab == nil {
			r.exaTab = &exaTable{path: filepath.Join(r.exa.Dir(), "received.jsonl"), flows: map[string]bool{}}
		}
		s = peerState{drops: -1}
		s.err = r.exaTab.read()
		s.up, s.flows = r.exaTab.up, len(r.exaTab.flows)
	}
	s.readTime = time.Since(start)
	return s
}

// frrState reads "show bgp neighbors <speaker> json": the session state,
// the FlowSpec prefixes accepted and the count of dropped sessions.
func frrState(ctx context.Context, f *lab.FRR) peerState {
	s := peerState{drops: -1}
	out, err := f.Vtysh(ctx, "show bgp neighbors 127.0.0.1 json")
	if err != nil {
		s.err = err
		return s
	}
	var nb map[string]struct {
		State   string `json:"bgpState"`
		Dropped int    `json:"connectionsDropped"`
		AF      map[string]struct {
			Accepted int `json:"acceptedPrefixCounter"`
		} `json:"addressFamilyInfo"`
	}
	if err := json.Unmarshal([]byte(out), &nb); err != nil {
		s.err = fmt.Errorf("frr neighbors json: %w", err)
		return s
	}
	n, ok := nb["127.0.0.1"]
	if !ok {
		s.err = errors.New("frr: speaker 127.0.0.1 not listed")
		return s
	}
	s.up, s.drops = n.State == "Established", n.Dropped
	for af, v := range n.AF {
		if strings.Contains(strings.ToLower(af), "flowspec") {
			s.flows += v.Accepted
		}
	}
	return s
}

// birdState counts the routes of BIRD's FlowSpec tables.
func birdState(ctx context.Context, b *lab.BIRD) peerState {
	s := peerState{drops: -1}
	if s.up, s.err = b.Established(ctx); s.err != nil {
		return s
	}
	for _, tab := range []string{"flowtab4", "flowtab6"} {
		out, err := b.Birdc(ctx, "show", "route", "table", tab, "count")
		if err != nil {
			s.err = err
			return s
		}
		n, err := birdCount(out)
		if err != nil {
			s.err = err
			return s
		}
		s.flows += n
	}
	return s
}

// birdCount reads "N of M routes for K networks in table T" (BIRD 2.0).
func birdCount(out string) (int, error) {
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[1] == "of" {
			if n, err := strconv.Atoi(f[0]); err == nil {
				return n, nil
			}
		}
	}
	return 0, fmt.Errorf("bird: cannot read a route count from %q", strings.TrimSpace(out))
}

// frrLogCount counts the lines of FRR's output that contain s.
func frrLogCount(f *lab.FRR, s string) int {
	data, err := os.ReadFile(filepath.Join(f.Dir(), "frr.out"))
	if err != nil {
		return -1
	}
	return strings.Count(string(data), s)
}

// exaTable counts the FlowSpec rules ExaBGP holds, reading on from where it
// left off the file to which lab's ExaBGP helper appends every message.
// Unlike lab's ExaBGP.Routes it neither normalises nor sorts: sorting 10,000
// rules takes a quarter of a second on a small machine, taken from the
// server being measured.
type exaTable struct {
	path    string
	off     int64
	partial []byte
	up      bool
	flows   map[string]bool // by family and ExaBGP's text of the rule
}

func (x *exaTable) read() error {
	f, err := os.Open(x.path)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Seek(x.off, io.SeekStart); err != nil {
		return err
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return err
	}
	x.off += int64(len(data))
	data = append(x.partial, data...)
	for {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break
		}
		if err := x.apply(data[:i]); err != nil {
			x.partial = nil
			return err
		}
		data = data[i+1:]
	}
	x.partial = bytes.Clone(data)
	return nil
}

// exaRule is one FlowSpec NLRI of ExaBGP's JSON; String is its text form.
type exaRule struct {
	String string `json:"string"`
}

func (x *exaTable) apply(line []byte) error {
	line = bytes.TrimSpace(line)
	if len(line) == 0 {
		return nil
	}
	var m struct {
		Type     string `json:"type"`
		Neighbor struct {
			State   string `json:"state"`
			Message struct {
				Update *struct {
					Announce map[string]map[string][]exaRule `json:"announce"`
					Withdraw map[string][]exaRule            `json:"withdraw"`
				} `json:"update"`
			} `json:"message"`
		} `json:"neighbor"`
	}
	if err := json.Unmarshal(line, &m); err != nil {
		return fmt.Errorf("exabgp message: %w", err)
	}
	switch m.Type {
	case "state":
		x.up = m.Neighbor.State == "up"
		if !x.up {
			clear(x.flows)
		}
	case "update":
		u := m.Neighbor.Message.Update
		if u == nil {
			return nil
		}
		for fam, rules := range u.Withdraw {
			for _, r := range rules {
				delete(x.flows, fam+" "+r.String)
			}
		}
		for fam, byNH := range u.Announce {
			if !strings.HasSuffix(fam, " flow") {
				continue
			}
			for _, rules := range byNH {
				for _, r := range rules {
					x.flows[fam+" "+r.String] = true
				}
			}
		}
	}
	return nil
}
