package dotsclient

import (
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/levee-dots/levee/dots"
)

// fakeClock is a settable time for the handshake probe and the copier.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)} }

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) set(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC).Add(d)
}

// handshakeDatagram is a datagram whose first record is an epoch-0
// handshake record carrying message typ with message_seq seq.
func handshakeDatagram(typ byte, seq uint16) []byte {
	b := make([]byte, dtlsRecordHeader+dtlsHandshakeHeader+4)
	b[0], b[1], b[2] = recordHandshake, 0xfe, 0xfd
	h := b[dtlsRecordHeader:]
	h[0], h[4], h[5] = typ, byte(seq>>8), byte(seq)
	return b
}

// Datagrams of a full handshake with a cookie exchange (RFC 6347 §4.2.4).
var (
	chNoCookie   = handshakeDatagram(hsClientHello, 0)
	chCookie     = handshakeDatagram(hsClientHello, 1)
	hvr          = handshakeDatagram(hsHelloVerifyRequest, 0)
	serverHello1 = handshakeDatagram(hsServerHello, 1)
	flight5      = handshakeDatagram(11, 2) // Certificate first
	ccs          = append([]byte{recordChangeCipherSpec, 0xfe, 0xfd}, make([]byte, 11)...)
	appData      = append([]byte{23, 0xfe, 0xfd, 0, 1}, make([]byte, 20)...)
)

// TestHandshakeRTT: a sample is the time from a client flight sent once to
// the first datagram of the server's answer to it, below the limit; a
// retransmitted flight gives none (Karn), nor does a server datagram that
// answers another flight.
func TestHandshakeRTT(t *testing.T) {
	ms := time.Millisecond
	type ev struct {
		at    time.Duration
		wrote bool
		b     []byte
	}
	for _, tc := range []struct {
		name   string
		events []ev
		want   []time.Duration
	}{
		{"full handshake, nothing lost", []ev{
			{0, true, chNoCookie}, {10 * ms, false, hvr}, {11 * ms, true, chCookie}, {40 * ms, false, serverHello1},
			{45 * ms, true, flight5}, {60 * ms, false, ccs}, {61 * ms, true, appData}, {70 * ms, false, appData},
		}, []time.Duration{10 * ms, 29 * ms, 15 * ms}},
		{"retransmitted ClientHello: no sample", []ev{
			{0, true, chNoCookie}, {300 * ms, true, chNoCookie}, {310 * ms, false, hvr},
		}, nil},
		{"only the first answer counts", []ev{
			{0, true, chNoCookie}, {10 * ms, false, hvr}, {20 * ms, false, hvr},
		}, []time.Duration{10 * ms}},
		{"a late HelloVerifyRequest is no answer to the ClientHello with the cookie", []ev{
			{0, true, chNoCookie}, {300 * ms, true, chNoCookie}, {310 * ms, false, hvr},
			{311 * ms, true, chCookie}, {315 * ms, false, hvr}, {340 * ms, false, serverHello1},
		}, []time.Duration{29 * ms}},
		{"the server's repeat of its ServerHello flight is no answer to flight 5", []ev{
			{0, true, chCookie}, {300 * ms, true, chCookie}, {310 * ms, false, serverHello1},
			{312 * ms, true, flight5}, {320 * ms, false, serverHello1}, {350 * ms, false, ccs},
		}, []time.Duration{38 * ms}},
		{"an answer at the retransmission timer or later is not taken", []ev{
			{0, true, chNoCookie}, {1000 * ms, false, hvr}, {1001 * ms, true, chCookie}, {1900 * ms, false, serverHello1},
		}, []time.Duration{899 * ms}},
		{"application data only", []ev{{0, true, appData}, {10 * ms, false, appData}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := newFakeClock()
			p := newHSRTT(clk.now, time.Second)
			for _, e := range tc.events {
				clk.set(e.at)
				if e.wrote {
					p.wrote(e.b)
				} else {
					p.read(e.b)
				}
			}
			if got := p.taken(); !slices.Equal(got, tc.want) {
				t.Fatalf("samples %v, want %v", got, tc.want)
			}
		})
	}
}

// TestHandshakeSeedsNONInterval: after a DTLS handshake, with no request
// made yet, the session has an RTT estimate, so its first NON request is
// repeated at the pace of that estimate (500 ms at least) and not after
// 3 s; a session without one would wait nonRepeat.
func TestHandshakeSeedsNONInterval(t *testing.T) {
	e := newTestEnv(t, nil)
	cfg := e.config(t, "alpha", e.addr)
	cfg.Transport = "dtls"
	c, err := Dial(timeout(t, 10*time.Second), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	srtt := time.Duration(c.srtt.Load())
	if srtt <= 0 || srtt >= time.Second {
		t.Fatalf("smoothed RTT after the handshake: %v, want a sample below the 1 s handshake timer", srtt)
	}
	if got := nonInterval(srtt); got >= nonRepeat {
		t.Fatalf("first NON repeat after %v, want less than %v", got, nonRepeat)
	}
	r, err := c.Mitigate(timeout(t, 10*time.Second), 1, dots.Scope{TargetPrefix: []string{"203.0.113.10/32"}, Lifetime: dots.Ptr(int64(3600))})
	if err != nil || r.Code != dots.Created {
		t.Fatalf("mitigate: %v %+v", err, r)
	}
}

// TestCopier: copies-1 extra copies per datagram, at most rate a second
// (a second's worth at once) and budget in all.
func TestCopier(t *testing.T) {
	clk := newFakeClock()
	c := newCopier(clk.now, 2, 20, 50)
	burst := 0
	for range 30 {
		burst += c.extra()
	}
	if burst != 20 {
		t.Fatalf("30 datagrams at once: %d copies, want 20 (the rate's burst)", burst)
	}
	clk.set(500 * time.Millisecond)
	half := 0
	for range 30 {
		half += c.extra()
	}
	if half != 10 {
		t.Fatalf("half a second later: %d copies, want 10", half)
	}
	var total int
	for i := range 100 {
		clk.set(time.Second + time.Duration(i)*time.Second)
		total += c.extra()
	}
	if total != 20 {
		t.Fatalf("a datagram a second for 100 s: %d copies, want the 20 the budget of 50 had left", total)
	}
}

// countConn counts the datagrams written to it.
type countConn struct {
	net.Conn
	mu     sync.Mutex
	writes [][]byte
}

func (c *countConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes = append(c.writes, slices.Clone(b))
	return len(b), nil
}

// TestDatagramConnCopies: with a copier each datagram is written twice,
// unchanged; without one, once.
func TestDatagramConnCopies(t *testing.T) {
	for _, tc := range []struct {
		name  string
		heavy bool
		want  int
	}{{"default", false, 1}, {"heavy loss", true, HeavyLossCopies}} {
		t.Run(tc.name, func(t *testing.T) {
			cc := &countConn{}
			c := &Client{cfg: Config{HeavyLoss: tc.heavy}}
			pc := c.datagrams(cc)
			if n, err := pc.WriteTo(chNoCookie, nil); err != nil || n != len(chNoCookie) {
				t.Fatalf("WriteTo: %d, %v", n, err)
			}
			if len(cc.writes) != tc.want {
				t.Fatalf("%d datagrams written, want %d", len(cc.writes), tc.want)
			}
			for _, w := range cc.writes {
				if !slices.Equal(w, chNoCookie) {
					t.Fatalf("copy %x differs from %x", w, chNoCookie)
				}
			}
		})
	}
}
