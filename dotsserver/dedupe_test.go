package dotsserver_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	udpCoder "github.com/plgd-dev/go-coap/v3/udp/coder"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsserver"
	"github.com/levee-dots/levee/dotsserver/dotstest"
	"github.com/levee-dots/levee/service"
	"github.com/levee-dots/levee/store"
)

// countingStore counts the operations the service journals.
type countingStore struct {
	dotsserver.Store
	ops atomic.Int64
}

func (c *countingStore) Apply(ctx context.Context, ops ...store.Op) error {
	c.ops.Add(int64(len(ops)))
	return c.Store.Apply(ctx, ops...)
}

// dedupeEnv is a server whose journal writes and change events are counted.
type dedupeEnv struct {
	*env
	st     *countingStore
	mu     sync.Mutex
	events []service.Event
}

func newDedupeEnv(t *testing.T, mutate func(*dotsserver.Options)) *dedupeEnv {
	d := &dedupeEnv{}
	d.env = newEnv(t, "127.0.0.1:0", func(o *dotsserver.Options) {
		d.st = &countingStore{Store: o.Store}
		o.Store = d.st
		if mutate != nil {
			mutate(o)
		}
	})
	cancel := d.Srv.Service().Watch(func(ev service.Event) {
		if !ev.Periodic {
			d.mu.Lock()
			d.events = append(d.events, ev)
			d.mu.Unlock()
		}
	})
	t.Cleanup(cancel)
	return d
}

func (d *dedupeEnv) changes() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.events)
}

// sendMID sends m over DTLS with exactly the type and Message ID it carries.
func (rc *rawConn) sendMID(m message.Message) {
	rc.t.Helper()
	b, err := encode(udpCoder.DefaultCoder, m)
	if err == nil {
		_, err = rc.dc.Write(b)
	}
	if err != nil {
		rc.t.Fatalf("send %v: %v", m.Code, err)
	}
}

// answer sends m, with its own Message ID, until an answer to its token
// arrives (as a DOTS client repeats a NON request, RFC 9132 §4.4.1; a
// repeat that arrives while the first copy is in progress is dropped) and
// returns the answer as the bytes on the wire.
func (rc *rawConn) answer(t *testing.T, m message.Message) []byte {
	t.Helper()
	for try := 0; try < 5; try++ {
		rc.sendMID(m)
		deadline := time.Now().Add(time.Second)
		for {
			r, err := rc.read(deadline)
			if err != nil {
				break
			}
			if r.Code == codes.PUT { // the server's heartbeat
				rc.sendMID(message.Message{Code: codes.Changed, Token: r.Token, Type: message.NonConfirmable, MessageID: r.MessageID + 1})
				continue
			}
			if string(r.Token) == string(m.Token) || r.Type == message.Acknowledgement && r.MessageID == m.MessageID {
				b, err := encode(udpCoder.DefaultCoder, r)
				if err != nil {
					t.Fatal(err)
				}
				return b
			}
		}
	}
	t.Fatalf("%v MID %d: no answer", m.Code, m.MessageID)
	return nil
}

func decodeAnswer(t *testing.T, b []byte) message.Message {
	t.Helper()
	m := message.Message{Options: make(message.Options, 0, 16)}
	if _, err := udpCoder.DefaultCoder.Decode(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func mitigationBody(prefix string) []byte {
	return dots.MustEncode(&dots.Message{MitigationScope: &dots.MitigationScope{Scope: []dots.Scope{scope(prefix, 3600)}}})
}

func (rc *rawConn) mitigateDelete(tok message.Token, mid uint32) message.Message {
	var opts message.Options
	for _, seg := range []string{".well-known", "dots", "mitigate", "cuid=" + rc.cuid, fmt.Sprintf("mid=%d", mid)} {
		opts = append(opts, message.Option{ID: message.URIPath, Value: []byte(seg)})
	}
	return message.Message{Code: codes.DELETE, Token: tok, Options: opts}
}

// TestRepeatedRequestAnsweredFromCache: a repeat of a CON or NON PUT or
// DELETE (same Message ID and token) gets the first answer again, byte for
// byte, and changes nothing in the service (RFC 7252 §4.5, RFC 9132
// §4.4.1): no second journal entry, no second change event.
func TestRepeatedRequestAnsweredFromCache(t *testing.T) {
	d := newDedupeEnv(t, nil)
	rc := dialRaw(t, d.env, "alpha", "dtls")
	changes := 0 // the change events so far: one per PUT or DELETE executed
	for i, tc := range []struct {
		name     string
		typ      message.Type
		method   codes.Code
		want     codes.Code
		wantType message.Type
	}{
		{"NON PUT", message.NonConfirmable, codes.PUT, codes.Created, message.NonConfirmable},
		{"CON PUT", message.Confirmable, codes.PUT, codes.Created, message.Acknowledgement},
		{"NON DELETE", message.NonConfirmable, codes.DELETE, codes.Deleted, message.NonConfirmable},
		{"CON DELETE", message.Confirmable, codes.DELETE, codes.Deleted, message.Acknowledgement},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mid := uint32(10 + i)
			if tc.method == codes.DELETE {
				put := rc.mitigatePut(rc.token(), mid, nil, mitigationBody(fmt.Sprintf("203.0.113.%d/32", mid)))
				put.Type, put.MessageID = message.Confirmable, int32(1000+i)
				if m := decodeAnswer(t, rc.answer(t, put)); m.Code != codes.Created {
					t.Fatalf("creating mid %d: %v", mid, m.Code)
				}
				changes++
			}
			var m message.Message
			if tc.method == codes.PUT {
				m = rc.mitigatePut(rc.token(), mid, nil, mitigationBody(fmt.Sprintf("203.0.113.%d/32", mid)))
			} else {
				m = rc.mitigateDelete(rc.token(), mid)
			}
			m.Type, m.MessageID = tc.typ, int32(2000+i)
			first := rc.answer(t, m)
			ops := d.st.ops.Load()
			changes++
			if a := decodeAnswer(t, first); a.Code != tc.want || a.Type != tc.wantType {
				t.Fatalf("first answer %v %v, want %v %v", a.Type, a.Code, tc.wantType, tc.want)
			}
			for n := 0; n < 2; n++ {
				again := rc.answer(t, m)
				if !bytes.Equal(again, first) {
					a, b := decodeAnswer(t, first), decodeAnswer(t, again)
					t.Fatalf("repeat %d answered %v %v MID %d %x, the first answer was %v %v MID %d %x", n+1,
						b.Type, b.Code, b.MessageID, b.Payload, a.Type, a.Code, a.MessageID, a.Payload)
				}
			}
			if got := d.st.ops.Load(); got != ops {
				t.Errorf("the repeats journaled %d operations, want none", got-ops)
			}
			// A fence: a new request's change event comes after any the
			// repeats might have caused (events of one client are in order).
			fence := rc.mitigatePut(rc.token(), 100+mid, nil, mitigationBody(fmt.Sprintf("203.0.113.%d/32", 100+mid)))
			fence.Type, fence.MessageID = message.Confirmable, int32(3000+i)
			rc.answer(t, fence)
			changes++
			waitFor(t, 5*time.Second, "the fence's change event", func() bool { return d.changes() >= changes })
			if got := d.changes(); got != changes {
				t.Errorf("the repeats caused %d change events, want none", got-changes)
			}
		})
	}
}

// TestRepeatExpiry: an answer is repeated until EXCHANGE_LIFETIME (CON)
// or NON_LIFETIME (NON) has passed on the server's clock, computed from
// the client's negotiated transmission parameters (RFC 7252 §4.8.2, RFC
// 9132 §4.5); after that the same Message ID is a new request (2.04).
func TestRepeatExpiry(t *testing.T) {
	short := &dots.ConfigSet{
		MaxRetransmit:   &dots.Uint16Param{CurrentValue: dots.Ptr[uint16](2)},
		AckTimeout:      &dots.DecimalParam{CurrentValue: dots.Ptr[dots.Decimal](100)},
		AckRandomFactor: &dots.DecimalParam{CurrentValue: dots.Ptr[dots.Decimal](110)},
	}
	for i, tc := range []struct {
		name   string
		typ    message.Type
		config *dots.ConfigSet // nil: the defaults
		life   time.Duration
	}{
		// defaults: MAX_TRANSMIT_SPAN = 2 s × (2³−1) × 1.5 = 21 s
		{"NON defaults", message.NonConfirmable, nil, 21*time.Second + 100*time.Second},
		{"CON defaults", message.Confirmable, nil, 21*time.Second + 200*time.Second + 2*time.Second},
		// negotiated: MAX_TRANSMIT_SPAN = 1 s × (2²−1) × 1.1 = 3.3 s
		{"NON negotiated", message.NonConfirmable, short, 3300*time.Millisecond + 100*time.Second},
		{"CON negotiated", message.Confirmable, short, 3300*time.Millisecond + 200*time.Second + time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := dotstest.NewClock()
			e := newEnv(t, "127.0.0.1:0", clk.Install)
			if tc.config != nil {
				c := e.client(t, "alpha", "tls")
				expect(t, dots.Created)(c.PutConfig(ctx(t), 1, &dots.SignalConfig{MitigatingConfig: tc.config, IdleConfig: tc.config}))
			}
			rc := dialRaw(t, e, "alpha", "dtls")
			m := rc.mitigatePut(rc.token(), 7, nil, mitigationBody("203.0.113.7/32"))
			m.Type, m.MessageID = tc.typ, int32(500+i)
			first := rc.answer(t, m)
			if c := decodeAnswer(t, first).Code; c != codes.Created {
				t.Fatalf("first answer %v, want 2.01", c)
			}
			clk.Advance(tc.life - time.Second)
			if again := rc.answer(t, m); !bytes.Equal(again, first) {
				t.Fatalf("a second before the lifetime: answered %v, want the first answer again", decodeAnswer(t, again).Code)
			}
			clk.Advance(2 * time.Second)
			if c := decodeAnswer(t, rc.answer(t, m)).Code; c != codes.Changed {
				t.Fatalf("a second after the lifetime: answered %v, want 2.04 (executed again)", c)
			}
		})
	}
}

// TestRepeatCacheBound: the answers kept for repeats are bounded in number
// and bytes per session and in bytes over all sessions; the oldest go
// first, and a repeat of a dropped answer is executed again (2.04).
func TestRepeatCacheBound(t *testing.T) {
	for _, tc := range []struct {
		name string
		// bounds, given the size of one answer
		bounds   func(one int) (sessionEntries, sessionBytes, totalBytes int)
		sessions int // requests alternate over this many sessions
		kept     int // answers kept after 6 requests
	}{
		{"entries per session", func(one int) (int, int, int) { return 3, 1 << 20, 1 << 30 }, 1, 3},
		{"bytes per session", func(one int) (int, int, int) { return 100, 2*one + one/2, 1 << 30 }, 1, 2},
		{"entries per session, two sessions", func(one int) (int, int, int) { return 2, 1 << 20, 1 << 30 }, 2, 4},
		{"bytes in total", func(one int) (int, int, int) { return 100, 1 << 20, 3*one + one/2 }, 2, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, "127.0.0.1:0", nil)
			names := []string{"alpha", "beta"}[:tc.sessions]
			var rcs []*rawConn
			for _, n := range names {
				rcs = append(rcs, dialRaw(t, e, n, "dtls"))
			}
			var reqs []message.Message
			var answers [][]byte
			one := 0 // the size of the first answer
			for i := 0; i < 6; i++ {
				rc := rcs[i%len(rcs)]
				prefix := fmt.Sprintf("203.0.113.%d/32", 10+i)
				if rc.cuid != rcs[0].cuid {
					prefix = fmt.Sprintf("203.0.113.%d/32", 140+i)
				}
				m := rc.mitigatePut(rc.token(), uint32(10+i), nil, mitigationBody(prefix))
				m.Type, m.MessageID = message.NonConfirmable, int32(700+i)
				reqs, answers = append(reqs, m), append(answers, rc.answer(t, m))
				if i == 0 {
					_, one = e.Srv.DedupeState()
					e.Srv.SetDedupeBounds(tc.bounds(one))
				}
			}
			entries, size := e.Srv.DedupeState()
			se, sb, tb := tc.bounds(one)
			if entries != tc.kept {
				t.Errorf("%d answers kept, want %d", entries, tc.kept)
			}
			if size > tb || tc.sessions == 1 && size > sb || entries > se*tc.sessions {
				t.Errorf("%d answers of %d bytes kept, over the bounds %d answers, %d bytes per session, %d bytes in total", entries, size, se, sb, tb)
			}
			// The kept ones first: a dropped one executed again is kept anew.
			for i := len(reqs) - 1; i >= 0; i-- {
				got := rcs[i%len(rcs)].answer(t, reqs[i])
				kept := i >= len(reqs)-tc.kept
				switch c := decodeAnswer(t, got).Code; {
				case kept && !bytes.Equal(got, answers[i]):
					t.Errorf("request %d (kept): repeat answered %v, not the first answer", i, c)
				case !kept && c != codes.Changed:
					t.Errorf("request %d (dropped): repeat answered %v, want 2.04", i, c)
				}
			}
			for _, rc := range rcs {
				rc.close()
			}
			waitFor(t, 5*time.Second, "the answers of closed sessions dropped", func() bool { n, _ := e.Srv.DedupeState(); return n == 0 })
		})
	}
}

// TestRepeatedEmptyAcknowledgement: a CON request the server answers with
// nothing (an efficacy update of an unknown mid, RFC 9132 §4.4.3) gets an
// empty acknowledgement (RFC 7252 §4.2), and its repeat the same one.
func TestRepeatedEmptyAcknowledgement(t *testing.T) {
	e := newEnv(t, "127.0.0.1:0", nil)
	rc := dialRaw(t, e, "alpha", "dtls")
	sc := scope("203.0.113.9/32", 3600)
	sc.AttackStatus = dots.Ptr(dots.AttackUnderAttack)
	body := dots.MustEncode(&dots.Message{MitigationScope: &dots.MitigationScope{Scope: []dots.Scope{sc}}})
	m := rc.mitigatePut(rc.token(), 99, nil, body)
	m.Options = append(message.Options{{ID: message.IfMatch, Value: []byte{}}}, m.Options...)
	m.Type, m.MessageID = message.Confirmable, 900
	first := rc.answer(t, m)
	if a := decodeAnswer(t, first); a.Type != message.Acknowledgement || a.Code != codes.Empty || a.MessageID != m.MessageID || len(a.Token) != 0 {
		t.Fatalf("answered %v %v MID %d token %x, want an empty acknowledgement of MID %d", a.Type, a.Code, a.MessageID, a.Token, m.MessageID)
	}
	if again := rc.answer(t, m); !bytes.Equal(again, first) {
		a := decodeAnswer(t, again)
		t.Fatalf("repeat answered %v %v MID %d, want the same empty acknowledgement", a.Type, a.Code, a.MessageID)
	}
}
