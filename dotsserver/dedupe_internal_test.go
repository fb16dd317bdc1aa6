package dotsserver

import (
	"testing"
	"time"

	"github.com/levee-dots/levee/dotsserver/session"
)

// TestLifetimes: EXCHANGE_LIFETIME and NON_LIFETIME of RFC 7252 §4.8.2
// from the session values of RFC 9132 §4.5, and the transmission
// parameters handed to go-coap.
func TestLifetimes(t *testing.T) {
	for _, tc := range []struct {
		name          string
		v             session.Values
		ack           time.Duration
		factor        float64
		retransmit    uint32
		exchange, non time.Duration
	}{
		// MAX_TRANSMIT_SPAN = 2 s × 7 × 1.5 = 21 s (RFC 9132 defaults)
		{"defaults", session.Defaults, 2 * time.Second, 1.5, 3, 223 * time.Second, 121 * time.Second},
		// 1 s × 3 × 1.1 = 3.3 s
		{"range minimum", session.DefaultRanges.Min, time.Second, 1.1, 2, 204300 * time.Millisecond, 103300 * time.Millisecond},
		// 30 s × 32767 × 4 = 3,932,040 s
		{"range maximum", session.DefaultRanges.Max, 30 * time.Second, 4, 15,
			3932040*time.Second + 230*time.Second, 3932040*time.Second + 100*time.Second},
		// RFC 7252 defaults (max-retransmit 4): 2 s × 15 × 1.5 = 45 s
		{"RFC 7252 defaults", session.Values{MaxRetransmit: 4, AckTimeout: 200, AckRandomFactor: 150}, 2 * time.Second, 1.5, 4, 247 * time.Second, 145 * time.Second},
		{"zero values take the defaults", session.Values{}, 2 * time.Second, 1.5, 3, 223 * time.Second, 121 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ack, factor, retransmit := transmission(tc.v)
			if ack != tc.ack || retransmit != tc.retransmit || factor < tc.factor-1e-9 || factor > tc.factor+1e-9 {
				t.Errorf("transmission %v, %v, %d; want %v, %v, %d", ack, factor, retransmit, tc.ack, tc.factor, tc.retransmit)
			}
			exchange, non := lifetimes(tc.v)
			if d := exchange - tc.exchange; d < -time.Millisecond || d > time.Millisecond {
				t.Errorf("EXCHANGE_LIFETIME %v, want %v", exchange, tc.exchange)
			}
			if d := non - tc.non; d < -time.Millisecond || d > time.Millisecond {
				t.Errorf("NON_LIFETIME %v, want %v", non, tc.non)
			}
		})
	}
}
