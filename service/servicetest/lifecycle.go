// Package servicetest holds the lifecycle of a mitigation request (RFC 9132
// §4.4: create, refresh, efficacy, supersede, conflict, ownership, DELETE
// with active-but-terminating, re-request, expiry) as one table of steps,
// and runs it through a Driver: the mitigation service's Go API, or a real
// signal channel, so that both are held to the same expectations.
package servicetest

import (
	"strings"
	"testing"
	"time"

	"github.com/levee-dots/levee/dots"
)

// Driver performs the steps for one client (alpha, which owns
// 203.0.113.0/25) of a server that has no mitigator configured.
type Driver interface {
	// Put sends a PUT of mid with scope sc (an efficacy update when efficacy).
	Put(t *testing.T, mid uint32, sc dots.Scope, efficacy bool) (dots.Code, *dots.Scope)
	// Get returns the status of mid.
	Get(t *testing.T, mid uint32) (dots.Code, *dots.Scope)
	// Delete withdraws mid.
	Delete(t *testing.T, mid uint32) dots.Code
	// Advance moves the server's clock and lets it act on the time.
	Advance(d time.Duration)
}

// Step is one request and what it must get.
type Step struct {
	Name     string
	Op       string // put, efficacy, get, delete, wait
	MID      uint32
	Prefix   string
	Lifetime int64
	Wait     time.Duration
	Code     dots.Code   // expected response code (0 for wait)
	Status   dots.Status // for get: the expected status (0: not checked)
	Note     string      // a text the response's note must contain
}

func scope(prefix string, lifetime int64) dots.Scope {
	return dots.Scope{TargetPrefix: []string{prefix}, Lifetime: dots.Ptr(lifetime)}
}

// Lifecycle is the life of one client's requests, step by step.
var Lifecycle = []Step{
	{Name: "create", Op: "put", MID: 100, Prefix: "203.0.113.10/32", Lifetime: 3600, Code: dots.Created},
	{Name: "in progress, no mitigator", Op: "get", MID: 100, Code: dots.Content, Status: dots.StatusInProgress, Note: "no mitigator"},
	{Name: "refresh", Op: "put", MID: 100, Prefix: "203.0.113.10/32", Lifetime: 600, Code: dots.Changed},
	{Name: "efficacy", Op: "efficacy", MID: 100, Prefix: "203.0.113.10/32", Lifetime: 600, Code: dots.Changed},
	{Name: "refresh with other targets", Op: "put", MID: 100, Prefix: "203.0.113.11/32", Lifetime: 600, Code: dots.BadRequest},
	{Name: "not owned", Op: "put", MID: 102, Prefix: "203.0.113.200/32", Lifetime: 600, Code: dots.Forbidden},
	{Name: "higher mid supersedes", Op: "put", MID: 101, Prefix: "203.0.113.8/29", Lifetime: 3600, Code: dots.Created, Note: "supersedes mids 100"},
	{Name: "superseded is gone", Op: "get", MID: 100, Code: dots.NotFound},
	{Name: "lower mid conflicts", Op: "put", MID: 99, Prefix: "203.0.113.9/32", Lifetime: 3600, Code: dots.Conflict},
	{Name: "withdraw", Op: "delete", MID: 101, Code: dots.Deleted},
	{Name: "active but terminating", Op: "get", MID: 101, Code: dots.Content, Status: dots.StatusClientWithdrawn},
	{Name: "re-request while terminating", Op: "put", MID: 101, Prefix: "203.0.113.8/29", Lifetime: 3600, Code: dots.Created},
	{Name: "back in progress", Op: "get", MID: 101, Code: dots.Content, Status: dots.StatusInProgress},
	{Name: "withdraw again", Op: "delete", MID: 101, Code: dots.Deleted},
	{Name: "doubled period not over", Op: "wait", Wait: 200 * time.Second},
	{Name: "still terminating", Op: "get", MID: 101, Code: dots.Content, Status: dots.StatusClientWithdrawn},
	{Name: "doubled period over", Op: "wait", Wait: 41 * time.Second},
	{Name: "terminated and gone", Op: "get", MID: 101, Code: dots.NotFound},
	{Name: "short lifetime", Op: "put", MID: 200, Prefix: "203.0.113.20/32", Lifetime: 60, Code: dots.Created},
	{Name: "lifetime runs out", Op: "wait", Wait: 61 * time.Second},
	{Name: "expired", Op: "get", MID: 200, Code: dots.NotFound},
	{Name: "withdraw unknown", Op: "delete", MID: 999, Code: dots.Deleted},
}

// Run runs the Lifecycle through d.
func Run(t *testing.T, d Driver) {
	for _, st := range Lifecycle {
		var code dots.Code
		var sc *dots.Scope
		switch st.Op {
		case "put", "efficacy":
			code, sc = d.Put(t, st.MID, scope(st.Prefix, st.Lifetime), st.Op == "efficacy")
		case "get":
			code, sc = d.Get(t, st.MID)
		case "delete":
			code = d.Delete(t, st.MID)
		case "wait":
			d.Advance(st.Wait)
			continue
		}
		if code != st.Code {
			t.Fatalf("%s: %s mid %d: code %s, want %s", st.Name, st.Op, st.MID, code, st.Code)
		}
		if st.Status != 0 && (sc == nil || sc.Status == nil || *sc.Status != st.Status) {
			t.Fatalf("%s: status %+v, want %s", st.Name, sc, st.Status)
		}
		if st.Note != "" && (sc == nil || !strings.Contains(sc.Note, st.Note)) {
			t.Fatalf("%s: note %+v, want it to contain %q", st.Name, sc, st.Note)
		}
		if sc != nil && sc.AttackStatus != nil {
			t.Fatalf("%s: attack-status echoed by the server", st.Name)
		}
	}
}
