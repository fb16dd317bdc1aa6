// Package dotsclient is the DOTS client side of the signal channel
// (RFC 9132): Happy Eyeballs over DTLS and TLS (§4.3), mitigation requests,
// refresh, efficacy updates, status with Observe, withdrawal (§4.4), session
// configuration (§4.5), following redirects (§4.6, redirect.go), heartbeats
// in both directions (§4.7), and an agent that keeps a session alive and
// reconnects as §4.7 prescribes. A cuid collision makes a new cuid, and the
// mids roll over, as §4.4.1 says (cuid.go, mid.go).
package dotsclient

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	piondtls "github.com/pion/dtls/v3"
	"github.com/plgd-dev/go-coap/v3/dtls"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/mux"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/tcp"
	tcpClient "github.com/plgd-dev/go-coap/v3/tcp/client"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/levee-dots/levee/dots"
)

// Config configures a client.
type Config struct {
	Servers     []string // host:port, in order of preference
	Certificate tls.Certificate
	// PSK, instead of Certificate, authenticates the client with a
	// pre-shared key (DTLS only, psk.go); the cuid is derived from its
	// identity.
	PSK        *PSK
	RootCAs    *x509.CertPool
	ServerName string // for certificate verification; default: the host of each server address
	// CUID overrides the identifier derived from the certificate (a
	// server takes it after a cuid collision, or where its policy lets
	// clients choose, RFC 9132 §4.4.1).
	CUID string
	// OnCUIDChange is called with the old and the new cuid when a cuid
	// collision (4.09 cuid-collision) made the client generate a new one,
	// before the request is sent again with it: the place to keep the new
	// cuid for later sessions. An error stops the retry.
	OnCUIDChange func(old, new string) error
	// KeepCUID answers a cuid collision with the 4.09 as it came, making
	// no new cuid (for a caller that handles collisions itself).
	KeepCUID bool
	// Transport restricts Happy Eyeballs: "" or "auto" (DTLS preferred,
	// TLS as fallback), "dtls" or "tls".
	Transport string
	// AttemptDelay is the Happy Eyeballs connection attempt delay (default 100 ms, RFC 9132 §4.3).
	AttemptDelay time.Duration
	Logger       *slog.Logger
	// OnHeartbeat is called for each heartbeat the server sends.
	OnHeartbeat func(peerHBStatus bool)
	// Sessions, shared by the Dials of one agent, lets a reconnection
	// resume the last (D)TLS session with the server (resume.go); nil:
	// every handshake is a full one.
	Sessions *SessionCache
	// ParallelRequests is how many requests the session has outstanding
	// at once; more wait for their turn. 0 means 1, RFC 7252's NSTART
	// default (§4.7), which counts NON requests awaiting their response
	// too. An agent that runs several commands over one session during an
	// attack may raise it (at most MaxParallelRequests): under loss each
	// request otherwise holds the session for its repeats while the
	// others wait.
	ParallelRequests int
	// HeavyLoss shortens the DTLS handshake's retransmission timer,
	// writes each datagram of the session twice within a budget, and
	// repeats NON requests after 500 ms without an RTT estimate, for
	// one-shot commands through a link that loses most packets
	// (heavyloss.go: which RFC pacing it departs from, and its bounds).
	// Off by default.
	HeavyLoss bool
	// KeyLogWriter, when set, receives the secrets of each DTLS and TLS
	// handshake in the NSS key log format (SSLKEYLOGFILE), for Wireshark.
	// Whoever reads it can decrypt the sessions: for debugging only.
	KeyLogWriter io.Writer
}

// Client is one signal-channel session.
type Client struct {
	cfg       Config
	conn      mux.Conn
	transport string
	remote    string
	cuid      string
	log       *slog.Logger

	mu       sync.Mutex
	lastHBRx time.Time

	resumed sync.Map // mux.Conn of an attempt → whether its handshake resumed a session
	hsRTT   sync.Map // mux.Conn of a DTLS attempt → its handshake's RTT samples (hsrtt.go)

	srtt atomic.Int64 // smoothed round-trip time of answered first tries, ns (0: no estimate)
}

// CUID returns the client identifier used in requests.
func (c *Client) CUID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cuid
}

// Transport returns "dtls" or "tls".
func (c *Client) Transport() string { return c.transport }

// Remote returns the server address of the session.
func (c *Client) Remote() string { return c.remote }

// Done is closed when the session ends.
func (c *Client) Done() <-chan struct{} { return c.conn.Done() }

// Close ends the session.
func (c *Client) Close() error { return c.conn.Close() }

// LastServerHeartbeat returns when the server's last heartbeat arrived.
func (c *Client) LastServerHeartbeat() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastHBRx
}

// Response is a server answer.
type Response struct {
	Code   dots.Code
	Body   *dots.Message // for 2.xx and 4.09 with application/dots+cbor
	Diag   string        // plain-text diagnostic of a 4.xx/5.xx
	MaxAge *uint32
	ETag   []byte // of a 2.05 (RFC 9132 §4.4.2)
}

// Err returns a *dots.Error for 4.xx/5.xx answers, nil otherwise.
func (r *Response) Err() error {
	if r.Code < dots.BadRequest {
		return nil
	}
	diag := r.Diag
	if r.Body != nil && diag == "" {
		diag = describeConflict(r.Body)
	}
	return &dots.Error{Code: r.Code, Diag: diag, Body: r.Body}
}

func describeConflict(m *dots.Message) string {
	if m.MitigationScope == nil || len(m.MitigationScope.Scope) == 0 || m.MitigationScope.Scope[0].ConflictInformation == nil {
		return ""
	}
	ci := m.MitigationScope.Scope[0].ConflictInformation
	var parts []string
	if ci.ConflictCause != nil {
		parts = append(parts, "conflict-cause "+ci.ConflictCause.String())
	}
	if ci.ConflictStatus != nil {
		parts = append(parts, "conflict-status "+ci.ConflictStatus.String())
	}
	if cs := ci.ConflictScope; cs != nil {
		if cs.MID != nil {
			parts = append(parts, fmt.Sprintf("with mid %d", *cs.MID))
		}
		if len(cs.TargetPrefix) > 0 {
			parts = append(parts, "on "+strings.Join(cs.TargetPrefix, ","))
		}
	}
	if ci.RetryTimer != nil {
		parts = append(parts, fmt.Sprintf("retry after %d s", *ci.RetryTimer))
	}
	return strings.Join(parts, ", ")
}

// Dial opens a session using Happy Eyeballs over the configured servers:
// for each address UDP/IPv6, UDP/IPv4, TCP/IPv6, TCP/IPv4 are tried with
// staggered starts; the first (D)TLS session that completes wins.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.AttemptDelay == 0 {
		cfg.AttemptDelay = 100 * time.Millisecond
	}
	cuid, err := derivedCUID(cfg)
	if err != nil {
		return nil, err
	}
	if cfg.PSK != nil {
		cfg.Transport = "dtls" // Go's TLS has no external PSKs (psk.go)
	}
	c := &Client{cfg: cfg, log: cfg.Logger, cuid: cuid}
	if cfg.CUID != "" {
		c.cuid = cfg.CUID
	}
	cands, err := candidates(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := c.race(ctx, cands); err != nil {
		return nil, err
	}
	return c, nil
}

// derivedCUID is the cuid derived from the client's PSK identity or
// certificate (RFC 9132 §4.4.1).
func derivedCUID(cfg Config) (string, error) {
	if cfg.PSK != nil {
		return checkPSK(cfg)
	}
	if len(cfg.Certificate.Certificate) == 0 {
		return "", errors.New("dotsclient: a client certificate is required (or a PSK)")
	}
	leaf, err := x509.ParseCertificate(cfg.Certificate.Certificate[0])
	if err != nil {
		return "", fmt.Errorf("dotsclient: client certificate: %w", err)
	}
	return dots.CUIDFromSPKI(leaf.RawSubjectPublicKeyInfo), nil
}

type candidate struct {
	transport, addr, serverName string
}

func candidates(ctx context.Context, cfg Config) ([]candidate, error) {
	if len(cfg.Servers) == 0 {
		return nil, errors.New("dotsclient: no server address configured")
	}
	var udp6, udp4, tcp6, tcp4 []candidate
	for _, s := range cfg.Servers {
		host, port, err := net.SplitHostPort(s)
		if err != nil {
			return nil, fmt.Errorf("dotsclient: server address %q: %w", s, err)
		}
		addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		if err != nil {
			return nil, fmt.Errorf("dotsclient: resolve %s: %w", host, err)
		}
		sn := cfg.ServerName
		if sn == "" {
			sn = host
		}
		for _, a := range addrs {
			a = a.Unmap()
			hp := net.JoinHostPort(a.String(), port)
			if a.Is4() {
				udp4, tcp4 = append(udp4, candidate{"dtls", hp, sn}), append(tcp4, candidate{"tls", hp, sn})
			} else {
				udp6, tcp6 = append(udp6, candidate{"dtls", hp, sn}), append(tcp6, candidate{"tls", hp, sn})
			}
		}
	}
	var out []candidate
	for _, group := range [][]candidate{udp6, udp4, tcp6, tcp4} {
		for _, c := range group {
			if cfg.Transport == "" || cfg.Transport == "auto" || cfg.Transport == c.transport {
				out = append(out, c)
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("dotsclient: no candidate address for transport %q", cfg.Transport)
	}
	return out, nil
}

type attempt struct {
	cand candidate
	conn mux.Conn
	err  error
}

// race runs staggered connection attempts and keeps the first success.
func (c *Client) race(ctx context.Context, cands []candidate) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make(chan attempt, len(cands))
	next, pending := 0, 0
	var errs []error
	inflight := map[candidate]int{} // attempts started and not yet answered
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-timer.C:
			if next < len(cands) {
				cand := cands[next]
				next++
				pending++
				inflight[cand]++
				go func() {
					conn, err := c.connect(ctx, cand)
					results <- attempt{cand, conn, err}
				}()
				timer.Reset(c.cfg.AttemptDelay)
			}
		case a := <-results:
			pending--
			inflight[a.cand]--
			if a.err == nil {
				c.conn, c.transport, c.remote = a.conn, a.cand.transport, a.cand.addr
				c.seedRTT(a.conn)
				cancel()
				go drain(results, pending)
				c.log.Debug("signal channel up", "transport", a.cand.transport, "server", a.cand.addr)
				return nil
			}
			errs = append(errs, fmt.Errorf("%s %s: %w", a.cand.transport, a.cand.addr, a.err))
			if next < len(cands) {
				timer.Reset(0) // a failure starts the next attempt at once
			} else if pending == 0 {
				return fmt.Errorf("dotsclient: no session could be established: %w", errors.Join(errs...))
			}
		case <-ctx.Done():
			go drain(results, pending)
			var waiting []string
			for _, cand := range cands[:next] {
				if inflight[cand] > 0 {
					inflight[cand]--
					waiting = append(waiting, cand.transport+" "+cand.addr)
				}
			}
			msg := "dotsclient: connecting: %w"
			if len(waiting) > 0 {
				msg += "; no answer from " + strings.Join(waiting, ", ")
			}
			if len(errs) > 0 {
				return fmt.Errorf(msg+"; failed: %w", ctx.Err(), errors.Join(errs...))
			}
			return fmt.Errorf(msg, ctx.Err())
		}
	}
}

func drain(results chan attempt, n int) {
	for ; n > 0; n-- {
		if a := <-results; a.conn != nil {
			_ = a.conn.Close()
		}
	}
}

const idle = 24 * time.Hour

func (c *Client) connect(ctx context.Context, cand candidate) (mux.Conn, error) {
	handler := mux.HandlerFunc(c.serveServer)
	switch cand.transport {
	case "dtls":
		var d net.Dialer
		raw, err := d.DialContext(ctx, "udp", cand.addr)
		if err != nil {
			return nil, err
		}
		pc := c.datagrams(raw)
		dc, err := piondtls.ClientWithOptions(pc, raw.RemoteAddr(), c.dtlsOptions(cand)...)
		if err != nil {
			raw.Close()
			return nil, err
		}
		offered := c.offeredDTLS(raw.RemoteAddr(), cand)
		if err := dc.HandshakeContext(ctx); err != nil {
			dc.Close()
			return nil, fmt.Errorf("DTLS handshake: %w", err)
		}
		cc := dtls.Client(dc, options.WithMux(handler), options.WithCloseSocket(), options.WithErrors(c.libErr),
			options.WithInactivityMonitor(idle, func(cc *udpClient.Conn) { _ = cc.Close() }),
			options.WithLimitClientParallelRequest(c.cfg.parallel()), options.WithLimitClientEndpointParallelRequest(c.cfg.parallel()))
		st, _ := dc.ConnectionState()
		c.resumed.Store(mux.Conn(cc), len(offered) > 0 && bytes.Equal(offered, st.SessionID))
		c.hsRTT.Store(mux.Conn(cc), pc.rtt.taken())
		return cc, nil
	default:
		d := tls.Dialer{Config: c.tlsConfig(cand)}
		nc, err := d.DialContext(ctx, "tcp", cand.addr)
		if err != nil {
			return nil, err
		}
		cc, err := tcp.Client(nc, options.WithMux(handler), options.WithErrors(c.libErr),
			options.WithInactivityMonitor(idle, func(cc *tcpClient.Conn) { _ = cc.Close() }),
			options.WithLimitClientParallelRequest(c.cfg.parallel()), options.WithLimitClientEndpointParallelRequest(c.cfg.parallel()))
		if err != nil {
			nc.Close()
			return nil, err
		}
		c.resumed.Store(mux.Conn(cc), nc.(*tls.Conn).ConnectionState().DidResume)
		return cc, nil
	}
}

func (c *Client) libErr(err error) { c.log.Debug("coap", "err", err) }

// serveServer answers the server's requests: heartbeats (2.04), nothing else.
func (c *Client) serveServer(w mux.ResponseWriter, r *mux.Message) {
	if class := r.Code() >> 5; class >= 2 && class <= 5 {
		// A response that answers no request of the client (a late answer
		// to a request given up) is rejected, never answered with a
		// response (RFC 7252 §5.3.2): a 4.04 to a server that did the same
		// would never end.
		c.log.Debug("response to no request of the client ignored", "code", r.Code().String())
		return
	}
	path, _ := r.Options().Path()
	if r.Code() != codes.PUT || strings.TrimPrefix(path, "/") != strings.TrimPrefix(hbPath, "/") {
		if r.Code() != codes.Empty {
			_ = w.SetResponse(codes.NotFound, message.TextPlain, strings.NewReader("a DOTS client serves only /.well-known/dots/hb"))
		}
		return
	}
	status := false
	if b, err := r.ReadBody(); err == nil {
		if m, err := dots.Decode(b); err == nil && m.Heartbeat != nil && m.Heartbeat.PeerHBStatus != nil {
			status = *m.Heartbeat.PeerHBStatus
		}
	}
	c.mu.Lock()
	c.lastHBRx = time.Now()
	c.mu.Unlock()
	if c.cfg.OnHeartbeat != nil {
		c.cfg.OnHeartbeat(status)
	}
	_ = w.SetResponse(codes.Changed, message.TextPlain, nil)
}

// MaxParallelRequests bounds Config.ParallelRequests.
const MaxParallelRequests = 32

// parallel is the session's limit of outstanding requests.
func (c Config) parallel() int64 { return int64(min(max(c.ParallelRequests, 1), MaxParallelRequests)) }
