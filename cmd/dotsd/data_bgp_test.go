package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/pki"
)

// libcoapCode matches a response PDU as libcoap's coap-client logs it at -v 6.
var libcoapCode = regexp.MustCompile(`(?m)^v:1 t:(?:CON|NON|ACK|RST) c:([2-5]\.[0-9]{2}) `)

// coapAs sends one signal-channel request with libcoap's coap-client (a
// foreign client) as a development client and returns the response code.
func coapAs(t *testing.T, dir, client, method, uri string, body *dots.Message) string {
	t.Helper()
	c := filepath.Join(dir, "clients", client)
	args := []string{"-v", "6", "-B", "5", "-N", "-m", method, "-c", filepath.Join(c, "cert.pem"), "-j", filepath.Join(c, "key.pem"),
		"-C", filepath.Join(dir, "ca.pem")}
	if body != nil {
		b, err := dots.Encode(body)
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(t.TempDir(), "body.cbor")
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "-t", "271", "-f", f)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "coap-client-openssl", append(args, uri)...).CombinedOutput()
	if err != nil {
		t.Fatalf("coap-client %s %s: %v\n%s", method, uri, err, out)
	}
	m := libcoapCode.FindSubmatch(out)
	if m == nil {
		t.Fatalf("coap-client %s %s: no response\n%s", method, uri, out)
	}
	return string(m[1])
}

// TestDataChannelFlowSpec: ACLs created over the data channel with curl end
// as FlowSpec rules at real FRR, BIRD and ExaBGP routers: an immediate one
// at once, an activate-when-mitigating one only while the client has an
// active mitigation (requested with libcoap's coap-client), and an RFC 9133
// acl-list in a mitigation request switches one off during the attack. An
// alias created with curl is the target of a coap-client request.
func TestDataChannelFlowSpec(t *testing.T) {
	d := startDataDotsd(t)
	e, dir, port, cuid, root, acl := d.edges, d.dir, d.port, d.cuid, d.root, dropACL
	for _, st := range []struct{ url, body string }{
		{root, `{"ietf-dots-data-channel:dots-client":[{"cuid":"` + cuid + `"}]}`},
		{root + "/dots-client=" + cuid, acl("during-attack", "activate-when-mitigating", "203.0.113.0/25", "192.0.2.0/24")},
		{root + "/dots-client=" + cuid, acl("always", "immediate", "203.0.113.64/26", "198.51.100.0/24")},
	} {
		if code, body := curlData(t, dir, "alpha", "POST", st.url, st.body); code != 201 {
			t.Fatalf("POST %s: %d %s", st.url, code, body)
		}
	}
	always := want{family: "ipv4-flowspec", flow: map[string]string{"destination": "203.0.113.64/26", "source": "198.51.100.0/24"}, actions: []string{"discard"}}
	duringAttack := want{family: "ipv4-flowspec", flow: map[string]string{"destination": "203.0.113.0/25", "source": "192.0.2.0/24"}, actions: []string{"discard"}}
	e.holds(t, "the immediate ACL, not the activate-when-mitigating one", allEdges, always)

	mitigate := "coaps://127.0.0.1:" + strconv.Itoa(port) + "/.well-known/dots/mitigate/cuid=" + cuid
	scope := func(acls ...dots.ACLControl) *dots.Message {
		return &dots.Message{MitigationScope: &dots.MitigationScope{Scope: []dots.Scope{{TargetPrefix: []string{"203.0.113.10/32"},
			Lifetime: dots.Ptr[int64](3600), ACLList: acls}}}}
	}
	deactivate := dots.ActivationType(3)
	off := dots.ACLControl{ACLName: "always", ActivationType: &deactivate}
	if code := coapAs(t, dir, "alpha", "put", mitigate+"/mid=1", scope(off)); code != "4.00" {
		t.Fatalf("acl-list in idle time: %s, want 4.00", code)
	}
	if code := coapAs(t, dir, "alpha", "put", mitigate+"/mid=1", scope()); code != "2.01" {
		t.Fatalf("mitigation request: %s", code)
	}
	e.holds(t, "the mitigation and both ACLs", allEdges, rtbh4, always, duringAttack)
	if code := coapAs(t, dir, "alpha", "put", mitigate+"/mid=2", scope(dots.ACLControl{ACLName: "nope", ActivationType: &deactivate})); code != "4.04" {
		t.Fatalf("acl-list naming an unknown ACL: %s, want 4.04", code)
	}
	if code := coapAs(t, dir, "alpha", "put", mitigate+"/mid=2", scope(off)); code != "2.01" {
		t.Fatalf("RFC 9133 acl-list: %s", code)
	}
	e.holds(t, "the immediate ACL switched off during the attack", allEdges, rtbh4, duringAttack)
	if code := coapAs(t, dir, "alpha", "delete", mitigate+"/mid=2", nil); code != "2.02" {
		t.Fatalf("withdraw: %s", code)
	}
	e.holds(t, "nothing once the mitigation ended", allEdges)

	// An alias created over the data channel names the target of a
	// signal-channel request (alias-name, RFC 9132 §4.4.1).
	if code, body := curlData(t, dir, "alpha", "POST", root+"/dots-client="+cuid,
		`{"ietf-dots-data-channel:aliases":{"alias":[{"name":"web","target-prefix":["203.0.113.20/32"]}]}}`); code != 201 {
		t.Fatalf("alias: %d %s", code, body)
	}
	byAlias := func(names ...string) *dots.Message {
		return &dots.Message{MitigationScope: &dots.MitigationScope{Scope: []dots.Scope{{AliasName: names, Lifetime: dots.Ptr[int64](3600)}}}}
	}
	if code := coapAs(t, dir, "alpha", "put", mitigate+"/mid=3", byAlias("nope")); code != "4.00" {
		t.Fatalf("unknown alias-name: %s, want 4.00", code)
	}
	if code := coapAs(t, dir, "alpha", "put", mitigate+"/mid=3", byAlias("web")); code != "2.01" {
		t.Fatalf("alias-name request: %s", code)
	}
	web := want{family: "ipv4-unicast", prefix: "203.0.113.20/32", nexthop: "192.0.2.1", communities: []string{"65535:666"}}
	e.holds(t, "the alias's target diverted", allEdges, web, duringAttack)
}

// dataDotsd is a real dotsd with the data channel on, BGP toward FRR, BIRD
// and ExaBGP, for tests that drive it with curl and coap-client.
type dataDotsd struct {
	edges *edges
	dir   string // its directory: PKI, configuration, store
	port  int    // the signal channel's port
	cuid  string // client alpha's
	root  string // the data channel's dots-data URL
}

func startDataDotsd(t *testing.T) dataDotsd {
	t.Helper()
	for _, tool := range []string{"curl", "coap-client-openssl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed", tool)
		}
	}
	bin := buildDotsd(t)
	d := dataDotsd{edges: startEdges(t), dir: t.TempDir(), port: freePort(t)}
	cfg := bgpDotsdConfig(t, d.dir, d.port, d.edges, 24)
	dataAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	f, err := os.OpenFile(cfg, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "data:\n  listen: %q\n", dataAddr)
	f.Close()
	startDotsd(t, bin, "--config", cfg)
	c := filepath.Join(d.dir, "clients", "alpha")
	_, leaf, err := pki.LoadKeyPair(filepath.Join(c, "cert.pem"), filepath.Join(c, "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	d.cuid = pki.CUID(leaf)
	d.root = "https://" + dataAddr + "/restconf/data/ietf-dots-data-channel:dots-data"
	return d
}

// dropACL is an RFC 8783 body of one ACL with one ACE that drops src
// toward dst.
func dropACL(name, activation, dst, src string) string {
	return `{"ietf-dots-data-channel:acls":{"acl":[{"name":"` + name + `","type":"ipv4-acl-type","activation-type":"` + activation +
		`","aces":{"ace":[{"name":"r1","matches":{"ipv4":{"destination-ipv4-network":"` + dst + `","source-ipv4-network":"` + src +
		`"}},"actions":{"forwarding":"drop"}}]}}]}}`
}
