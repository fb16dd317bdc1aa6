package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// Spoofed UDP datagrams: IPv4 and UDP headers written by hand (RFC 791,
// RFC 768) and sent through a raw socket with IP_HDRINCL, so that their
// source is any address of 127.0.0.0/8. Only loopback addresses are
// accepted, as sources and as destinations.

const (
	ipv4HeaderLen = 20
	udpHeaderLen  = 8
)

var loopback4 = netip.MustParsePrefix("127.0.0.0/8")

// errNotLoopback refuses a spoofed datagram to or from outside 127.0.0.0/8.
var errNotLoopback = errors.New("spoofed datagrams stay inside 127.0.0.0/8")

// spoofSource returns the i-th source address of a flood: 127.64.0.1,
// 127.64.0.2, … 127.64.0.254, 127.64.1.1, … (no .0 or .255 host byte), far
// from 127.0.0.1 where dotsd and the legitimate client are.
func spoofSource(i int) netip.Addr {
	b := i / 254
	return netip.AddrFrom4([4]byte{127, byte(64 + b>>8), byte(b), byte(1 + i%254)})
}

// checksum is the Internet checksum (RFC 1071) of b, starting from sum.
func checksum(sum uint32, b []byte) uint16 {
	for len(b) >= 2 {
		sum += uint32(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// spoofedDatagram appends to buf[:0] an IPv4 packet carrying one UDP
// datagram from src to dst with payload; both checksums are filled in.
func spoofedDatagram(buf []byte, src, dst netip.AddrPort, id uint16, payload []byte) ([]byte, error) {
	if !src.Addr().Is4() || !dst.Addr().Is4() || !loopback4.Contains(src.Addr()) || !loopback4.Contains(dst.Addr()) {
		return nil, fmt.Errorf("%w: %v → %v", errNotLoopback, src, dst)
	}
	total := ipv4HeaderLen + udpHeaderLen + len(payload)
	if total > 65535 {
		return nil, fmt.Errorf("spoofed datagram: %d bytes of payload", len(payload))
	}
	p := append(buf[:0], make([]byte, ipv4HeaderLen+udpHeaderLen)...)
	p[0] = 0x45 // version 4, 5 words of header
	binary.BigEndian.PutUint16(p[2:4], uint16(total))
	binary.BigEndian.PutUint16(p[4:6], id)
	binary.BigEndian.PutUint16(p[6:8], 0x4000) // don't fragment
	p[8], p[9] = 64, unix.IPPROTO_UDP
	s4, d4 := src.Addr().As4(), dst.Addr().As4()
	copy(p[12:16], s4[:])
	copy(p[16:20], d4[:])
	binary.BigEndian.PutUint16(p[10:12], checksum(0, p[:ipv4HeaderLen]))
	u := p[ipv4HeaderLen:]
	binary.BigEndian.PutUint16(u[0:2], src.Port())
	binary.BigEndian.PutUint16(u[2:4], dst.Port())
	binary.BigEndian.PutUint16(u[4:6], uint16(udpHeaderLen+len(payload)))
	p = append(p, payload...)
	// The pseudo-header: source, destination, zero, protocol, UDP length.
	pseudo := make([]byte, 0, 12)
	pseudo = append(append(pseudo, s4[:]...), d4[:]...)
	pseudo = append(pseudo, 0, unix.IPPROTO_UDP)
	pseudo = binary.BigEndian.AppendUint16(pseudo, uint16(udpHeaderLen+len(payload)))
	var sum uint32
	for i := 0; i < len(pseudo); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(pseudo[i:]))
	}
	c := checksum(sum, p[ipv4HeaderLen:])
	if c == 0 {
		c = 0xffff // 0 means "no checksum" in UDP over IPv4
	}
	binary.BigEndian.PutUint16(p[ipv4HeaderLen+6:], c)
	return p, nil
}

// rawSender sends hand-built IPv4 packets (root: CAP_NET_RAW).
type rawSender struct{ fd int }

func openRawSender() (*rawSender, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
	if err != nil {
		return nil, fmt.Errorf("raw socket: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_HDRINCL, 1); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("IP_HDRINCL: %w", err)
	}
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 4<<20) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4<<20)
	}
	return &rawSender{fd: fd}, nil
}

// send sends one packet built by spoofedDatagram, waiting out a full
// queue (ENOBUFS, EAGAIN) for at most 100 ms.
func (r *rawSender) send(pkt []byte) error {
	var dst [4]byte
	copy(dst[:], pkt[16:20])
	sa := &unix.SockaddrInet4{Addr: dst}
	for try := 0; ; try++ {
		err := unix.Sendto(r.fd, pkt, 0, sa)
		if err == nil || try == 1000 || !(errors.Is(err, unix.ENOBUFS) || errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR)) {
			return err
		}
		time.Sleep(100 * time.Microsecond)
	}
}

func (r *rawSender) close() error { return unix.Close(r.fd) }

// floodPlan is a bounded flood of ClientHello records from spoofed sources.
type floodPlan struct {
	dst      netip.AddrPort
	rate     int // packets per second
	total    int // packets; the flood lasts total/rate seconds
	sources  int // spoofSource(0 … sources-1), in turn, each with a random port
	template []byte
	// stop is polled every tick; a non-empty reason ends the flood early.
	stop func() string
}

func (p floodPlan) duration() time.Duration {
	return time.Duration(int64(p.total) * int64(time.Second) / int64(p.rate))
}

// floodResult is what a flood did.
type floodResult struct {
	sent       int // packets the kernel took
	sendErrors int // packets it refused (after the retries of send)
	elapsed    time.Duration
	stopped    string // why it ended before total packets, if it did
	firstErr   string
}

// asPlanned: every packet sent, none early, the last within 1 s of the
// planned end.
func (r floodResult) asPlanned(p floodPlan) bool {
	d := p.duration()
	return r.sent == p.total && r.sendErrors == 0 && r.stopped == "" && r.elapsed >= d-100*time.Millisecond && r.elapsed <= d+time.Second
}

// floodTick is the pacing step: every tick the flood catches up with
// rate × elapsed time.
const floodTick = 2 * time.Millisecond

// runFlood sends p.total ClientHellos at p.rate, each from the next source
// address and a random port, each with its own client_random. It stops
// at the total, when p.stop gives a reason, or at the planned duration
// plus 5 s, whichever comes first.
func runFlood(ctx context.Context, p floodPlan) (floodResult, error) {
	if p.rate <= 0 || p.total <= 0 || p.sources <= 0 || p.sources > 254*256 {
		return floodResult{}, fmt.Errorf("flood plan: rate %d, total %d, sources %d", p.rate, p.total, p.sources)
	}
	if len(p.template) < helloRandomOffset+32 {
		return floodResult{}, errors.New("flood plan: the ClientHello template is too short")
	}
	if _, err := spoofedDatagram(nil, netip.AddrPortFrom(spoofSource(p.sources-1), 1), p.dst, 0, nil); err != nil {
		return floodResult{}, err
	}
	rs, err := openRawSender()
	if err != nil {
		return floodResult{}, err
	}
	defer rs.close()
	ctx, cancel := context.WithTimeout(ctx, p.duration()+5*time.Second)
	defer cancel()
	rng := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	payload := append([]byte(nil), p.template...)
	buf := make([]byte, 0, ipv4HeaderLen+udpHeaderLen+len(payload))
	var r floodResult
	tick := time.NewTicker(floodTick)
	defer tick.Stop()
	start := time.Now()
	for r.sent+r.sendErrors < p.total {
		if reason := p.stop(); reason != "" {
			r.stopped = reason
			break
		}
		due := min(p.total, int(int64(p.rate)*int64(time.Since(start))/int64(time.Second))+1)
		for n := r.sent + r.sendErrors; n < due; n++ {
			for i := helloRandomOffset; i < helloRandomOffset+32; i += 8 {
				binary.BigEndian.PutUint64(payload[i:], rng.Uint64())
			}
			src := netip.AddrPortFrom(spoofSource(n%p.sources), uint16(1024+rng.IntN(65536-1024)))
			pkt, err := spoofedDatagram(buf, src, p.dst, uint16(n), payload)
			if err != nil {
				return r, err
			}
			if err := rs.send(pkt); err != nil {
				r.sendErrors++
				if r.firstErr == "" {
					r.firstErr = err.Error()
				}
				continue
			}
			r.sent++
		}
		if r.sent+r.sendErrors == p.total {
			break
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			r.stopped = "the time bound (planned duration + 5 s) was reached"
			if ctx.Err() == context.Canceled {
				r.stopped = "interrupted"
			}
		}
		if r.stopped != "" {
			break
		}
	}
	r.elapsed = time.Since(start)
	return r, nil
}
