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
