package dotsclient

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsserver/dotstest"
	"github.com/levee-dots/levee/store"
)

func TestNewCUID(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		c, err := NewCUID()
		if err != nil {
			t.Fatal(err)
		}
		b, err := base64.RawURLEncoding.DecodeString(c)
		if len(c) != 22 || err != nil || len(b) != 16 {
			t.Fatalf("NewCUID() = %q (%v): want 22 base64url characters of 16 bytes", c, err)
		}
		if b[6]>>4 != 4 || b[8]>>6 != 2 {
			t.Fatalf("NewCUID() = %x: want an RFC 4122 version 4 UUID (version nibble %x, variant bits %b)", b, b[6]>>4, b[8]>>6)
		}
		if seen[c] {
			t.Fatalf("NewCUID() gave %q twice", c)
		}
		seen[c] = true
	}
}

// collidedEnv is a server whose store has alpha's derived cuid bound to
// another key: every request under it is a cuid collision.
func collidedEnv(t *testing.T) *testEnv {
	t.Helper()
	s := dotstest.Start(t, dotstest.Options{Seed: func(s *dotstest.Server) {
		op := store.Op{Bucket: "cuid-bindings", Key: s.Dev.Clients["alpha"].CUID, Value: []byte("another-key")}
		if err := s.Store.Apply(context.Background(), op); err != nil {
			t.Fatal(err)
		}
	}})
	return &testEnv{Server: s, dev: s.Dev, roots: s.Roots, addr: s.Addr}
}

// TestCUIDCollisionNewCUID: after a 4.09 cuid-collision the client makes a
// new cuid, hands it to OnCUIDChange and sends the request again with it,
// once (RFC 9132 §4.4.1).
func TestCUIDCollisionNewCUID(t *testing.T) {
	sc := dots.Scope{TargetPrefix: []string{"203.0.113.10/32"}, Lifetime: dots.Ptr[int64](600)}
	for _, transport := range []string{"dtls", "tls"} {
		t.Run(transport, func(t *testing.T) {
			e := collidedEnv(t)
			derived := e.dev.Clients["alpha"].CUID
			var mu sync.Mutex
			var changes [][2]string
			cfg := e.config(t, "alpha", e.addr)
			cfg.Transport = transport
			cfg.OnCUIDChange = func(old, cuid string) error {
				mu.Lock()
				defer mu.Unlock()
				changes = append(changes, [2]string{old, cuid})
				return nil
			}
			c, err := Dial(timeout(t, 10*time.Second), cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			r, err := c.Mitigate(timeout(t, 10*time.Second), 1, sc)
			if err != nil || r.Code != dots.Created {
				t.Fatalf("Mitigate after a collision: %+v, %v; want 2.01 under a new cuid", r, err)
			}
			mu.Lock()
			got := changes
			mu.Unlock()
			if len(got) != 1 || got[0][0] != derived || got[0][1] != c.CUID() || len(c.CUID()) != 22 {
				t.Fatalf("OnCUIDChange calls %q, client cuid %q: want one from %s to the client's new cuid", got, c.CUID(), derived)
			}
			// The request lives under the new cuid, and later requests use it.
			if r, err := c.Status(timeout(t, 10*time.Second), dots.Ptr[uint32](1), ""); err != nil || r.Code != dots.Content {
				t.Fatalf("Status under the new cuid: %+v, %v", r, err)
			}
			recs := e.Srv.Service().AllMitigations()
			if len(recs) != 1 || recs[0].CUID != c.CUID() {
				t.Fatalf("server holds %+v, want the one request under %s", recs, c.CUID())
			}
			if len(changes) != 1 {
				t.Fatalf("OnCUIDChange called %d times, want once", len(changes))
			}
		})
	}
}

// TestCUIDCollisionKeepFails: when the new cuid cannot be kept, the request
// is not sent again and the client keeps its cuid.
func TestCUIDCollisionKeepFails(t *testing.T) {
	e := collidedEnv(t)
	cfg := e.config(t, "alpha", e.addr)
	cfg.OnCUIDChange = func(old, cuid string) error { return errors.New("disk full") }
	c, err := Dial(timeout(t, 10*time.Second), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Mitigate(timeout(t, 10*time.Second), 1, dots.Scope{TargetPrefix: []string{"203.0.113.10/32"}})
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Mitigate: %v, want the keeping error", err)
	}
	if c.CUID() != e.dev.Clients["alpha"].CUID {
		t.Fatalf("cuid %s after a failed keep, want the derived one", c.CUID())
	}
	if recs := e.Srv.Service().AllMitigations(); len(recs) != 0 {
		t.Fatalf("server holds %+v, want nothing", recs)
	}
}

// TestCUIDCollisionKept: with KeepCUID the 4.09 is the answer, and no new
// cuid is made.
func TestCUIDCollisionKept(t *testing.T) {
	e := collidedEnv(t)
	cfg := e.config(t, "alpha", e.addr)
	cfg.KeepCUID = true
	cfg.OnCUIDChange = func(old, cuid string) error { t.Errorf("OnCUIDChange(%s, %s) with KeepCUID", old, cuid); return nil }
	c, err := Dial(timeout(t, 10*time.Second), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r, err := c.Mitigate(timeout(t, 10*time.Second), 1, dots.Scope{TargetPrefix: []string{"203.0.113.10/32"}})
	if err != nil || !IsCUIDCollision(r) {
		t.Fatalf("Mitigate: %+v, %v; want the 4.09 cuid-collision", r, err)
	}
	if c.CUID() != e.dev.Clients["alpha"].CUID {
		t.Fatalf("cuid %s, want the derived one kept", c.CUID())
	}
}
