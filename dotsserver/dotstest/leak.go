package dotstest

import "go.uber.org/goleak"

// LeakOptions are the goroutines a test of the signal channel may leave
// behind: go-coap's default periodic runners, which notice a closed
// session at their next 4-second wake-up and end. Pass them to
// goleak.VerifyTestMain.
func LeakOptions() []goleak.Option {
	return []goleak.Option{
		goleak.IgnoreAnyFunction("github.com/plgd-dev/go-coap/v3/tcp/server.init.init.func1.NewCommon[...].func7.1"),
		goleak.IgnoreAnyFunction("github.com/plgd-dev/go-coap/v3/dtls/server.init.init.func1.NewCommon[...].func7.1"),
		goleak.IgnoreAnyFunction("github.com/plgd-dev/go-coap/v3/udp/client.init.init.func1.NewCommon[...].func6.1"),
		goleak.IgnoreAnyFunction("github.com/plgd-dev/go-coap/v3/tcp/client.init.init.func1.NewCommon[...].func6.1"),
	}
}
