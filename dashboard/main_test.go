package dashboard_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the tests if a goroutine outlives them (the dashboards,
// services and speakers are closed in t.Cleanup). The exception is inside
// GoBGP v4.8.0, as in divert/bgp's TestMain: an InfiniteChannel pump left
// blocked when a peer stops with updates queued.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/eapache/channels.(*InfiniteChannel).infiniteBuffer"))
}
