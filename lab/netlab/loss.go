//go:build linux

package netlab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/levee-dots/levee/pki"
	"github.com/levee-dots/levee/store"
)

// The loss lab: a DOTS client and dotsd in two namespaces joined by one
// link, with random loss in both directions (nftables numgen at each
// end's ingress: this kernel has no netem). It measures how many
// mitigation requests the client gets acknowledged in time.
const (
	LossClient = "client"
	LossServer = "server"
	// LossTable is the nftables table (netdev family) that drops at
	// random at each end of the link.
	LossTable = "levee_loss"
)

var (
	lossClientAddr = netip.MustParsePrefix("198.51.100.1/24")
	lossServerAddr = netip.MustParsePrefix("198.51.100.2/24")
	// LossSignalAddr is dotsd's signal channel in the loss lab.
	LossSignalAddr = netip.AddrPortFrom(lossServerAddr.Addr(), 4646)
)

// LossTopology is the loss lab: client and server on one link.
func LossTopology() Topology {
	return Topology{Name: "loss",
		Nodes: []Node{{Name: LossClient}, {Name: LossServer}},
		Links: []Link{{A: Endpoint{Node: LossClient, Iface: "eth0", Addr: lossClientAddr},
			B: Endpoint{Node: LossServer, Iface: "eth0", Addr: lossServerAddr}}},
	}
}

// SetLoss drops percent of the packets that cross the lab's link, in each
// direction on its own draw, at the receiving end's ingress (netdev
// family, before the IP stack): the sender sees no error, as with loss in
// a network (dropping in the sender's own output hook would make its
// sendmsg fail with EPERM). 0 removes the tables. Each direction counts
// what it saw and what it dropped (LossCounts).
func (l *Lab) SetLoss(percent int) error {
	if percent < 0 || percent > 100 {
		return fmt.Errorf("netlab: loss %d%%: want 0 to 100", percent)
	}
	for _, node := range []string{LossClient, LossServer} {
		if err := l.setIngressLoss(node, "eth0", percent); err != nil {
			return err
		}
	}
	return nil
}

func (l *Lab) setIngressLoss(node, dev string, percent int) error {
	c, err := l.nft(node)
	if err != nil {
		return err
	}
	defer c.CloseLasting()
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyNetdev)
	if err != nil {
		return fmt.Errorf("netlab: %s: list tables: %w", node, err)
	}
	if slices.ContainsFunc(tables, func(t *nftables.Table) bool { return t.Name == LossTable }) {
		c.DelTable(&nftables.Table{Family: nftables.TableFamilyNetdev, Name: LossTable})
	}
	if percent > 0 {
		t := c.AddTable(&nftables.Table{Family: nftables.TableFamilyNetdev, Name: LossTable})
		ch := c.AddChain(&nftables.Chain{Name: "ingress", Table: t, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookIngress, Priority: nftables.ChainPriorityFilter, Device: dev})
		// ARP passes: the loss is of the IP traffic, as on a link whose
		// neighbours are known (a lost ARP reply fails a send with
		// EHOSTUNREACH, which a lossy network does not).
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyPROTOCOL, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(unix.ETH_P_ARP)},
			&expr.Verdict{Kind: expr.VerdictAccept},
		}})
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{&expr.Counter{}}})
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{
			&expr.Numgen{Register: 1, Modulus: 100, Type: unix.NFT_NG_RANDOM},
			&expr.Cmp{Op: expr.CmpOpLt, Register: 1, Data: binaryutil.NativeEndian.PutUint32(uint32(percent))},
			&expr.Counter{},
			&expr.Verdict{Kind: expr.VerdictDrop},
		}})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("netlab: %s: loss %d%%: %w", node, percent, err)
	}
	return nil
}

// LossCount is what one direction of the loss tables saw and dropped.
type LossCount struct{ Seen, Dropped uint64 }

func (c LossCount) String() string { return fmt.Sprintf("%d of %d dropped", c.Dropped, c.Seen) }

// LossCounts reads the loss tables' counters: "to-server" and "to-client".
func (l *Lab) LossCounts() (map[string]LossCount, error) {
	out := map[string]LossCount{}
	for dir, node := range map[string]string{"to-server": LossServer, "to-client": LossClient} {
		c, err := l.nft(node)
		if err != nil {
			return nil, err
		}
		t := &nftables.Table{Family: nftables.TableFamilyNetdev, Name: LossTable}
		rules, err := c.GetRules(t, &nftables.Chain{Name: "ingress", Table: t})
		c.CloseLasting()
		if err != nil {
			return nil, fmt.Errorf("netlab: %s: loss rules: %w", node, err)
		}
		var counts []uint64
		for _, r := range rules {
			for _, e := range r.Exprs {
				if ctr, ok := e.(*expr.Counter); ok {
					counts = append(counts, ctr.Packets)
				}
			}
		}
		if len(counts) != 2 {
			return nil, fmt.Errorf("netlab: %s: %d loss counters, want 2", node, len(counts))
		}
		out[dir] = LossCount{Seen: counts[0], Dropped: counts[1]}
	}
	return out, nil
}

// LossOptions is one run of the loss lab.
type LossOptions struct {
	Bins Bins
	// Dir holds the PKI, configurations and logs ("": a temporary
	// directory, removed afterwards).
	Dir string
	// Loss is the percentage dropped in each direction.
	Loss int
	// Requests one-shot `dotsctl mitigate` commands are started, one every
	// Spacing, each with Window to get its answer.
	Requests int
	Spacing  time.Duration
	Window   time.Duration
	// Agent starts `dotsctl agent` in the client before the loss begins,
	// so that the commands go over its session, with parallel-requests
	// lossParallel.
	Agent bool
	// HeavyLoss sets heavy-loss: true in the client's dotsctl.yaml
	// (dotsclient.Config.HeavyLoss).
	HeavyLoss bool
	Logf      func(format string, args ...any)
}

// LossResult is what a loss run measured.
type LossResult struct {
	Loss     int
	Requests int
	// Acked are the times to the 2.01 of the requests answered within the
	// window, in the order they were sent; failures are in Failed.
	Acked  []time.Duration
	Failed []string
	// Stored is how many of the acknowledged requests dotsd's store holds
	// after the run.
	Stored int
	// Served is how many mitigate commands the agent ran (with Agent).
	Served int
	// Counts is what the loss tables saw and dropped, per direction.
	Counts map[string]LossCount
}

// AckedShare is the share of requests acknowledged within the window.
func (r *LossResult) AckedShare() float64 {
	if r.Requests == 0 {
		return 0
	}
	return float64(len(r.Acked)) / float64(r.Requests)
}

// Median is the median time to acknowledgement of the acknowledged requests.
func (r *LossResult) Median() time.Duration {
	if len(r.Acked) == 0 {
		return 0
	}
	s := slices.Clone(r.Acked)
	slices.Sort(s)
	return s[len(s)/2]
}

// RunLoss builds the loss lab, starts dotsd in the server namespace, sets
// the loss, starts the one-shot requests and waits for them, then stops
// dotsd and checks that its store holds every request it acknowledged. The
// lab is removed before it returns.
func RunLoss(ctx context.Context, o LossOptions) (res *LossResult, err error) {
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	if o.Requests <= 0 || o.Requests > lossSessions || o.Window <= 0 {
		return nil, fmt.Errorf("netlab: loss: %d requests with a %v window: want 1 to %d and a window", o.Requests, o.Window, lossSessions)
	}
	dir := o.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "levee-loss-"); err != nil {
			return nil, fmt.Errorf("netlab: loss: %w", err)
		}
		defer os.RemoveAll(dir)
	}
	l, err := New(LossTopology())
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, l.Close()) }()
	if _, err := pki.Dev(dir, []string{"alpha"}, LossSignalAddr.Addr().String()); err != nil {
		return nil, fmt.Errorf("netlab: loss: pki: %w", err)
	}
	for _, f := range []string{"levee.db", "dotsd.log"} {
		_ = os.Remove(filepath.Join(dir, f))
	}
	files := map[string]string{"dotsd.yaml": lossDotsd(), "dotsctl.yaml": lossDotsctl(o.Agent, o.HeavyLoss)}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			return nil, fmt.Errorf("netlab: loss: %w", err)
		}
	}
	dotsd, err := l.Start(LossServer, dir, "dotsd", o.Bins.Dotsd, "--config", filepath.Join(dir, "dotsd.yaml"))
	if err != nil {
		return nil, err
	}
	defer func() {
		if !dotsd.Exited() {
			err = errors.Join(err, dotsd.Stop())
		}
	}()
	if err := dotsd.WaitOutput("dotsd ready", 15*time.Second); err != nil {
		return nil, fmt.Errorf("netlab: loss: %w\n%s", err, dotsd.Out.String())
	}
	if o.Agent {
		agent, err := l.Start(LossClient, dir, "agent", o.Bins.Dotsctl, "--config", filepath.Join(dir, "dotsctl.yaml"), "agent")
		if err != nil {
			return nil, err
		}
		defer func() { err = errors.Join(err, agent.Stop()) }()
		if err := agent.WaitOutput("session up", 15*time.Second); err != nil {
			return nil, fmt.Errorf("netlab: loss: dotsctl agent: %w\n%s", err, agent.Out.String())
		}
		defer func() {
			if res != nil {
				res.Served = strings.Count(agent.Out.String(), "agent: served mitigate")
			}
		}()
	}
	if err := l.SetLoss(o.Loss); err != nil {
		return nil, err
	}
	o.Logf("loss lab: %d%% loss each way; %d one-shot requests, one every %v, %v each", o.Loss, o.Requests, o.Spacing, o.Window)
	res = &LossResult{Loss: o.Loss, Requests: o.Requests}
	took := make([]time.Duration, o.Requests)
	fails := make([]string, o.Requests)
	var wg sync.WaitGroup
	for i := range o.Requests {
		if i > 0 {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(o.Spacing):
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			took[i], fails[i] = l.oneShot(ctx, o, dir, i)
		}()
	}
	wg.Wait()
	if o.Loss > 0 {
		if res.Counts, err = l.LossCounts(); err != nil {
			return nil, err
		}
	}
	if err := l.SetLoss(0); err != nil {
		return nil, err
	}
	var acked []int
	for i := range o.Requests {
		if fails[i] != "" {
			res.Failed = append(res.Failed, fmt.Sprintf("mid %d: %s", i+1, fails[i]))
			continue
		}
		res.Acked = append(res.Acked, took[i])
		acked = append(acked, i)
	}
	// What dotsd holds: its store, read once it has stopped (stopping it
	// asks nothing of the lossy link, and sessions of the commands killed
	// at the window would count against the client's session limit).
	if err := dotsd.Stop(); err != nil {
		return nil, fmt.Errorf("netlab: loss: stopping dotsd: %w\n%s", err, dotsd.Out.String())
	}
	if res.Stored, err = storedTargets(filepath.Join(dir, "levee.db"), acked); err != nil {
		return nil, err
	}
	o.Logf("loss lab: %d of %d acknowledged within %v (median %v), %d of them held by dotsd; loss table %v",
		len(res.Acked), res.Requests, o.Window, res.Median().Round(time.Millisecond), res.Stored, res.Counts)
	return res, nil
}

// storedTargets counts the requests (by index) whose target a stopped
// dotsd's store holds among its mitigations.
func storedTargets(path string, requests []int) (int, error) {
	db, err := store.Open(path, store.Options{})
	if err != nil {
		return 0, fmt.Errorf("netlab: loss: %w", err)
	}
	defer db.Close()
	var records [][]byte
	if err := db.ForEach("mitigations", func(_ string, v []byte) error {
		records = append(records, slices.Clone(v))
		return nil
	}); err != nil {
		return 0, fmt.Errorf("netlab: loss: reading the store: %w", err)
	}
	n := 0
	for _, i := range requests {
		want := []byte(lossTarget(i).String())
		if slices.ContainsFunc(records, func(r []byte) bool { return bytes.Contains(r, want) }) {
			n++
		}
	}
	return n, nil
}

// lossTarget is request i's target.
func lossTarget(i int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{203, 0, 113, byte(i % 128)}), 32)
}

// oneShot runs one `dotsctl mitigate` (its own session, as an operator's
// command would) and returns the time to its answer (2.01, or 2.04 when a
// repeat found the request in place), or why it failed.
func (l *Lab) oneShot(ctx context.Context, o LossOptions, dir string, i int) (time.Duration, string) {
	rctx, cancel := context.WithTimeout(ctx, o.Window+2*time.Second)
	defer cancel()
	start := time.Now()
	out, err := l.Exec(rctx, LossClient, o.Bins.Dotsctl, "--config", filepath.Join(dir, "dotsctl.yaml"),
		"--timeout", o.Window.String(), "-o", "json", "mitigate", "--target", lossTarget(i).String(),
		"--mid", fmt.Sprint(i+1), "--lifetime", "3600")
	took := time.Since(start)
	switch {
	case err != nil:
		msg := err.Error()
		if len(msg) > 200 {
			msg = msg[len(msg)-200:]
		}
		return took, msg
	case took > o.Window:
		return took, fmt.Sprintf("answered after %v", took.Round(time.Millisecond))
	case !strings.Contains(out, `"2.01"`) && !strings.Contains(out, `"2.04"`):
		// 2.04: a repeat of the request found it created by an earlier
		// try whose answer was lost; it is in place all the same.
		return took, "answer: " + strings.Join(strings.Fields(out), " ")
	}
	return took, ""
}

// lossSessions is dotsd's max-sessions-per-client in the loss lab. The
// lab's one-shot commands all speak as one client, several a second, each
// with its own session for up to its window: dozens at once, where a
// client has one or two (the default limit, 8, is for that). A command
// that ends sends one close_notify, which the loss drops half the time,
// and its session then stays counted until it is lost or replaced. The
// limit is the lab's largest run, so no command is refused for the
// sessions of the ones before it.
const lossSessions = 250

func lossDotsd() string {
	return fmt.Sprintf(`signal: {listen: [%q]}
tls: {certificate: server/cert.pem, key: server/key.pem, client-cas: [ca.pem]}
store: {path: levee.db}
limits: {max-sessions-per-client: %d}
clients:
  - name: alpha
    prefixes: ["203.0.113.0/25"]
    match: {common-names: [alpha]}
`, LossSignalAddr.String(), lossSessions)
}

// lossParallel is the agent's parallel-requests in the loss lab: the
// commands it serves go out side by side rather than one at a time.
const lossParallel = 16

func lossDotsctl(agent, heavyLoss bool) string {
	parallel := ""
	if agent {
		parallel = fmt.Sprintf("parallel-requests: %d\n", lossParallel)
	}
	if heavyLoss {
		parallel += "heavy-loss: true\n"
	}
	return fmt.Sprintf(`servers: [%q]
certificate: clients/alpha/cert.pem
key: clients/alpha/key.pem
ca: ca.pem
state: alpha-state.json
%s`, LossSignalAddr.String(), parallel)
}
