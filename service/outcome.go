package service

import (
	"encoding/json"
	"time"

	"github.com/levee-dots/levee/divert"
	"github.com/levee-dots/levee/dotsserver/mitigation"
	"github.com/levee-dots/levee/store"
)

// diversionReported is the one path by which backends' outcomes reach the
// mitigations: from the lanes after each call and from the backends later
// (a neighbor came up). The combined outcome is taken and recorded under
// the state lock, so a later outcome never overwrites a newer one.
func (s *Service) diversionReported(backend string, k divert.Key, a divert.Applied) {
	if k == (divert.Key{}) {
		s.log.Error("diversion backend failed", "diverter", backend, "note", a.Detail)
		return
	}
	if k.ACL != "" {
		return // a data-channel filter: no mitigation status to set
	}
	s.mu.Lock()
	out := s.orch.Combined(k)
	res := s.book.SetOutcome(mitigation.Key{CUID: k.CUID, MID: k.MID}, out.Status, out.Note)
	s.commitLocked(res)
	s.mu.Unlock()
	if res.Record != nil {
		s.log.Info("mitigation status", "cuid", k.CUID, "mid", k.MID, "diverter", backend, "status", out.Status, "note", out.Note)
	}
}

// DiversionUpdate takes a backend's later change of outcome for a key (a
// BGP neighbor came up, a route was lost): what divert.Updates receives.
func (s *Service) DiversionUpdate(backend string, k divert.Key, a divert.Applied) {
	s.orch.Report(backend, k, a)
}

// setOutcome records an outcome decided by the service itself.
func (s *Service) setOutcome(k mitigation.Key, out divert.Outcome) {
	s.mu.Lock()
	res := s.book.SetOutcome(k, out.Status, out.Note)
	s.commitLocked(res)
	s.mu.Unlock()
}

// meter follows one mitigation's counters over its backends.
type meter struct {
	byBackend map[string]*backendMeter
}

type backendMeter struct {
	last     divert.Counters // the backend's last sample
	base     divert.Counters // totals carried over device resets
	bps, pps uint64
}

// Measured takes a backend's counter sample for a mitigation: what
// divert.Measurements receives. Samples are kept in memory only (no write
// per sample). Totals stay monotonic for the client when the backend's
// counters go back (a device reset or a backend restart): what was counted
// before is carried over.
func (s *Service) Measured(backend string, k divert.Key, c divert.Counters) {
	if k.ACL != "" {
		s.measuredACL(backend, k, c)
		return
	}
	mk := mitigation.Key{CUID: k.CUID, MID: k.MID}
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.book.Get(mk); !ok || !r.Active() {
		return
	}
	m := s.meters[mk]
	if m == nil {
		m = &meter{byBackend: map[string]*backendMeter{}}
		s.meters[mk] = m
	}
	bm := m.byBackend[backend]
	if bm == nil {
		bm = &backendMeter{}
		m.byBackend[backend] = bm
	}
	if c.BytesDropped < bm.last.BytesDropped || c.PktsDropped < bm.last.PktsDropped {
		bm.base.BytesDropped += bm.last.BytesDropped
		bm.base.PktsDropped += bm.last.PktsDropped
	}
	bm.last = c
	bm.bps, bm.pps = c.BPSDropped, c.PPSDropped
}

// withCountersLocked sets r's measured counters, summed over the backends
// that measure it (none when nothing does), and returns r. r must be a copy
// the caller owns, never the book's own record.
func (s *Service) withCountersLocked(r *mitigation.Record) *mitigation.Record {
	s.aclStatusLocked(r)
	m := s.meters[r.Key]
	if m == nil || len(m.byBackend) == 0 {
		r.Counters = nil
		return r
	}
	var sum mitigation.Counters
	for _, bm := range m.byBackend {
		sum.BytesDropped += bm.base.BytesDropped + bm.last.BytesDropped
		sum.PktsDropped += bm.base.PktsDropped + bm.last.PktsDropped
		sum.BPSDropped += bm.bps
		sum.PPSDropped += bm.pps
	}
	r.Counters = &sum
	return r
}

// counterFlushEvery is how often the counters are written, so that the
// totals stay monotonic for the client across a restart of the server too.
const counterFlushEvery = time.Minute

// savedMeter is one backend's counters of one mitigation as written: its
// last sample and what was carried over its resets.
type savedMeter struct {
	LastBytes uint64 `json:"last_bytes"`
	LastPkts  uint64 `json:"last_pkts"`
	BaseBytes uint64 `json:"base_bytes"`
	BasePkts  uint64 `json:"base_pkts"`
}

// flushCountersLocked queues every measured mitigation's counters for the
// store (without waiting: counters are not acknowledged to anyone).
func (s *Service) flushCountersLocked() {
	var ops []store.Op
	for k, m := range s.meters {
		saved := map[string]savedMeter{}
		for backend, bm := range m.byBackend {
			saved[backend] = savedMeter{bm.last.BytesDropped, bm.last.PktsDropped, bm.base.BytesDropped, bm.base.PktsDropped}
		}
		b, _ := json.Marshal(saved)
		ops = append(ops, store.Op{Bucket: bucketCounters, Key: recordKey(k), Value: b})
	}
	s.j.add(ops, nil)
	s.lastFlush = s.now()
}

// restoreCounters loads the counters written before a restart: a
// backend's next sample continues them, or, if lower, is a reset.
func (s *Service) restoreCounters() error {
	active := map[string]mitigation.Key{}
	for _, r := range s.book.Active() {
		active[recordKey(r.Key)] = r.Key
	}
	return s.opts.Store.ForEach(bucketCounters, func(key string, v []byte) error {
		var saved map[string]savedMeter
		k, ok := active[key]
		if !ok || json.Unmarshal(v, &saved) != nil {
			return nil // a counter is not worth refusing to start for
		}
		m := &meter{byBackend: map[string]*backendMeter{}}
		for backend, sm := range saved {
			m.byBackend[backend] = &backendMeter{last: divert.Counters{BytesDropped: sm.LastBytes, PktsDropped: sm.LastPkts},
				base: divert.Counters{BytesDropped: sm.BaseBytes, PktsDropped: sm.BasePkts}}
		}
		s.meters[k] = m
		return nil
	})
}
