package datachannel_test

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/levee-dots/levee/dots/data"
	"github.com/levee-dots/levee/pki"
	"github.com/levee-dots/levee/service"
)

func aclJSON(name string) string {
	return `{"ietf-dots-data-channel:acls":{"acl":[{"name":"` + name + `","activation-type":"deactivate","aces":{"ace":[{"name":"r1",` +
		`"matches":{"ipv4":{"destination-ipv4-network":"203.0.113.0/25","source-ipv4-network":"192.0.2.0/24"}},"actions":{"forwarding":"drop"}}]}}]}}`
}

// benchEnv is a server holding 1,000 of alpha's ACLs and a Go HTTPS client
// with alpha's certificate.
func benchEnv(b *testing.B) (*env, *http.Client) {
	e := start(b, service.Options{})
	c := e.dev.Clients["alpha"]
	cert, _, err := pki.LoadKeyPair(c.Cert, c.Key)
	if err != nil {
		b.Fatal(err)
	}
	roots, err := pki.LoadCertPool(e.dev.CAPath)
	if err != nil {
		b.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: roots}}
	b.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	do(b, hc, "POST", e.url+dataRoot, register(e.cuid("alpha")), 201)
	var acls []data.ACL
	for i := range 1000 {
		a, err := data.DecodeACLs([]byte(aclJSON(fmt.Sprintf("stored-%04d", i))), data.Request)
		if err != nil {
			b.Fatal(err)
		}
		acls = append(acls, a.ACL...)
	}
	alpha := service.Client{CUID: e.cuid("alpha"), Domain: &service.Domain{Name: "alpha", Prefixes: e.alphaPrefixes()}}
	if _, err := e.svc.PutACLs(alpha, acls, false, service.Insert{}); err != nil {
		b.Fatal(err)
	}
	return e, hc
}

func do(b *testing.B, hc *http.Client, method, url, body string, want int) time.Duration {
	req, err := http.NewRequest(method, url, bytes.NewBufferString(body))
	if err != nil {
		b.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/yang-data+json")
	}
	start := time.Now()
	resp, err := hc.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	took := time.Since(start)
	if resp.StatusCode != want {
		b.Fatalf("%s %s: %d %s", method, url, resp.StatusCode, out)
	}
	return took
}

func reportPercentiles(b *testing.B, d []time.Duration) {
	slices.Sort(d)
	at := func(p float64) float64 { return float64(d[int(p*float64(len(d)-1))].Microseconds()) / 1000 }
	b.ReportMetric(at(0.50), "p50-ms")
	b.ReportMetric(at(0.99), "p99-ms")
}

// BenchmarkDataACLCreate: latency of POST of one ACL (stored on disk before
// the answer) with 1,000 ACLs stored.
func BenchmarkDataACLCreate(b *testing.B) {
	e, hc := benchEnv(b)
	client := e.url + e.clientPath("alpha")
	var took []time.Duration
	for i := 0; b.Loop(); i++ {
		name := fmt.Sprintf("new-%d", i)
		took = append(took, do(b, hc, "POST", client, aclJSON(name), 201))
		b.StopTimer()
		do(b, hc, "DELETE", client+"/acls/acl="+name, "", 204)
		b.StartTimer()
	}
	reportPercentiles(b, took)
}

// BenchmarkDataACLList: latency of GET of all 1,000 ACLs.
func BenchmarkDataACLList(b *testing.B) {
	e, hc := benchEnv(b)
	url := e.url + e.clientPath("alpha") + "/acls"
	var took []time.Duration
	for b.Loop() {
		took = append(took, do(b, hc, "GET", url, "", 200))
	}
	reportPercentiles(b, took)
}
