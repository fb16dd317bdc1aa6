package mitigation_test

import (
	"testing"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsserver/mitigation"
)

// TestSetPolicy: a policy set on a running book decides the next request;
// the requests already granted stay.
func TestSetPolicy(t *testing.T) {
	for _, tc := range []struct {
		name         string
		from, to     mitigation.Policy
		want         dots.Code
		wantLifetime int64
	}{
		{"limit lowered", mitigation.Policy{MaxPerClient: 5}, mitigation.Policy{MaxPerClient: 1}, dots.ServiceUnavailable, 0},
		{"limit raised", mitigation.Policy{MaxPerClient: 1}, mitigation.Policy{MaxPerClient: 5}, dots.Created, 3600},
		{"max lifetime lowered", mitigation.Policy{}, mitigation.Policy{MaxLifetime: 600e9}, dots.Created, 600},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := mitigation.NewBook(tc.from)
			mustPut(t, b, mkPut(cuidA, 1, 3600, pfx("10.0.1.0/24")), at(0))
			b.SetPolicy(tc.to)
			res, err := b.Put(mkPut(cuidA, 2, 3600, pfx("10.0.2.0/24")), at(1))
			if tc.want == dots.ServiceUnavailable {
				protoErr(t, err, tc.want)
			} else if err != nil {
				t.Fatal(err)
			} else if res.Code != tc.want {
				t.Fatalf("code = %s, want %s", res.Code, tc.want)
			}
			for _, r := range b.List(cuidA) {
				want := int64(3600)
				if r.MID == 2 {
					want = tc.wantLifetime
				}
				if r.Lifetime != want {
					t.Errorf("mid %d: lifetime %d, want %d", r.MID, r.Lifetime, want)
				}
			}
		})
	}
}
