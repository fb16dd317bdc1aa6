//go:build linux

package netlab

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

var (
	testSrcMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}
	testDstMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x02}
)

func TestRawFloodValidate(t *testing.T) {
	good := RawFlood{DstMAC: testDstMAC, Src: netip.MustParseAddrPort("198.51.100.2:123"),
		Dsts: []netip.AddrPort{netip.MustParseAddrPort("203.0.113.10:5000")}, Size: 64,
		Count: 1000, Duration: time.Second}
	cases := []struct {
		name string
		edit func(f *RawFlood)
		want string // "" for valid
	}{
		{"valid", func(*RawFlood) {}, ""},
		{"max bounds", func(f *RawFlood) {
			f.Count, f.Duration, f.Size, f.Batch, f.Nice = MaxRawPackets, MaxRawDuration, MaxRawPayload, MaxRawBatch, -20
		}, ""},
		{"no mac", func(f *RawFlood) { f.DstMAC = nil }, "MAC"},
		{"source not documentation", func(f *RawFlood) { f.Src = netip.MustParseAddrPort("10.0.0.1:123") }, "source"},
		{"destination not documentation", func(f *RawFlood) {
			f.Dsts = append(f.Dsts, netip.MustParseAddrPort("198.18.0.1:5000"))
		}, "destination 198.18.0.1"},
		{"ipv6 destination", func(f *RawFlood) { f.Dsts = []netip.AddrPort{netip.MustParseAddrPort("[2001:db8::1]:5000")} }, "IPv4"},
		{"no destinations", func(f *RawFlood) { f.Dsts = nil }, "destinations"},
		{"too many destinations", func(f *RawFlood) { f.Dsts = make([]netip.AddrPort, MaxRawTargets+1) }, "destinations"},
		{"count 0", func(f *RawFlood) { f.Count = 0 }, "count"},
		{"count over", func(f *RawFlood) { f.Count = MaxRawPackets + 1 }, "count"},
		{"duration 0", func(f *RawFlood) { f.Duration = 0 }, "duration"},
		{"duration over", func(f *RawFlood) { f.Duration = MaxRawDuration + time.Nanosecond }, "duration"},
		{"payload over", func(f *RawFlood) { f.Size = MaxRawPayload + 1 }, "payload"},
		{"batch over", func(f *RawFlood) { f.Batch = MaxRawBatch + 1 }, "batch"},
		{"nice under", func(f *RawFlood) { f.Nice = -21 }, "nice"},
		{"nice over", func(f *RawFlood) { f.Nice = 20 }, "nice"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := good
			f.Dsts = append([]netip.AddrPort(nil), good.Dsts...)
			tc.edit(&f)
			err := f.validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("valid flood refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want one naming %q", err, tc.want)
			}
		})
	}
}

func TestRawFrame(t *testing.T) {
	src, dst := netip.MustParseAddrPort("198.51.100.2:123"), netip.MustParseAddrPort("203.0.113.10:5000")
	b := RawFrame(testSrcMAC, testDstMAC, src, dst, 4, 7)
	want := "020000000002" + "020000000001" + "0800" + // Ethernet
		"4500" + "0020" + "0007" + "4000" + "4011" + "xxxx" + "c6336402" + "cb00710a" + // IPv4
		"007b" + "1388" + "000c" + "xxxx" + "00000000" // UDP, payload
	got := hex.EncodeToString(b)
	if len(got) != len(want) {
		t.Fatalf("frame is %d bytes, want %d", len(b), len(want)/2)
	}
	for i := range want {
		if want[i] != 'x' && want[i] != got[i] {
			t.Fatalf("frame\n got %s\nwant %s", got, want)
		}
	}
	if s := fold(sum16(b[ethLen:ethLen+ipv4Len], 0)); s != 0xffff {
		t.Errorf("IPv4 header does not sum to 0xffff: %#x", s)
	}
	udp := b[ethLen+ipv4Len:]
	if s := fold(sum16(udp, sum16(b[ethLen+12:ethLen+20], unix.IPPROTO_UDP+uint32(len(udp))))); s != 0xffff {
		t.Errorf("UDP checksum does not verify: %#x", s)
	}
	for size := range 9 { // odd payloads are padded in the checksum
		f := RawFrame(testSrcMAC, testDstMAC, src, dst, size, 0)
		u := f[ethLen+ipv4Len:]
		if s := fold(sum16(u, sum16(f[ethLen+12:ethLen+20], unix.IPPROTO_UDP+uint32(len(u))))); s != 0xffff {
			t.Errorf("payload %d: UDP checksum does not verify: %#x", size, s)
		}
		if got := binary.BigEndian.Uint16(f[ethLen+2:]); int(got) != ipv4Len+udpLen+size {
			t.Errorf("payload %d: IPv4 total length %d", size, got)
		}
	}
}

// rawLab is a sender and a receiver joined by a veth (ra ↔ rb); the
// receiver holds 203.0.113.10 on lo.
func rawLab(t *testing.T) (*Lab, net.HardwareAddr) {
	l := Build(t, Topology{Name: "nlraw",
		Nodes: []Node{{Name: "snd"}, {Name: "rcv", Loopback: []netip.Prefix{netip.MustParsePrefix("203.0.113.10/32")}}},
		Links: []Link{{A: Endpoint{"snd", "ra", netip.MustParsePrefix("198.51.100.2/24")},
			B: Endpoint{"rcv", "rb", netip.MustParsePrefix("198.51.100.1/24")}}},
	})
	rb, err := l.Handle("rcv").LinkByName("rb")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, x := range []struct{ node, iface string }{{"snd", "ra"}, {"rcv", "rb"}} {
		for {
			link, err := l.Handle(x.node).LinkByName(x.iface)
			if err != nil {
				t.Fatal(err)
			}
			if link.Attrs().OperState == netlink.OperUp { // before it, the device refuses frames
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not up", x.iface)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return l, rb.Attrs().HardwareAddr
}

// countDrops installs, at rb's ingress, one counting drop rule per
// destination of UDP from port 123, and returns a reader of the counters.
func countDrops(t *testing.T, l *Lab, dsts []netip.AddrPort) func() []uint64 {
	c, err := nftables.New(nftables.WithNetNSFd(int(l.NS("rcv"))))
	if err != nil {
		t.Fatal(err)
	}
	tbl := c.AddTable(&nftables.Table{Name: "rawtest", Family: nftables.TableFamilyNetdev})
	prio, pol := nftables.ChainPriority(-500), nftables.ChainPolicyAccept
	ch := c.AddChain(&nftables.Chain{Name: "in", Table: tbl, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookIngress, Priority: &prio, Policy: &pol, Device: "rb"})
	for i, d := range dsts {
		name := fmt.Sprintf("d%d", i)
		c.AddObj(&nftables.CounterObj{Table: tbl, Name: name})
		a := d.Addr().As4()
		c.AddRule(&nftables.Rule{Table: tbl, Chain: ch, Exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyPROTOCOL, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.BigEndian.AppendUint16(nil, unix.ETH_P_IP)},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: a[:]},
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_UDP}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.BigEndian.AppendUint16(nil, 123)},
			&expr.Objref{Type: int(nftables.ObjTypeCounter), Name: name},
			&expr.Verdict{Kind: expr.VerdictDrop},
		}})
	}
	if err := c.Flush(); err != nil {
		t.Fatalf("nftables: %v", err)
	}
	return func() []uint64 {
		objs, err := c.GetObjects(tbl)
		if err != nil {
			t.Fatal(err)
		}
		got := make([]uint64, len(dsts))
		for _, o := range objs {
			if co, ok := o.(*nftables.CounterObj); ok {
				var i int
				if _, err := fmt.Sscanf(co.Name, "d%d", &i); err == nil && i < len(got) {
					got[i] = co.Packets
				}
			}
		}
		return got
	}
}

// TestSendRawCounted sends frames round-robin over three destinations and
// finds every one of them, exactly, at the receiver's ingress counters.
func TestSendRawCounted(t *testing.T) {
	l, mac := rawLab(t)
	dsts := []netip.AddrPort{netip.MustParseAddrPort("203.0.113.10:5000"),
		netip.MustParseAddrPort("203.0.113.11:5000"), netip.MustParseAddrPort("203.0.113.12:5000")}
	read := countDrops(t, l, dsts)
	const n = 100_001
	res, err := l.SendRaw(context.Background(), "snd", "ra", RawFlood{DstMAC: mac,
		Src: netip.MustParseAddrPort("198.51.100.2:123"), Dsts: dsts, Size: 64, Count: n, Duration: 20 * time.Second, Nice: -10})
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != n {
		t.Fatalf("sent %d of %d in %v", res.Sent, n, res.Elapsed)
	}
	want := make([]uint64, len(dsts))
	for i := range n {
		want[i%len(dsts)]++
	}
	if got := read(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("counted %v, want %v", got, want)
	}
	t.Logf("%d frames in %v: %.2f Mpps (%d refused and sent again)", res.Sent, res.Elapsed, res.PPS()/1e6, res.Refused)
}

// TestSendRawDelivered: without a filter the frames are well-formed UDP
// datagrams that a socket on the receiver reads.
func TestSendRawDelivered(t *testing.T) {
	l, mac := rawLab(t)
	dst := netip.MustParseAddrPort("203.0.113.10:5000")
	k, err := l.CountUDP("rcv", dst)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	const n = 1000
	s, err := NewRawSender(l.NS("snd"), "ra")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Paced in batches, so the reader keeps up on a loaded machine.
	for sent := 0; sent < n; sent += 50 {
		res, err := s.Send(context.Background(), RawFlood{DstMAC: mac, Src: netip.MustParseAddrPort("198.51.100.2:123"),
			Dsts: []netip.AddrPort{dst}, Size: 33, Count: 50, Duration: 5 * time.Second})
		if err != nil || res.Sent != 50 {
			t.Fatalf("sent %d of 50: %v", res.Sent, err)
		}
		time.Sleep(time.Millisecond)
	}
	deadline := time.Now().Add(10 * time.Second)
	for k.Count() < n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := k.Count(); got != n {
		t.Fatalf("received %d of %d datagrams", got, n)
	}
}

// TestSendRawBounded: the duration bound stops a flood whose count is far
// out of reach, and a done context stops it at once.
func TestSendRawBounded(t *testing.T) {
	l, mac := rawLab(t)
	f := RawFlood{DstMAC: mac, Src: netip.MustParseAddrPort("198.51.100.2:123"),
		Dsts: []netip.AddrPort{netip.MustParseAddrPort("203.0.113.10:5000")}, Count: MaxRawPackets, Duration: 200 * time.Millisecond}
	countDrops(t, l, f.Dsts) // dropped at ingress: nothing for the receiver's stack to do
	res, err := l.SendRaw(context.Background(), "snd", "ra", f)
	if err != nil {
		t.Fatal(err)
	}
	// The duration stopped it, not the count. How soon after the 200 ms
	// the last batch returns depends on the machine's load (a loaded CI
	// host has taken seconds): only a flood that ran on is a failure.
	if res.Sent == 0 || res.Sent >= MaxRawPackets || res.Elapsed > MaxRawDuration {
		t.Fatalf("sent %d in %v, want a stop by the 200ms duration", res.Sent, res.Elapsed)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res, err = l.SendRaw(ctx, "snd", "ra", f)
	if err == nil || res.Sent != 0 {
		t.Fatalf("with a done context: sent %d, err %v", res.Sent, err)
	}
}

func TestRing(t *testing.T) {
	for _, tc := range []struct{ frames, batch int }{{1, 64}, {3, 2}, {256, 64}, {10_000, 64}, {5, 1024}} {
		frames := make([][]byte, tc.frames)
		for i := range frames {
			frames[i] = make([]byte, 1+i%7)
		}
		msgs, iovs := ring(frames, tc.batch)
		if len(msgs)%tc.frames != 0 || len(msgs) < 2*tc.batch || len(iovs) != len(msgs) {
			t.Fatalf("%d frames, batch %d: ring of %d", tc.frames, tc.batch, len(msgs))
		}
		for i := range msgs {
			fr := frames[i%tc.frames]
			if msgs[i].hdr.Iov != &iovs[i] || iovs[i].Base != &fr[0] || int(iovs[i].Len) != len(fr) {
				t.Fatalf("%d frames, batch %d: message %d does not send frame %d", tc.frames, tc.batch, i, i%tc.frames)
			}
		}
	}
}
