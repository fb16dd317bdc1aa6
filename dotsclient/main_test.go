package dotsclient

import (
	"testing"

	"go.uber.org/goleak"
)

// Nothing a test starts may outlive it, except go-coap's default periodic
// runner, which notices a closed session at its next 4-second wake-up.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/plgd-dev/go-coap/v3/tcp/server.init.init.func1.NewCommon[...].func7.1"),
		goleak.IgnoreAnyFunction("github.com/plgd-dev/go-coap/v3/dtls/server.init.init.func1.NewCommon[...].func7.1"),
		goleak.IgnoreAnyFunction("github.com/plgd-dev/go-coap/v3/udp/client.init.init.func1.NewCommon[...].func6.1"),
		goleak.IgnoreAnyFunction("github.com/plgd-dev/go-coap/v3/tcp/client.init.init.func1.NewCommon[...].func6.1"),
	)
}
