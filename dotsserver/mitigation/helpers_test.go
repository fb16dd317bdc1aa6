package mitigation_test

import (
	"errors"
	"net/netip"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsserver/mitigation"
)

// t0 is the synthetic clock's origin; at(s) is t0 plus s seconds. No test
// sleeps: every operation is handed its time.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func at(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

const (
	cuidA = "client-A"
	cuidB = "client-B"
	cuidC = "client-C"
)

type opt func(*mitigation.PutRequest)

// mkPut builds a validated PUT /mitigate request for the given prefixes.
func mkPut(cuid string, mid uint32, lifetime int64, prefixes []string, opts ...opt) mitigation.PutRequest {
	r := &dots.Request{Scope: dots.Scope{TargetPrefix: slices.Clone(prefixes)}, Lifetime: lifetime, Trigger: true}
	if lifetime != 0 {
		r.Scope.Lifetime = dots.Ptr(lifetime)
	}
	for _, p := range prefixes {
		r.Prefixes = append(r.Prefixes, netip.MustParsePrefix(p).Masked())
	}
	in := mitigation.PutRequest{CUID: cuid, Domain: "dom-" + cuid, MID: mid, Req: r, Prefixes: slices.Clone(r.Prefixes)}
	for _, o := range opts {
		o(&in)
	}
	return in
}

func pfx(p ...string) []string { return p }

// onLoss makes the request trigger-mitigation=false.
func onLoss(in *mitigation.PutRequest) {
	in.Req.Trigger = false
	in.Req.Scope.TriggerMitigation = dots.Ptr(false)
}

// efficacy makes the request an efficacy update (empty If-Match); a zero
// status leaves attack-status out.
func efficacy(as dots.AttackStatus) opt {
	return func(in *mitigation.PutRequest) {
		in.Efficacy = true
		if as != 0 {
			in.Req.Scope.AttackStatus = dots.Ptr(as)
		}
	}
}

func ports(lo, hi uint16) opt {
	return func(in *mitigation.PutRequest) {
		in.Req.Scope.TargetPortRange = append(in.Req.Scope.TargetPortRange, dots.PortRange{LowerPort: lo, UpperPort: dots.Ptr(hi)})
	}
}

// port adds a single-port range (no upper-port).
func port(p uint16) opt {
	return func(in *mitigation.PutRequest) {
		in.Req.Scope.TargetPortRange = append(in.Req.Scope.TargetPortRange, dots.PortRange{LowerPort: p})
	}
}

func protocol(p uint32) opt {
	return func(in *mitigation.PutRequest) { in.Req.Scope.TargetProtocol = append(in.Req.Scope.TargetProtocol, p) }
}

func fqdn(names ...string) opt {
	return func(in *mitigation.PutRequest) { in.Req.Scope.TargetFQDN = append(in.Req.Scope.TargetFQDN, names...) }
}

func uri(uris ...string) opt {
	return func(in *mitigation.PutRequest) { in.Req.Scope.TargetURI = append(in.Req.Scope.TargetURI, uris...) }
}

func alias(names ...string) opt {
	return func(in *mitigation.PutRequest) { in.Req.Scope.AliasName = append(in.Req.Scope.AliasName, names...) }
}

func note(n string) opt { return func(in *mitigation.PutRequest) { in.Note = n } }

func key(cuid string, mid uint32) mitigation.Key { return mitigation.Key{CUID: cuid, MID: mid} }

func keyOf(in mitigation.PutRequest) mitigation.Key { return key(in.CUID, in.MID) }

// mustPut applies a PUT that must succeed.
func mustPut(t *testing.T, b *mitigation.Book, in mitigation.PutRequest, now time.Time) *mitigation.Result {
	t.Helper()
	res, err := b.Put(in, now)
	if err != nil {
		t.Fatalf("Put(%s/%d) at %v: %v", in.CUID, in.MID, now.Sub(t0), err)
	}
	return res
}

// protoErr asserts that err is a *dots.Error with the given code.
func protoErr(t *testing.T, err error, code dots.Code) *dots.Error {
	t.Helper()
	var pe *dots.Error
	if !errors.As(err, &pe) {
		t.Fatalf("error = %v (%T), want *dots.Error %s", err, err, code)
	}
	if pe.Code != code {
		t.Fatalf("code = %s (%s), want %s", pe.Code, pe.Diag, code)
	}
	return pe
}

func mustGet(t *testing.T, b *mitigation.Book, k mitigation.Key) *mitigation.Record {
	t.Helper()
	r, ok := b.Get(k)
	if !ok {
		t.Fatalf("Get(%v): not found", k)
	}
	return r
}

func absent(t *testing.T, b *mitigation.Book, k mitigation.Key) {
	t.Helper()
	if r, ok := b.Get(k); ok {
		t.Fatalf("Get(%v) = status %d, want absent", k, r.Status)
	}
}

func keysOf(rs []*mitigation.Record) []mitigation.Key {
	out := make([]mitigation.Key, 0, len(rs))
	for _, r := range rs {
		out = append(out, r.Key)
	}
	return out
}

// changeSummary renders Changes as "put cuid/mid" and "del cuid/mid" lines.
func changeSummary(cs []mitigation.Change) []string {
	out := make([]string, 0, len(cs))
	for _, c := range cs {
		verb := "put"
		if c.Deleted {
			verb = "del"
			if c.Record != nil {
				verb = "del-with-record"
			}
		} else if c.Record == nil {
			verb = "put-without-record"
		} else if c.Record.Key != c.Key {
			verb = "put-key-mismatch"
		}
		out = append(out, verb+" "+c.Key.CUID+"/"+strconv.FormatUint(uint64(c.Key.MID), 10))
	}
	return out
}

func eqStrings(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s = %q, want %q", what, got, want)
	}
}

func eqKeys(t *testing.T, what string, got, want []mitigation.Key) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !slices.Equal(got, want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

// emptyResult asserts that an operation changed nothing.
func emptyResult(t *testing.T, res *mitigation.Result) {
	t.Helper()
	if res == nil {
		t.Fatal("nil Result")
	}
	if len(res.Changes)+len(res.Activate)+len(res.Withdraw)+len(res.Notify) != 0 || res.Record != nil || res.Conflict != nil {
		t.Errorf("Result = %+v, want no changes", res)
	}
}
