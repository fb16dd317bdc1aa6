package bgp

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/osrg/gobgp/v4/pkg/apiutil"
	gbgp "github.com/osrg/gobgp/v4/pkg/packet/bgp"

	"github.com/levee-dots/levee/divert"
	"github.com/levee-dots/levee/dots"
)

// evaluateLocked decides the status of an entry: 2 only when, for every
// kind and family it needs, an established neighbor that receives the kind
// has negotiated the family. The detail names the neighbors that have each
// group of routes and, by name, every neighbor that should have them
// (receives the kind, has the family configured) but is down or did not
// negotiate the family.
func (b *Backend) evaluateLocked(e *entry) divert.Applied {
	if len(e.routes) == 0 {
		return e.applied
	}
	groups := map[routeGroup][]string{}
	for _, id := range e.routes {
		r := b.routes[id]
		g := routeGroup{r.kind, r.family}
		groups[g] = append(groups[g], r.text)
	}
	var parts, missing []string
	for _, g := range sortedGroups(groups) {
		var to, why, lacking []string
		for _, addr := range sortedPeers(b.peers) {
			ps := b.peers[addr]
			if !ps.n.receives(g.kind) || !ps.n.hasFamily(g.family) {
				continue
			}
			switch {
			case !ps.established:
				why = append(why, ps.n.Name+" is not established")
				lacking = append(lacking, ps.n.Name+" (not established)")
			case !ps.negotiated[g.family]:
				why = append(why, ps.n.Name+" did not negotiate "+familyName(g.family))
				lacking = append(lacking, ps.n.Name+" (did not negotiate "+familyName(g.family)+")")
			default:
				to = append(to, ps.n.Name)
			}
		}
		if len(to) == 0 {
			if len(why) == 0 {
				why = []string{fmt.Sprintf("no neighbor receives %s with %s configured", g.kind, familyName(g.family))}
			}
			missing = append(missing, fmt.Sprintf("no neighbor can take %s (%s)", familyName(g.family), strings.Join(why, ", ")))
			continue
		}
		part := fmt.Sprintf("%s %s -> %s", g.kind, strings.Join(groups[g], ", "), strings.Join(to, ", "))
		if len(lacking) > 0 {
			part += "; not at " + strings.Join(lacking, ", ")
		}
		parts = append(parts, part)
	}
	if e.note != "" {
		parts = append(parts, e.note)
	}
	switch {
	case b.cfg.DryRun:
		return divert.Applied{Status: dots.StatusInProgress, Detail: "dry-run: routes logged, not announced: " + strings.Join(allTexts(groups), ", ")}
	case len(missing) > 0:
		return divert.Applied{Status: dots.StatusInProgress, Detail: strings.Join(append(missing, parts...), "; ")}
	}
	return divert.Applied{Status: dots.StatusMitigated, Detail: strings.Join(parts, "; ")}
}

// routeGroup is the routes of one kind in one family.
type routeGroup struct {
	kind   string
	family gbgp.Family
}

func allTexts(groups map[routeGroup][]string) []string {
	var out []string
	for _, g := range sortedGroups(groups) {
		out = append(out, groups[g]...)
	}
	return out
}

func sortedGroups(m map[routeGroup][]string) []routeGroup {
	out := make([]routeGroup, 0, len(m))
	for g := range m {
		out = append(out, g)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].family != out[j].family {
			return out[i].family < out[j].family
		}
		return out[i].kind < out[j].kind
	})
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
		ps.sessions++
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
			changes = append(changes, change{k, b.stampLocked(a)})
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
	// Sessions counts the times the session reached ESTABLISHED since
	// start: more than one means it was reset.
	Sessions int `json:"sessions_established"`
}

// Neighbors reports each neighbor's state.
func (b *Backend) Neighbors() []NeighborStatus {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []NeighborStatus
	for _, addr := range sortedPeers(b.peers) {
		ps := b.peers[addr]
		ns := NeighborStatus{Name: ps.n.Name, Address: addr, PeerAS: ps.n.PeerAS, Established: ps.established, Receives: ps.n.Receives, Sessions: ps.sessions}
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
