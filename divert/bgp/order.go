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
// until the neighbors that get the announcement have sent an UPDATE since
// it was queued (bounded by breakWait).
//
// Reading the neighbors' counters is a round trip through the speaker, so
// one reading (the mark) serves every announcement of a burst (markFresh);
// a withdrawal after announcements made since the mark waits for one more
// UPDATE after them, for at most markFresh.
const (
	breakWait = time.Second
	markFresh = 50 * time.Millisecond
)

// announceQueuedLocked is called before r is queued.
func (b *Backend) announceQueuedLocked(r *route) {
	now := time.Now()
	b.lastAnnounce = now
	if b.announced != nil && now.Sub(b.markAt) < markFresh {
		return
	}
	b.announced, b.markAt = b.updatesSent(b.getsRoute(r)), now
}

// announcementsSentLocked waits, before a withdrawal, until the queued
// announcements are on the wire.
func (b *Backend) announcementsSentLocked() {
	if b.announced == nil {
		return
	}
	waitSent := func(mark map[string]uint64, d time.Duration) {
		deadline := time.Now().Add(d)
		for !b.sentSince(mark) && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
	}
	waitSent(b.announced, breakWait)
	if b.lastAnnounce.After(b.markAt) {
		later := b.updatesSent(func(ps *peerState) bool { _, ok := b.announced[ps.n.Address]; return ok })
		waitSent(later, markFresh)
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
