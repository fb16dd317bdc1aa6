package dns

import "sync"

// ZoneStats counts the dynamic updates (RFC 2136) sent to one zone's
// primary since start.
type ZoneStats struct {
	Updates  uint64 // updates sent (one per diverted or restored name change)
	Failures uint64 // updates that did not take effect: refused, unverified, unanswered or in conflict
	// ReadFailures counts the reads of a name's records (before an update,
	// and to check one) that the primary refused or did not answer.
	ReadFailures uint64
}

// updateStats holds the ZoneStats of each zone.
type updateStats struct {
	mu     sync.Mutex
	byZone map[string]ZoneStats
}

func (s *updateStats) count(zone string, err error) {
	s.add(zone, func(z *ZoneStats) {
		z.Updates++
		if err != nil {
			z.Failures++
		}
	})
}

func (s *updateStats) readFailed(zone string) {
	s.add(zone, func(z *ZoneStats) { z.ReadFailures++ })
}

func (s *updateStats) add(zone string, f func(*ZoneStats)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byZone == nil {
		s.byZone = map[string]ZoneStats{}
	}
	z := s.byZone[zone]
	f(&z)
	s.byZone[zone] = z
}

// UpdateStats returns the update counters of each zone updated since start,
// by zone name.
func (b *Backend) UpdateStats() map[string]ZoneStats {
	b.stats.mu.Lock()
	defer b.stats.mu.Unlock()
	out := make(map[string]ZoneStats, len(b.stats.byZone))
	for z, st := range b.stats.byZone {
		out[z] = st
	}
	return out
}
