package dotsserver_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsserver"
)

// check413 asserts a 4.13 with Size1 = limit and a diagnostic naming it.
func check413(t *testing.T, m message.Message, limit int64) {
	t.Helper()
	if m.Code != codes.RequestEntityTooLarge {
		t.Fatalf("code %v, want 4.13 (payload %q)", m.Code, diagOf(m))
	}
	if v, ok := optUint(m, message.Size1); !ok || int64(v) != limit {
		t.Fatalf("Size1 %d (present %v), want %d", v, ok, limit)
	}
	if d := diagOf(m); !strings.Contains(d, fmt.Sprint(limit)) {
		t.Fatalf("diagnostic %q does not name the limit %d", d, limit)
	}
}

// TestBodySizeLimit: a request body over Limits.MaxBodyBytes is answered
// 4.13 with Size1 (RFC 7959 §2.9.3), whether announced by Size1, reached
// block by block, or sent whole in one TCP frame; the session stays usable
// and bodies within the bound still pass.
func TestBodySizeLimit(t *testing.T) {
	const limit = 4096
	e := newEnv(t, "127.0.0.1:0", func(o *dotsserver.Options) { o.Limits.MaxBodyBytes = limit })
	block := bytes.Repeat([]byte{0xa5}, 1024)
	const szx1024 = 6
	for _, transport := range []string{"dtls", "tls"} {
		t.Run(transport, func(t *testing.T) {
			rc := dialRaw(t, e, "alpha", transport)
			t.Run("first block announces 100 MB", func(t *testing.T) {
				m := rc.mitigatePut(rc.token(), 1, []message.Option{blockOpt(message.Block1, 0, true, szx1024), uintOpt(message.Size1, 100<<20)}, block)
				check413(t, rc.roundTrip(t, m), limit)
			})
			t.Run("blocks accumulate past the limit", func(t *testing.T) {
				tok := rc.token()
				for num := uint32(0); num < limit/1024; num++ {
					r := rc.roundTrip(t, rc.mitigatePut(tok, 2, []message.Option{blockOpt(message.Block1, num, true, szx1024)}, block))
					if r.Code != codes.Continue {
						t.Fatalf("block %d: code %v, want 2.31 (%q)", num, r.Code, diagOf(r))
					}
				}
				check413(t, rc.roundTrip(t, rc.mitigatePut(tok, 2, []message.Option{blockOpt(message.Block1, limit/1024, true, szx1024)}, block)), limit)
			})
			if transport == "tls" {
				for _, size := range []int{limit + 1000, 100 << 10} {
					t.Run(fmt.Sprintf("one frame of %d bytes", size), func(t *testing.T) {
						m := rc.mitigatePut(rc.token(), 3, nil, bytes.Repeat([]byte{0x5a}, size))
						check413(t, rc.roundTrip(t, m), limit)
					})
				}
			}
			t.Run("session still serves", func(t *testing.T) {
				mid := map[string]uint32{"dtls": 4, "tls": 5}[transport]
				body := dots.MustEncode(&dots.Message{MitigationScope: &dots.MitigationScope{Scope: []dots.Scope{scope(fmt.Sprintf("203.0.113.%d/32", 40+mid), 3600)}}})
				r := rc.roundTrip(t, rc.mitigatePut(rc.token(), mid, nil, body))
				if r.Code != codes.Created {
					t.Fatalf("code %v, want 2.01 (%q)", r.Code, diagOf(r))
				}
			})
		})
	}
}

// TestAttributeBoundsOverSignalChannel: an over-long string in a
// mitigation request is refused 4.00 naming the attribute and the bound,
// over DTLS and TLS, and nothing is stored.
func TestAttributeBoundsOverSignalChannel(t *testing.T) {
	e := newEnv(t, "127.0.0.1:0", nil)
	tests := []struct {
		name  string
		scope dots.Scope
		diag  string
	}{
		{"countermeasure of 10,000 bytes", dots.Scope{TargetPrefix: []string{"203.0.113.50/32"}, Lifetime: dots.Ptr[int64](3600),
			Countermeasure: strings.Repeat("c", 10000)}, "levee:countermeasure: 10000 bytes, at most 64"},
		{"target-fqdn of 300 characters", dots.Scope{TargetFQDN: []string{"www.example.com", strings.Repeat("a", 300)},
			Lifetime: dots.Ptr[int64](3600)}, "target-fqdn[1]: 300 bytes, at most 253"},
		{"target-uri of 3,000 characters", dots.Scope{TargetURI: []string{"https://www.example.com/" + strings.Repeat("u", 2976)},
			Lifetime: dots.Ptr[int64](3600)}, "target-uri[0]: 3000 bytes, at most 2048"},
	}
	for _, transport := range []string{"dtls", "tls"} {
		c := e.client(t, "alpha", transport)
		for i, tc := range tests {
			t.Run(transport+"/"+tc.name, func(t *testing.T) {
				mid := uint32(600 + i)
				r := expect(t, dots.BadRequest)(c.Mitigate(ctx(t), mid, tc.scope))
				if !strings.Contains(r.Diag, tc.diag) {
					t.Fatalf("diagnostic %q, want %q", r.Diag, tc.diag)
				}
				expect(t, dots.NotFound)(c.Status(ctx(t), dots.Ptr(mid), ""))
			})
		}
	}
}

// TestBlockwiseErrorsCarryDiagnostics: the answers of the block-wise layer
// itself carry a diagnostic too (RFC 9132 §9): 4.08 for a block without
// its transfer, and 5.03 with Max-Age once a session has as many transfers
// in progress as it may.
func TestBlockwiseErrorsCarryDiagnostics(t *testing.T) {
	e := newEnv(t, "127.0.0.1:0", nil)
	block := bytes.Repeat([]byte{0xa5}, 1024)
	for _, transport := range []string{"dtls", "tls"} {
		t.Run(transport, func(t *testing.T) {
			rc := dialRaw(t, e, "alpha", transport)
			r := rc.roundTrip(t, rc.mitigatePut(rc.token(), 800, []message.Option{blockOpt(message.Block1, 3, true, 6)}, block))
			if r.Code != codes.RequestEntityIncomplete || !strings.Contains(diagOf(r), "block 0") {
				t.Fatalf("block 3 without a transfer: %v %q, want 4.08 with a diagnostic", r.Code, diagOf(r))
			}
			var last message.Message
			for i := uint32(0); i < 20; i++ {
				last = rc.roundTrip(t, rc.mitigatePut(rc.token(), 810+i, []message.Option{blockOpt(message.Block1, 0, true, 6)}, block))
				if last.Code != codes.Continue {
					break
				}
			}
			if last.Code != codes.ServiceUnavailable || !strings.Contains(diagOf(last), "transfers in progress") {
				t.Fatalf("transfers past the bound: %v %q, want 5.03 with a diagnostic", last.Code, diagOf(last))
			}
			if _, ok := optUint(last, message.MaxAge); !ok {
				t.Fatal("5.03 without Max-Age")
			}
		})
	}
}
