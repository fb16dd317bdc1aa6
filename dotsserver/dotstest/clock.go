package dotstest

import (
	"sync"
	"time"

	"github.com/levee-dots/levee/dotsserver"
)

// Clock is a fake clock: it is the server's notion of time, and its ticks
// drive the server's heartbeat and lifetime loop.
type Clock struct {
	mu    sync.Mutex
	t     time.Time
	ticks chan time.Time
}

// NewClock returns a clock at 2026-11-24 12:00 UTC.
func NewClock() *Clock {
	return &Clock{t: time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC), ticks: make(chan time.Time)}
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves time forward by d and lets the server loop run once fully:
// it sends two ticks, and the second send returns only once the first tick
// was handled. The clock must be installed in a started server.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
	c.ticks <- c.Now()
	c.ticks <- c.Now()
}

// Install makes o use the clock for Now and Ticks; it fits Options.Mutate.
func (c *Clock) Install(o *dotsserver.Options) {
	o.Now, o.Ticks = c.Now, c.ticks
}
