package service_test

import (
	"fmt"
	"testing"

	"github.com/levee-dots/levee/divert"
	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/service"
)

// aclWith is an ACL of one ACE from 192.0.2.0/24 to dst with the given
// actions (JSON).
func aclWith(name, activation, dst, actions string) string {
	return `{"ietf-dots-data-channel:acls":{"acl":[{"name":"` + name + `","type":"ipv4-acl-type","activation-type":"` + activation +
		`","aces":{"ace":[{"name":"r1","matches":{"ipv4":{"destination-ipv4-network":"` + dst +
		`","source-ipv4-network":"192.0.2.0/24"}},"actions":` + actions + `}]}}]}}`
}

// conflictOf renders conflict-information as "cause: acl-name/acl-type ...".
func conflictOf(ci *dots.ConflictInformation) string {
	if ci == nil {
		return "none"
	}
	out := fmt.Sprint(*ci.ConflictCause)
	if ci.ConflictStatus != nil {
		out += " status " + fmt.Sprint(*ci.ConflictStatus)
	}
	if ci.ConflictScope != nil {
		for _, a := range ci.ConflictScope.ACLList {
			out += " " + a.ACLName + "/" + a.ACLType
		}
	}
	return out
}

// TestAcceptListConflict: a mitigation whose targets an enforced
// accept-list of the same client lets traffic through reports
// conflict-cause conflict-with-acceptlist (RFC 9132 §4.4.1) naming the ACL,
// in the response and in the status; filters that drop, rate-limit, are
// not enforced or cover other addresses do not.
func TestAcceptListConflict(t *testing.T) {
	const accept = `{"forwarding":"accept"}`
	tests := []struct {
		name, acl, target, want string
	}{
		{"activate-when-mitigating accept-list",
			aclWith("allow", "activate-when-mitigating", "203.0.113.0/26", accept), "203.0.113.10/32",
			"conflict-with-acceptlist allow/ipv4-acl-type"},
		{"immediate accept-list",
			aclWith("allow", "immediate", "203.0.113.0/26", accept), "203.0.113.10/32",
			"conflict-with-acceptlist allow/ipv4-acl-type"},
		{"target wider than the accept-list",
			aclWith("allow", "immediate", "203.0.113.8/30", accept), "203.0.113.0/26",
			"conflict-with-acceptlist allow/ipv4-acl-type"},
		{"deactivated accept-list",
			aclWith("allow", "deactivate", "203.0.113.0/26", accept), "203.0.113.10/32", "none"},
		{"accept-list for other addresses",
			aclWith("allow", "immediate", "203.0.113.64/26", accept), "203.0.113.10/32", "none"},
		{"rate limit",
			aclWith("limit", "immediate", "203.0.113.0/26", `{"forwarding":"accept","rate-limit":"20.00"}`), "203.0.113.10/32", "none"},
		{"drop",
			aclWith("drop", "immediate", "203.0.113.0/26", `{"forwarding":"drop"}`), "203.0.113.10/32", "none"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, service.Options{Backends: []divert.Diverter{newFilters()}})
			register(t, f.svc, alpha)
			if _, err := f.svc.PutACLs(alpha, mustACLs(t, tc.acl), false, service.Insert{}); err != nil {
				t.Fatal(err)
			}
			sc := dots.Scope{TargetPrefix: []string{tc.target}, Lifetime: dots.Ptr[int64](3600)}
			res, err := f.svc.PutMitigation(t.Context(), alpha, service.PutRequest{MID: 1, Request: request(t, sc)})
			if err != nil {
				t.Fatal(err)
			}
			if res.Code != dots.Created {
				t.Errorf("code %s, want 2.01: the request is kept", res.Code)
			}
			if got := conflictOf(res.Conflict); got != tc.want {
				t.Errorf("response conflict %s, want %s", got, tc.want)
			}
			r, err := f.svc.Mitigation(alpha, 1)
			if err != nil {
				t.Fatal(err)
			}
			if got := conflictOf(r.StatusScope(f.clk.Now(), true, true).ConflictInformation); got != tc.want {
				t.Errorf("status conflict %s, want %s", got, tc.want)
			}
		})
	}
}

// TestAcceptListConflictResolved: the RFC 9133 §4.1 flow. The conflict
// shows while the accept-list is enforced; the client deactivates it from
// the signal channel, and the conflict is gone from the new request's
// status; another client's request is not concerned.
func TestAcceptListConflictResolved(t *testing.T) {
	f := newFixture(t, service.Options{Backends: []divert.Diverter{newFilters()}})
	register(t, f.svc, alpha)
	if _, err := f.svc.PutACLs(alpha, mustACLs(t, aclWith("an-accept-list", "activate-when-mitigating", "203.0.113.0/26", `{"forwarding":"accept"}`)),
		false, service.Insert{}); err != nil {
		t.Fatal(err)
	}
	res, err := aclPut(t, f.svc, alpha, 123, false)
	if err != nil || conflictOf(res.Conflict) != "conflict-with-acceptlist an-accept-list/ipv4-acl-type" {
		t.Fatalf("mid 123: %+v %v", res, err)
	}
	res, err = aclPut(t, f.svc, alpha, 124, false, ctl("an-accept-list", 3))
	if err != nil {
		t.Fatal(err)
	}
	if got := conflictOf(res.Conflict); got != "none" {
		t.Errorf("after deactivation: response conflict %s", got)
	}
	r, err := f.svc.Mitigation(alpha, 124)
	if err != nil {
		t.Fatal(err)
	}
	if got := conflictOf(r.StatusScope(f.clk.Now(), true, true).ConflictInformation); got != "none" {
		t.Errorf("after deactivation: status conflict %s", got)
	}
	sc := dots.Scope{TargetPrefix: []string{"198.51.100.10/32"}, Lifetime: dots.Ptr[int64](3600)}
	res, err = f.svc.PutMitigation(t.Context(), beta, service.PutRequest{MID: 1, Request: request(t, sc)})
	if err != nil || res.Conflict != nil {
		t.Errorf("beta: %+v %v", res, err)
	}
}
