package main

import (
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/levee-dots/levee/datachannel"
	"github.com/levee-dots/levee/dotsserver"
	"github.com/levee-dots/levee/dotsserver/dotstest"
	"github.com/levee-dots/levee/pki"
)

// newDataEnv is newCtlEnv with the server's data channel (RFC 8783) on
// loopback, on the same mitigation service as its signal channel, and its
// URL as data-channel in alpha's dotsctl.yaml.
func newDataEnv(t *testing.T) *ctlEnv {
	t.Helper()
	return withDataChannel(t, newCtlEnv(t))
}

// withDataChannel starts the data channel of e's server.
func withDataChannel(t *testing.T, e *ctlEnv) *ctlEnv {
	t.Helper()
	cert, _, err := pki.LoadKeyPair(e.srv.Dev.ServerCert, e.srv.Dev.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	domains := e.srv.Domains
	dc, err := datachannel.New(datachannel.Options{Service: e.srv.Srv.Service(), Certificate: cert, ClientCAs: e.srv.Roots,
		Identify: func(c *x509.Certificate) (datachannel.Identity, error) {
			id, err := dotsserver.IdentifyCertificate(domains, c)
			return datachannel.Identity{CUID: id.CUID, SPKI: id.SPKI, Domain: id.Domain}, err
		}})
	if err != nil {
		t.Fatal(err)
	}
	if err := dc.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dc.Close)
	f, err := os.OpenFile(e.config, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString("data-channel: https://" + dc.Addr().String() + "\n"); err != nil {
		t.Fatal(err)
	}
	return e
}

// dataJSON is the -o json form of a data-channel answer.
type dataJSON struct {
	Code string          `json:"code"`
	Body json.RawMessage `json:"body"`
}

func decodeDataJSON(t *testing.T, s string) dataJSON {
	t.Helper()
	var j dataJSON
	if err := json.Unmarshal([]byte(s), &j); err != nil {
		t.Fatalf("-o json output is not JSON: %v\n%s", err, s)
	}
	return j
}

// TestAliasCommands: dotsctl registers alpha on first use, creates, lists
// and deletes aliases, prints the server's RFC 8040 errors readably, and a
// mitigation request names the alias (alias-name, expanded by the server).
func TestAliasCommands(t *testing.T) {
	e := newDataEnv(t)
	out := e.ok(t, "alias", "create", "--name", "web", "--target", "203.0.113.16/28", "--port", "443", "--protocol", "tcp")
	contains(t, "alias create", out, "alias web created (201)")
	// A new run registers again: the 409 of an existing registration is no error.
	out = e.ok(t, "alias", "create", "--file", rfcExample(t, "alias-https1.json"))
	contains(t, "alias create --file", out, "alias https1 created (201)")

	err := e.fails(t, "alias", "create", "--name", "web", "--target", "203.0.113.17/32")
	contains(t, "alias create of an existing name", err.Error(), "alias create: 409 resource-denied: ", `alias "web" already exists`)
	err = e.fails(t, "alias", "create", "--name", "theirs", "--target", "203.0.113.200/32")
	contains(t, "alias create outside the domain", err.Error(), "alias create: 403 access-denied: ", "203.0.113.200/32")

	out = e.ok(t, "alias", "list")
	contains(t, "alias list", out, "NAME", "EXPIRES IN")
	contains(t, "alias list web", rowOf(t, out, "web"), "203.0.113.16/28", "443", " 6 ")
	contains(t, "alias list https1", rowOf(t, out, "https1"), "2001:db8:6401::1/128,2001:db8:6401::2/128")
	j := decodeDataJSON(t, e.ok(t, "-o", "json", "alias", "list", "web"))
	var one struct {
		Aliases struct {
			Alias []struct {
				Name            string   `json:"name"`
				TargetPrefix    []string `json:"target-prefix"`
				PendingLifetime int32    `json:"pending-lifetime"`
			} `json:"alias"`
		} `json:"ietf-dots-data-channel:aliases"`
	}
	if err := json.Unmarshal(j.Body, &one); err != nil || j.Code != "200" || len(one.Aliases.Alias) != 1 {
		t.Fatalf("-o json alias list web: %v %+v\n%s", err, one, j.Body)
	}
	if a := one.Aliases.Alias[0]; a.Name != "web" || len(a.TargetPrefix) != 1 || a.PendingLifetime < 10080 {
		t.Errorf("-o json alias list web: %+v, want web with its prefix and at least a week of lifetime (RFC 8783)", a)
	}

	// The signal channel expands the alias at request time.
	out = e.ok(t, "mitigate", "--alias", "web", "--lifetime", "600")
	contains(t, "mitigate --alias", out, "mid 1 created (2.01)")
	contains(t, "status of the alias's mitigation", row(t, e.ok(t, "status", "1"), 1), "203.0.113.16/28")
	err = e.fails(t, "mitigate", "--alias", "nope")
	contains(t, "mitigate --alias of an unknown alias", err.Error(), "4.00", `alias-name "nope" is unknown`)

	out = e.ok(t, "alias", "delete", "web")
	contains(t, "alias delete", out, "alias web deleted (204)")
	err = e.fails(t, "alias", "delete", "web")
	contains(t, "alias delete of a deleted alias", err.Error(), "alias delete: 404 invalid-value: ", `alias "web" does not exist`)
	e.ok(t, "alias", "delete", "https1")
	contains(t, "alias list of none", e.ok(t, "alias", "list"), "no aliases")
}

// rowOf returns the line of a table whose first column is name.
func rowOf(t *testing.T, table, name string) string {
	t.Helper()
	for _, l := range strings.Split(table, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == name {
			return l + " "
		}
	}
	t.Fatalf("no row for %s in\n%s", name, table)
	return ""
}

// TestACLCommands: ACLs from flags and from RFC 8783's example files, their
// listing, activation changes over the data channel, deletion, and the
// server's capabilities.
func TestACLCommands(t *testing.T) {
	e := newDataEnv(t)
	out := e.ok(t, "acl", "create", "--name", "no-dns-amp", "--dst", "203.0.113.10/32", "--protocol", "udp", "--src-port", "53",
		"--action", "drop", "--activation", "deactivate")
	contains(t, "acl create", out, "acl no-dns-amp created, activation-type deactivate (201)")
	// RFC 8783 Figure 25: its destination 2001:db8:6401::2/127 is alpha's.
	out = e.ok(t, "acl", "create", "--file", rfcExample(t, "acl-ipv6-udp.json"))
	contains(t, "acl create --file", out, "acl test-acl-ipv6-udp created, activation-type activate-when-mitigating (201)")
	out = e.ok(t, "acl", "create", "--file", rfcExample(t, "acl-tcp-flags.json"))
	contains(t, "acl create --file tcp flags", out, "acl tcp-flags-example created")

	// RFC 8783 Figure 24 filters toward 198.51.100.0/24, which is not alpha's.
	err := e.fails(t, "acl", "create", "--file", rfcExample(t, "acl-sample-ipv4.json"))
	contains(t, "acl create outside the domain", err.Error(), "acl create: 403 access-denied: ", "198.51.100.0/24")
	err = e.fails(t, "acl", "create", "--name", "no-dns-amp", "--dst", "203.0.113.10/32")
	contains(t, "acl create of an existing name", err.Error(), "acl create: 409 resource-denied: ", `acl "no-dns-amp" already exists`)

	out = e.ok(t, "acl", "list")
	contains(t, "acl list", out, "NAME", "ACTIVATION", "MATCHES", "MATCHED")
	contains(t, "acl list no-dns-amp", rowOf(t, out, "no-dns-amp"), "ipv4-acl-type", "deactivate", "dst 203.0.113.10/32",
		"proto 17", "src-port 53", "drop")
	contains(t, "acl list test-acl-ipv6-udp", rowOf(t, out, "test-acl-ipv6-udp"), "ipv6-acl-type", "my-test-ace",
		"src-port <=80", "dst-port !=1010", "accept")
	contains(t, "acl list tcp-flags-example", rowOf(t, out, "tcp-flags-example"), "tcp-flags not any 4095")

	out = e.ok(t, "acl", "activate", "no-dns-amp", "immediate")
	contains(t, "acl activate", out, "acl no-dns-amp: activation-type immediate (204)")
	j := decodeDataJSON(t, e.ok(t, "-o", "json", "acl", "list", "no-dns-amp"))
	var got struct {
		ACLs struct {
			ACL []struct {
				Name            string `json:"name"`
				ActivationType  string `json:"activation-type"`
				PendingLifetime int32  `json:"pending-lifetime"`
				ACEs            struct {
					ACE []json.RawMessage `json:"ace"`
				} `json:"aces"`
			} `json:"acl"`
		} `json:"ietf-dots-data-channel:acls"`
	}
	if err := json.Unmarshal(j.Body, &got); err != nil || j.Code != "200" || len(got.ACLs.ACL) != 1 {
		t.Fatalf("-o json acl list no-dns-amp: %v %+v\n%s", err, got, j.Body)
	}
	if a := got.ACLs.ACL[0]; a.ActivationType != "immediate" || len(a.ACEs.ACE) != 1 || a.PendingLifetime < 10080 {
		t.Errorf("after acl activate: activation-type %q, %d ACEs, pending-lifetime %d; want immediate, its one ACE and a week", a.ActivationType, len(a.ACEs.ACE), a.PendingLifetime)
	}
	err = e.fails(t, "acl", "activate", "nope", "immediate")
	contains(t, "acl activate of an unknown ACL", err.Error(), "acl activate: 404 invalid-value: ", `acl "nope" does not exist`)
	err = e.fails(t, "acl", "activate", "no-dns-amp", "sometimes")
	contains(t, "acl activate with a bad activation", err.Error(), `activation-type "sometimes"`, "immediate or deactivate")

	out = e.ok(t, "acl", "delete", "no-dns-amp")
	contains(t, "acl delete", out, "acl no-dns-amp deleted (204)")
	if l := e.ok(t, "acl", "list"); strings.Contains(l, "no-dns-amp") {
		t.Errorf("acl list after delete still shows it:\n%s", l)
	}

	out = e.ok(t, "capabilities")
	contains(t, "capabilities", out, "address families:", "ipv4", "forwarding actions:", "drop", "ipv4 matches:")
	j = decodeDataJSON(t, e.ok(t, "-o", "json", "capabilities"))
	if !strings.Contains(string(j.Body), `"ietf-dots-data-channel:capabilities"`) {
		t.Errorf("-o json capabilities: %s", j.Body)
	}
}

// TestDataChannelConfigErrors: what to fix when the data channel is not
// configured, not reachable, or the invocation is wrong.
func TestDataChannelConfigErrors(t *testing.T) {
	e := newCtlEnv(t)
	err := e.fails(t, "alias", "list")
	contains(t, "no data-channel", err.Error(), "alias list: ", "data-channel: set it to the server's data channel, https://HOST:PORT")

	b, err := os.ReadFile(e.config)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.config, append(b, []byte("data-channel: http://127.0.0.1:1\n")...), 0o600); err != nil {
		t.Fatal(err)
	}
	err = e.fails(t, "capabilities")
	contains(t, "http data-channel", err.Error(), "data-channel: ", "want https://HOST:PORT")

	// A closed port on loopback: nothing listens there.
	if err := os.WriteFile(e.config, append(b, []byte("data-channel: https://127.0.0.1:1\n")...), 0o600); err != nil {
		t.Fatal(err)
	}
	err = e.fails(t, "acl", "list")
	contains(t, "unreachable data channel", err.Error(), "acl list: ", "is the data channel up at the data-channel URL of "+e.config)

	// A PSK client has no certificate for the data channel's TLS.
	psk := fmt.Sprintf("servers: [%q]\npsk: {identity: alpha-psk-1, key-file: alpha.psk}\ndata-channel: https://127.0.0.1:1\n", e.addr)
	if err := os.WriteFile(e.config, []byte(psk), 0o600); err != nil {
		t.Fatal(err)
	}
	err = e.fails(t, "capabilities")
	contains(t, "psk client", err.Error(), "the data channel needs certificate and key")

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"alias"}, "alias: use create, list, delete or refresh"},
		{[]string{"alias", "rename"}, `alias: unknown subcommand "rename"`},
		{[]string{"alias", "delete"}, "alias delete: give exactly one NAME"},
		{[]string{"acl", "activate", "x"}, "acl activate: give NAME and ACTIVATION"},
		{[]string{"acl", "create", "--name", "x", "extra"}, `acl create: unexpected "extra"`},
		{[]string{"acl"}, "acl: use create, list, delete, activate or refresh"},
		{[]string{"capabilities", "all"}, "capabilities: takes no arguments"},
	} {
		err := e.fails(t, tc.args...)
		contains(t, strings.Join(tc.args, " "), err.Error(), tc.want)
	}
}

// TestMitigateACLControl: --acl switches a data-channel ACL during an
// attack (RFC 9133), in a new mid; the ACL keeps its new activation-type,
// and an efficacy update of that mid carries no acl-list (§3.2).
func TestMitigateACLControl(t *testing.T) {
	e := newDataEnv(t)
	e.ok(t, "acl", "create", "--name", "an-accept-list", "--dst", "203.0.113.10/32", "--src", "192.0.2.0/24",
		"--action", "accept", "--activation", "immediate")
	err := e.fails(t, "mitigate", "--target", "203.0.113.10/32", "--acl", "an-accept-list=deactivate")
	contains(t, "--acl in idle time", err.Error(), "4.00", "acl-list")

	// The refused request used mid 1 (mids are never reused).
	contains(t, "mitigate", e.ok(t, "mitigate", "--target", "203.0.113.10/32"), "mid 2 created (2.01)")
	err = e.fails(t, "mitigate", "--target", "203.0.113.10/32", "--acl", "nope=deactivate")
	contains(t, "--acl of an unknown ACL", err.Error(), "4.04", `acl-name "nope"`)
	out := e.ok(t, "mitigate", "--target", "203.0.113.10/32", "--acl", "an-accept-list=deactivate")
	contains(t, "mitigate --acl", out, "mid 4 ")
	contains(t, "acl list after --acl", rowOf(t, e.ok(t, "acl", "list"), "an-accept-list"), "deactivate")

	out = e.ok(t, "efficacy", "4", "under-attack")
	contains(t, "efficacy of the --acl mid", out, "mid 4: efficacy under-attack reported (2.04)")
}

// TestDataChannelSpeaksSignalCUID: after a cuid collision on the signal
// channel, the data channel speaks as the new cuid kept in the state file
// (RFC 8783 §3: the same cuid on both channels): the derived one is bound
// to another key, and the alias is found by the signal channel's requests.
func TestDataChannelSpeaksSignalCUID(t *testing.T) {
	e := withDataChannel(t, newCollidedCtlEnv(t))
	e.ok(t, "mitigate", "--target", "203.0.113.10/32")
	st := e.stateOnDisk(t)
	if st.CUID == "" {
		t.Fatal("no cuid kept after the collision")
	}
	contains(t, "alias create", e.ok(t, "alias", "create", "--name", "web", "--target", "203.0.113.16/28"), "alias web created (201)")
	contains(t, "mitigate --alias", e.ok(t, "mitigate", "--alias", "web"), "mid 2 created (2.01)")
	for _, r := range e.srv.Srv.Service().AllMitigations() {
		if r.MID == 2 && (r.CUID != st.CUID || !strings.Contains(fmt.Sprint(r.Prefixes), "203.0.113.16/28")) {
			t.Fatalf("mid 2 under cuid %s with %v, want %s with the alias's 203.0.113.16/28", r.CUID, r.Prefixes, st.CUID)
		}
	}
}

// TestRefresh: alias refresh and acl refresh put the entries back as the
// server has them, which restarts their lifetime (RFC 8783: at least 10080
// minutes unless refreshed), and change nothing else.
func TestRefresh(t *testing.T) {
	clock := dotstest.NewClock()
	e := withDataChannel(t, newCtlEnvWith(t, dotstest.Options{Mutate: clock.Install}))
	e.ok(t, "alias", "create", "--name", "web", "--target", "203.0.113.16/28", "--port", "443")
	e.ok(t, "alias", "create", "--name", "dns", "--target", "203.0.113.53/32")
	e.ok(t, "acl", "create", "--name", "no-dns-amp", "--dst", "203.0.113.53/32", "--protocol", "udp", "--src-port", "53",
		"--activation", "deactivate")
	clock.Advance(48 * time.Hour)
	lifetimes := func(kind string) map[string]string {
		out := e.ok(t, kind, "list")
		got := map[string]string{}
		for _, name := range []string{"web", "dns", "no-dns-amp"} {
			if strings.Contains(out, name+" ") {
				got[name] = rowOf(t, out, name)
			}
		}
		return got
	}
	for name, r := range lifetimes("alias") {
		contains(t, "alias "+name+" two days on", r, "120h0m0s")
	}
	contains(t, "acl two days on", lifetimes("acl")["no-dns-amp"], "120h0m0s")

	out := e.ok(t, "alias", "refresh", "web")
	contains(t, "alias refresh web", out, "alias web refreshed (204)")
	a := lifetimes("alias")
	contains(t, "web after its refresh", a["web"], "203.0.113.16/28", "443", "168h0m0s")
	contains(t, "dns, not refreshed", a["dns"], "120h0m0s")
	contains(t, "alias refresh (all)", e.ok(t, "alias", "refresh"), "alias ", "dns", "web", "refreshed (204)")
	contains(t, "dns after refreshing all", lifetimes("alias")["dns"], "168h0m0s")

	contains(t, "acl refresh", e.ok(t, "acl", "refresh"), "acl no-dns-amp refreshed (204)")
	contains(t, "acl after its refresh", lifetimes("acl")["no-dns-amp"], "deactivate", "168h0m0s", "src-port 53")

	err := e.fails(t, "alias", "refresh", "nope")
	contains(t, "alias refresh of an unknown alias", err.Error(), "alias refresh: 404 invalid-value: ", `alias "nope" does not exist`)
	e.ok(t, "acl", "delete", "no-dns-amp")
	contains(t, "acl refresh of none", e.ok(t, "acl", "refresh"), "no ACLs to refresh")
}
