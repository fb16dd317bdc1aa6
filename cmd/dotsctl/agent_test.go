package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/levee-dots/levee/dotsserver"
	"github.com/levee-dots/levee/dotsserver/dotstest"
)

// agentRun is a running `dotsctl agent`.
type agentRun struct {
	out, errOut *syncBuffer
	stop        func()
}

// startAgent starts the agent of e and waits for its first session.
func startAgent(t *testing.T, e *ctlEnv) *agentRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	a := &agentRun{out: &syncBuffer{}, errOut: &syncBuffer{}}
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"--config", e.config, "--timeout", "5s", "agent"}, a.out, a.errOut) }()
	stopped := false
	a.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("agent ended with %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("agent did not stop when its context was cancelled")
		}
	}
	t.Cleanup(func() {
		a.stop()
		if t.Failed() {
			t.Logf("agent stderr:\n%s", a.errOut.String())
		}
	})
	waitWithin(t, "agent", a.out, "session up", 10*time.Second)
	return a
}

// waitWithin polls buf until it contains want, for at most d.
func waitWithin(t *testing.T, what string, buf *syncBuffer, want string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !strings.Contains(buf.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %q did not appear within %s in:\n%s", what, want, d, buf.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAgentRefreshesMitigations: a request of 4 s made through the agent
// outlives its lifetime because the agent refreshes it (same mid and
// scope, RFC 9132 §4.4.1) at 80% of it; an indefinite one is never
// refreshed.
func TestAgentRefreshesMitigations(t *testing.T) {
	e := newCtlEnv(t)
	a := startAgent(t, e)
	contains(t, "short request", e.ok(t, "mitigate", "--target", "203.0.113.20/32", "--port", "443", "--proto", "tcp", "--lifetime", "4"),
		"mid 1 created", "lifetime granted: 4s")
	created := time.Now()
	contains(t, "indefinite request", e.ok(t, "mitigate", "--target", "203.0.113.21/32", "--lifetime", "indefinite"), "mid 2 created")
	waitWithin(t, "first refresh", a.out, "mid 1 refreshed (2.04), lifetime 4s", 6*time.Second)
	// Past the first lifetime, the request is still there and active.
	time.Sleep(time.Until(created.Add(5500 * time.Millisecond)))
	st := e.ok(t, "status", "1")
	contains(t, "status of the refreshed request", st, "203.0.113.20/32", "attack-mitigation-in-progress")
	// And it goes on: the next refresh comes 80% of the lifetime later.
	deadline := time.Now().Add(4 * time.Second)
	for strings.Count(a.out.String(), "mid 1 refreshed") < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("no second refresh of mid 1:\n%s", a.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if strings.Contains(a.out.String(), "mid 2 refreshed") {
		t.Errorf("the indefinite request was refreshed:\n%s", a.out.String())
	}
	if s := a.errOut.String(); strings.Contains(s, "refreshing") {
		t.Errorf("a refresh failed:\n%s", s)
	}
	// Withdrawn, the request is no longer refreshed.
	e.ok(t, "withdraw", "1")
	before := strings.Count(a.out.String(), "mid 1 refreshed")
	time.Sleep(4 * time.Second)
	if n := strings.Count(a.out.String(), "mid 1 refreshed"); n != before {
		t.Errorf("mid 1 refreshed %d more times after its withdrawal:\n%s", n-before, a.out.String())
	}
}

// TestAgentFollowsSessionConfig: the agent takes its heartbeat interval
// from idle-config while the client has no active mitigation and from
// mitigating-config once it has one (RFC 9132 §4.5), and reads the
// configuration again before its Max-Age (here 2 s) runs out, so that a
// change made meanwhile reaches it.
func TestAgentFollowsSessionConfig(t *testing.T) {
	e := newCtlEnvWith(t, dotstest.Options{Mutate: func(o *dotsserver.Options) { o.ConfigMaxAge = 2 }})
	e.ok(t, "session", "set", "--sid", "5", "--heartbeat-interval", "17", "--idle-heartbeat-interval", "40")
	a := startAgent(t, e)
	contains(t, "agent output", a.out.String(), "heartbeat every 40s (idle-config)")

	e.ok(t, "session", "set", "--sid", "6", "--heartbeat-interval", "17", "--idle-heartbeat-interval", "50")
	waitWithin(t, "configuration read again", a.out, "heartbeat every 50s (idle-config)", 5*time.Second)

	e.ok(t, "mitigate", "--target", "203.0.113.22/32")
	waitWithin(t, "mitigating", a.out, "heartbeat every 17s (mitigating-config)", 5*time.Second)
	// During the mitigation the configuration is not read again (§4.5).
	n := strings.Count(a.out.String(), "session configuration read again")
	time.Sleep(3 * time.Second)
	if m := strings.Count(a.out.String(), "session configuration read again"); m != n {
		t.Errorf("the configuration was read %d times during a mitigation, want none:\n%s", m-n, a.out.String())
	}
}

func TestRefreshAfter(t *testing.T) {
	for _, tc := range []struct {
		lifetime, want time.Duration
	}{
		{4 * time.Second, 3200 * time.Millisecond}, // 80%: 60 s before the end is already past
		{time.Minute, 48 * time.Second},
		{100 * time.Second, 40 * time.Second},  // 60 s before the end comes first
		{300 * time.Second, 240 * time.Second}, // both at once
		{time.Hour, 48 * time.Minute},          // 80% comes first
	} {
		t.Run(tc.lifetime.String(), func(t *testing.T) {
			if got := refreshAfter(tc.lifetime); got != tc.want {
				t.Errorf("refreshAfter(%s) = %s, want %s", tc.lifetime, got, tc.want)
			}
		})
	}
}

// TestAgentRefreshKeepsNewLifetime: a request refreshed through the agent
// with a shorter lifetime is refreshed from then on with that lifetime
// (the agent takes the new end for a refresh by someone else, not for
// time gone by).
func TestAgentRefreshKeepsNewLifetime(t *testing.T) {
	e := newCtlEnv(t)
	a := startAgent(t, e)
	e.ok(t, "mitigate", "--target", "203.0.113.26/32", "--lifetime", "3600")
	contains(t, "refresh", e.ok(t, "mitigate", "--mid", "1", "--target", "203.0.113.26/32", "--lifetime", "5"), "mid 1 refreshed (2.04)", "lifetime granted: 5s")
	waitWithin(t, "the agent's refresh", a.out, "mid 1 refreshed (2.04), lifetime", 8*time.Second)
	contains(t, "agent output", a.out.String(), "mid 1 refreshed (2.04), lifetime 5s")
}
