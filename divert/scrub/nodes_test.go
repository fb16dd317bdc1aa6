package scrub

import (
	"context"
	"net"
	"testing"
	"time"
)

// TestNodes: the operator's view of the nodes follows what the backend
// saw: not contacted, up once a node took the state, down with the
// reason when it cannot be reached.
func TestNodes(t *testing.T) {
	p := newPKI(t)
	up := p.startNode(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gone := "https://" + l.Addr().String()
	l.Close() // nothing listens there any more
	cfg := p.config(up.srv.URL, gone)
	cfg.Nodes[0].CapacityBPS = 10e9
	b := newBackend(t, cfg, &clock{t: time.Unix(1e9, 0)}, newRecorder())

	before := b.Nodes()
	if len(before) != 2 || before[0].Up || before[1].Up || before[0].Error != "not contacted yet" {
		t.Fatalf("before any state was sent: %+v", before)
	}
	if _, err := b.Apply(context.Background(), alpha); err != nil {
		t.Fatal(err)
	}
	after := b.Nodes()
	cases := []struct {
		name, url string
		up        bool
		capacity  uint64
	}{
		{"node1", up.srv.URL, true, 10e9},
		{"node2", gone, false, 0},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := after[i]
			if n.Name != tc.name || n.URL != tc.url || n.Up != tc.up || n.CapacityBPS != tc.capacity || (n.Error == "") == !tc.up {
				t.Errorf("%+v, want name %s url %s up %v capacity %d, an error exactly when down", n, tc.name, tc.url, tc.up, tc.capacity)
			}
		})
	}
}
