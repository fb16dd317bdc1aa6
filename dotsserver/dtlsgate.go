package dotsserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	piondtls "github.com/pion/dtls/v3"
	coapNet "github.com/plgd-dev/go-coap/v3/net"
)

// dtlsGate owns the signal channel's UDP socket and hands pion one packet
// connection per source address, as pion's own UDP listener would, but only
// for a source that has shown it receives at its address: the gate itself
// answers a ClientHello without a valid cookie with a HelloVerifyRequest
// and keeps nothing for it (RFC 6347 §4.2.1, cookies.go). A ClientHello
// that returns a valid cookie starts a connection, within caps in total
// and per source prefix, and pion (InsecureSkipVerifyHello) continues the
// handshake from it: message_seq 1, which pion as patched in
// third_party/pion-dtls accepts and continues (README.md, "DTLS cookie").
// The handshake ends, as far as the caps go, when pion sends its
// ChangeCipherSpec after the peer's (a full handshake: the client's
// certificate and Finished are verified), at the handshake deadline, or
// when the connection is closed. In an abbreviated handshake (session
// resumption, RFC 5246 §7.3) the server's ChangeCipherSpec comes first,
// when the peer has proved nothing yet; such a handshake ends with the
// peer's first application-data record. The server refuses DTLS
// resumption (resume.go), so that case does not arise with its options.
type dtlsGate struct {
	pc      *net.UDPConn
	lim     DTLSLimits
	log     *slog.Logger
	rlog    *rateLog
	cookies *cookieJar

	mu       sync.Mutex
	conns    map[netip.AddrPort]*gateConn
	prefixes map[netip.Prefix]int // handshakes in progress per source prefix
	pending  int                  // handshakes in progress
	stats    DTLSStats
	closed   bool

	accept chan *gateConn
	done   chan struct{}
	wg     sync.WaitGroup
}

// gateQueue is the datagrams held for one connection that pion has not
// read yet; more are dropped, as a full socket buffer would.
const gateQueue = 64

func newDTLSGate(pc *net.UDPConn, lim DTLSLimits, log *slog.Logger, rlog *rateLog) (*dtlsGate, error) {
	jar, err := newCookieJar(time.Now)
	if err != nil {
		return nil, err
	}
	g := &dtlsGate{pc: pc, lim: lim.withDefaults(), log: log, rlog: rlog, cookies: jar,
		conns: map[netip.AddrPort]*gateConn{}, prefixes: map[netip.Prefix]int{}, done: make(chan struct{})}
	g.accept = make(chan *gateConn, g.lim.MaxHandshakes)
	g.wg.Add(1)
	go g.run()
	return g, nil
}

func (g *dtlsGate) run() {
	defer g.wg.Done()
	buf := make([]byte, 64<<10)
	for {
		n, from, err := g.pc.ReadFromUDPAddrPort(buf)
		if err != nil {
			select {
			case <-g.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			g.log.Debug("dtls: read", "err", err)
			continue
		}
		g.route(from, buf[:n])
	}
}

// route hands a datagram to its source's connection, answers a ClientHello
// without a valid cookie, or starts a connection for one with it.
func (g *dtlsGate) route(from netip.AddrPort, pkt []byte) {
	h, hello := parseClientHello(pkt)
	g.mu.Lock()
	old := g.conns[from]
	if old != nil && !(hello && h.whole && old.newHello(h)) {
		if old.handshaking {
			g.receivedLocked(old, pkt)
		}
		g.mu.Unlock()
		old.deliver(pkt)
		return
	}
	closed := g.closed
	g.mu.Unlock()
	if closed {
		return
	}
	if !hello || !h.whole {
		// Clients send a ClientHello before the cookie whole; a fragment
		// would need state to reassemble.
		g.count(func(st *DTLSStats) { st.DroppedOther++ })
		return
	}
	if !g.cookies.valid(from, h) {
		g.helloVerify(from, h)
		return
	}
	g.mu.Lock()
	if old != nil && g.conns[from] == old {
		// A new association from the address of an existing one
		// (RFC 6347 §4.2.8): the client has shown with the cookie that it
		// receives there, so the old association, whose client has moved
		// on (a restart, a port used again), is abandoned.
		g.removeLocked(old)
		g.stats.Replaced++
	} else {
		old = nil
	}
	c := g.admitLocked(from)
	if c != nil {
		c.random = bytes.Clone(h.random()) // h points into the read buffer
	}
	g.mu.Unlock()
	if old != nil {
		old.shut()
	}
	if c == nil {
		return
	}
	c.deliver(pkt)
	select {
	case g.accept <- c:
	default: // cannot happen: the queue holds MaxHandshakes
		_ = c.Close()
	}
}

// helloVerify answers a ClientHello without a valid cookie, keeping nothing.
func (g *dtlsGate) helloVerify(from netip.AddrPort, h dtlsHello) {
	g.count(func(st *DTLSStats) {
		st.HelloVerifySent++
		if len(h.cookie) > 0 {
			st.DroppedBadCookie++
		}
	})
	if _, err := g.pc.WriteToUDPAddrPort(helloVerifyRequest(h, g.cookies.make(from, h)), from); err != nil {
		g.log.Debug("dtls: HelloVerifyRequest", "peer", from.String(), "err", err)
	}
}

func (g *dtlsGate) count(f func(*DTLSStats)) {
	g.mu.Lock()
	f(&g.stats)
	g.mu.Unlock()
}

// admitLocked starts a connection for a cookie-verified ClientHello within
// the caps.
func (g *dtlsGate) admitLocked(from netip.AddrPort) *gateConn {
	if g.closed {
		return nil
	}
	prefix := sourcePrefix(from.Addr())
	if g.prefixes[prefix] >= g.lim.MaxHandshakesPerPrefix {
		g.stats.DroppedPrefixCap++
		g.rlog.warn("dtls-prefix-cap", "DTLS ClientHello dropped: too many handshakes from the prefix",
			"prefix", prefix.String(), "peer", from.String(), "limit", g.lim.MaxHandshakesPerPrefix)
		return nil
	}
	if g.pending >= g.lim.MaxHandshakes {
		g.stats.DroppedTotalCap++
		g.rlog.warn("dtls-total-cap", "DTLS ClientHello dropped: too many handshakes in progress",
			"peer", from.String(), "limit", g.lim.MaxHandshakes)
		return nil
	}
	now := time.Now()
	c := &gateConn{g: g, remote: from, raddr: net.UDPAddrFromAddrPort(from), prefix: prefix,
		in: make(chan []byte, gateQueue), done: make(chan struct{}), handshaking: true, born: now}
	c.timer = time.AfterFunc(g.lim.HandshakeTimeout, c.expire)
	g.conns[from] = c
	g.prefixes[prefix]++
	g.pending++
	g.stats.Started++
	return c
}

// sent notes the ChangeCipherSpec with which pion ends a full handshake
// (the peer's came first), or with which it starts to end an abbreviated
// one.
func (g *dtlsGate) sent(c *gateConn, pkt []byte) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !c.handshaking || !hasChangeCipherSpec(pkt) {
		return
	}
	if !c.peerCCS {
		c.serverCCS = true // abbreviated: wait for the peer's data
		return
	}
	g.stats.Completed++
	g.endHandshakeLocked(c)
}

// receivedLocked notes the peer's ChangeCipherSpec, and ends an
// abbreviated handshake on the peer's first application-data record.
func (g *dtlsGate) receivedLocked(c *gateConn, pkt []byte) {
	if hasChangeCipherSpec(pkt) {
		c.peerCCS = true
	}
	if c.serverCCS && hasRecordOf(pkt, dtlsContentApplicationData) {
		g.stats.Completed++
		g.endHandshakeLocked(c)
	}
}

// endHandshakeLocked releases what a handshake in progress counts against.
func (g *dtlsGate) endHandshakeLocked(c *gateConn) {
	if !c.handshaking {
		return
	}
	c.handshaking = false
	c.timer.Stop()
	g.pending--
	if g.prefixes[c.prefix]--; g.prefixes[c.prefix] <= 0 {
		delete(g.prefixes, c.prefix)
	}
}

func (g *dtlsGate) removeLocked(c *gateConn) {
	g.endHandshakeLocked(c)
	if g.conns[c.remote] == c {
		delete(g.conns, c.remote)
	}
}

// Stats returns the gate's counters.
func (g *dtlsGate) Stats() DTLSStats {
	g.mu.Lock()
	defer g.mu.Unlock()
	st := g.stats
	st.Handshakes = g.pending
	return st
}

// Accept hands pion the next connection (dtlsnet.PacketListener).
func (g *dtlsGate) Accept() (net.PacketConn, net.Addr, error) {
	select {
	case c := <-g.accept:
		return c, c.raddr, nil
	case <-g.done:
		return nil, nil, net.ErrClosed
	}
}

// Close closes the socket and every connection.
func (g *dtlsGate) Close() error {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil
	}
	g.closed = true
	close(g.done)
	conns := make([]*gateConn, 0, len(g.conns))
	for _, c := range g.conns {
		g.removeLocked(c)
		conns = append(conns, c)
	}
	g.mu.Unlock()
	for _, c := range conns {
		c.shut()
	}
	err := g.pc.Close()
	g.wg.Wait()
	return err
}

// Addr is the socket's address.
func (g *dtlsGate) Addr() net.Addr { return g.pc.LocalAddr() }

// sourcePrefix is the prefix the per-prefix cap counts by: /24 for IPv4,
// /56 for IPv6 (a typical end-site assignment).
func sourcePrefix(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	bits := 56
	if a.Is4() {
		bits = 24
	}
	p, _ := a.Prefix(bits)
	return p
}

// gateConn is the packet connection of one source address.
type gateConn struct {
	g      *dtlsGate
	remote netip.AddrPort
	raddr  *net.UDPAddr
	prefix netip.Prefix
	in     chan []byte
	done   chan struct{}
	once   sync.Once
	rd     deadline

	// Under g.mu.
	handshaking bool
	peerCCS     bool // the peer has sent its ChangeCipherSpec
	serverCCS   bool // pion sent its ChangeCipherSpec before the peer's
	timer       *time.Timer
	born        time.Time
	random      []byte // of the ClientHello that started the connection
}

// newHello reports whether h, a ClientHello from the connection's source,
// starts another association: its random differs from that of the
// ClientHello that started this one, which a retransmission or a copy
// repeats (RFC 6347 §4.2.1: the ClientHello with the cookie keeps the
// first one's parameters). It must be called with g.mu held.
func (c *gateConn) newHello(h dtlsHello) bool {
	return c.random != nil && !bytes.Equal(h.random(), c.random)
}

func (c *gateConn) deliver(pkt []byte) {
	b := append([]byte(nil), pkt...)
	select {
	case c.in <- b:
	default:
		c.g.mu.Lock()
		c.g.stats.DroppedOther++
		c.g.mu.Unlock()
	}
}

// expire drops the handshake at its deadline.
func (c *gateConn) expire() {
	g := c.g
	g.mu.Lock()
	if !c.handshaking {
		g.mu.Unlock()
		return
	}
	g.stats.TimedOut++
	g.removeLocked(c)
	g.mu.Unlock()
	g.rlog.warn("dtls-timeout", "DTLS handshake dropped at its deadline",
		"peer", c.remote.String(), "timeout", g.lim.HandshakeTimeout)
	c.shut()
}

func (c *gateConn) shut() { c.once.Do(func() { close(c.done) }) }

// ReadFrom returns the next datagram from the source.
func (c *gateConn) ReadFrom(b []byte) (int, net.Addr, error) {
	select {
	case <-c.done:
		return 0, nil, net.ErrClosed
	default:
	}
	select {
	case p := <-c.in:
		return copy(b, p), c.raddr, nil
	case <-c.done:
		return 0, nil, net.ErrClosed
	case <-c.rd.wait():
		return 0, nil, os.ErrDeadlineExceeded
	}
}

// WriteTo sends to the source, whatever addr says.
func (c *gateConn) WriteTo(b []byte, _ net.Addr) (int, error) {
	select {
	case <-c.done:
		return 0, net.ErrClosed
	default:
	}
	c.g.sent(c, b)
	n, err := c.g.pc.WriteToUDPAddrPort(b, c.remote)
	if err != nil {
		return n, fmt.Errorf("dtls write to %s: %w", c.remote, err)
	}
	return n, nil
}

// Close forgets the source; its next ClientHello starts afresh. The DTLS
// library's own handshake deadline is the gate's: a handshake it closes
// past that deadline is counted as timed out, whichever timer fired first.
func (c *gateConn) Close() error {
	g := c.g
	g.mu.Lock()
	timedOut := c.handshaking && time.Since(c.born) >= g.lim.HandshakeTimeout
	if timedOut {
		g.stats.TimedOut++
	} else if c.handshaking {
		g.stats.Failed++
	}
	g.removeLocked(c)
	g.mu.Unlock()
	if timedOut {
		g.rlog.warn("dtls-timeout", "DTLS handshake dropped at its deadline",
			"peer", c.remote.String(), "timeout", g.lim.HandshakeTimeout)
	}
	c.shut()
	return nil
}

func (c *gateConn) LocalAddr() net.Addr                { return c.g.pc.LocalAddr() }
func (c *gateConn) SetDeadline(t time.Time) error      { return c.SetReadDeadline(t) }
func (c *gateConn) SetReadDeadline(t time.Time) error  { c.rd.set(t); return nil }
func (c *gateConn) SetWriteDeadline(_ time.Time) error { return nil }

// deadline is a read deadline as a channel closed when it passes.
type deadline struct {
	mu    sync.Mutex
	timer *time.Timer
	ch    chan struct{}
	shut  bool // ch is closed
}

func (d *deadline) wait() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ch == nil {
		d.ch = make(chan struct{})
	}
	return d.ch
}

func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
	if d.ch == nil || d.shut {
		d.ch, d.shut = make(chan struct{}), false
	}
	if t.IsZero() {
		return
	}
	ch := d.ch
	fire := func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.ch == ch && !d.shut {
			close(ch)
			d.shut = true
		}
	}
	if dur := time.Until(t); dur > 0 {
		d.timer = time.AfterFunc(dur, fire)
		return
	}
	d.shut = true
	close(ch)
}

// dtlsListener is the go-coap listener over pion's listener on a gate.
type dtlsListener struct {
	gate *dtlsGate
	ln   net.Listener
}

func newDTLSListener(pc *net.UDPConn, lim DTLSLimits, log *slog.Logger, rlog *rateLog, opts ...piondtls.ServerOption) (*dtlsListener, error) {
	g, err := newDTLSGate(pc, lim, log, rlog)
	if err != nil {
		return nil, err
	}
	opts = append(opts, piondtls.WithInsecureSkipVerifyHello(true)) // the gate verified the cookie
	ln, err := piondtls.NewListenerWithOptions(g, opts...)
	if err != nil {
		_ = g.Close()
		return nil, fmt.Errorf("dtls listener: %w", err)
	}
	return &dtlsListener{gate: g, ln: ln}, nil
}

// AcceptWithContext returns the next connection; its handshake is left to
// go-coap.
func (l *dtlsListener) AcceptWithContext(ctx context.Context) (net.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c, err := l.ln.Accept()
	if err != nil {
		if errors.Is(err, net.ErrClosed) {
			return nil, coapNet.ErrListenerIsClosed
		}
		return nil, fmt.Errorf("dtls accept: %w", err)
	}
	return c, nil
}

// Close closes the socket and the connections on it.
func (l *dtlsListener) Close() error { return l.ln.Close() }

// Addr is the bound UDP address.
func (l *dtlsListener) Addr() net.Addr { return l.ln.Addr() }
