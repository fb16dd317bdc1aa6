package session_test

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsserver/session"
)

// FuzzNegotiate: any decodable body gives a configuration or a 4.xx, never
// a panic, and an accepted configuration stays inside the ranges.
func FuzzNegotiate(f *testing.F) {
	// The RFC 9132 session-configuration figures (golden vectors of dots).
	for _, name := range []string{"fig23_config_put.hex", "fig20_config_get_response.hex", "fig27_heartbeat.hex"} {
		h, err := os.ReadFile(filepath.Join("..", "..", "dots", "testdata", "golden", name))
		if err != nil {
			f.Fatal(err)
		}
		b, err := hex.DecodeString(strings.TrimSpace(string(h)))
		if err != nil {
			f.Fatalf("%s: %v", name, err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := dots.Decode(data)
		if err != nil {
			return
		}
		r := session.DefaultRanges
		next, _, err := r.Negotiate(session.DefaultConfig(), 7, m)
		if err != nil {
			return
		}
		for _, v := range []session.Values{next.Mitigating, next.Idle} {
			if v.MissingHBAllowed < r.Min.MissingHBAllowed || v.MissingHBAllowed > r.Max.MissingHBAllowed ||
				v.AckTimeout < r.Min.AckTimeout || v.AckTimeout > r.Max.AckTimeout {
				t.Fatalf("accepted values outside the ranges: %+v", v)
			}
		}
	})
}
