package dotsclient

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/levee-dots/levee/dotsserver/dotstest"
)

// Nothing a test starts may outlive it (but go-coap's periodic runners,
// which end on their own a few seconds after their session).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m, dotstest.LeakOptions()...) }
