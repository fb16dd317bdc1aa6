package main

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/levee-dots/levee/pki"
	"github.com/levee-dots/levee/scrub"
)

// putState sends d to the node as PUT /v1/state and wants 204.
func putState(t *testing.T, c pki.DevClient, ca, addr string, d scrub.Desired) {
	t.Helper()
	cert, _, err := pki.LoadKeyPair(c.Cert, c.Key)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pki.LoadCertPool(ca)
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool}}}
	defer hc.CloseIdleConnections()
	body, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPut, "https://"+addr+"/v1/state", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		var e struct{ Error string }
		_ = json.NewDecoder(resp.Body).Decode(&e)
		t.Fatalf("PUT /v1/state: %d %s", resp.StatusCode, e.Error)
	}
}

// returnView is the node's return path as ip shows it.
type returnView struct {
	link, routes, rules, forward string
	index                        int
}

func viewReturn(t *testing.T, ns string) returnView {
	t.Helper()
	var v returnView
	if out, err := exec.Command("ip", "-n", ns, "-d", "link", "show", "vx-clean").CombinedOutput(); err == nil {
		v.link = string(out)
		var links []struct {
			Index int `json:"ifindex"`
		}
		if err := json.Unmarshal([]byte(sh(t, "ip", "-n", ns, "-j", "link", "show", "vx-clean")), &links); err == nil && len(links) == 1 {
			v.index = links[0].Index
		}
	}
	v.routes = sh(t, "ip", "-n", ns, "route", "show", "table", "4680")
	v.rules = sh(t, "ip", "-n", ns, "rule", "show", "priority", "4680")
	v.forward = strings.TrimSpace(sh(t, "ip", "netns", "exec", ns, "cat", "/proc/sys/net/ipv4/ip_forward"))
	return v
}

// TestScrubdReturnPath runs the real scrubd with a return section: a PUT
// installs tunnel, route, rule and forwarding; kill -9 leaves them and the
// next scrubd adopts them (same tunnel); SIGTERM removes all of it and
// restores ip_forward.
func TestScrubdReturnPath(t *testing.T) {
	requireNetns(t)
	ns, _ := newNetns(t)
	bin := buildScrubd(t)
	dir := t.TempDir()
	dev, err := pki.Dev(dir, []string{"dotsd"})
	if err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	cfgPath := filepath.Join(dir, "scrubd.yaml")
	cfg := fmt.Sprintf(`listen: %q
tls: {certificate: server/cert.pem, key: server/key.pem, client-cas: [ca.pem]}
interface: sd0
netns: %s
table: levee_ret
return:
  tunnel: auto
  name: vx-clean
  local: 192.0.2.2
  remote: 192.0.2.9
  vni: 100
  port: 4789
  address: 198.51.100.13/30
  gateway: 198.51.100.14
  table: 4680
  rule-priority: 4680
`, addr, ns)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	log := &syncBuffer{}
	proc := startScrubd(t, bin, cfgPath, addr, log)
	d := scrub.Desired{Mitigations: []scrub.Mitigation{{ID: "c/1",
		Targets: mustPrefixes("203.0.113.10/32", "203.0.113.64/26"),
		Rules:   []scrub.Rule{{Name: "ntp", Protocols: []uint8{17}, SrcPorts: []scrub.PortRange{{Low: 123, High: 123}}}}}}}
	putState(t, dev.Clients["dotsd"], dev.CAPath, addr, d)
	v := viewReturn(t, ns)
	t.Logf("installed:\n%s%s%s", v.rules, v.routes, v.link)
	for _, want := range []struct{ what, got, sub string }{
		{"rule", v.rules, "4680:\tfrom all iif sd0 lookup 4680"},
		{"route", v.routes, "203.0.113.10 via 198.51.100.14 dev vx-clean proto static"},
		{"route", v.routes, "203.0.113.64/26 via 198.51.100.14 dev vx-clean proto static"},
		{"link", v.link, "vxlan id 100 remote 192.0.2.9 local 192.0.2.2"},
		{"link", v.link, "nolearning"},
		{"link", v.link, "mtu 1450"},
		{"ip_forward", v.forward, "1"},
	} {
		if !strings.Contains(want.got, want.sub) {
			t.Errorf("%s: %q has no %q\n%s", want.what, want.got, want.sub, log.String())
		}
	}

	if err := proc.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_, _ = proc.Process.Wait()
	if after := viewReturn(t, ns); after.routes != v.routes || after.index != v.index || after.rules != v.rules {
		t.Fatalf("kill -9 changed the return path:\n%+v\nwas\n%+v", after, v)
	}
	proc = startScrubd(t, bin, cfgPath, addr, log)
	d.Mitigations[0].Targets = mustPrefixes("203.0.113.10/32")
	putState(t, dev.Clients["dotsd"], dev.CAPath, addr, d)
	after := viewReturn(t, ns)
	if after.index != v.index || strings.TrimSpace(after.routes) != "203.0.113.10 via 198.51.100.14 dev vx-clean proto static" {
		t.Errorf("after the restart: index %d (was %d), routes %q", after.index, v.index, after.routes)
	}

	if err := proc.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := proc.Wait(); err != nil {
		t.Errorf("scrubd exit: %v\n%s", err, log.String())
	}
	if end := viewReturn(t, ns); end.link != "" || end.routes != "" || end.rules != "" || end.forward != "0" {
		t.Errorf("after SIGTERM: %+v, want nothing and ip_forward 0\n%s", end, log.String())
	}
}

func mustPrefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}
