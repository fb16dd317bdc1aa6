package main

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/levee-dots/levee/dots"
)

// TestSignalACLFlowSpec: an ACL that drops 192.0.2.0/24 toward alpha's
// 203.0.113.0/26, created with curl over the data channel as
// activate-when-mitigating, is not at the routers (FRR, BIRD, ExaBGP) in
// idle time; a mitigation request from libcoap's coap-client brings it
// there as the matching FlowSpec discard rule; RFC 9133 acl-list requests
// from coap-client switch it to deactivate (gone from the routers) and to
// immediate (back), and one the server refuses (4.09) changes nothing;
// when the mitigation is withdrawn the immediate ACLs stay at the routers
// and the activate-when-mitigating one goes.
func TestSignalACLFlowSpec(t *testing.T) {
	d := startDataDotsd(t)
	e, dir, port, cuid, root, acl := d.edges, d.dir, d.port, d.cuid, d.root, dropACL
	client := root + "/dots-client=" + cuid
	for _, st := range []struct{ url, body string }{
		{root, `{"ietf-dots-data-channel:dots-client":[{"cuid":"` + cuid + `"}]}`},
		{client, acl("drop-192", "activate-when-mitigating", "203.0.113.0/26", "192.0.2.0/24")},
		{client, acl("attack-only", "activate-when-mitigating", "203.0.113.64/27", "198.51.100.0/24")},
		{client, acl("always", "immediate", "203.0.113.96/27", "198.51.100.128/25")},
	} {
		if code, body := curlData(t, dir, "alpha", "POST", st.url, st.body); code != 201 {
			t.Fatalf("POST %s: %d %s", st.url, code, body)
		}
	}
	flow := func(dst, src string) want {
		return want{family: "ipv4-flowspec", flow: map[string]string{"destination": dst, "source": src}, actions: []string{"discard"}}
	}
	drop192 := flow("203.0.113.0/26", "192.0.2.0/24")
	attackOnly := flow("203.0.113.64/27", "198.51.100.0/24")
	always := flow("203.0.113.96/27", "198.51.100.128/25")
	// The immediate ACL proves the data channel reaches the routers; the
	// activate-when-mitigating ones are not there.
	e.holds(t, "idle time: the immediate ACL only", allEdges, always)

	mitigate := "coaps://127.0.0.1:" + strconv.Itoa(port) + "/.well-known/dots/mitigate/cuid=" + cuid
	scope := func(acls ...dots.ACLControl) *dots.Message {
		return &dots.Message{MitigationScope: &dots.MitigationScope{Scope: []dots.Scope{{TargetPrefix: []string{"203.0.113.10/32"},
			Lifetime: dots.Ptr[int64](3600), ACLList: acls}}}}
	}
	set := func(name string, act uint32) dots.ACLControl {
		return dots.ACLControl{ACLName: name, ActivationType: dots.Ptr(dots.ActivationType(act))}
	}
	put := func(what string, mid int, body *dots.Message, code string) {
		t.Helper()
		if got := coapAs(t, dir, "alpha", "put", fmt.Sprintf("%s/mid=%d", mitigate, mid), body); got != code {
			t.Fatalf("%s: %s, want %s", what, got, code)
		}
	}
	put("acl-list in idle time", 1, scope(set("drop-192", 2)), "4.00")
	e.holds(t, "idle time: still the immediate ACL only", allEdges, always)

	put("mitigation request", 1, scope(), "2.01")
	e.holds(t, "attack time: the mitigation and every ACL", allEdges, rtbh4, drop192, attackOnly, always)

	put("acl-list deactivate", 2, scope(set("drop-192", 3)), "2.01")
	e.holds(t, "drop-192 deactivated", allEdges, rtbh4, attackOnly, always)

	put("acl-list immediate", 3, scope(set("drop-192", 2)), "2.01")
	e.holds(t, "drop-192 immediate", allEdges, rtbh4, drop192, attackOnly, always)

	// A request the server refuses (4.09: mid 2 is below the overlapping
	// mid 3) was not processed: its acl-list changes nothing.
	put("lower overlapping mid with acl-list", 2, scope(set("drop-192", 3)), "4.09")
	if code, body := curlData(t, dir, "alpha", "GET", client+"/acls/acl=drop-192", ""); code != 200 || !strings.Contains(body, `"activation-type":"immediate"`) {
		t.Errorf("after the refused request drop-192 is %d %s, want activation-type immediate", code, body)
	}

	if code := coapAs(t, dir, "alpha", "delete", mitigate+"/mid=3", nil); code != "2.02" {
		t.Fatalf("withdraw: %s", code)
	}
	e.holds(t, "after the mitigation: the immediate ACLs only", allEdges, drop192, always)
	// The data channel sees the activation the signal channel set.
	code, body := curlData(t, dir, "alpha", "GET", client+"/acls/acl=drop-192", "")
	if code != 200 || !strings.Contains(body, `"activation-type":"immediate"`) {
		t.Errorf("GET drop-192: %d %s, want activation-type immediate", code, body)
	}
}
