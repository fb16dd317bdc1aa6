package scrub

import (
	"context"
	"fmt"
	"net/netip"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/levee-dots/levee/lab/netlab"
)

// BenchmarkNFTDrop sends b.N frames of 64-byte UDP from port 123 through
// the ingress drop with 1, 100 and 10,000 mitigations installed (the one
// matching 203.0.113.10 last) and reports packets per second. The frames
// come from the AF_PACKET generator of lab/netlab (sendmmsg, no qdisc). On
// veth the filter runs in the sender's time slice, so a slower filter shows
// as a lower send rate; cmd/scrubbench compares these rates with a
// hand-written one-rule table.
func BenchmarkNFTDrop(b *testing.B) {
	for _, size := range []int{1, 100, 10000} {
		b.Run(fmt.Sprintf("mitigations=%d", size), func(b *testing.B) {
			l := newLab(b)
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
			s, err := netlab.NewRawSender(l.sender, "sa")
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			f := netlab.RawFlood{DstMAC: peerMAC(b, l), Src: netip.MustParseAddrPort("198.51.100.2:123"),
				Dsts: []netip.AddrPort{netip.MustParseAddrPort("203.0.113.10:5000")}, Size: 64, Duration: netlab.MaxRawDuration}
			b.ResetTimer()
			for sent := 0; sent < b.N; {
				f.Count = min(b.N-sent, netlab.MaxRawPackets)
				res, err := s.Send(context.Background(), f)
				if err != nil || res.Sent != f.Count {
					b.Fatalf("sent %d of %d: %v", res.Sent, f.Count, err)
				}
				sent += res.Sent
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pps")
			cs, err := n.Counters(context.Background())
			if err != nil || cs.Rules["last"]["ntp"].Packets != uint64(b.N) {
				b.Fatalf("dropped %v of %d (%v)", cs.Rules["last"]["ntp"], b.N, err)
			}
		})
	}
}

// peerMAC is the receiver end's address, the frames' destination.
func peerMAC(t testing.TB, l *lab) []byte {
	t.Helper()
	h, err := netlink.NewHandleAt(l.recv)
	must(t, err)
	defer h.Close()
	sb, err := h.LinkByName("sb")
	must(t, err)
	return sb.Attrs().HardwareAddr
}
