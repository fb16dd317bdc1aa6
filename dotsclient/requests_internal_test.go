package dotsclient

import (
	"testing"
	"time"
)

// TestNonInterval: 3 s without an RTT estimate; twice the smoothed RTT
// with one, within 500 ms and 3 s.
func TestNonInterval(t *testing.T) {
	for _, tc := range []struct{ srtt, want time.Duration }{
		{0, 3 * time.Second},
		{time.Millisecond, 500 * time.Millisecond},
		{400 * time.Millisecond, 800 * time.Millisecond},
		{time.Second, 2 * time.Second},
		{5 * time.Second, 3 * time.Second},
	} {
		if got := nonInterval(tc.srtt); got != tc.want {
			t.Errorf("srtt %v: %v, want %v", tc.srtt, got, tc.want)
		}
	}
}

// TestSampleRTT: the first sample is taken as is, later ones with weight 1/8.
func TestSampleRTT(t *testing.T) {
	var c Client
	c.sampleRTT(80 * time.Millisecond)
	if got := time.Duration(c.srtt.Load()); got != 80*time.Millisecond {
		t.Fatalf("first sample: %v", got)
	}
	c.sampleRTT(160 * time.Millisecond)
	if got := time.Duration(c.srtt.Load()); got != 90*time.Millisecond {
		t.Fatalf("second sample: %v, want 90ms", got)
	}
}
