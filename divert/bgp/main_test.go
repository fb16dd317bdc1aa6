package bgp

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them
// (the speakers are closed in t.Cleanup), with one exception inside GoBGP
// v4.8.0: cleanInfiniteChannel (pkg/server/util.go), used when an FSM or
// a watcher stops, closes an eapache InfiniteChannel and then drains it
// without blocking. When items are still queued (updates for a peer being
// stopped, events for a watcher being cancelled), the drain can return
// before the channel's pump goroutine offers the next item, and the pump
// then blocks for ever on its unbuffered output, holding those items. It
// is not started or reachable by this package, and nothing else leaks.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/eapache/channels.(*InfiniteChannel).infiniteBuffer"))
}
