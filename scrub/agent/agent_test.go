package agent

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/levee-dots/levee/scrub"
)

// fakeNode records every Set and serves fixed counters.
type fakeNode struct {
	mu       sync.Mutex
	sets     []scrub.Desired
	fail     error
	counters scrub.Counters
}

func (f *fakeNode) Set(_ context.Context, d scrub.Desired) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return f.fail
	}
	f.sets = append(f.sets, d)
	return nil
}

func (f *fakeNode) Counters(context.Context) (scrub.Counters, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.counters, nil
}

func (f *fakeNode) Close() error { return nil }

func (f *fakeNode) setCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.sets)
}

func newTestHandler(t *testing.T, n scrub.Node, b Bounds) *Handler {
	t.Helper()
	h, err := New(Options{Node: n, Boot: "b1", Bounds: b})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func do(h http.Handler, method, path, body string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

const oneMitigation = `{"mitigations":[{"id":"c1/1","targets":["203.0.113.10/32"],
  "rules":[{"name":"scope","protocols":[17],"dst-ports":[{"low":53,"high":53}],"action":"drop"}]}]}`

func TestPutStateRefusals(t *testing.T) {
	n := &fakeNode{}
	h := newTestHandler(t, n, Bounds{MaxBodyBytes: 4096, MaxRules: 2, MaxTargets: 2, MaxMitigations: 3})
	cases := []struct {
		name, body string
		status     int
		want       string
	}{
		{"empty", "", 400, "empty body"},
		{"not json", "{", 400, "body:"},
		{"unknown field", `{"mitigations":[],"x":1}`, 400, `unknown field "x"`},
		{"two values", `{"mitigations":[]} {}`, 400, "more than one JSON value"},
		{"bad prefix", `{"mitigations":[{"id":"a","targets":["203.0.113.0/33"]}]}`, 400, "body:"},
		{"no id", `{"mitigations":[{"targets":["203.0.113.0/24"]}]}`, 422, "mitigations[0].id: empty"},
		{"dup id", `{"mitigations":[{"id":"a","targets":["203.0.113.0/28"]},{"id":"a","targets":["203.0.113.64/28"]}]}`, 422, `mitigations[1].id: "a" is also mitigations[0]`},
		{"no target", `{"mitigations":[{"id":"a","targets":[]}]}`, 422, "mitigations[0].targets: a mitigation needs"},
		{"overlap", `{"mitigations":[{"id":"a","targets":["203.0.113.0/24"]},{"id":"b","targets":["2001:db8::/32","203.0.113.7/32"]}]}`, 422, "mitigations[1].targets: 203.0.113.7/32 overlaps 203.0.113.0/24 of mitigations[0]"},
		{"bad action", `{"mitigations":[{"id":"a","targets":["203.0.113.0/24"],"rules":[{"name":"r","action":"reject"}]}]}`, 422, `mitigations[0].rules[0].action: "reject"`},
		{"dup rule", `{"mitigations":[{"id":"a","targets":["203.0.113.0/24"],"rules":[{"name":"r"},{"name":"r"}]}]}`, 422, `rules[1].name: "r" is used twice`},
		{"too many rules", `{"mitigations":[{"id":"a","targets":["203.0.113.0/24"],"rules":[{"name":"r"},{"name":"s"},{"name":"t"}]}]}`, 422, "rules: 3 is more than this node accepts (2)"},
		{"ports reversed", `{"mitigations":[{"id":"a","targets":["203.0.113.0/24"],"rules":[{"name":"r","dst-ports":[{"low":9,"high":1}]}]}]}`, 422, "dst-ports[0]: low 9 is above high 1"},
		{"too large", `{"mitigations":[` + strings.Repeat(" ", 5000) + `]}`, 413, "larger than 4096 bytes"},
		// The checks of scrub.Validate answer before the node is called.
		{"empty prefix", `{"mitigations":[{"id":"a","targets":["203.0.113.0/24",""]}]}`, 422, `mitigations[0].targets[1]: not a prefix (mitigation "a")`},
		{"long id", `{"mitigations":[{"id":"` + strings.Repeat("x", 129) + `","targets":["203.0.113.0/24"]}]}`, 422, "mitigations[0].id: longer than 128 bytes"},
		{"too many mitigations", `{"mitigations":[{"id":"a","targets":["203.0.113.1/32"]},{"id":"b","targets":["203.0.113.2/32"]},{"id":"c","targets":["203.0.113.3/32"]},{"id":"d","targets":["203.0.113.4/32"]}]}`, 422, "mitigations: 4 is more than this node accepts (3)"},
		{"too many targets", `{"mitigations":[{"id":"a","targets":["203.0.113.1/32","203.0.113.2/32","203.0.113.3/32"]}]}`, 422, `mitigations[0].targets: 3 is more than this node accepts (2) (mitigation "a")`},
		{"ports with icmp", `{"mitigations":[{"id":"a","targets":["203.0.113.0/24"],"rules":[{"name":"r","protocols":[1],"dst-ports":[{"low":7,"high":7}]}]}]}`, 422, `mitigations[0].rules[0].protocols[0]: protocol 1 has no ports`},
		{"lengths", `{"mitigations":[{"id":"a","targets":["203.0.113.0/24"],"rules":[{"name":"r","min-length":9,"max-length":8}]}]}`, 422, `mitigations[0].rules[0].min-length: 9 is above max-length 8 (mitigation "a", rule "r")`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := do(h, "PUT", "/v1/state", tc.body)
			var e ErrorResponse
			_ = json.Unmarshal(w.Body.Bytes(), &e)
			if w.Code != tc.status || !strings.Contains(e.Error, tc.want) {
				t.Errorf("got %d %q, want %d containing %q", w.Code, w.Body.String(), tc.status, tc.want)
			}
			if w.Code == http.StatusUnprocessableEntity && !strings.HasPrefix(e.Error, "mitigations") {
				t.Errorf("a refused state is answered with %q, want the field first", e.Error)
			}
		})
	}
	if n.setCount() != 0 {
		t.Errorf("refused states reached the node %d times", n.setCount())
	}
	if w := do(h, "GET", "/v1/state", ""); !strings.Contains(w.Body.String(), `"generation":0`) {
		t.Errorf("a refused PUT changed the state: %s", w.Body.String())
	}
}

func TestPutStateIdempotent(t *testing.T) {
	n := &fakeNode{}
	h := newTestHandler(t, n, Bounds{})
	for i := range 3 {
		w := do(h, "PUT", "/v1/state", oneMitigation)
		if w.Code != 204 || w.Header().Get(HeaderBoot) != "b1" || w.Header().Get(HeaderGeneration) != "1" {
			t.Fatalf("PUT %d: %d %v %s", i, w.Code, w.Header(), w.Body.String())
		}
	}
	if n.setCount() != 1 {
		t.Errorf("the same state was set %d times, want 1", n.setCount())
	}
	w := do(h, "GET", "/v1/state", "")
	var st StateResponse
	if err := json.Unmarshal(w.Body.Bytes(), &st); err != nil || st.Generation != 1 || len(st.State.Mitigations) != 1 ||
		st.State.Mitigations[0].Targets[0] != netip.MustParsePrefix("203.0.113.10/32") {
		t.Errorf("GET /v1/state: %v %s", err, w.Body.String())
	}
	if w := do(h, "PUT", "/v1/state", `{"mitigations":[]}`); w.Code != 204 || w.Header().Get(HeaderGeneration) != "2" {
		t.Errorf("withdraw all: %d %v", w.Code, w.Header())
	}
	// A failed Set is reported, shows in health, and is tried again.
	n.fail = errors.New("netlink: operation not permitted")
	if w := do(h, "PUT", "/v1/state", oneMitigation); w.Code != 500 || !strings.Contains(w.Body.String(), "operation not permitted") {
		t.Errorf("failed set: %d %s", w.Code, w.Body.String())
	}
	if w := do(h, "GET", "/v1/health", ""); !strings.Contains(w.Body.String(), `"status":"degraded"`) {
		t.Errorf("health after failure: %s", w.Body.String())
	}
	n.fail = nil
	if w := do(h, "PUT", "/v1/state", `{"mitigations":[]}`); w.Code != 204 || n.setCount() != 3 {
		t.Errorf("after a failure the same state must be set again: %d, %d sets", w.Code, n.setCount())
	}
	if w := do(h, "DELETE", "/v1/state", ""); w.Code != http.StatusMethodNotAllowed {
		t.Errorf("DELETE: %d", w.Code)
	}
}

func TestCountersJSON(t *testing.T) {
	n := &fakeNode{counters: scrub.Counters{
		Mitigations: map[string]scrub.Count{"c1/1": {Packets: 10, Bytes: 1000}},
		Rules:       map[string]map[string]scrub.Count{"c1/1": {"scope": {Packets: 7, Bytes: 700}}},
	}}
	h := newTestHandler(t, n, Bounds{})
	do(h, "PUT", "/v1/state", oneMitigation)
	w := do(h, "GET", "/v1/counters", "")
	want := `{"boot":"b1","generation":1,"mitigations":{"c1/1":{"packets":10,"bytes":1000}},"rules":{"c1/1":{"scope":{"packets":7,"bytes":700}}}}`
	if w.Code != 200 || strings.TrimSpace(w.Body.String()) != want {
		t.Errorf("got %d %s\nwant %s", w.Code, w.Body.String(), want)
	}
	n.counters = scrub.Counters{}
	w = do(h, "GET", "/v1/counters", "")
	if !strings.Contains(w.Body.String(), `"mitigations":{},"rules":{}`) {
		t.Errorf("empty counters: %s", w.Body.String())
	}
}

func TestAuthorize(t *testing.T) {
	h, _ := New(Options{Node: &fakeNode{}, Authorize: func(*http.Request) error { return errors.New(`client "beta" may not program this node`) }})
	if w := do(h, "GET", "/v1/health", ""); w.Code != 403 || !strings.Contains(w.Body.String(), "may not program") {
		t.Errorf("%d %s", w.Code, w.Body.String())
	}
	if _, err := New(Options{}); err == nil || !strings.Contains(err.Error(), "no data plane") {
		t.Errorf("New without node: %v", err)
	}
}
