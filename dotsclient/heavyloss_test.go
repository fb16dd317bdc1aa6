package dotsclient

import (
	"testing"
	"time"
)

// TestNONWait: without an RTT estimate a NON request waits 3 s before its
// repeat, with HeavyLoss nonMinRepeat; with an estimate both follow it.
func TestNONWait(t *testing.T) {
	for _, tc := range []struct {
		heavy bool
		srtt  time.Duration
		want  time.Duration
	}{
		{false, 0, nonRepeat},
		{true, 0, nonMinRepeat},
		{false, 400 * time.Millisecond, 800 * time.Millisecond},
		{true, 400 * time.Millisecond, 800 * time.Millisecond},
		{true, 5 * time.Second, nonRepeat},
	} {
		c := &Client{cfg: Config{HeavyLoss: tc.heavy}}
		c.srtt.Store(int64(tc.srtt))
		if got := c.nonWait(); got != tc.want {
			t.Errorf("heavy loss %v, srtt %v: %v, want %v", tc.heavy, tc.srtt, got, tc.want)
		}
	}
}
