package dashboard

import (
	"net/http"
	"strings"

	"github.com/levee-dots/levee/divert/bgp"
)

// announcedJSON is one mitigation's routes at a neighbor, as the BGP
// backend's outcome for it says.
type announcedJSON struct {
	CUID   string `json:"cuid"`
	MID    uint32 `json:"mid"`
	Routes string `json:"routes"` // e.g. "flowspec {dst 203.0.113.10/32 proto =6} discard"
}

type neighborJSON struct {
	bgp.NeighborStatus
	Announced []announcedJSON `json:"announced"`
}

type bgpJSON struct {
	Configured bool           `json:"configured"`
	Neighbors  []neighborJSON `json:"neighbors"`
}

// bgpBackend is the BGP backend's name in the mitigations' notes.
func (d *Dashboard) bgpBackend() string {
	if n, ok := d.opts.Neighbors.(interface{ Name() string }); ok {
		return n.Name()
	}
	return "bgp"
}

// bgp answers the neighbors' state and, for each, the routes of each
// mitigation it was sent.
func (d *Dashboard) bgp(w http.ResponseWriter, _ *http.Request) {
	out := bgpJSON{Neighbors: []neighborJSON{}}
	if d.opts.Neighbors == nil {
		writeJSON(w, http.StatusOK, out)
		return
	}
	out.Configured = true
	at := map[string][]announcedJSON{}
	name := d.bgpBackend()
	for _, r := range d.opts.Service.AllMitigations() {
		for _, o := range splitNote(r.Note, d.opts.Backends) {
			if o.Backend != name {
				continue
			}
			for _, g := range routeGroups(o.Detail) {
				for _, n := range g.to {
					at[n] = append(at[n], announcedJSON{CUID: r.CUID, MID: r.MID, Routes: g.routes})
				}
			}
		}
	}
	for _, n := range d.opts.Neighbors.Neighbors() {
		a := at[n.Name]
		if a == nil || !n.Established {
			a = []announcedJSON{}
		}
		out.Neighbors = append(out.Neighbors, neighborJSON{NeighborStatus: n, Announced: a})
	}
	writeJSON(w, http.StatusOK, out)
}

type routeGroup struct {
	routes string
	to     []string
}

// routeGroups reads the BGP backend's detail of one mitigation: its parts
// "KIND ROUTES -> NEIGHBOR, NEIGHBOR" (divert/bgp status.go), leaving out
// the parts that say what is missing.
func routeGroups(detail string) []routeGroup {
	var out []routeGroup
	for _, part := range strings.Split(detail, "; ") {
		i := strings.LastIndex(part, " -> ")
		if i < 0 {
			continue
		}
		out = append(out, routeGroup{routes: part[:i], to: strings.Split(part[i+len(" -> "):], ", ")})
	}
	return out
}
