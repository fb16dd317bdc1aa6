package bgp

import (
	"time"

	"github.com/levee-dots/levee/divert"
)

// Make before break. GoBGP's send loop merges every update queued for a
// neighbor into one pass and packs withdrawals before announcements, so a
// withdrawal queued right behind an announcement may reach the router
// first: a request that supersedes others would leave the target exposed
// in between. A withdrawal that follows an announcement therefore waits
// until every established neighbor has sent an UPDATE since that
// announcement was queued (bounded by breakWait).
const breakWait = time.Second

// announceQueuedLocked is called before r is queued: the counters of the
// neighbors that get r, from just before the latest announcement to each,
// are the mark.
func (b *Backend) announceQueuedLocked(r *route) {
	if b.announced == nil {
		b.announced = map[string]uint64{}
	}
	for addr, n := range b.updatesSent(b.getsRoute(r)) {
		b.announced[addr] = n
	}
}

// announcementsSentLocked waits, before a withdrawal, until the queued
// announcements are on the wire.
func (b *Backend) announcementsSentLocked() {
	if b.announced == nil {
		return
	}
	deadline := time.Now().Add(breakWait)
	for !b.sentSince(b.announced) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	b.announced = nil
}

// stampLocked numbers an outcome in the order this backend decided it, so
// that an older one reported late never overwrites a newer one.
func (b *Backend) stampLocked(a divert.Applied) divert.Applied {
	b.seq++
	a.Seq = b.seq
	return a
}
