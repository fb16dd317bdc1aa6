package main

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/lab"
	"github.com/levee-dots/levee/pki"
)

// BenchmarkPutToRoute measures the time from a client's PUT to the route
// being present at a real peer (ExaBGP's update stream): 200 RTBH requests
// for distinct targets (IPv4 and IPv6), one after the other, reported as
// p50, p99 and max in milliseconds. Target: p99 <= 100 ms.
func BenchmarkPutToRoute(b *testing.B) {
	bin := buildDotsd(b)
	for i := 0; i < b.N; i++ {
		exa := lab.StartExaBGP(b, lab.Options{})
		dir, port := b.TempDir(), freePort(b)
		if _, err := pki.Dev(dir, []string{"alpha"}); err != nil {
			b.Fatal(err)
		}
		cfg := fmt.Sprintf(`signal: {listen: ["127.0.0.1:%d"]}
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
    domains: {alpha: {rtbh: true, countermeasure: rtbh}}
    neighbors:
      - {name: exabgp, address: %q, port: %d, peer-as: 65000, local-address: 127.0.0.1}
`, port, exa.Addr().Addr(), exa.Addr().Port())
		path := filepath.Join(dir, "dotsd.yaml")
		if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
			b.Fatal(err)
		}
		startDotsd(b, bin, "--config", path)
		alpha := dialAs(b, dir, "alpha", fmt.Sprintf("127.0.0.1:%d", port))
		if err := lab.WaitFor(reqCtx(b), 20*time.Second, func() (bool, string) { return exa.Established(), "exabgp not established" }); err != nil {
			b.Fatal(err)
		}
		const n = 200
		lat := make([]time.Duration, 0, n)
		for j := 0; j < n; j++ {
			target := netip.AddrFrom4([4]byte{203, 0, 113, byte(j%120 + 1)})
			if j >= 120 {
				target = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0x64, 0x01, 15: byte(j)})
			}
			pfx := netip.PrefixFrom(target, target.BitLen()).String()
			start := time.Now()
			r, err := alpha.Mitigate(reqCtx(b), uint32(j+1), dots.Scope{TargetPrefix: []string{pfx}, Lifetime: dots.Ptr[int64](3600)})
			if err != nil || r.Code != dots.Created {
				b.Fatalf("PUT %s: %v %+v", pfx, err, r)
			}
			for !slices.ContainsFunc(exa.Routes(), func(rt lab.Route) bool { return rt.Prefix == pfx }) {
				if time.Since(start) > 10*time.Second {
					b.Fatalf("%s did not reach ExaBGP within 10 s", pfx)
				}
				time.Sleep(200 * time.Microsecond)
			}
			lat = append(lat, time.Since(start))
		}
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		b.ReportMetric(ms(lat[n/2]), "ms-p50")
		b.ReportMetric(ms(lat[n*99/100]), "ms-p99")
		b.ReportMetric(ms(lat[n-1]), "ms-max")
	}
}
