package dashboard

import (
	"cmp"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/levee-dots/levee/divert/scrub"
	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsserver/mitigation"
)

// countersJSON are a mitigation's measured counters.
type countersJSON struct {
	BytesDropped uint64 `json:"bytes_dropped"`
	PktsDropped  uint64 `json:"pkts_dropped"`
	BPSDropped   uint64 `json:"bps_dropped"`
	PPSDropped   uint64 `json:"pps_dropped"`
}

// mitigationJSON is one mitigation as the pages show it.
type mitigationJSON struct {
	CUID       string        `json:"cuid"`
	MID        uint32        `json:"mid"`
	Domain     string        `json:"domain"`
	Status     int           `json:"status"`
	StatusName string        `json:"status_name"`
	Active     bool          `json:"active"`
	Targets    []string      `json:"targets"`
	Ports      []string      `json:"ports,omitempty"`
	Protocols  []uint32      `json:"protocols,omitempty"`
	FQDNs      []string      `json:"fqdns,omitempty"`
	Lifetime   int64         `json:"lifetime"`  // seconds granted, -1 indefinite
	Remaining  int64         `json:"remaining"` // seconds left, -1 indefinite
	Start      *time.Time    `json:"start,omitempty"`
	Trigger    bool          `json:"trigger"`
	Attack     string        `json:"attack_status,omitempty"`
	Note       string        `json:"note,omitempty"`
	Counters   *countersJSON `json:"counters"` // null: not measured
}

func (d *Dashboard) itemOf(r *mitigation.Record) mitigationJSON {
	m := mitigationJSON{CUID: r.CUID, MID: r.MID, Domain: r.Domain, Status: int(r.Status), StatusName: r.Status.String(),
		Active: r.Active(), Targets: make([]string, 0, len(r.Prefixes)), Protocols: r.Scope.TargetProtocol, FQDNs: r.Scope.TargetFQDN,
		Lifetime: r.Lifetime, Remaining: r.Remaining(d.now()), Trigger: r.Trigger, Note: r.Note}
	for _, p := range r.Prefixes {
		m.Targets = append(m.Targets, p.String())
	}
	for _, pr := range r.Scope.TargetPortRange {
		if pr.UpperPort != nil && *pr.UpperPort != pr.LowerPort {
			m.Ports = append(m.Ports, strconv.Itoa(int(pr.LowerPort))+"-"+strconv.Itoa(int(*pr.UpperPort)))
		} else {
			m.Ports = append(m.Ports, strconv.Itoa(int(pr.LowerPort)))
		}
	}
	if !r.Start.IsZero() {
		t := r.Start
		m.Start = &t
	}
	if r.AttackStatus != 0 {
		m.Attack = r.AttackStatus.String()
	}
	if c := r.Counters; c != nil {
		m.Counters = &countersJSON{c.BytesDropped, c.PktsDropped, c.BPSDropped, c.PPSDropped}
	}
	return m
}

// sampleJSON is one point of a plot.
type sampleJSON struct {
	CUID  string `json:"cuid,omitempty"`
	MID   uint32 `json:"mid"`
	At    int64  `json:"t"` // Unix milliseconds
	BPS   uint64 `json:"bps"`
	PPS   uint64 `json:"pps"`
	Bytes uint64 `json:"bytes"`
	Pkts  uint64 `json:"pkts"`
}

func sampleOf(k mitigation.Key, s Sample) sampleJSON {
	return sampleJSON{CUID: k.CUID, MID: k.MID, At: s.At.UnixMilli(), BPS: s.BPS, PPS: s.PPS, Bytes: s.Bytes, Pkts: s.Pkts}
}

// outcomeJSON is what one backend applied for a mitigation.
type outcomeJSON struct {
	Backend string `json:"backend"` // "" when the note is the service's own
	Detail  string `json:"detail"`
}

// splitNote cuts a mitigation's combined note ("bgp: …; scrub: …") into
// the parts of each backend.
func splitNote(note string, backends []string) []outcomeJSON {
	if note == "" {
		return []outcomeJSON{}
	}
	type cut struct {
		at      int
		backend string
	}
	var cuts []cut
	for _, b := range backends {
		p := b + ": "
		for i := 0; i < len(note); {
			j := strings.Index(note[i:], p)
			if j < 0 {
				break
			}
			at := i + j
			if at == 0 || strings.HasSuffix(note[:at], "; ") {
				cuts = append(cuts, cut{at, b})
			}
			i = at + len(p)
		}
	}
	slices.SortFunc(cuts, func(a, b cut) int { return cmp.Compare(a.at, b.at) })
	if len(cuts) == 0 || cuts[0].at != 0 {
		cuts = append([]cut{{0, ""}}, cuts...) // the service's own words first
	}
	out := make([]outcomeJSON, 0, len(cuts))
	for i, c := range cuts {
		end := len(note)
		if i+1 < len(cuts) {
			end = cuts[i+1].at
		}
		text := note[c.at:end]
		if c.backend != "" {
			text = text[len(c.backend)+2:]
		}
		text = strings.TrimSuffix(text, "; ")
		if text != "" {
			out = append(out, outcomeJSON{Backend: c.backend, Detail: text})
		}
	}
	return out
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func apiError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

type statusCount struct {
	Status int    `json:"status"`
	Name   string `json:"name"`
	Count  int    `json:"count"`
}

type overviewJSON struct {
	Now      time.Time `json:"now"`
	Sessions *struct {
		Clients  int `json:"clients"`
		Sessions int `json:"sessions"`
	} `json:"sessions"` // null: not counted
	Mitigations struct {
		Total    int           `json:"total"`
		Active   int           `json:"active"`
		Measured int           `json:"measured"`
		ByStatus []statusCount `json:"by_status"`
	} `json:"mitigations"`
	BGP *struct {
		Neighbors   int `json:"neighbors"`
		Established int `json:"established"`
		Routes      int `json:"routes"`
	} `json:"bgp"` // null: no speaker configured
	Scrubbers []scrub.NodeStatus `json:"scrubbers"` // null: no scrubbing backend configured
}

func (d *Dashboard) overview(w http.ResponseWriter, _ *http.Request) {
	var o overviewJSON
	o.Now = d.now()
	if d.opts.Sessions != nil {
		o.Sessions = &struct {
			Clients  int `json:"clients"`
			Sessions int `json:"sessions"`
		}{}
		for _, n := range d.opts.Sessions.SessionCounts() {
			o.Sessions.Clients++
			o.Sessions.Sessions += n
		}
	}
	by := map[dots.Status]int{}
	for _, r := range d.opts.Service.AllMitigations() {
		o.Mitigations.Total++
		if r.Active() {
			o.Mitigations.Active++
			by[r.Status]++
		}
		if r.Counters != nil {
			o.Mitigations.Measured++
		}
	}
	o.Mitigations.ByStatus = []statusCount{}
	for s := dots.StatusInProgress; s <= dots.StatusSignalLoss; s++ {
		if by[s] > 0 {
			o.Mitigations.ByStatus = append(o.Mitigations.ByStatus, statusCount{int(s), s.String(), by[s]})
		}
	}
	if d.opts.Neighbors != nil {
		o.BGP = &struct {
			Neighbors   int `json:"neighbors"`
			Established int `json:"established"`
			Routes      int `json:"routes"`
		}{}
		for _, n := range d.opts.Neighbors.Neighbors() {
			o.BGP.Neighbors++
			if n.Established {
				o.BGP.Established++
			}
			o.BGP.Routes += n.Routes
		}
	}
	if d.opts.Scrubbers != nil {
		o.Scrubbers = d.opts.Scrubbers.Nodes()
		if o.Scrubbers == nil {
			o.Scrubbers = []scrub.NodeStatus{}
		}
	}
	writeJSON(w, http.StatusOK, o)
}

func (d *Dashboard) mitigations(w http.ResponseWriter, _ *http.Request) {
	recs := d.opts.Service.AllMitigations()
	out := make([]mitigationJSON, 0, len(recs))
	for _, r := range recs {
		out = append(out, d.itemOf(r))
	}
	writeJSON(w, http.StatusOK, map[string]any{"mitigations": out})
}

type detailJSON struct {
	Mitigation    mitigationJSON `json:"mitigation"`
	Outcome       []outcomeJSON  `json:"outcome"`
	Samples       []sampleJSON   `json:"samples"`
	WindowSeconds int            `json:"window_seconds"`
	SampleSeconds float64        `json:"sample_every_seconds"`
	Now           int64          `json:"now"` // the server's clock, Unix milliseconds: the plots' right edge
}

func (d *Dashboard) mitigation(w http.ResponseWriter, r *http.Request) {
	cuid := r.URL.Query().Get("cuid")
	mid, err := strconv.ParseUint(r.URL.Query().Get("mid"), 10, 32)
	if cuid == "" || err != nil {
		apiError(w, http.StatusBadRequest, "cuid and mid (0-4294967295) are required")
		return
	}
	k := mitigation.Key{CUID: cuid, MID: uint32(mid)}
	var rec *mitigation.Record
	for _, m := range d.opts.Service.AllMitigations() {
		if m.Key == k {
			rec = m
			break
		}
	}
	if rec == nil {
		apiError(w, http.StatusNotFound, "no mitigation "+strconv.FormatUint(mid, 10)+" of client "+cuid)
		return
	}
	out := detailJSON{Mitigation: d.itemOf(rec), Outcome: splitNote(rec.Note, d.opts.Backends), Samples: []sampleJSON{},
		WindowSeconds: int(Window / time.Second), SampleSeconds: d.opts.SampleEvery.Seconds(), Now: d.now().UnixMilli()}
	d.mu.Lock()
	if rg := d.samples[k]; rg != nil {
		for _, s := range rg.since(d.now().Add(-Window)) {
			out.Samples = append(out.Samples, sampleOf(mitigation.Key{MID: k.MID}, s))
		}
	}
	d.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

type eventJSON struct {
	At         time.Time `json:"at"`
	CUID       string    `json:"cuid"`
	MID        uint32    `json:"mid"`
	Ended      bool      `json:"ended"`
	Status     int       `json:"status"`
	StatusName string    `json:"status_name"`
	Note       string    `json:"note,omitempty"`
}

func (d *Dashboard) eventLog(w http.ResponseWriter, _ *http.Request) {
	d.mu.Lock()
	entries := d.events.newestFirst()
	d.mu.Unlock()
	out := make([]eventJSON, 0, len(entries))
	for _, e := range entries {
		out = append(out, eventOf(e))
	}
	writeJSON(w, http.StatusOK, map[string]any{"events": out})
}

func eventOf(e LogEntry) eventJSON {
	return eventJSON{At: e.At, CUID: e.CUID, MID: e.MID, Ended: e.Ended, Status: int(e.Record.Status),
		StatusName: e.Record.Status.String(), Note: e.Record.Note}
}
