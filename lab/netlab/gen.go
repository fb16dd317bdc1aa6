//go:build linux

package netlab

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Bounds of a Flood.
const (
	MaxFloodPackets  = 10_000_000
	MaxFloodDuration = 30 * time.Second
)

// Flood is a bounded UDP flood: Count packets of Size payload bytes from
// Src to Dst, stopping at Count or after Duration, whichever comes first.
// Packets go out in bursts of Burst with Pause between bursts, so that a
// receiver on the other end can count every one.
type Flood struct {
	Src, Dst netip.AddrPort
	Count    int
	Size     int
	Duration time.Duration
	Burst    int           // 0: 50
	Pause    time.Duration // 0: 1ms
}

func (f Flood) validate() error {
	if !Documentation(f.Src.Addr()) || !Documentation(f.Dst.Addr()) {
		return fmt.Errorf("netlab: flood %v -> %v: only documentation addresses", f.Src, f.Dst)
	}
	if f.Count <= 0 || f.Count > MaxFloodPackets {
		return fmt.Errorf("netlab: flood count %d not in 1..%d", f.Count, MaxFloodPackets)
	}
	if f.Duration <= 0 || f.Duration > MaxFloodDuration {
		return fmt.Errorf("netlab: flood duration %v not in (0, %v]", f.Duration, MaxFloodDuration)
	}
	if f.Size < 0 || f.Size > 1400 {
		return fmt.Errorf("netlab: flood payload %d not in 0..1400", f.Size)
	}
	return nil
}

// Flood sends f from a UDP socket made inside node's namespace and returns
// the number of packets sent.
func (l *Lab) Flood(node string, f Flood) (int, error) {
	if err := f.validate(); err != nil {
		return 0, err
	}
	if f.Burst <= 0 {
		f.Burst = 50
	}
	if f.Pause <= 0 {
		f.Pause = time.Millisecond
	}
	c, err := l.ListenUDP(node, f.Src)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	to := net.UDPAddrFromAddrPort(f.Dst)
	buf := make([]byte, f.Size)
	end := time.Now().Add(f.Duration)
	sent := 0
	for sent < f.Count && time.Now().Before(end) {
		for i := 0; i < f.Burst && sent < f.Count; i++ {
			if _, err := c.WriteTo(buf, to); err != nil {
				return sent, fmt.Errorf("netlab: flood: %w", err)
			}
			sent++
		}
		time.Sleep(f.Pause)
	}
	return sent, nil
}

// ListenUDP opens a UDP socket bound to addr inside node's namespace.
func (l *Lab) ListenUDP(node string, addr netip.AddrPort) (*net.UDPConn, error) {
	var c *net.UDPConn
	err := l.Do(node, func() error {
		var err error
		c, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("netlab: %s: listen udp %v: %w", node, addr, err)
	}
	return c, nil
}

// Counter counts the UDP datagrams arriving at one address.
type Counter struct {
	c    *net.UDPConn
	n    atomic.Int64
	done chan struct{}
}

// CountUDP starts counting datagrams to addr inside node's namespace.
// Close stops it.
func (l *Lab) CountUDP(node string, addr netip.AddrPort) (*Counter, error) {
	c, err := l.ListenUDP(node, addr)
	if err != nil {
		return nil, err
	}
	// A large receive buffer (root may exceed rmem_max), so that a reader
	// delayed by a busy machine does not lose datagrams.
	if rc, err := c.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) {
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20)
		})
	}
	k := &Counter{c: c, done: make(chan struct{})}
	go func() {
		defer close(k.done)
		buf := make([]byte, 2048)
		for {
			if _, _, err := c.ReadFrom(buf); err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			k.n.Add(1)
		}
	}()
	return k, nil
}

// Count is the number of datagrams received so far.
func (k *Counter) Count() int { return int(k.n.Load()) }

// Close stops the counter.
func (k *Counter) Close() error {
	err := k.c.Close()
	<-k.done
	return err
}

// Echo is a UDP echo service: every datagram is sent back to its sender.
type Echo struct {
	c    *net.UDPConn
	done chan struct{}
	once sync.Once
}

// EchoUDP starts an echo service on addr inside node's namespace.
func (l *Lab) EchoUDP(node string, addr netip.AddrPort) (*Echo, error) {
	c, err := l.ListenUDP(node, addr)
	if err != nil {
		return nil, err
	}
	e := &Echo{c: c, done: make(chan struct{})}
	go func() {
		defer close(e.done)
		buf := make([]byte, 2048)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			_, _ = c.WriteToUDPAddrPort(buf[:n], from)
		}
	}()
	return e, nil
}

// Close stops the service.
func (e *Echo) Close() error {
	var err error
	e.once.Do(func() { err = e.c.Close(); <-e.done })
	return err
}

// Ping sends n requests from src (inside node's namespace) to an echo
// service at dst, one at a time, and returns how many were answered. A
// request is sent again, with the same text, up to pingTries times, each
// waiting up to timeout: one datagram lost on a loaded machine (a neighbour
// entry being resolved, a busy scheduler) is not a broken flow, while a
// broken path loses every try.
func (l *Lab) Ping(node string, src, dst netip.AddrPort, n int, timeout time.Duration) (int, error) {
	if !Documentation(src.Addr()) || !Documentation(dst.Addr()) || n <= 0 || n > 10_000 {
		return 0, fmt.Errorf("netlab: ping %v -> %v x%d: bad arguments", src, dst, n)
	}
	c, err := l.ListenUDP(node, src)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	ok := 0
	buf := make([]byte, 64)
	for i := range n {
		msg := fmt.Sprintf("ping %d", i)
	tries:
		for range pingTries {
			if _, err := c.WriteToUDPAddrPort([]byte(msg), dst); err != nil {
				return ok, err
			}
			_ = c.SetReadDeadline(time.Now().Add(timeout))
			for {
				m, from, err := c.ReadFromUDPAddrPort(buf)
				if err != nil {
					break // timeout: try again
				}
				if from.Addr().Unmap() == dst.Addr() && from.Port() == dst.Port() && string(buf[:m]) == msg {
					ok++
					break tries
				}
			}
		}
	}
	return ok, nil
}

// pingTries is how many times Ping sends one request before it counts it
// as unanswered.
const pingTries = 3
