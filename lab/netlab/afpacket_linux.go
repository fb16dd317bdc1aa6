//go:build linux

package netlab

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"time"
	"unsafe"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Bounds of a RawFlood.
const (
	MaxRawPackets  = 50_000_000
	MaxRawDuration = 30 * time.Second
	MaxRawTargets  = 65_536
	MaxRawBatch    = 1024 // UIO_MAXIOV: the most messages one sendmmsg takes
	MaxRawPayload  = 1400
	// DefaultRawBatch is the frames per sendmmsg when RawFlood.Batch is 0.
	DefaultRawBatch = 64
)

// Frame layout: Ethernet, IPv4 without options, UDP.
const (
	ethLen  = 14
	ipv4Len = 20
	udpLen  = 8
	// RawHeaderLen is the bytes a frame carries besides its UDP payload.
	RawHeaderLen = ethLen + ipv4Len + udpLen
)

// RawFlood is a bounded flood of prebuilt Ethernet/IPv4/UDP frames, sent
// straight to the device through an AF_PACKET socket with sendmmsg and no
// qdisc. Frames go round-robin over Dsts. It stops after Count frames or
// after Duration, whichever comes first.
type RawFlood struct {
	// DstMAC is the receiving end's address (on a veth: the peer's).
	DstMAC net.HardwareAddr
	Src    netip.AddrPort
	// Dsts are the destinations, 1..MaxRawTargets of them.
	Dsts     []netip.AddrPort
	Size     int // UDP payload bytes, 0..MaxRawPayload
	Count    int // 1..MaxRawPackets
	Duration time.Duration
	Batch    int // frames per sendmmsg, 0: DefaultRawBatch
	// Nice, when not 0, is the nice value (-20..19) of the thread that
	// sends, and with it of the receiving end's filter where the device
	// runs it in the sender's context (veth). Below 0 needs root. A
	// benchmark on a shared machine uses it to stay ahead of other work.
	Nice int
}

// RawResult is what a RawFlood sent.
type RawResult struct {
	Sent int
	// Elapsed runs from just before the first sendmmsg to just after the
	// last one returned.
	Elapsed time.Duration
	// Refused counts sends the kernel refused for lack of buffer space
	// (ENOBUFS); the frame was sent again.
	Refused int
}

// PPS is the send rate in packets per second.
func (r RawResult) PPS() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Sent) / r.Elapsed.Seconds()
}

func (f RawFlood) validate() error {
	if len(f.DstMAC) != 6 {
		return fmt.Errorf("netlab: raw flood: destination MAC %q is not 6 bytes", f.DstMAC)
	}
	if !f.Src.Addr().Unmap().Is4() || !Documentation(f.Src.Addr()) {
		return fmt.Errorf("netlab: raw flood: source %v is not an IPv4 documentation address", f.Src)
	}
	if len(f.Dsts) == 0 || len(f.Dsts) > MaxRawTargets {
		return fmt.Errorf("netlab: raw flood: %d destinations not in 1..%d", len(f.Dsts), MaxRawTargets)
	}
	for _, d := range f.Dsts {
		if !d.Addr().Unmap().Is4() || !Documentation(d.Addr()) {
			return fmt.Errorf("netlab: raw flood: destination %v is not an IPv4 documentation address", d)
		}
	}
	if f.Count <= 0 || f.Count > MaxRawPackets {
		return fmt.Errorf("netlab: raw flood count %d not in 1..%d", f.Count, MaxRawPackets)
	}
	if f.Duration <= 0 || f.Duration > MaxRawDuration {
		return fmt.Errorf("netlab: raw flood duration %v not in (0, %v]", f.Duration, MaxRawDuration)
	}
	if f.Size < 0 || f.Size > MaxRawPayload {
		return fmt.Errorf("netlab: raw flood payload %d not in 0..%d", f.Size, MaxRawPayload)
	}
	if f.Batch < 0 || f.Batch > MaxRawBatch {
		return fmt.Errorf("netlab: raw flood batch %d not in 0..%d", f.Batch, MaxRawBatch)
	}
	if f.Nice < -20 || f.Nice > 19 {
		return fmt.Errorf("netlab: raw flood nice %d not in -20..19", f.Nice)
	}
	return nil
}

// RawSender is a send-only AF_PACKET socket bound to one interface. It is
// not safe for concurrent use.
type RawSender struct {
	fd     int
	iface  string
	srcMAC net.HardwareAddr
}

// NewRawSender opens a raw sender on iface inside ns. Protocol 0 makes the
// socket send-only: the kernel hands it no copies of received frames.
func NewRawSender(ns netns.NsHandle, iface string) (*RawSender, error) {
	s := &RawSender{fd: -1, iface: iface}
	err := InNS(ns, func() error {
		ifi, err := net.InterfaceByName(iface)
		if err != nil {
			return err
		}
		if len(ifi.HardwareAddr) != 6 {
			return fmt.Errorf("%s has no Ethernet address", iface)
		}
		s.srcMAC = ifi.HardwareAddr
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("socket: %w", err)
		}
		s.fd = fd
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifi.Index}); err != nil {
			return fmt.Errorf("bind: %w", err)
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1); err != nil {
			return fmt.Errorf("PACKET_QDISC_BYPASS: %w", err)
		}
		return nil
	})
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("netlab: raw sender on %s: %w", iface, err)
	}
	return s, nil
}

// Close closes the socket. It is idempotent.
func (s *RawSender) Close() error {
	if s.fd < 0 {
		return nil
	}
	err := unix.Close(s.fd)
	s.fd = -1
	if err != nil {
		return fmt.Errorf("netlab: raw sender on %s: close: %w", s.iface, err)
	}
	return nil
}

// mmsghdr is struct mmsghdr; Go pads it to the C size on every platform.
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
}

// Send sends f and returns what was sent. It stops early, with the
// context's error, when ctx is done.
func (s *RawSender) Send(ctx context.Context, f RawFlood) (RawResult, error) {
	if err := f.validate(); err != nil {
		return RawResult{}, err
	}
	if s.fd < 0 {
		return RawResult{}, errors.New("netlab: raw sender is closed")
	}
	batch := f.Batch
	if batch == 0 {
		batch = DefaultRawBatch
	}
	frames := make([][]byte, len(f.Dsts))
	for i, d := range f.Dsts {
		frames[i] = RawFrame(s.srcMAC, f.DstMAC, f.Src, d, f.Size, uint16(i))
	}
	msgs, iovs := ring(frames, batch)
	var res RawResult
	var err error
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Never unlocked: the thread ends with the goroutine, and a nice
		// value set on it never reaches other goroutines.
		runtime.LockOSThread()
		if f.Nice != 0 {
			// PRIO_PROCESS with who 0 is the calling thread on Linux.
			if err = unix.Setpriority(unix.PRIO_PROCESS, 0, f.Nice); err != nil {
				err = fmt.Errorf("nice %d: %w", f.Nice, err)
				return
			}
		}
		res, err = s.loop(ctx, msgs, batch, f.Count, time.Now().Add(f.Duration))
	}()
	<-done
	runtime.KeepAlive(frames)
	runtime.KeepAlive(iovs)
	if err != nil {
		return res, fmt.Errorf("netlab: raw flood on %s: %w", s.iface, err)
	}
	return res, nil
}

// ring is a ring of messages over frames, a whole number of rounds over
// them and at least two batches long, so that each sendmmsg takes a
// contiguous slice of it and the round-robin order carries on across calls.
// The messages point into iovs and frames, which must stay alive as long.
func ring(frames [][]byte, batch int) ([]mmsghdr, []unix.Iovec) {
	n := len(frames) * ((2*batch + len(frames) - 1) / len(frames))
	iovs := make([]unix.Iovec, n)
	msgs := make([]mmsghdr, n)
	for i := range msgs {
		fr := frames[i%len(frames)]
		iovs[i].Base = &fr[0]
		iovs[i].SetLen(len(fr))
		msgs[i].hdr.Iov = &iovs[i]
		msgs[i].hdr.SetIovlen(1)
	}
	return msgs, iovs
}

// loop sends count messages from the ring msgs, at most batch per call,
// until end.
func (s *RawSender) loop(ctx context.Context, msgs []mmsghdr, batch, count int, end time.Time) (res RawResult, err error) {
	done := ctx.Done()
	off := 0
	start := time.Now()
	defer func() { res.Elapsed = time.Since(start) }()
	for res.Sent < count {
		select {
		case <-done:
			return res, ctx.Err()
		default:
		}
		if !time.Now().Before(end) {
			break
		}
		n := min(batch, count-res.Sent, len(msgs)-off)
		r, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(s.fd),
			uintptr(unsafe.Pointer(&msgs[off])), uintptr(n), 0, 0, 0)
		switch errno {
		case 0:
		case unix.EINTR, unix.EAGAIN:
			continue
		case unix.ENOBUFS:
			res.Refused++
			continue
		default:
			return res, fmt.Errorf("sendmmsg: %w", errno)
		}
		res.Sent += int(r)
		if off += int(r); off == len(msgs) {
			off = 0
		}
	}
	return res, nil
}

// SendRaw opens a raw sender on iface inside ns, sends f and closes it.
func SendRaw(ctx context.Context, ns netns.NsHandle, iface string, f RawFlood) (RawResult, error) {
	if err := f.validate(); err != nil {
		return RawResult{}, err
	}
	s, err := NewRawSender(ns, iface)
	if err != nil {
		return RawResult{}, err
	}
	res, err := s.Send(ctx, f)
	return res, errors.Join(err, s.Close())
}

// SendRaw sends f from iface of node's namespace (see RawFlood).
func (l *Lab) SendRaw(ctx context.Context, node, iface string, f RawFlood) (RawResult, error) {
	n, err := l.node(node)
	if err != nil {
		return RawResult{}, err
	}
	return SendRaw(ctx, n.ns, iface, f)
}

// RawFrame builds one Ethernet/IPv4/UDP frame with size payload bytes (all
// zero), both checksums computed. id is the IPv4 identification; the
// header sets don't-fragment and TTL 64.
func RawFrame(srcMAC, dstMAC net.HardwareAddr, src, dst netip.AddrPort, size int, id uint16) []byte {
	b := make([]byte, RawHeaderLen+size)
	copy(b[0:6], dstMAC)
	copy(b[6:12], srcMAC)
	binary.BigEndian.PutUint16(b[12:14], unix.ETH_P_IP)
	ip := b[ethLen : ethLen+ipv4Len]
	ip[0] = 0x45 // version 4, 5 words
	binary.BigEndian.PutUint16(ip[2:4], uint16(ipv4Len+udpLen+size))
	binary.BigEndian.PutUint16(ip[4:6], id)
	binary.BigEndian.PutUint16(ip[6:8], 0x4000) // DF
	ip[8] = 64
	ip[9] = unix.IPPROTO_UDP
	s4, d4 := src.Addr().Unmap().As4(), dst.Addr().Unmap().As4()
	copy(ip[12:16], s4[:])
	copy(ip[16:20], d4[:])
	binary.BigEndian.PutUint16(ip[10:12], ^fold(sum16(ip, 0)))
	udp := b[ethLen+ipv4Len:]
	binary.BigEndian.PutUint16(udp[0:2], src.Port())
	binary.BigEndian.PutUint16(udp[2:4], dst.Port())
	binary.BigEndian.PutUint16(udp[4:6], uint16(udpLen+size))
	// The pseudo-header: addresses, protocol, UDP length.
	pseudo := sum16(ip[12:20], uint32(unix.IPPROTO_UDP)+uint32(udpLen+size))
	ck := ^fold(sum16(udp, pseudo))
	if ck == 0 {
		ck = 0xffff // 0 means "no checksum" in UDP over IPv4
	}
	binary.BigEndian.PutUint16(udp[6:8], ck)
	return b
}

// sum16 adds b as big-endian 16-bit words (odd length padded with zero)
// to acc, without folding.
func sum16(b []byte, acc uint32) uint32 {
	for i := 0; i+1 < len(b); i += 2 {
		acc += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		acc += uint32(b[len(b)-1]) << 8
	}
	return acc
}

// fold reduces a one's-complement sum to 16 bits.
func fold(acc uint32) uint16 {
	for acc > 0xffff {
		acc = acc>>16 + acc&0xffff
	}
	return uint16(acc)
}
