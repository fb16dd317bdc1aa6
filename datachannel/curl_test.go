package datachannel_test

import (
	"strings"
	"testing"

	"github.com/levee-dots/levee/dots/data"
	"github.com/levee-dots/levee/service"
)

const rfc = "@../dots/data/testdata/"

// TestCurl drives the data channel with curl and the development client
// certificates: discovery, registration, aliases, ACLs from the RFC 8783
// examples, capabilities, query parameters, and every error class with its
// RFC 8040 body.
func TestCurl(t *testing.T) {
	e := start(t, service.Options{})
	alpha := e.clientPath("alpha")

	code, body := e.curl("alpha", "GET", "/.well-known/host-meta", "")
	if code != 200 || !strings.Contains(string(body), "rel='restconf' href='/restconf'") {
		t.Fatalf("host-meta: %d %s", code, body)
	}

	code, body = e.curl("alpha", "GET", "/restconf", "")
	if code != 200 || !strings.Contains(string(body), `"yang-library-version":"2016-06-21"`) {
		t.Errorf("API resource: %d %s", code, body)
	}

	// Registration (RFC 8783 §5.1).
	code, body = e.curl("alpha", "POST", alpha+"/aliases", rfc+"alias-https1.json")
	e.wantErr("alias before registration", 404, data.TagInvalidValue, "not registered", code, body)
	code, body = e.curl("alpha", "POST", "/restconf/data/ietf-dots-data-channel:dots-data", register(e.cuid("alpha")))
	e.want("register", 201, code, body)
	code, body = e.curl("alpha", "POST", "/restconf/data/ietf-dots-data-channel:dots-data", register(e.cuid("alpha")))
	e.wantErr("register twice", 409, data.TagResourceDenied, "already registered", code, body)
	code, body = e.curl("alpha", "POST", "/restconf/data/ietf-dots-data-channel:dots-data", `{"ietf-dots-data-channel:dots-client":[{"cdid":"x"}]}`)
	e.wantErr("register without cuid", 400, data.TagMissingAttribute, "cuid", code, body)
	code, body = e.curl("alpha", "POST", "/restconf/data/ietf-dots-data-channel:dots-data", `{"ietf-dots-data-channel:dots-client":[{"cuid":"`+e.cuid("alpha")+`","colour":"red"}]}`)
	e.wantErr("unknown element", 400, data.TagUnknownElement, "colour", code, body)

	// Aliases (RFC 8783 §6).
	code, body = e.curl("alpha", "POST", alpha, rfc+"alias-https1.json")
	e.want("alias create", 201, code, body)
	code, body = e.curl("alpha", "POST", alpha, rfc+"alias-https1.json")
	e.wantErr("alias exists", 409, data.TagResourceDenied, "https1", code, body)
	code, body = e.curl("alpha", "GET", alpha+"/aliases/alias=https1", "")
	e.want("alias get", 200, code, body)
	al, err := data.DecodeAliases(body, data.Response)
	if err != nil || len(al.Alias) != 1 || al.Alias[0].Name != "https1" || len(al.Alias[0].TargetPrefix) != 2 || *al.Alias[0].PendingLifetime != 10080 {
		t.Errorf("alias get: %v %s", err, body)
	}
	code, body = e.curl("alpha", "POST", alpha, `{"ietf-dots-data-channel:aliases":{"alias":[{"name":"theirs","target-prefix":["203.0.113.128/25"]}]}}`)
	e.wantErr("alias outside the domain", 403, data.TagAccessDenied, "not owned", code, body)
	code, body = e.curl("alpha", "DELETE", alpha+"/aliases/alias=https1", "")
	e.want("alias delete", 204, code, body)
	code, body = e.curl("alpha", "GET", alpha+"/aliases/alias=https1", "")
	e.wantErr("deleted alias", 404, data.TagInvalidValue, "https1", code, body)
	code, body = e.curl("alpha", "PUT", alpha+"/aliases/alias=https1", rfc+"alias-https1.json")
	e.want("alias put", 201, code, body)
	code, body = e.curl("alpha", "PUT", alpha+"/aliases/alias=https1", rfc+"alias-https1.json")
	e.want("alias refresh", 204, code, body)

	// ACLs (RFC 8783 §7): the examples' destination 198.51.100.0/24 is
	// not alpha's.
	code, body = e.curl("alpha", "POST", alpha, rfc+"acl-sample-ipv4.json")
	e.wantErr("acl outside the domain", 403, data.TagAccessDenied, "198.51.100.0/24", code, body)
	for _, f := range []string{"@testdata/acl-alpha-ipv4.json", rfc + "acl-ipv6-udp.json", rfc + "acl-fragment-ipv4.json", rfc + "acl-tcp-flags.json"} {
		code, body = e.curl("alpha", "POST", alpha, f)
		e.want("acl create "+f, 201, code, body)
	}
	code, body = e.curl("alpha", "POST", alpha, rfc+"acl-syn-rate-limit.json")
	e.wantErr("acl name exists", 409, data.TagResourceDenied, "tcp-flags-example", code, body)
	code, body = e.curl("alpha", "PUT", alpha+"/acls/acl=tcp-flags-example", rfc+"acl-syn-rate-limit.json")
	e.want("acl replace", 204, code, body)
	code, body = e.curl("alpha", "POST", alpha+"?insert=before&point="+alpha+"/acls/acl=test-acl-ipv6-udp", rfc+"acl-fragment-ipv6.json")
	e.wantErr("acl fragment ipv6 under a taken name", 409, data.TagResourceDenied, "dns-fragments", code, body)
	code, body = e.curl("alpha", "PUT", alpha+"/acls/acl=dns-fragments?insert=first", rfc+"acl-fragment-ipv6.json")
	e.want("acl move first", 204, code, body)
	code, body = e.curl("alpha", "GET", alpha+"/acls?content=all", "")
	e.want("acls get", 200, code, body)
	acls, err := data.DecodeACLs(body, data.Response)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, a := range acls.ACL {
		names = append(names, a.Name)
	}
	if got := strings.Join(names, ","); got != "dns-fragments,alpha-ipv4-acl,test-acl-ipv6-udp,tcp-flags-example" {
		t.Errorf("acl order %s", got)
	}
	if r := acls.ACL[3].ACEs.ACE[0].Actions.RateLimit; r == nil || r.String() != "20.00" {
		t.Errorf("replaced acl %+v", acls.ACL[3])
	}
	if acls.ACL[1].ACEs.ACE[0].Statistics != nil {
		t.Errorf("statistics without a measuring backend: %s", body)
	}
	code, body = e.curl("alpha", "GET", alpha+"/acls/acl=test-acl-ipv6-udp?content=nonconfig", "")
	e.want("acl nonconfig", 200, code, body)
	if string(body) != `{"ietf-dots-data-channel:acl":[{"name":"test-acl-ipv6-udp","pending-lifetime":10080}]}` {
		t.Errorf("nonconfig: %s", body)
	}
	code, body = e.curl("alpha", "GET", alpha+"/acls/acl=test-acl-ipv6-udp?content=config", "")
	if code != 200 || strings.Contains(string(body), "pending-lifetime") || !strings.Contains(string(body), "flow-label") {
		t.Errorf("config: %d %s", code, body)
	}
	code, body = e.curl("alpha", "GET", alpha+"/acls?depth=2", "")
	if code != 200 || string(body) != `{"ietf-dots-data-channel:acls":{"acl":[{},{},{},{}]}}` {
		t.Errorf("depth=2: %d %s", code, body)
	}

	// Capabilities (RFC 8783 §7.1).
	code, body = e.curl("alpha", "GET", "/restconf/data/ietf-dots-data-channel:dots-data/capabilities", "")
	e.want("capabilities", 200, code, body)
	caps, err := data.DecodeCapabilities(body)
	if err != nil || caps.RateLimit == nil || !*caps.RateLimit || caps.IPv4 == nil || caps.IPv4.TTL != nil || *caps.TCP.FlagsBitmask != true {
		t.Errorf("capabilities %v %s", err, body)
	}

	// Error classes of RFC 8040 §7.
	code, body = e.curl("alpha", "GET", "/restconf/data/ietf-dots-data-channel:dots-data/nothing", "")
	e.wantErr("unknown resource", 404, data.TagInvalidValue, "no resource", code, body)
	code, body = e.curl("alpha", "PATCH", alpha+"/acls/acl=dns-fragments", rfc+"acl-fragment-ipv6.json")
	e.wantErr("PATCH", 405, data.TagOperationNotSup, "PATCH", code, body)
	code, body = e.curl("alpha", "POST", alpha, rfc+"acl-fragment-ipv6.json", "Content-Type: text/plain")
	e.wantErr("wrong media type", 415, data.TagInvalidValue, "Content-Type", code, body)
	big := `{"ietf-dots-data-channel:aliases":{"alias":[{"name":"` + strings.Repeat("x", 70<<10) + `"}]}}`
	code, body = e.curl("alpha", "POST", alpha, big)
	e.wantErr("too big", 413, data.TagTooBig, "exceeds", code, body)
	code, body = e.curl("alpha", "GET", alpha+"/acls?fields=name", "")
	e.wantErr("unsupported query parameter", 400, data.TagInvalidValue, "fields", code, body)
	code, body = e.curl("alpha", "POST", alpha+"?insert=before&point=nope", `{"ietf-dots-data-channel:acls":{"acl":[{"name":"new","aces":{"ace":[{"name":"e","matches":{"ipv4":{"destination-ipv4-network":"203.0.113.0/25"}},"actions":{"forwarding":"drop"}}]}}]}}`)
	e.wantErr("unknown point", 400, data.TagInvalidValue, "nope", code, body)
	code, body = e.curl("alpha", "POST", alpha, `{"ietf-dots-data-channel:acls":{"acl":[{"name":"r","aces":{"ace":[{"name":"e","matches":{"ipv4":{"destination-ipv4-network":"203.0.113.0/25"}},"actions":{"forwarding":"reject"}}]}}]}}`)
	e.wantErr("reject", 400, data.TagInvalidValue, "reject", code, body)
	code, body = e.curl("alpha", "POST", alpha, `{"ietf-dots-data-channel:acls":{"acl":[{"name":"r","aces":{"ace":[{"name":"e","matches":{"ipv4":{"ttl":3}},"actions":{"forwarding":"drop"}}]}}]}}`)
	e.wantErr("unenforceable", 400, data.TagInvalidValue, "capabilities", code, body)
	if code, body = e.curl("", "GET", alpha+"/acls", ""); code != -1 {
		t.Errorf("without a client certificate: %d %s", code, body)
	}
	code, body = e.curl("gamma", "GET", "/restconf/data/ietf-dots-data-channel:dots-data", "")
	e.wantErr("certificate of no domain", 403, data.TagAccessDenied, "not mapped", code, body)

	// Unregistration (RFC 8783 §5.2) removes everything.
	code, body = e.curl("alpha", "DELETE", alpha, "")
	e.want("unregister", 204, code, body)
	code, body = e.curl("alpha", "GET", alpha+"/acls", "")
	e.wantErr("after unregistering", 404, data.TagInvalidValue, "not registered", code, body)
}

// TestCurlCrossClient: beta can neither see nor touch alpha's aliases and
// ACLs, and nothing of alpha's shows in beta's answers.
func TestCurlCrossClient(t *testing.T) {
	e := start(t, service.Options{})
	alpha := e.clientPath("alpha")
	code, body := e.curl("alpha", "POST", dataRoot, register(e.cuid("alpha")))
	e.want("register alpha", 201, code, body)
	code, body = e.curl("alpha", "POST", alpha, rfc+"alias-https1.json")
	e.want("alpha's alias", 201, code, body)
	code, body = e.curl("alpha", "POST", alpha, "@testdata/acl-alpha-ipv4.json")
	e.want("alpha's acl", 201, code, body)
	code, body = e.curl("beta", "POST", dataRoot, register(e.cuid("beta")))
	e.want("register beta", 201, code, body)

	for _, tc := range []struct{ method, path, body string }{
		{"GET", alpha, ""},
		{"GET", alpha + "/aliases", ""},
		{"GET", alpha + "/aliases/alias=https1", ""},
		{"GET", alpha + "/acls/acl=alpha-ipv4-acl", ""},
		{"DELETE", alpha + "/aliases/alias=https1", ""},
		{"DELETE", alpha + "/acls/acl=alpha-ipv4-acl", ""},
		{"DELETE", alpha, ""},
		{"PUT", alpha + "/aliases/alias=https1", rfc + "alias-https1.json"},
		{"POST", alpha, "@testdata/acl-alpha-ipv4.json"},
		{"POST", dataRoot, register(e.cuid("alpha"))},
	} {
		code, body := e.curl("beta", tc.method, tc.path, tc.body)
		e.wantErr("beta "+tc.method+" "+tc.path, 403, data.TagAccessDenied, e.cuid("alpha"), code, body)
	}
	// beta's own view holds none of alpha's names.
	code, body = e.curl("beta", "GET", dataRoot, "")
	e.want("beta's tree", 200, code, body)
	if s := string(body); strings.Contains(s, "https1") || strings.Contains(s, "alpha-ipv4-acl") || strings.Contains(s, e.cuid("alpha")) {
		t.Errorf("beta sees alpha's entries: %s", s)
	}
	// beta cannot name alpha's prefixes either.
	code, body = e.curl("beta", "POST", e.clientPath("beta"), "@testdata/acl-alpha-ipv4.json")
	e.wantErr("beta filters alpha's prefixes", 403, data.TagAccessDenied, "not owned", code, body)
	// alpha's entries are intact.
	code, body = e.curl("alpha", "GET", alpha+"/acls/acl=alpha-ipv4-acl", "")
	e.want("alpha's acl after beta", 200, code, body)
	code, body = e.curl("alpha", "GET", alpha+"/aliases/alias=https1", "")
	e.want("alpha's alias after beta", 200, code, body)
}

const dataRoot = "/restconf/data/ietf-dots-data-channel:dots-data"
