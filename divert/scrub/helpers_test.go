package scrub

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/levee-dots/levee/divert"
	"github.com/levee-dots/levee/pki"
	node "github.com/levee-dots/levee/scrub"
	"github.com/levee-dots/levee/scrub/agent"
)

// fakeNode is a data plane that keeps the last state and serves the
// counters a test sets.
type fakeNode struct {
	mu       sync.Mutex
	state    node.Desired
	sets     int
	counters node.Counters
}

func (f *fakeNode) Set(_ context.Context, d node.Desired) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.state, f.sets = d, f.sets+1
	return nil
}

func (f *fakeNode) Counters(context.Context) (node.Counters, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.counters, nil
}

func (f *fakeNode) Close() error { return nil }

func (f *fakeNode) setDrop(id string, pkts, bytes uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.counters = node.Counters{Mitigations: map[string]node.Count{id: {Packets: pkts + 5, Bytes: bytes + 500}},
		Rules: map[string]map[string]node.Count{id: {RuleName: {Packets: pkts, Bytes: bytes}}}}
}

func (f *fakeNode) ids() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, m := range f.state.Mitigations {
		out = append(out, m.ID)
	}
	return out
}

// testNode is a scrubd API (scrub/agent over a fakeNode) on 127.0.0.1 with
// mutual TLS; restart replaces it by a new process's (new boot, no state).
type testNode struct {
	srv  *httptest.Server
	h    atomic.Pointer[agent.Handler]
	fake atomic.Pointer[fakeNode]
}

func (n *testNode) restart(t *testing.T) *fakeNode {
	t.Helper()
	f := &fakeNode{}
	h, err := agent.New(agent.Options{Node: f})
	if err != nil {
		t.Fatal(err)
	}
	n.fake.Store(f)
	n.h.Store(h)
	return f
}

type testPKI struct {
	dev *pki.DevPKI
}

func newPKI(t *testing.T) testPKI {
	t.Helper()
	dev, err := pki.Dev(t.TempDir(), []string{"dotsd"})
	if err != nil {
		t.Fatal(err)
	}
	return testPKI{dev}
}

func (p testPKI) startNode(t *testing.T) *testNode { return p.startNodeAt(t, "127.0.0.1:0") }

func (p testPKI) startNodeAt(t *testing.T, addr string) *testNode {
	t.Helper()
	cert, _, err := pki.LoadKeyPair(p.dev.ServerCert, p.dev.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pki.LoadCertPool(p.dev.CAPath)
	if err != nil {
		t.Fatal(err)
	}
	n := &testNode{}
	n.restart(t)
	n.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { n.h.Load().ServeHTTP(w, r) }))
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	n.srv.Listener.Close()
	n.srv.Listener = l
	n.srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	n.srv.StartTLS()
	t.Cleanup(n.srv.Close)
	return n
}

func (p testPKI) config(urls ...string) Config {
	c := Config{Domains: []string{"alpha"}, Certificate: p.dev.Clients["dotsd"].Cert, Key: p.dev.Clients["dotsd"].Key}
	for i, u := range urls {
		c.Nodes = append(c.Nodes, NodeConfig{Name: "node" + string(rune('1'+i)), URL: u, CA: p.dev.CAPath})
	}
	return c
}

// clock is a settable time.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// recorder keeps what the backend reported.
type recorder struct {
	mu      sync.Mutex
	applied map[divert.Key][]divert.Applied
	counted map[divert.Key][]divert.Counters
}

func newRecorder() *recorder {
	return &recorder{applied: map[divert.Key][]divert.Applied{}, counted: map[divert.Key][]divert.Counters{}}
}

func (r *recorder) update(_ string, k divert.Key, a divert.Applied) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.applied[k] = append(r.applied[k], a)
}

func (r *recorder) measure(_ string, k divert.Key, c divert.Counters) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.counted[k] = append(r.counted[k], c)
}

func (r *recorder) lastApplied(k divert.Key) divert.Applied {
	r.mu.Lock()
	defer r.mu.Unlock()
	if a := r.applied[k]; len(a) > 0 {
		return a[len(a)-1]
	}
	return divert.Applied{}
}

func (r *recorder) lastCounters(k divert.Key) (divert.Counters, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c := r.counted[k]; len(c) > 0 {
		return c[len(c)-1], true
	}
	return divert.Counters{}, false
}

// setSeen sets the counters of mitigation id: seen packets and bytes of
// its targets, of which the drop rule dropped drop.
func (f *fakeNode) setSeen(id string, seen, drop node.Count) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.counters.Mitigations == nil {
		f.counters = node.Counters{Mitigations: map[string]node.Count{}, Rules: map[string]map[string]node.Count{}}
	}
	f.counters.Mitigations[id] = seen
	f.counters.Rules[id] = map[string]node.Count{RuleName: drop}
}

func (f *fakeNode) mitigation(id string) (node.Mitigation, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, m := range f.state.Mitigations {
		if m.ID == id {
			return m, true
		}
	}
	return node.Mitigation{}, false
}

func (f *fakeNode) desired() node.Desired {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.state
}

func reflectEqual(a, b any) bool { return fmt.Sprintf("%#v", a) == fmt.Sprintf("%#v", b) }
