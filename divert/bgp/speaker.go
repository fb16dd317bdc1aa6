package bgp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	gbgp "github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"

	"github.com/levee-dots/levee/divert"
	"github.com/levee-dots/levee/dots"
)

// Backend is the embedded BGP speaker.
type Backend struct {
	cfg     Config
	log     *slog.Logger
	updates divert.Updates
	s       *server.BgpServer

	mu      sync.Mutex
	entries map[divert.Key]*entry
	routes  map[string]*route
	peers   map[string]*peerState // by neighbor address
	started bool
	cancel  context.CancelFunc
}

type entry struct {
	key     divert.Key
	domain  string
	kind    string
	routes  []string // route ids
	applied divert.Applied
}

type route struct {
	id     string // family + NLRI text
	kind   string
	family gbgp.Family
	path   *apiutil.Path
	text   string // for logs and status
	refs   map[divert.Key]bool
}

type peerState struct {
	n           Neighbor
	established bool
	negotiated  map[gbgp.Family]bool
}

// New starts the speaker (no neighbors yet: they are added by Start or the
// first Sync, after the active routes are back in the RIB).
func New(ctx context.Context, cfg Config, log *slog.Logger, updates divert.Updates) (*Backend, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	lv := new(slog.LevelVar)
	lv.Set(slog.LevelWarn)
	b := &Backend{cfg: cfg, log: log, updates: updates, entries: map[divert.Key]*entry{}, routes: map[string]*route{}, peers: map[string]*peerState{}}
	b.s = server.NewBgpServer(server.LoggerOption(log.With("diverter", "bgp"), lv))
	go b.s.Serve()
	port := cfg.ListenPort
	if port == 0 {
		port = -1
	}
	if err := b.s.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{Asn: cfg.LocalAS, RouterId: cfg.RouterID,
		ListenPort: port, ListenAddresses: cfg.ListenAddresses}}); err != nil {
		b.s.Stop()
		return nil, fmt.Errorf("divert/bgp: start speaker: %w", err)
	}
	if err := b.installPolicy(ctx); err != nil {
		b.s.Stop()
		return nil, err
	}
	wctx, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	if err := b.s.WatchEvent(wctx, server.WatchEventMessageCallbacks{OnPeerUpdate: b.onPeer}, server.WatchPeer()); err != nil {
		cancel()
		b.s.Stop()
		return nil, fmt.Errorf("divert/bgp: watch peers: %w", err)
	}
	for _, n := range cfg.Neighbors {
		b.peers[n.Address] = &peerState{n: n, negotiated: map[gbgp.Family]bool{}}
	}
	return b, nil
}

// Name implements divert.Diverter.
func (b *Backend) Name() string { return "bgp" }

// Start adds the neighbors. localRestarting sets the graceful-restart R bit
// (the speaker came back with routes to refresh).
func (b *Backend) Start(ctx context.Context, localRestarting bool) error {
	b.mu.Lock()
	if b.started {
		b.mu.Unlock()
		return nil
	}
	b.started = true
	b.mu.Unlock()
	var errs []error
	for _, n := range b.cfg.Neighbors {
		if err := b.s.AddPeer(ctx, &api.AddPeerRequest{Peer: b.peerConfig(n, localRestarting)}); err != nil {
			errs = append(errs, fmt.Errorf("divert/bgp: add neighbor %s: %w", n.Name, err))
		}
	}
	return errors.Join(errs...)
}

func (b *Backend) peerConfig(n Neighbor, localRestarting bool) *api.Peer {
	p := &api.Peer{
		Conf:      &api.PeerConf{NeighborAddress: n.Address, PeerAsn: n.PeerAS, AuthPassword: n.Password},
		Transport: &api.Transport{LocalAddress: n.LocalAddress, RemotePort: n.Port},
		Timers:    &api.Timers{Config: &api.TimersConfig{ConnectRetry: 5, HoldTime: 30, KeepaliveInterval: 10}},
	}
	for _, f := range n.Families {
		fam := familyByName[f]
		af := &api.AfiSafi{Config: &api.AfiSafiConfig{Family: apiutil.ToApiFamily(fam.Afi(), fam.Safi()), Enabled: true}}
		if b.cfg.GracefulRestart.Enabled {
			af.MpGracefulRestart = &api.MpGracefulRestart{Config: &api.MpGracefulRestartConfig{Enabled: true}}
		}
		p.AfiSafis = append(p.AfiSafis, af)
	}
	if b.cfg.GracefulRestart.Enabled {
		p.GracefulRestart = &api.GracefulRestart{Enabled: true, RestartTime: b.cfg.GracefulRestart.RestartTime, LocalRestarting: localRestarting}
	}
	return p
}

var familyByName = map[string]gbgp.Family{
	"ipv4-unicast": gbgp.RF_IPv4_UC, "ipv6-unicast": gbgp.RF_IPv6_UC,
	"ipv4-flowspec": gbgp.RF_FS_IPv4_UC, "ipv6-flowspec": gbgp.RF_FS_IPv6_UC,
}

func familyName(f gbgp.Family) string {
	for n, fam := range familyByName {
		if fam == f {
			return n
		}
	}
	return f.String()
}

// Close withdraws everything by ending the sessions (a Cease) and stops the speaker.
func (b *Backend) Close() error {
	b.cancel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := b.s.StopBgp(ctx, &api.StopBgpRequest{})
	b.s.Stop()
	return err
}

// Check refuses, before the request is accepted, what policy or the safety
// rails forbid (implements divert.Checker).
func (b *Backend) Check(d divert.Diversion) error {
	_, err := b.checkedPlan(d)
	return err
}

// checkedPlan builds d's routes and applies the safety rails to them.
func (b *Backend) checkedPlan(d divert.Diversion) (*plan, error) {
	p, err := b.plan(d)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	n := len(p.routes)
	for k, e := range b.entries {
		if e.domain == d.Domain && k != d.Key {
			n += len(e.routes)
		}
	}
	if n > b.cfg.MaxRoutesPerDomain {
		return nil, fmt.Errorf("client domain %q would have %d routes, more than the %d this server announces for one domain", d.Domain, n, b.cfg.MaxRoutesPerDomain)
	}
	return p, nil
}

// Apply announces the routes of d (idempotent upsert by key).
func (b *Backend) Apply(ctx context.Context, d divert.Diversion) (divert.Applied, error) {
	p, err := b.checkedPlan(d)
	if err != nil {
		return divert.Applied{Status: dots.StatusInProgress, Detail: "refused: " + err.Error()}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if a, over := b.overBudgetLocked(d.Key, p); over {
		b.log.Warn("flowspec budget exceeded", "cuid", d.Key.CUID, "mid", d.Key.MID, "detail", a.Detail)
		b.entries[d.Key] = &entry{key: d.Key, domain: d.Domain, kind: p.kind, applied: a}
		return a, nil
	}
	old := b.entries[d.Key]
	e := &entry{key: d.Key, domain: d.Domain, kind: p.kind}
	var errs []error
	for _, r := range p.routes {
		if err := b.addRefLocked(d.Key, r); err != nil {
			errs = append(errs, err)
			continue
		}
		e.routes = append(e.routes, r.id)
	}
	if old != nil {
		for _, id := range old.routes {
			if !contains(e.routes, id) {
				b.dropRefLocked(d.Key, id)
			}
		}
	}
	e.applied = b.evaluateLocked(e)
	if err := errors.Join(errs...); err != nil {
		e.applied = divert.Applied{Status: dots.StatusInProgress, Detail: "announcing failed: " + err.Error()}
	}
	b.entries[d.Key] = e
	return e.applied, errors.Join(errs...)
}

func contains(ids []string, id string) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

func (b *Backend) addRefLocked(k divert.Key, r *route) error {
	if cur, ok := b.routes[r.id]; ok {
		cur.refs[k] = true
		return nil
	}
	if b.cfg.DryRun {
		b.log.Info("dry-run: would announce", "route", r.text, "cuid", k.CUID, "mid", k.MID)
	} else {
		if _, err := b.s.AddPath(apiutil.AddPathRequest{Paths: []*apiutil.Path{r.path}}); err != nil {
			return fmt.Errorf("announce %s: %w", r.text, err)
		}
		b.log.Info("route announced", "route", r.text, "cuid", k.CUID, "mid", k.MID)
	}
	r.refs = map[divert.Key]bool{k: true}
	b.routes[r.id] = r
	return nil
}

func (b *Backend) dropRefLocked(k divert.Key, id string) {
	r, ok := b.routes[id]
	if !ok {
		return
	}
	delete(r.refs, k)
	if len(r.refs) > 0 {
		return
	}
	delete(b.routes, id)
	if b.cfg.DryRun {
		b.log.Info("dry-run: would withdraw", "route", r.text)
		return
	}
	if err := b.s.DeletePath(apiutil.DeletePathRequest{Paths: []*apiutil.Path{r.path}}); err != nil {
		b.log.Error("withdraw failed", "route", r.text, "err", err)
		return
	}
	b.log.Info("route withdrawn", "route", r.text)
}

// Withdraw removes the routes of k that no other mitigation needs.
func (b *Backend) Withdraw(_ context.Context, k divert.Key) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.entries[k]
	if !ok {
		return nil
	}
	for _, id := range e.routes {
		b.dropRefLocked(k, id)
	}
	delete(b.entries, k)
	return nil
}

// Sync converges on exactly all (after a restart): stale keys are withdrawn,
// all are applied, and then the neighbors are added — with the graceful
// restart R bit when there was something to restore — so that routers see
// the full set before our End-of-RIB.
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
	for _, d := range all {
		if a, err := b.Apply(ctx, d); err != nil {
			errs = append(errs, err)
		} else if b.updates != nil {
			b.updates(b.Name(), d.Key, a)
		}
	}
	if err := b.Start(ctx, len(all) > 0); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// overBudgetLocked reports status 4 when the new FlowSpec rules would exceed
// a receiving neighbor's budget.
func (b *Backend) overBudgetLocked(k divert.Key, p *plan) (divert.Applied, bool) {
	added := 0
	for _, r := range p.routes {
		if r.kind == KindFlowSpec || isFlowSpec(r.family) {
			if cur, ok := b.routes[r.id]; !ok || !cur.refs[k] {
				added++
			}
		}
	}
	if added == 0 {
		return divert.Applied{}, false
	}
	total := 0
	for _, r := range b.routes {
		if isFlowSpec(r.family) {
			total++
		}
	}
	for _, ps := range b.peers {
		if !ps.n.receives(KindFlowSpec) && !(p.kind == KindScrubbing && ps.n.receives(KindScrubbing)) {
			continue
		}
		if total+added > ps.n.FlowSpecBudget {
			return divert.Applied{Status: dots.StatusExceededCapability,
				Detail: fmt.Sprintf("%d FlowSpec rules would exceed the budget of %d for neighbor %s; nothing announced", total+added, ps.n.FlowSpecBudget, ps.n.Name)}, true
		}
	}
	return divert.Applied{}, false
}

func isFlowSpec(f gbgp.Family) bool { return f == gbgp.RF_FS_IPv4_UC || f == gbgp.RF_FS_IPv6_UC }

func (n Neighbor) receives(kind string) bool {
	for _, r := range n.Receives {
		if r == kind {
			return true
		}
	}
	return false
}

func (n Neighbor) hasFamily(f gbgp.Family) bool {
	for _, name := range n.Families {
		if familyByName[name] == f {
			return true
		}
	}
	return false
}

// evaluateLocked decides the status of an entry: 2 only when, for every
// family it needs, an established neighbor that receives its kind has
// negotiated that family.
func (b *Backend) evaluateLocked(e *entry) divert.Applied {
	if len(e.routes) == 0 {
		return e.applied
	}
	fams := map[gbgp.Family][]string{}
	for _, id := range e.routes {
		r := b.routes[id]
		fams[r.family] = append(fams[r.family], r.text)
	}
	var parts, missing []string
	for _, f := range sortedFamilies(fams) {
		var to, why []string
		for _, addr := range sortedPeers(b.peers) {
			ps := b.peers[addr]
			if !ps.n.receives(e.kind) {
				continue
			}
			switch {
			case !ps.established:
				why = append(why, ps.n.Name+" is not established")
			case !ps.negotiated[f]:
				why = append(why, ps.n.Name+" did not negotiate "+familyName(f))
			default:
				to = append(to, ps.n.Name)
			}
		}
		if len(to) == 0 {
			missing = append(missing, fmt.Sprintf("no neighbor can take %s (%s)", familyName(f), strings.Join(why, ", ")))
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %s -> %s", e.kind, strings.Join(fams[f], ", "), strings.Join(to, ", ")))
	}
	switch {
	case b.cfg.DryRun:
		return divert.Applied{Status: dots.StatusInProgress, Detail: "dry-run: routes logged, not announced: " + strings.Join(allTexts(fams), ", ")}
	case len(missing) > 0:
		return divert.Applied{Status: dots.StatusInProgress, Detail: strings.Join(append(missing, parts...), "; ")}
	}
	return divert.Applied{Status: dots.StatusMitigated, Detail: strings.Join(parts, "; ")}
}

func allTexts(fams map[gbgp.Family][]string) []string {
	var out []string
	for _, f := range sortedFamilies(fams) {
		out = append(out, fams[f]...)
	}
	return out
}

func sortedFamilies(m map[gbgp.Family][]string) []gbgp.Family {
	out := make([]gbgp.Family, 0, len(m))
	for f := range m {
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func sortedPeers(m map[string]*peerState) []string {
	out := make([]string, 0, len(m))
	for a := range m {
		out = append(out, a)
	}
	sort.Strings(out)
	return out
}

// onPeer follows neighbor state and re-evaluates every mitigation when a
// neighbor comes up or goes down.
func (b *Backend) onPeer(ev *apiutil.WatchEventMessage_PeerEvent, _ time.Time) {
	if ev.Type != apiutil.PEER_EVENT_STATE {
		return
	}
	st := ev.Peer.State
	addr := st.NeighborAddress.String()
	up := st.SessionState == gbgp.BGP_FSM_ESTABLISHED
	b.mu.Lock()
	ps, ok := b.peers[addr]
	if !ok || (!up && !ps.established) {
		b.mu.Unlock()
		return
	}
	ps.established = up
	ps.negotiated = map[gbgp.Family]bool{}
	if up {
		for _, c := range st.RemoteCap {
			if mp, ok := c.(*gbgp.CapMultiProtocol); ok && ps.n.hasFamily(mp.CapValue) {
				ps.negotiated[mp.CapValue] = true
			}
		}
	}
	type change struct {
		k divert.Key
		a divert.Applied
	}
	var changes []change
	for k, e := range b.entries {
		if e.applied.Status == dots.StatusExceededCapability {
			continue
		}
		a := b.evaluateLocked(e)
		if a != e.applied {
			e.applied = a
			changes = append(changes, change{k, a})
		}
	}
	b.mu.Unlock()
	var fams []string
	for f := range ps.negotiated {
		fams = append(fams, familyName(f))
	}
	sort.Strings(fams)
	if up {
		b.log.Info("bgp neighbor established", "peer", ps.n.Name, "addr", addr, "families", fams)
		for _, f := range ps.n.Families {
			if !ps.negotiated[familyByName[f]] {
				b.log.Error("bgp neighbor did not negotiate a configured family: routes of that family will not reach it", "peer", ps.n.Name, "family", f)
			}
		}
	} else {
		b.log.Warn("bgp neighbor down", "peer", ps.n.Name, "addr", addr, "state", st.SessionState.String())
	}
	if b.updates != nil {
		for _, c := range changes {
			b.updates(b.Name(), c.k, c.a)
		}
	}
}

// NeighborStatus is what `dotsd bgp neighbors` shows.
type NeighborStatus struct {
	Name        string   `json:"name"`
	Address     string   `json:"address"`
	PeerAS      uint32   `json:"peer_as"`
	Established bool     `json:"established"`
	Negotiated  []string `json:"negotiated_families"`
	Receives    []string `json:"receives"`
	Routes      int      `json:"routes_announced"`
}

// Neighbors reports each neighbor's state.
func (b *Backend) Neighbors() []NeighborStatus {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []NeighborStatus
	for _, addr := range sortedPeers(b.peers) {
		ps := b.peers[addr]
		ns := NeighborStatus{Name: ps.n.Name, Address: addr, PeerAS: ps.n.PeerAS, Established: ps.established, Receives: ps.n.Receives}
		for f := range ps.negotiated {
			ns.Negotiated = append(ns.Negotiated, familyName(f))
		}
		sort.Strings(ns.Negotiated)
		if ps.established {
			for _, r := range b.routes {
				if ps.n.receives(r.kind) && ps.negotiated[r.family] {
					ns.Routes++
				}
			}
		}
		out = append(out, ns)
	}
	return out
}
