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

// meter follows one mitigation's drop counters at one node. total only
// grows: a node counter that went back (the rule was installed again, the
// node rebooted) counts again from zero.
type meter struct {
	last     countPair // the node's last value
	total    countPair // what this backend counted
	at       time.Time // when last was read
	bps, pps uint64    // from the last two reads
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
					m.bps, m.pps = 0, 0 // not measured now
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
	for k := range b.active {
		id := ID(k)
		rules, ok := c.Rules[id]
		if !ok {
			continue // not installed there (yet)
		}
		var cur countPair
		for name, cnt := range rules {
			if name == RuleName { // the drop rule (Mitigation)
				cur.pkts += cnt.Packets
				cur.bytes += cnt.Bytes
			}
		}
		byNode := b.meters[id]
		if byNode == nil {
			byNode = map[string]*meter{}
			b.meters[id] = byNode
		}
		m := byNode[node]
		if m == nil {
			byNode[node] = &meter{last: cur, total: cur, at: at}
			continue
		}
		var d countPair
		if cur.pkts >= m.last.pkts && cur.bytes >= m.last.bytes {
			d = countPair{cur.pkts - m.last.pkts, cur.bytes - m.last.bytes}
		} else {
			d = cur // counted again from zero
		}
		m.total.pkts += d.pkts
		m.total.bytes += d.bytes
		if dt := at.Sub(m.at); dt > 0 {
			m.pps = uint64(float64(d.pkts) / dt.Seconds())
			m.bps = uint64(float64(d.bytes) * 8 / dt.Seconds())
		}
		m.last, m.at = cur, at
	}
}

// samplesLocked sums every active mitigation's meters over the nodes.
func (b *Backend) samplesLocked() map[divert.Key]divert.Counters {
	out := map[divert.Key]divert.Counters{}
	for k := range b.active {
		byNode := b.meters[ID(k)]
		if len(byNode) == 0 {
			continue
		}
		var c divert.Counters
		for _, m := range byNode {
			c.PktsDropped += m.total.pkts
			c.BytesDropped += m.total.bytes
			c.PPSDropped += m.pps
			c.BPSDropped += m.bps
		}
		out[k] = c
	}
	return out
}
