package metrics_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/levee-dots/levee/dotsserver/dotstest"
)

// Nothing a test starts may outlive it, but go-coap's periodic runners and
// the GoBGP InfiniteChannel pump of divert/bgp's TestMain.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, append(dotstest.LeakOptions(),
		goleak.IgnoreTopFunction("github.com/eapache/channels.(*InfiniteChannel).infiniteBuffer"))...)
}
