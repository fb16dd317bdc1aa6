package dotsserver_test

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dots/data"
	"github.com/levee-dots/levee/dotsserver"
	"github.com/levee-dots/levee/dotsserver/dotstest"
	"github.com/levee-dots/levee/service"
	"github.com/levee-dots/levee/store"
)

// failingStore fails every write while fail is set.
type failingStore struct {
	dotsserver.Store
	fail atomic.Bool
}

func (f *failingStore) Apply(ctx context.Context, ops ...store.Op) error {
	if f.fail.Load() {
		return errors.New("disk full")
	}
	return f.Store.Apply(ctx, ops...)
}

// aclRequestFile writes a mitigation request for 203.0.113.10/32 that
// sets acl to act (none when acl is ""):
// {1: {2: [{6: ["203.0.113.10/32"], 14: 3600[, 53: [{23: acl, 52: act}]]}]}}
func aclRequestFile(t *testing.T, acl string, act int) string {
	t.Helper()
	h := "a101a10281a2"
	if acl != "" {
		h = "a101a10281a3"
	}
	h += "0681" + fmt.Sprintf("6f%x", "203.0.113.10/32") + "0e190e10"
	if acl != "" {
		h += fmt.Sprintf("183581a217%02x%x1834%02x", 0x60+len(acl), acl, act)
	}
	b, err := hex.DecodeString(h)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "body.cbor")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// alphaACLs registers alpha on the data channel with the given ACLs
// (RFC 8783 JSON) and returns its service client.
func alphaACLs(t *testing.T, e *env, bodies ...string) service.Client {
	t.Helper()
	svc := e.Srv.Service()
	var dom *service.Domain
	for _, d := range dotstest.Domains() {
		if d.Name == "alpha" {
			dom = &service.Domain{Name: d.Name, Prefixes: d.Prefixes}
		}
	}
	client := service.Client{CUID: e.dev.Clients["alpha"].CUID, Domain: dom}
	if _, err := svc.RegisterDataClient(client, data.DotsClient{CUID: client.CUID}, false); err != nil {
		t.Fatal(err)
	}
	for _, b := range bodies {
		a, err := data.DecodeACLs([]byte(b), data.Request)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := svc.PutACLs(client, a.ACL, false, service.Insert{}); err != nil {
			t.Fatal(err)
		}
	}
	return client
}

// oneACE is an ACL from 192.0.2.0/24 to 203.0.113.0/26 with a forwarding action.
func oneACE(name, activation, forwarding string) string {
	return `{"ietf-dots-data-channel:acls":{"acl":[{"name":"` + name + `","type":"ipv4-acl-type",` +
		`"activation-type":"` + activation + `","aces":{"ace":[{"name":"r1","matches":{"ipv4":{` +
		`"destination-ipv4-network":"203.0.113.0/26","source-ipv4-network":"192.0.2.0/24"}},"actions":{"forwarding":"` + forwarding + `"}}]}}]}}`
}

// TestLibcoapACLControl: libcoap's coap-client changes the activation type
// of a data-channel ACL inside mitigation requests (RFC 9133 §3.2.1):
// 4.00 in idle time and in an efficacy update, 4.04 for an unknown
// acl-name, 2.01 with the change applied and shown in the status, and 5.03
// with Max-Age and the failed update as a dots+cbor body (Figure 1) when
// the change cannot be stored. Every refusal carries a diagnostic.
func TestLibcoapACLControl(t *testing.T) {
	requireLibcoap(t)
	var st *failingStore
	e := newEnv(t, "127.0.0.1:0", func(o *dotsserver.Options) { st = &failingStore{Store: o.Store}; o.Store = st })
	svc := e.Srv.Service()
	alpha := e.dev.Clients["alpha"]
	client := alphaACLs(t, e, oneACE("drop", "activate-when-mitigating", "drop"), oneACE("refused", "activate-when-mitigating", "drop"))
	activation := func(name string) data.ActivationType {
		t.Helper()
		a, err := svc.ACLs(client, name)
		if err != nil {
			t.Fatal(err)
		}
		return a[0].Activation()
	}
	bodyFile := func(acl string, act int) string { return aclRequestFile(t, acl, act) }
	base := "coaps://" + e.addr + "/.well-known/dots/mitigate/cuid=" + alpha.CUID
	tlsArgs := []string{"-N", "-c", alpha.Cert, "-j", alpha.Key, "-C", e.dev.CAPath}
	put := func(mid uint32, file string, extra ...string) coapResult {
		t.Helper()
		args := append([]string{"-m", "put", "-t", "271", "-f", file}, extra...)
		return coapClient(t, append(append(args, tlsArgs...), fmt.Sprintf("%s/mid=%d", base, mid))...)
	}
	refused := func(r coapResult, code, diag string) {
		t.Helper()
		r.want(t, code, true, true)
		if !strings.Contains(r.text, diag) {
			t.Errorf("%s diagnostic %q, want it to mention %q", code, r.text, diag)
		}
	}

	refused(put(1, bodyFile("drop", 3)), "4.00", "while a mitigation is active")
	if a := activation("drop"); a != data.ActivateWhenMitigating {
		t.Fatalf("idle-time request changed the ACL: %s", a)
	}
	put(1, bodyFile("", 0)).want(t, "2.01", true, true)
	refused(put(2, bodyFile("nope", 3)), "4.04", `"nope"`)
	// An efficacy update (empty If-Match) never carries acl-list.
	refused(put(1, bodyFile("drop", 3), "-O", "1,0x"), "4.00", "efficacy")

	r := put(2, bodyFile("drop", 3)).want(t, "2.01", true, true)
	if sc := r.body(t).MitigationScope.Scope[0]; sc.MID == nil || *sc.MID != 2 {
		t.Fatalf("2.01 scope %+v", sc)
	}
	if a := activation("drop"); a != data.Deactivate {
		t.Fatalf("after the request the ACL is %s, want deactivate", a)
	}
	r = coapClient(t, append(append([]string{"-m", "get"}, tlsArgs...), base+"/mid=2")...).want(t, "2.05", true, true)
	sc := r.body(t).MitigationScope.Scope[0]
	if len(sc.ACLList) != 1 || sc.ACLList[0].ACLName != "drop" || sc.ACLList[0].ActivationType == nil || *sc.ACLList[0].ActivationType != 3 {
		t.Errorf("status acl-list %+v, want drop deactivate", sc.ACLList)
	}

	st.fail.Store(true)
	r = put(3, bodyFile("refused", 2)).want(t, "5.03", true, true)
	st.fail.Store(false)
	if !strings.Contains(r.options, "Content-Format:application/dots+cbor") || !strings.Contains(r.options, "Max-Age:") {
		t.Errorf("5.03 options [%s], want a dots+cbor body and Max-Age", r.options)
	}
	// libcoap logs a 5.03's binary payload as hex (it writes no -o file).
	m := regexp.MustCompile(`c:5\.03 .*\n<<([0-9a-f]+)>>`).FindStringSubmatch(r.log)
	if m == nil {
		t.Fatalf("no 5.03 payload logged\n%s", r.log)
	}
	b, err := hex.DecodeString(m[1])
	if err != nil {
		t.Fatal(err)
	}
	failed, err := dots.Decode(b)
	if err != nil || failed.MitigationScope == nil || len(failed.MitigationScope.Scope) != 1 {
		t.Fatalf("5.03 body %x: %+v %v", b, failed, err)
	}
	if fs := failed.MitigationScope.Scope[0]; fs.MID == nil || *fs.MID != 3 || len(fs.ACLList) != 1 || fs.ACLList[0].ACLName != "refused" ||
		fs.ACLList[0].ActivationType == nil || *fs.ACLList[0].ActivationType != 2 {
		t.Errorf("5.03 body %+v, want mid 3 and the failed update refused=immediate", fs)
	}
	if a := activation("refused"); a != data.ActivateWhenMitigating {
		t.Errorf("the refused update changed the ACL: %s", a)
	}
}

// TestLibcoapAcceptListConflict: coap-client's mitigation request for a
// target that alpha's own accept-list lets traffic to gets 2.01 with
// conflict-information, conflict-cause 2 (conflict-with-acceptlist, RFC
// 9132 §4.4.1) naming the ACL, and so does the status; after the client
// deactivates the accept-list from the signal channel (RFC 9133 §4.1) the
// new request's answer and status have none.
func TestLibcoapAcceptListConflict(t *testing.T) {
	requireLibcoap(t)
	e := newEnv(t, "127.0.0.1:0", nil)
	alphaACLs(t, e, oneACE("an-accept-list", "activate-when-mitigating", "accept"))
	alpha := e.dev.Clients["alpha"]
	base := "coaps://" + e.addr + "/.well-known/dots/mitigate/cuid=" + alpha.CUID
	tlsArgs := []string{"-N", "-c", alpha.Cert, "-j", alpha.Key, "-C", e.dev.CAPath}
	run := func(mid int, args ...string) *dots.Scope {
		t.Helper()
		code := "2.05"
		if args[1] == "put" {
			code = "2.01"
		}
		r := coapClient(t, append(append(args, tlsArgs...), fmt.Sprintf("%s/mid=%d", base, mid))...).want(t, code, true, true)
		return &r.body(t).MitigationScope.Scope[0]
	}
	conflict := func(sc *dots.Scope) string {
		ci := sc.ConflictInformation
		if ci == nil {
			return "none"
		}
		out := "no cause"
		if ci.ConflictCause != nil {
			out = ci.ConflictCause.String()
		}
		if ci.ConflictScope != nil {
			for _, a := range ci.ConflictScope.ACLList {
				out += " " + a.ACLName + "/" + a.ACLType
			}
		}
		return out
	}
	const want = "conflict-with-acceptlist an-accept-list/ipv4-acl-type"
	if got := conflict(run(123, "-m", "put", "-t", "271", "-f", aclRequestFile(t, "", 0))); got != want {
		t.Errorf("2.01 conflict %s, want %s", got, want)
	}
	if got := conflict(run(123, "-m", "get")); got != want {
		t.Errorf("status conflict %s, want %s", got, want)
	}
	if got := conflict(run(124, "-m", "put", "-t", "271", "-f", aclRequestFile(t, "an-accept-list", 3))); got != "none" {
		t.Errorf("2.01 after deactivation: conflict %s", got)
	}
	if got := conflict(run(124, "-m", "get")); got != "none" {
		t.Errorf("status after deactivation: conflict %s", got)
	}
}
