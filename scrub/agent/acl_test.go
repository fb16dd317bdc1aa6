package agent

import (
	"encoding/json"
	"net/http"
	"testing"
)

// TestPutStateACLs: a state that differs only in its ACLs reaches the
// data plane, and GET /v1/state returns the ACLs the node holds.
func TestPutStateACLs(t *testing.T) {
	const withACL = `{"mitigations":[{"id":"c1/1","targets":["203.0.113.10/32"],"rules":[]}],
  "acls":[{"id":"c1/acl/edge","group":"c1","targets":["203.0.113.0/24"],
    "entries":[{"name":"rule1","sources":["192.0.2.0/24"],"action":"drop"}]}]}`
	const withoutACL = `{"mitigations":[{"id":"c1/1","targets":["203.0.113.10/32"],"rules":[]}]}`
	n := &fakeNode{}
	h := newTestHandler(t, n, Bounds{})
	tests := []struct {
		name string
		body string
		sets int
		acls int
	}{
		{"mitigation only", withoutACL, 1, 0},
		{"an ACL added", withACL, 2, 1},
		{"the same again", withACL, 2, 1},
		{"the ACL withdrawn", withoutACL, 3, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if w := do(h, http.MethodPut, "/v1/state", tc.body); w.Code != http.StatusNoContent {
				t.Fatalf("PUT: %d %s", w.Code, w.Body)
			}
			if got := n.setCount(); got != tc.sets {
				t.Fatalf("%d Sets of the node, want %d", got, tc.sets)
			}
			var st StateResponse
			if err := json.Unmarshal(do(h, http.MethodGet, "/v1/state", "").Body.Bytes(), &st); err != nil {
				t.Fatal(err)
			}
			if len(st.State.ACLs) != tc.acls {
				t.Fatalf("GET /v1/state has %d ACLs, want %d", len(st.State.ACLs), tc.acls)
			}
		})
	}
}
