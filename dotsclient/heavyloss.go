package dotsclient

import (
	"sync"
	"time"
)

// Config.HeavyLoss: a DTLS session for signalling through a link that
// loses most datagrams, with one-shot commands that have no session to
// fall back on. It departs from three pacing rules, within bounds:
//
//   - The handshake retransmission timer starts at HeavyLossFlightInterval
//     and does not back off, where RFC 6347 §4.2.4.1 asks for 1 s doubling
//     at each retransmission. The handshake is bounded by the Dial context.
//
//   - Every datagram of the session is written HeavyLossCopies times
//     (handshake flights, requests, their repeats), where RFC 8085 §3.1.3
//     asks for one datagram per round trip. The copies are bounded by a
//     budget: at most heavyLossRate extra datagrams a second and
//     heavyLossBudget in all for the session; past it each datagram goes
//     once. The receiver's DTLS replay window drops the copies that
//     arrive after the first (RFC 6347 §4.1.2.6), so a copy makes no
//     second answer: the server sends no more than without them.
//
//   - A NON request of a session without an RTT estimate (no handshake
//     flight was answered without retransmission, hsrtt.go) is repeated
//     after nonMinRepeat, where RFC 9132 §4.4.1 asks for at most one every
//     3 s: as if the round trip were short, which under this much loss is
//     the likelier reason why there is no sample.
//
// For a signal of a few kilobytes during an attack that saturates the
// link, the extra packets are noise beside the attack, and each is a
// chance for the mitigation request to arrive in time. The option is off
// by default; an agent, which keeps its session up from before the attack,
// does not need it.
const (
	HeavyLossFlightInterval = 250 * time.Millisecond
	HeavyLossCopies         = 2
	heavyLossRate           = 20 // extra datagrams a second, at most
	heavyLossBudget         = 200
)

// copier decides how many extra copies of a datagram go out: copies-1,
// within a token bucket of rate a second (burst: one second's worth) and a
// total budget.
type copier struct {
	now    func() time.Time
	copies int
	rate   float64
	left   int // total budget remaining

	mu     sync.Mutex
	tokens float64
	last   time.Time
}

func newCopier(now func() time.Time, copies, rate, budget int) *copier {
	return &copier{now: now, copies: copies, rate: float64(rate), left: budget, tokens: float64(rate), last: now()}
}

// extra returns how many copies to write beyond the datagram itself.
func (c *copier) extra() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	c.tokens = min(c.rate, c.tokens+now.Sub(c.last).Seconds()*c.rate)
	c.last = now
	n := min(c.copies-1, int(c.tokens), c.left)
	if n <= 0 {
		return 0
	}
	c.tokens -= float64(n)
	c.left -= n
	return n
}

// nonWait is the wait before repeating a NON request: nonInterval of the
// smoothed RTT, or with HeavyLoss and no estimate, nonMinRepeat.
func (c *Client) nonWait() time.Duration {
	srtt := time.Duration(c.srtt.Load())
	if srtt <= 0 && c.cfg.HeavyLoss {
		return nonMinRepeat
	}
	return nonInterval(srtt)
}
