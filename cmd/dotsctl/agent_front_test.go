package main

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/levee-dots/levee/dotsserver/dotstest"
)

// udpFront is 127.0.0.1:P in front of a server: TCP port P forwards to the
// server's TCP port, and UDP port P swallows every datagram (a firewall
// dropping UDP) until opened, then forwards them too. With tcpStalled,
// what clients send over TCP is swallowed too.
type udpFront struct {
	addr       string
	open       atomic.Bool
	dropped    atomic.Int64 // datagrams swallowed
	tcpStalled atomic.Bool
}

func newUDPFront(t *testing.T, backend string) *udpFront {
	t.Helper()
	ln, pc := dotstest.ListenSamePort(t)
	f := &udpFront{addr: ln.Addr().String()}
	var wg sync.WaitGroup
	var mu sync.Mutex
	closed := false
	var conns []net.Conn
	track := func(cs ...net.Conn) bool {
		mu.Lock()
		defer mu.Unlock()
		if closed {
			return false
		}
		conns = append(conns, cs...)
		return true
	}
	pipe := func(dst, src net.Conn, stall *atomic.Bool) {
		defer wg.Done()
		defer dst.Close()
		defer src.Close()
		b := make([]byte, 65536)
		for {
			n, err := src.Read(b)
			if err != nil {
				return
			}
			if stall != nil && stall.Load() {
				continue
			}
			if _, err := dst.Write(b[:n]); err != nil {
				return
			}
		}
	}
	wg.Add(2)
	go func() { // UDP: dropped, or forwarded by one socket per client
		defer wg.Done()
		peers := map[string]net.Conn{}
		buf := make([]byte, 65536)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if !f.open.Load() {
				f.dropped.Add(1)
				continue
			}
			up, ok := peers[from.String()]
			if !ok {
				if up, err = net.Dial("udp", backend); err != nil || !track(up) {
					continue
				}
				peers[from.String()] = up
				wg.Add(1)
				go func() {
					defer wg.Done()
					b := make([]byte, 65536)
					for {
						n, err := up.Read(b)
						if err != nil {
							return
						}
						_, _ = pc.WriteTo(b[:n], from)
					}
				}()
			}
			_, _ = up.Write(buf[:n])
		}
	}()
	go func() { // TCP
		defer wg.Done()
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", backend)
			if err != nil {
				in.Close()
				continue
			}
			if !track(in, out) {
				in.Close()
				out.Close()
				return
			}
			wg.Add(2)
			go pipe(in, out, nil)
			go pipe(out, in, &f.tcpStalled)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		pc.Close()
		mu.Lock()
		closed = true
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return f
}
