package main

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/levee-dots/levee/lab"
	"github.com/levee-dots/levee/pki"
)

// BenchmarkACLToRule measures the time from a data-channel POST of an
// immediate ACL to its FlowSpec rule at a real peer (ExaBGP's update
// stream): 100 ACLs with distinct sources, one after the other, reported
// as p50, p99 and max in milliseconds.
func BenchmarkACLToRule(b *testing.B) {
	bin := buildDotsd(b)
	for range b.N {
		exa := lab.StartExaBGP(b, lab.Options{})
		dir, port := b.TempDir(), freePort(b)
		dataAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(b)))
		dev, err := pki.Dev(dir, []string{"alpha"})
		if err != nil {
			b.Fatal(err)
		}
		cfg := fmt.Sprintf(`signal: {listen: ["127.0.0.1:%d"]}
data: {listen: %q}
tls: {certificate: server/cert.pem, key: server/key.pem, client-cas: [ca.pem]}
store: {path: levee.db}
log: {level: info}
clients:
  - {name: alpha, prefixes: ["203.0.113.0/25", "2001:db8:6401::/48"], match: {common-names: [alpha]}}
divert:
  bgp:
    local-as: 65001
    router-id: 192.0.2.254
    max-routes-per-domain: 1000
    domains: {alpha: {countermeasure: flowspec}}
    neighbors:
      - {name: exabgp, address: %q, port: %d, peer-as: 65000, local-address: 127.0.0.1, flowspec-budget: 1000}
`, port, dataAddr, exa.Addr().Addr(), exa.Addr().Port())
		path := filepath.Join(dir, "dotsd.yaml")
		if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
			b.Fatal(err)
		}
		startDotsd(b, bin, "--config", path)
		if err := lab.WaitFor(reqCtx(b), 20*time.Second, func() (bool, string) { return exa.Established(), "exabgp not established" }); err != nil {
			b.Fatal(err)
		}
		c := dev.Clients["alpha"]
		cert, _, err := pki.LoadKeyPair(c.Cert, c.Key)
		if err != nil {
			b.Fatal(err)
		}
		roots, err := pki.LoadCertPool(dev.CAPath)
		if err != nil {
			b.Fatal(err)
		}
		tr := &http.Transport{TLSClientConfig: &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: roots}}
		hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		root := "https://" + dataAddr + "/restconf/data/ietf-dots-data-channel:dots-data"
		post := func(url, body string) {
			resp, err := hc.Post(url, "application/yang-data+json", bytes.NewBufferString(body))
			if err != nil {
				b.Fatal(err)
			}
			out, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				b.Fatalf("POST %s: %d %s", url, resp.StatusCode, out)
			}
		}
		post(root, `{"ietf-dots-data-channel:dots-client":[{"cuid":"`+c.CUID+`"}]}`)
		const n = 100
		lat := make([]time.Duration, 0, n)
		for j := range n {
			src := fmt.Sprintf("198.51.100.%d/32", j+1)
			body := `{"ietf-dots-data-channel:acls":{"acl":[{"name":"acl-` + strconv.Itoa(j) + `","activation-type":"immediate","aces":{"ace":[{"name":"r1",` +
				`"matches":{"ipv4":{"destination-ipv4-network":"203.0.113.0/25","source-ipv4-network":"` + src + `"}},"actions":{"forwarding":"drop"}}]}}]}}`
			start := time.Now()
			post(root+"/dots-client="+c.CUID, body)
			for !slices.ContainsFunc(exa.Routes(), func(rt lab.Route) bool { return rt.FlowSpec["source"] == src }) {
				if time.Since(start) > 10*time.Second {
					b.Fatalf("the rule for %s did not reach ExaBGP within 10 s", src)
				}
				time.Sleep(200 * time.Microsecond)
			}
			lat = append(lat, time.Since(start))
		}
		tr.CloseIdleConnections()
		slices.Sort(lat)
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		b.ReportMetric(ms(lat[n/2]), "ms-p50")
		b.ReportMetric(ms(lat[n*99/100]), "ms-p99")
		b.ReportMetric(ms(lat[n-1]), "ms-max")
	}
}
