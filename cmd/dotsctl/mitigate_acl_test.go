package main

import (
	"testing"
	"time"

	"github.com/levee-dots/levee/dots"
)

func TestParseACLControl(t *testing.T) {
	for _, tc := range []struct {
		in   string
		name string
		at   dots.ActivationType
		err  string
	}{
		{in: "an-accept-list=deactivate", name: "an-accept-list", at: 3},
		{in: "sample-ipv4-acl=immediate", name: "sample-ipv4-acl", at: 2},
		{in: "x=activate-when-mitigating", name: "x", at: 1},
		{in: "a=b=immediate", err: `activation-type "b=immediate"`},
		{in: "an-accept-list", err: "use NAME=ACTIVATION"},
		{in: "=immediate", err: "use NAME=ACTIVATION"},
		{in: "acl=", err: "use NAME=ACTIVATION"},
		{in: "acl=2", err: `activation-type "2": use activate-when-mitigating, immediate or deactivate`},
		{in: "acl=drop", err: `activation-type "drop"`},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseACLControl(tc.in)
			if tc.err != "" {
				if err == nil {
					t.Fatalf("parseACLControl(%q) = %+v, want an error with %q", tc.in, got, tc.err)
				}
				contains(t, "error", err.Error(), tc.err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.ACLName != tc.name || got.ActivationType == nil || *got.ActivationType != tc.at {
				t.Fatalf("parseACLControl(%q) = %+v, want %s=%s", tc.in, got, tc.name, tc.at)
			}
		})
	}
}

// TestMitigateAliasAndACL: --alias and --acl reach the server as alias-name
// and an RFC 9133 acl-list, whose answers name them.
func TestMitigateAliasAndACL(t *testing.T) {
	e := newCtlEnv(t)
	err := e.fails(t, "mitigate", "--alias", "web-servers")
	contains(t, "mitigate --alias", err.Error(), "4.00", `alias-name "web-servers"`)

	// In idle time, filter control is refused (RFC 9133).
	err = e.fails(t, "mitigate", "--target", "203.0.113.10/32", "--acl", "an-accept-list=deactivate")
	contains(t, "mitigate --acl in idle time", err.Error(), "4.00", "acl-list")

	e.ok(t, "mitigate", "--target", "203.0.113.10/32")
	err = e.fails(t, "mitigate", "--target", "203.0.113.10/32", "--acl", "an-accept-list=deactivate")
	contains(t, "mitigate --acl of an unknown ACL", err.Error(), "4.04", `acl-name "an-accept-list"`)

	err = e.fails(t, "mitigate", "--target", "203.0.113.10/32", "--acl", "an-accept-list")
	contains(t, "mitigate --acl without an activation", err.Error(), "NAME=ACTIVATION")
}

// TestAgentRefreshLeavesACLs: the agent's refresh of a request made with
// --acl does not switch the ACLs again (the switch is the request's, RFC
// 9133 §3.2.1; a refresh changes only the lifetime): a change made over
// the data channel after the request stays.
func TestAgentRefreshLeavesACLs(t *testing.T) {
	e := newDataEnv(t)
	e.ok(t, "acl", "create", "--name", "allow", "--dst", "203.0.113.10/32", "--src", "192.0.2.0/24",
		"--action", "accept", "--activation", "immediate")
	a := startAgent(t, e)
	contains(t, "attack", e.ok(t, "mitigate", "--target", "203.0.113.10/32"), "mid 1 created")
	contains(t, "mitigate --acl", e.ok(t, "mitigate", "--target", "203.0.113.10/32", "--lifetime", "4", "--acl", "allow=deactivate"), "mid 2 ")
	contains(t, "after --acl", rowOf(t, e.ok(t, "acl", "list"), "allow"), "deactivate")
	e.ok(t, "acl", "activate", "allow", "immediate")
	waitWithin(t, "refresh of mid 2", a.out, "mid 2 refreshed", 6*time.Second)
	contains(t, "after the refresh", rowOf(t, e.ok(t, "acl", "list"), "allow"), "immediate")
}
