package scrub

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/levee-dots/levee/divert"
	"github.com/levee-dots/levee/scrub/agent"
)

// maxCountersBody bounds a node's counters answer.
const maxCountersBody = 64 << 20

// meter follows one mitigation's counters at one node: drop, the drop
// rule's; seen, the node mitigations' counters of every packet to the
// targets (ID and NamesID, each on its own so that one going away is not
// a reset of the other), the load offered to the node. Totals only grow: a
// node counter that went back (the rule was installed again, the node
// rebooted) counts again from zero.
type meter struct {
	drop rateMeter
	seen [2]rateMeter // ID, NamesID
	at   time.Time    // when last read
	// matched: a data-channel filter's entries, per Filter (acl.go).
	matched []rateMeter
}

// offered is the rate of every packet to the targets (0 while not read
// twice since the last failure).
func (m *meter) offered() (bps, pps uint64) {
	for _, s := range m.seen {
		bps, pps = bps+s.bps, pps+s.pps
	}
	return bps, pps
}

// rateMeter follows one cumulative counter.
type rateMeter struct {
	last, total countPair // the node's last value; what this backend counted
	bps, pps    uint64    // from the last two reads
	rated       bool      // bps and pps are from two reads
	avg         window    // the last AverageWindow of reads
}

// advance takes the counter's value cur, read at, dt after the last.
func (r *rateMeter) advance(cur countPair, at time.Time, dt time.Duration) {
	d := cur
	if cur.pkts >= r.last.pkts && cur.bytes >= r.last.bytes {
		d = countPair{cur.pkts - r.last.pkts, cur.bytes - r.last.bytes}
	} // else: counted again from zero
	r.total.pkts += d.pkts
	r.total.bytes += d.bytes
	r.last = cur
	if dt > 0 {
		r.pps = uint64(float64(d.pkts) / dt.Seconds())
		r.bps = uint64(float64(d.bytes) * 8 / dt.Seconds())
		r.rated = true
		r.avg.add(d, at, dt)
	}
}

type countPair struct{ pkts, bytes uint64 }

func (b *Backend) pollLoop(tick <-chan time.Time) {
	for {
		select {
		case <-b.stop:
			return
		case <-tick:
			ctx, cancel := context.WithTimeout(context.Background(), b.cfg.Timeout)
			go func() {
				select {
				case <-b.stop:
					cancel()
				case <-ctx.Done():
				}
			}()
			b.Poll(ctx)
			cancel()
		}
	}
}

// Poll reads every node's counters once, reports the measurements, sends
// the state again to a node that restarted or lost it, and reports the
// outcomes that changed (a node went away or came back).
func (b *Backend) Poll(ctx context.Context) {
	type read struct {
		c   agent.CountersResponse
		err error
		at  time.Time
	}
	reads := make([]read, len(b.nodes))
	var wg sync.WaitGroup
	for i, n := range b.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			reads[i].c, reads[i].err = b.counters(ctx, n)
			reads[i].at = b.opts.Now()
		}()
	}
	wg.Wait()
	b.mu.Lock()
	resend := false
	for i, n := range b.nodes {
		r := reads[i]
		if r.err != nil {
			if n.err == nil {
				b.log.Warn("node unreachable", "node", n.cfg.Name, "err", r.err)
			}
			n.err = r.err
			for _, byNode := range b.meters {
				if m := byNode[n.cfg.Name]; m != nil {
					for _, r := range []*rateMeter{&m.drop, &m.seen[0], &m.seen[1]} {
						r.bps, r.pps, r.rated = 0, 0, false // not measured now
					}
				}
			}
			continue
		}
		n.err = nil
		if r.c.Boot != n.boot || r.c.Generation != n.gen || n.acked < b.version {
			if n.boot != "" && r.c.Boot != n.boot {
				b.log.Info("node restarted: sending the state again", "node", n.cfg.Name, "boot", r.c.Boot)
			}
			n.acked = 0 // not (or no longer) the state we sent
			resend = true
		}
		b.measureLocked(n.cfg.Name, r.c, r.at)
		b.loadLocked(n)
	}
	samples := b.samplesLocked()
	b.mu.Unlock()
	if b.opts.Measurements != nil {
		for k, c := range samples {
			b.opts.Measurements(Name, k, c)
		}
	}
	if resend {
		b.push(ctx)
	}
	b.reportChanged()
}

func (b *Backend) counters(ctx context.Context, n *nodeState) (agent.CountersResponse, error) {
	var c agent.CountersResponse
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(n.cfg.URL, "/")+"/v1/counters", nil)
	if err != nil {
		return c, err
	}
	resp, err := n.client.Do(req)
	if err != nil {
		return c, unreachable(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return c, refusal(resp)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxCountersBody)).Decode(&c); err != nil {
		return c, fmt.Errorf("counters: %w", err)
	}
	return c, nil
}

// measureLocked takes one node's counters of the active mitigations.
func (b *Backend) measureLocked(node string, c agent.CountersResponse, at time.Time) {
	for k, d := range b.active {
		if isACL(d) {
			b.measureACLLocked(node, d, c, at)
			continue
		}
		id, nid := ID(k), NamesID(k)
		_, hasRules := c.Rules[id]
		_, hasMain := c.Mitigations[id]
		_, hasNames := c.Mitigations[nid]
		if !hasRules && !hasMain && !hasNames {
			continue // not installed there (yet)
		}
		drop := countPair{c.Rules[id][RuleName].Packets, c.Rules[id][RuleName].Bytes} // the drop rule (Mitigations)
		seen := [2]countPair{{c.Mitigations[id].Packets, c.Mitigations[id].Bytes}, {c.Mitigations[nid].Packets, c.Mitigations[nid].Bytes}}
		byNode := b.meters[k]
		if byNode == nil {
			byNode = map[string]*meter{}
			b.meters[k] = byNode
		}
		m := byNode[node]
		if m == nil {
			m = &meter{drop: rateMeter{last: drop, total: drop}, at: at}
			for i := range seen {
				m.seen[i] = rateMeter{last: seen[i], total: seen[i]}
			}
			byNode[node] = m
			continue
		}
		dt := at.Sub(m.at)
		m.drop.advance(drop, at, dt)
		for i := range seen {
			m.seen[i].advance(seen[i], at, dt)
		}
		m.at = at
	}
}

// samplesLocked sums every active mitigation's meters over the nodes.
func (b *Backend) samplesLocked() map[divert.Key]divert.Counters {
	out := map[divert.Key]divert.Counters{}
	for k := range b.active {
		byNode := b.meters[k]
		if len(byNode) == 0 {
			continue
		}
		var c divert.Counters
		for _, m := range byNode {
			c.PktsDropped += m.drop.total.pkts
			c.BytesDropped += m.drop.total.bytes
			c.PPSDropped += m.drop.pps
			c.BPSDropped += m.drop.bps
		}
		if isACL(b.active[k]) {
			c.Matched = make([]divert.FilterCount, len(b.active[k].Filters))
			for _, m := range byNode {
				for i := range min(len(m.matched), len(c.Matched)) {
					c.Matched[i].Packets += m.matched[i].total.pkts
					c.Matched[i].Bytes += m.matched[i].total.bytes
				}
			}
		}
		out[k] = c
	}
	return out
}
