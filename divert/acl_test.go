package divert

import (
	"context"
	"net/netip"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/flowspec"
)

// keeper is a fixed backend that also keeps the diversions it was given.
type keeper struct {
	fixed
	kmu     sync.Mutex
	synced  []Diversion
	applied []Diversion
}

func (k *keeper) Apply(ctx context.Context, d Diversion) (Applied, error) {
	k.kmu.Lock()
	k.applied = append(k.applied, d)
	k.kmu.Unlock()
	return k.fixed.Apply(ctx, d)
}

func (k *keeper) Sync(_ context.Context, all []Diversion) error {
	k.kmu.Lock()
	k.synced = append([]Diversion(nil), all...)
	k.kmu.Unlock()
	k.note("sync")
	return nil
}

func (k *keeper) got() (synced, applied []Diversion) {
	k.kmu.Lock()
	defer k.kmu.Unlock()
	return append([]Diversion(nil), k.synced...), append([]Diversion(nil), k.applied...)
}

// TestACLKeysThroughOrchestrator: a data-channel filter's key (cuid and
// ACL name, MID 0) and its Filters reach the backends unchanged through
// Sync and Apply; its operations run in the lane of its cuid, in order
// with that client's mitigations; its outcome is kept apart from a
// mitigation's, and forgotten when it is withdrawn.
func TestACLKeysThroughOrchestrator(t *testing.T) {
	owned := []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}
	filters := []Filter{
		{Match: flowspec.Match{Destination: owned[0], Source: netip.MustParsePrefix("192.0.2.0/24")}, Action: flowspec.Action{Kind: flowspec.Discard}},
		{Match: flowspec.Match{Destination: owned[0], Protocols: []flowspec.Range{{Lo: 6, Hi: 6}},
			TCPFlags: []flowspec.BitTerm{{Bits: flowspec.TCPSyn, Match: true}}}, Action: flowspec.Action{Kind: flowspec.RateLimit, RateBytes: 20}},
		{Match: flowspec.Match{Destination: owned[0], Source: netip.MustParsePrefix("198.51.100.0/24")}, Accept: true},
	}
	acl := Diversion{Key: Key{CUID: "c", ACL: "edge"}, Domain: "d", Prefixes: owned, Filters: filters}
	mit := Diversion{Key: Key{CUID: "c", MID: 1}, Domain: "d", Prefixes: owned}
	b := &keeper{fixed: fixed{name: "bgp", applied: Applied{Status: dots.StatusMitigated, Detail: "rules"}}}
	o := NewOrchestrator(b)
	rep := newReports()
	o.Start([]Diversion{mit, acl}, rep.fn)
	defer o.Close()

	// An ACL and an earlier mitigation of the same cuid, then a
	// withdrawal and another ACL: one lane, in the order queued.
	acl2 := Diversion{Key: Key{CUID: "c", ACL: "other"}, Domain: "d", Prefixes: owned, Filters: filters[:1]}
	o.Apply(mit)
	o.Apply(acl)
	rep.wait(t, "bgp c/acl/edge attack-successfully-mitigated")
	if out := o.Combined(acl.Key); out.Status != dots.StatusMitigated || out.Note != "bgp: rules" {
		t.Fatalf("outcome of the ACL: %+v", out)
	}
	if out := o.Combined(Key{CUID: "c"}); out.Status != dots.StatusInProgress || !strings.Contains(out.Note, "no configured mitigator handles") {
		t.Fatalf("the ACL's outcome leaked to key c/0: %+v", out)
	}
	o.Withdraw(acl.Key)
	o.Apply(acl2)
	rep.wait(t, "bgp c/acl/other attack-successfully-mitigated")
	if got, want := strings.Join(b.log(), ", "), "sync, apply c/1, apply c/acl/edge, withdraw c/acl/edge, apply c/acl/other"; got != want {
		t.Fatalf("calls %s, want %s", got, want)
	}
	synced, applied := b.got()
	if !reflect.DeepEqual(synced, []Diversion{mit, acl}) {
		t.Fatalf("Sync got %+v, want the mitigation and the ACL unchanged", synced)
	}
	if !reflect.DeepEqual(applied, []Diversion{mit, acl, acl2}) {
		t.Fatalf("Apply got %+v, want the diversions unchanged", applied)
	}
	// The withdrawn ACL's outcome is gone, and a late report for it dropped.
	o.Report("bgp", acl.Key, Applied{Status: dots.StatusMitigated, Seq: 99})
	if out := o.Combined(acl.Key); !strings.Contains(out.Note, "no configured mitigator handles") {
		t.Fatalf("after withdraw the ACL's outcome is forgotten: %+v", out)
	}
	// A backend's later outcome for a live ACL reaches the report function
	// under the ACL's key.
	o.Report("bgp", acl2.Key, Applied{Status: dots.StatusExceededCapability, Detail: "budget", Seq: 100})
	rep.wait(t, "bgp c/acl/other attack-exceeded-capability")
	if out := o.Combined(acl2.Key); out.Status != dots.StatusExceededCapability {
		t.Fatalf("outcome of the second ACL: %+v", out)
	}
}
