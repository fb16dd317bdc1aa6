package scrub

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Names of the fixed objects in the table.
const (
	// basePrefix + Interface names the ingress chain, so a node started on
	// another device replaces the chain instead of filtering the old one.
	basePrefix = "in_"
	set4Name   = "targets4" // interval maps: prefixes shorter than a host
	set6Name   = "targets6"
	hosts4Name = "hosts4" // hash maps: host addresses
	hosts6Name = "hosts6"
	// ingressPriority runs before everything else on the device.
	ingressPriority = -500
	// sockBuf is forced on the netlink socket: a large Set is one batch
	// and the kernel acknowledges every message before we read any.
	sockBuf = 64 << 20
	// elemChunk bounds the elements per netlink message.
	elemChunk = 1024
)

// NFT is the nftables data plane: one netdev table with an ingress chain on
// Interface. It is safe for concurrent use.
type NFT struct {
	opts  NFTOptions
	log   *slog.Logger
	table *nftables.Table

	mu   sync.Mutex
	last *plan // what the last successful Set installed

	// fault, when set by a test, queues a failing operation at the end of
	// the batch.
	fault func(c *nftables.Conn)
}

// NewNFT returns a node for opts. It installs nothing until Set.
func NewNFT(opts NFTOptions) (*NFT, error) {
	if opts.Interface == "" {
		return nil, errors.New("scrub: NFTOptions.Interface is required")
	}
	if len(opts.Interface) >= unix.IFNAMSIZ {
		return nil, fmt.Errorf("scrub: interface name %q longer than %d bytes", opts.Interface, unix.IFNAMSIZ-1)
	}
	if opts.TableName == "" {
		opts.TableName = DefaultTableName
	}
	opts.Bounds = opts.Bounds.withDefaults()
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &NFT{opts: opts, log: log,
		table: &nftables.Table{Name: opts.TableName, Family: nftables.TableFamilyNetdev}}, nil
}

func (n *NFT) baseChain() string { return basePrefix + n.opts.Interface }

func (n *NFT) conn() (*nftables.Conn, error) {
	force := func(c *netlink.Conn) error {
		rc, err := c.SyscallConn()
		if err != nil {
			return err
		}
		var serr error
		err = rc.Control(func(fd uintptr) {
			if e := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, sockBuf); e != nil {
				serr = e
			}
			if e := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, sockBuf); e != nil {
				serr = e
			}
		})
		return errors.Join(err, serr)
	}
	opts := []nftables.ConnOption{nftables.WithSockOptions(force)}
	if n.opts.NetNS != 0 {
		opts = append(opts, nftables.WithNetNSFd(n.opts.NetNS))
	}
	c, err := nftables.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("scrub: nftables: %w", err)
	}
	return c, nil
}

// installed is what the table holds now, read from the kernel.
type installed struct {
	exists   bool
	inet     bool            // the notrack table
	base     bool            // the ingress chain on Interface
	oldBases []string        // ingress chains on other devices
	chains   map[string]bool // non-base chains
	sets     []*nftables.Set // named sets
	counters map[string]bool
}

func (n *NFT) read(c *nftables.Conn) (installed, error) {
	in := installed{chains: map[string]bool{}, counters: map[string]bool{}}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyNetdev)
	if err != nil {
		return in, fmt.Errorf("scrub: list tables: %w", err)
	}
	for _, t := range tables {
		in.exists = in.exists || t.Name == n.table.Name
	}
	inet, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return in, fmt.Errorf("scrub: list tables: %w", err)
	}
	for _, t := range inet {
		in.inet = in.inet || t.Name == n.table.Name
	}
	if !in.exists {
		return in, nil
	}
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyNetdev)
	if err != nil {
		return in, fmt.Errorf("scrub: list chains: %w", err)
	}
	for _, ch := range chains {
		switch {
		case ch.Table.Name != n.table.Name:
		case ch.Name == n.baseChain():
			in.base = true
		case strings.HasPrefix(ch.Name, basePrefix):
			in.oldBases = append(in.oldBases, ch.Name)
		default:
			in.chains[ch.Name] = true
		}
	}
	sets, err := c.GetSets(n.table)
	if err != nil {
		return in, fmt.Errorf("scrub: list sets: %w", err)
	}
	for _, s := range sets {
		if !s.Anonymous && !strings.HasPrefix(s.Name, "__") {
			in.sets = append(in.sets, s)
		}
	}
	objs, err := c.GetObjects(n.table)
	if err != nil {
		return in, fmt.Errorf("scrub: list objects: %w", err)
	}
	for _, o := range objs {
		if co, ok := o.(*nftables.CounterObj); ok {
			in.counters[co.Name] = true
		}
	}
	return in, nil
}

// Set converges the table on exactly d in one netlink transaction. The table
// is updated in place rather than replaced: chains and sets are flushed and
// rebuilt, counter objects of mitigations and rules that stay are left
// alone, so their kernel values carry on with no packet lost between a read
// and a rewrite. Rules that go lose their counters.
func (n *NFT) Set(ctx context.Context, d Desired) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := compile(d, n.opts.Bounds)
	if err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	start := time.Now()
	c, err := n.conn()
	if err != nil {
		return err
	}
	in, err := n.read(c)
	if err != nil {
		return err
	}
	msgs, err := n.batch(c, in, p)
	if err != nil {
		return err
	}
	if n.fault != nil {
		n.fault(c)
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("scrub: set %d mitigations: %w", len(p.mits), err)
	}
	n.last = p
	n.log.Debug("scrub: set", "mitigations", len(p.mits), "messages", msgs, "took", time.Since(start))
	return nil
}

// check validates d as Set would, changing nothing.
func (n *NFT) check(d Desired) error {
	_, err := compile(d, n.opts.Bounds)
	return err
}

// batch queues the whole transaction on c and returns the number of
// top-level operations queued.
func (n *NFT) batch(c *nftables.Conn, in installed, p *plan) (int, error) {
	t := n.table
	ops := 0
	c.AddTable(t) // no-op when it exists
	ops++
	base := &nftables.Chain{Name: n.baseChain(), Table: t}
	if in.base {
		c.FlushChain(base)
	} else {
		hook, prio, pol := nftables.ChainHookIngress, nftables.ChainPriority(ingressPriority), nftables.ChainPolicyAccept
		c.AddChain(&nftables.Chain{Name: base.Name, Table: t, Type: nftables.ChainTypeFilter,
			Hooknum: hook, Priority: &prio, Policy: &pol, Device: n.opts.Interface})
	}
	ops++
	for _, name := range in.oldBases {
		c.FlushChain(&nftables.Chain{Name: name, Table: t})
		ops++
	}
	for name := range in.chains {
		c.FlushChain(&nftables.Chain{Name: name, Table: t})
		ops++
	}
	for _, s := range in.sets { // after the rules that look them up are gone
		c.DelSet(s)
		ops++
	}
	wantChains, wantCounters := map[string]bool{}, map[string]bool{}
	for i := range p.mits {
		m := &p.mits[i]
		wantChains[m.chain4], wantChains[m.chain6] = true, true
		wantCounters[m.counter] = true
		for j := range m.rules {
			wantCounters[ruleCounterName(m.id, m.rules[j].Name)] = true
		}
	}
	aclObjects(p, wantChains, wantCounters)
	for _, name := range in.oldBases { // empty now, its maps are gone
		c.DelChain(&nftables.Chain{Name: name, Table: t})
		ops++
	}
	for name := range in.chains { // vmap elements referring to them went with the sets
		if !wantChains[name] {
			c.DelChain(&nftables.Chain{Name: name, Table: t})
			ops++
		}
	}
	for name := range in.counters {
		if !wantCounters[name] {
			c.DeleteObject(&nftables.CounterObj{Table: t, Name: name})
			ops++
		}
	}
	for name := range wantCounters {
		if !in.counters[name] {
			c.AddObj(&nftables.CounterObj{Table: t, Name: name})
			ops++
		}
	}
	b := &builder{table: t}
	maps := targetMaps(t, b)
	for i := range p.mits {
		m := &p.mits[i]
		for _, ch := range []string{m.chain4, m.chain6} {
			if !in.chains[ch] {
				c.AddChain(&nftables.Chain{Name: ch, Table: t})
				ops++
			}
		}
		maps.add(m)
		k, err := n.mitigationRules(c, b, m)
		if err != nil {
			return 0, err
		}
		ops += k
	}
	k, err := n.aclBatch(c, b, in, base, p) // ahead of the mitigations
	if err != nil {
		return 0, err
	}
	ops += k
	for _, tm := range maps {
		if len(tm.el) == 0 {
			continue // no lookup at all for a map that would be empty
		}
		if err := c.AddSet(tm.set, nil); err != nil {
			return 0, fmt.Errorf("scrub: set %s: %w", tm.set.Name, err)
		}
		ops++
		if err := addElems(c, tm.set, tm.el); err != nil {
			return 0, err
		}
		ops += len(tm.el)/elemChunk + 1
		c.AddRule(&nftables.Rule{Table: t, Chain: base, Exprs: dispatch(tm.set, tm.v6)})
		ops++
	}
	if n.opts.NoTrack {
		if err := n.notrackBatch(c, b, in.inet, p); err != nil {
			return 0, err
		}
		ops++
	} else if in.inet {
		c.DelTable(n.inetTable())
		ops++
	}
	return ops, nil
}

// targetMap is one verdict map of the ingress chain and its elements.
type targetMap struct {
	set *nftables.Set
	v6  bool
	el  []nftables.SetElement
}

// targetMapList holds the ingress chain's maps in lookup order: the host
// addresses (/32, /128) in hash maps, one lookup whatever their number, then
// the shorter prefixes in interval maps (a tree walk that grows with their
// number). Targets never overlap (compile refuses it), so a packet matches
// at most one element.
type targetMapList []*targetMap

func targetMaps(t *nftables.Table, b *builder) targetMapList {
	m := func(name string, v6, interval bool) *targetMap {
		key := nftables.TypeIPAddr
		if v6 {
			key = nftables.TypeIP6Addr
		}
		return &targetMap{v6: v6, set: &nftables.Set{Table: t, ID: b.id(), Name: name, Interval: interval, IsMap: true,
			KeyType: key, DataType: nftables.TypeVerdict}}
	}
	return targetMapList{m(hosts4Name, false, false), m(hosts6Name, true, false), m(set4Name, false, true), m(set6Name, true, true)}
}

// add maps every target of m to a goto into its chain: when the chain ends
// without a verdict the packet takes the ingress chain's policy (accept),
// with no further lookup.
func (l targetMapList) add(m *mitPlan) {
	for _, fam := range []struct {
		targets    []netip.Prefix
		chain      string
		hosts, net *targetMap
	}{{m.targets4, m.chain4, l[0], l[2]}, {m.targets6, m.chain6, l[1], l[3]}} {
		v := &expr.Verdict{Kind: expr.VerdictGoto, Chain: fam.chain}
		var nets []netip.Prefix
		for _, p := range fam.targets {
			if p.IsSingleIP() {
				fam.hosts.el = append(fam.hosts.el, nftables.SetElement{Key: p.Addr().AsSlice(), VerdictData: v})
			} else {
				nets = append(nets, p)
			}
		}
		el := prefixElems(nets)
		for i := range el {
			if !el[i].IntervalEnd {
				el[i].VerdictData = v
			}
		}
		fam.net.el = append(fam.net.el, el...)
	}
}

// mitigationRules fills the mitigation's two chains: its counter first, then
// its rules in order.
func (n *NFT) mitigationRules(c *nftables.Conn, b *builder, m *mitPlan) (int, error) {
	ops := 0
	for _, fam := range []struct {
		chain string
		v6    bool
	}{{m.chain4, false}, {m.chain6, true}} {
		ch := &nftables.Chain{Name: fam.chain, Table: n.table}
		c.AddRule(&nftables.Rule{Table: n.table, Chain: ch, Exprs: []expr.Any{
			&expr.Objref{Type: int(nftables.ObjTypeCounter), Name: m.counter}}})
		ops++
		for j := range m.rules {
			r := &m.rules[j]
			if !r.hasFamily(fam.v6) {
				continue
			}
			rs := b.rule(r, ruleCounterName(m.id, r.Name), fam.v6)
			for _, s := range rs.sets {
				if err := c.AddSet(s.set, s.elems); err != nil {
					return 0, fmt.Errorf("scrub: mitigation %q rule %q: %w", m.id, r.Name, err)
				}
				ops++
			}
			c.AddRule(&nftables.Rule{Table: n.table, Chain: ch, Exprs: rs.exprs})
			ops++
		}
	}
	return ops, nil
}

// Counters reads every named counter of the table and reports those of the
// mitigations and rules of the last Set.
func (n *NFT) Counters(ctx context.Context) (Counters, error) {
	if err := ctx.Err(); err != nil {
		return Counters{}, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	out := Counters{Mitigations: map[string]Count{}, Rules: map[string]map[string]Count{}}
	if n.last == nil {
		return out, nil
	}
	c, err := n.conn()
	if err != nil {
		return out, err
	}
	objs, err := c.GetObjects(n.table)
	if err != nil {
		return out, fmt.Errorf("scrub: read counters: %w", err)
	}
	vals := map[string]Count{}
	for _, o := range objs {
		if co, ok := o.(*nftables.CounterObj); ok {
			vals[co.Name] = Count{Packets: co.Packets, Bytes: co.Bytes}
		}
	}
	for _, m := range n.last.mits {
		out.Mitigations[m.id] = vals[m.counter]
		rc := map[string]Count{}
		for _, r := range m.rules {
			rc[r.Name] = vals[ruleCounterName(m.id, r.Name)]
		}
		out.Rules[m.id] = rc
	}
	if len(n.last.acls) > 0 {
		out.ACLs = aclCounters(n.last, vals)
	}
	return out, nil
}

// Close deletes the table and everything in it. A missing table is not an
// error.
func (n *NFT) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	c, err := n.conn()
	if err != nil {
		return err
	}
	in, err := n.read(c)
	if err != nil {
		return err
	}
	n.last = nil
	if in.inet {
		c.DelTable(n.inetTable())
	}
	if !in.exists && !in.inet {
		return nil
	}
	if in.exists {
		c.DelTable(n.table)
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("scrub: delete table %s: %w", n.table.Name, err)
	}
	return nil
}
