package scrub

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
)

// BenchmarkNFTDrop sends b.N UDP packets from port 123 through the ingress
// drop with 1, 100 and 10,000 mitigations installed (the one matching
// 203.0.113.10 last) and reports packets per second. On veth the filter runs
// in the sender's time slice, so a slower filter shows as a lower send rate.
func BenchmarkNFTDrop(b *testing.B) {
	for _, size := range []int{1, 100, 10000} {
		b.Run(fmt.Sprintf("mitigations=%d", size), func(b *testing.B) {
			l := newLab(b)
			t := b
			n, err := NewNFT(NFTOptions{Interface: "sb", NetNS: int(l.recv)})
			if err != nil {
				b.Fatal(err)
			}
			defer n.Close()
			var d Desired
			for i := 0; i < size-1; i++ {
				a := netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})
				d.Mitigations = append(d.Mitigations, mitigation(fmt.Sprintf("c/%d", i), netip.PrefixFrom(a, 32).String()))
			}
			d.Mitigations = append(d.Mitigations, mitigation("last", "203.0.113.10/32"))
			if err := n.Set(context.Background(), d); err != nil {
				b.Fatal(err)
			}
			src := l.udp(t, l.sender, "198.51.100.2:123")
			b.ResetTimer()
			send(t, src, "203.0.113.10:5000", b.N)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pps")
			cs, err := n.Counters(context.Background())
			if err != nil || cs.Rules["last"]["ntp"].Packets != uint64(b.N) {
				b.Fatalf("dropped %v of %d (%v)", cs.Rules["last"]["ntp"], b.N, err)
			}
		})
	}
}
