package dotsserver_test

import (
	"fmt"
	"testing"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsserver"
)

// BenchmarkCreateOneSession: sequential mitigation creates over one DTLS
// session with durable writes (distinct IPv6 /128 targets, so none
// supersedes another).
func BenchmarkCreateOneSession(b *testing.B) {
	e := newEnv(b, "127.0.0.1:0", func(o *dotsserver.Options) {
		o.Policy.MaxPerClient = 1 << 20
		o.RateLimit = dotsserver.RateLimit{RequestsPerSecond: dotsserver.MaxRequestsPerSecond, Burst: dotsserver.MaxRequestBurst} // the server's cost, not its limit
	})
	c := e.client(b, "alpha", "dtls")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		sc := dots.Scope{TargetPrefix: []string{fmt.Sprintf("2001:db8:6401::%x/128", i+1)}, Lifetime: dots.Ptr[int64](3600)}
		r, err := c.Mitigate(b.Context(), uint32(i+1), sc)
		if err != nil || r.Code != dots.Created {
			b.Fatalf("%v %+v", err, r)
		}
	}
}
