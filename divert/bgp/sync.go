package bgp

import (
	"context"
	"errors"
	"fmt"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	gbgp "github.com/osrg/gobgp/v4/pkg/packet/bgp"

	"github.com/levee-dots/levee/divert"
	"github.com/levee-dots/levee/dots"
)

// Sync converges on exactly all (after a restart): stale keys are withdrawn,
// all are applied, and then the neighbors are added — with the graceful
// restart R bit when there was something to restore — so that routers see
// the full set before our End-of-RIB. The new routes go into the RIB in
// one AddPath call.
func (b *Backend) Sync(ctx context.Context, all []divert.Diversion) error {
	want := map[divert.Key]bool{}
	for _, d := range all {
		want[d.Key] = true
	}
	b.mu.Lock()
	var stale []divert.Key
	for k := range b.entries {
		if !want[k] {
			stale = append(stale, k)
		}
	}
	b.mu.Unlock()
	for _, k := range stale {
		_ = b.Withdraw(ctx, k)
	}
	var errs []error
	var pending []*route
	applied := make([]bool, len(all))
	for i, d := range all {
		p, err := b.checkedPlan(d)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", d.Key, err))
			b.report(d.Key, divert.Applied{Status: dots.StatusInProgress, Detail: "refused: " + err.Error()})
			continue
		}
		b.mu.Lock()
		if _, err := b.applyLocked(d, p, &pending); err != nil {
			errs = append(errs, err)
		}
		b.mu.Unlock()
		applied[i] = true
	}
	b.mu.Lock()
	if err := b.addPathsLocked(pending); err != nil {
		errs = append(errs, err)
	}
	results := make([]divert.Applied, len(all))
	for i, d := range all {
		if e := b.entries[d.Key]; applied[i] && e != nil {
			results[i] = b.stampLocked(e.applied)
		}
	}
	b.mu.Unlock()
	for i, d := range all {
		if applied[i] {
			b.report(d.Key, results[i])
		}
	}
	if err := b.Start(ctx, len(all) > 0); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (b *Backend) report(k divert.Key, a divert.Applied) {
	if b.updates != nil {
		b.updates(b.Name(), k, a)
	}
}

// addPathsLocked puts routes into the RIB with one AddPath call. GoBGP
// installs the good paths of a batch even when it refuses one and then
// returns only the error, so on error every path is added again alone
// (adding a path twice replaces it) to find the ones that fail; their
// routes are forgotten and the mitigations using them marked as failed.
func (b *Backend) addPathsLocked(routes []*route) error {
	if len(routes) == 0 {
		return nil
	}
	paths := make([]*apiutil.Path, len(routes))
	for i, r := range routes {
		paths[i] = r.path
	}
	if _, err := b.s.AddPath(apiutil.AddPathRequest{Paths: paths}); err == nil {
		b.log.Info("routes announced", "diverter", "bgp", "routes", len(routes))
		return nil
	}
	var errs []error
	for _, r := range routes {
		_, err := b.s.AddPath(apiutil.AddPathRequest{Paths: []*apiutil.Path{r.path}})
		if err == nil {
			continue
		}
		err = fmt.Errorf("announce %s: %w", r.text, err)
		errs = append(errs, err)
		for k := range r.refs {
			if e := b.entries[k]; e != nil {
				e.applied = divert.Applied{Status: dots.StatusInProgress, Detail: "announcing failed: " + err.Error()}
			}
		}
		b.forgetRouteLocked(r)
	}
	b.log.Info("routes announced", "diverter", "bgp", "routes", len(routes)-len(errs), "failed", len(errs))
	return errors.Join(errs...)
}

// maxNLRIBytes bounds the FlowSpec NLRI bytes that can share one UPDATE.
//
// GoBGP packs all paths of a family whose attributes are equal into as few
// UPDATE messages as fit, and with the Extended Message capability (RFC
// 8654), which GoBGP v4.8.0 always advertises and FRR also does, a message
// may be 65,535 octets long. FRR 8.4 refuses an MP_REACH_NLRI (or
// MP_UNREACH_NLRI) whose FlowSpec NLRI field is 4,096 octets or longer
// (FLOWSPEC_NLRI_SIZELIMIT_EXTENDED in bgp_flowspec.c: "BGP flowspec nlri
// length maximum reached"), treats it as a malformed UPDATE and resets the
// session. Thousands of rules with one action, sent together when a
// session comes up, therefore never reach FRR.
const maxNLRIBytes = 3500

// updateBuckets gives FlowSpec routes with equal attributes distinct
// MULTI_EXIT_DISC values, a bucket per at most maxNLRIBytes of NLRI, so
// that GoBGP cannot pack more than that into one UPDATE. Bucket 0 carries
// no MED, so a few hundred rules look as they always did. The MED only
// orders paths for the same NLRI from one AS, and dotsd is the only
// source of its rules.
type updateBuckets struct {
	used map[gbgp.Family][]int // NLRI bytes placed in each bucket
}

// place chooses r's bucket, the first with room, and tags its path.
func (u *updateBuckets) place(r *route) {
	if u.used == nil {
		u.used = map[gbgp.Family][]int{}
	}
	n := r.path.Nlri.Len()
	used := u.used[r.family]
	i := 0
	for i < len(used) && used[i]+n > maxNLRIBytes {
		i++
	}
	if i == len(used) {
		used = append(used, 0)
	}
	used[i] += n
	u.used[r.family] = used
	r.bucket = i
	attrs := make([]gbgp.PathAttributeInterface, 0, len(r.path.Attrs)+1)
	for _, a := range r.path.Attrs {
		if a.GetType() != gbgp.BGP_ATTR_TYPE_MULTI_EXIT_DISC {
			attrs = append(attrs, a)
		}
	}
	if i > 0 {
		attrs = append(attrs, gbgp.NewPathAttributeMultiExitDisc(uint32(i)))
	}
	p := *r.path
	p.Attrs = attrs
	r.path = &p
}

// release gives r's bytes back to its bucket.
func (u *updateBuckets) release(r *route) {
	if used := u.used[r.family]; r.bucket < len(used) {
		used[r.bucket] -= r.path.Nlri.Len()
	}
}

// withdrawWindow bounds the FlowSpec NLRI bytes of withdrawals that GoBGP
// may pack into one MP_UNREACH_NLRI: its send loop merges every queued
// update into one pass, so a burst of withdrawals (many mitigations ending
// together) would reach FRR's 4,096-octet limit as an announcement burst
// does. Withdrawals wait, once a window's bytes are queued, until every
// established neighbor that gets FlowSpec has sent another UPDATE (or 2 s
// passed). GoBGP does not say when a queued update was sent, so this is a
// bound by timing, not a guarantee: a pass that started before the wait
// may leave a window queued to join the next one, and three windows still
// fit under FRR's limit. Without it, withdrawing 10,000 rules in a loop
// can give FRR an MP_UNREACH_NLRI of more than 4,096 octets.
const withdrawWindow = maxNLRIBytes / 3

type withdrawPacer struct {
	bytes int               // FlowSpec NLRI bytes withdrawn in this window
	last  time.Time         // of the last withdrawal
	sent  map[string]uint64 // UPDATEs sent per neighbor when the window began
}

// paceWithdrawLocked is called before a FlowSpec withdrawal of n bytes.
func (b *Backend) paceWithdrawLocked(n int) {
	w := &b.pacer
	now := time.Now()
	if now.Sub(w.last) > time.Second {
		w.bytes, w.sent = 0, nil // anything earlier has been sent
	}
	w.last = now
	if w.bytes+n > withdrawWindow && w.sent != nil {
		deadline := now.Add(2 * time.Second)
		for !b.sentSince(w.sent) && time.Now().Before(deadline) {
			time.Sleep(2 * time.Millisecond)
		}
		w.bytes, w.sent = 0, nil
	}
	if w.sent == nil {
		w.sent = b.updatesSent(b.getsFlowSpecPeer)
	}
	w.bytes += n
}

// updatesSent reads the UPDATE counters of the established neighbors for
// which gets is true (all of them for nil).
func (b *Backend) updatesSent(gets func(*peerState) bool) map[string]uint64 {
	out := map[string]uint64{}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = b.s.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) {
		if p.GetState().GetSessionState() == api.PeerState_SESSION_STATE_ESTABLISHED {
			addr := p.GetConf().GetNeighborAddress()
			if ps, ok := b.peers[addr]; ok && (gets == nil || gets(ps)) {
				out[addr] = p.GetState().GetMessages().GetSent().GetUpdate()
			}
		}
	})
	return out
}

// getsFlowSpecPeer is getsFlowSpec for updatesSent.
func (b *Backend) getsFlowSpecPeer(ps *peerState) bool { return b.getsFlowSpec(ps.n) }

// getsRoute reports whether the export policy sends r to the neighbor and
// the neighbor negotiated its family.
func (b *Backend) getsRoute(r *route) func(*peerState) bool {
	return func(ps *peerState) bool {
		if !ps.negotiated[r.family] {
			return false
		}
		if isFlowSpec(r.family) {
			return b.getsFlowSpec(ps.n)
		}
		return ps.n.receives(r.kind)
	}
}

// sentSince reports whether every neighbor of before sent an UPDATE since
// (or is no longer established).
func (b *Backend) sentSince(before map[string]uint64) bool {
	now := b.updatesSent(nil)
	for addr, n := range before {
		if m, up := now[addr]; up && m <= n {
			return false
		}
	}
	return true
}
