package dotsserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	piondtls "github.com/pion/dtls/v3"
	"github.com/plgd-dev/go-coap/v3/dtls"
	dtlsServer "github.com/plgd-dev/go-coap/v3/dtls/server"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/mux"
	"github.com/plgd-dev/go-coap/v3/net/responsewriter"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/options/config"
	"github.com/plgd-dev/go-coap/v3/tcp"
	tcpClient "github.com/plgd-dev/go-coap/v3/tcp/client"
	tcpServer "github.com/plgd-dev/go-coap/v3/tcp/server"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/levee-dots/levee/divert"
	"github.com/levee-dots/levee/dotsserver/mitigation"
	"github.com/levee-dots/levee/dotsserver/session"
	"github.com/levee-dots/levee/service"
)

// Resolver resolves target-fqdn and target-uri hosts (net.Resolver fits);
// its answers are kept for a minute. A resolver that knows TTLs is passed
// as Options.NameResolver.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Options configure a Server.
type Options struct {
	Logger *slog.Logger     // nil: discard
	Now    func() time.Time // nil: time.Now

	// Listen lists the signal-channel addresses; each serves DTLS on UDP and
	// TLS on TCP with the same port number. Port 0 picks a free port.
	Listen      []string
	Certificate tls.Certificate
	ClientCAs   *x509.CertPool
	Domains     []*ClientDomain

	// Service is the mitigation service the signal channel serves. When
	// nil, New builds one from the fields below (and Close closes it).
	Service *service.Service

	Store    service.Store
	Backends []divert.Diverter // none: no mitigator configured
	Resolver Resolver          // nil: net.DefaultResolver
	// NameResolver, when set, is used instead of Resolver.
	NameResolver service.Resolver
	// ResolveTimeout bounds name resolution of one request (default 2 s).
	ResolveTimeout time.Duration
	// IsDiversionAddr tells this server's own diversion addresses.
	IsDiversionAddr func(netip.Addr) bool

	Policy mitigation.Policy
	Ranges session.Ranges // zero: session.DefaultRanges

	// UDPReceiveBuffer is the socket receive buffer (default 8 MiB).
	UDPReceiveBuffer int
	// NotifyInterval is the period of unsolicited Observe notifications (default 60 s).
	NotifyInterval time.Duration
	// ConfigMaxAge is the Max-Age of /config responses in seconds (default 3600).
	ConfigMaxAge uint32
	// Ticks drives heartbeats, loss detection and lifetimes; nil means a
	// one-second ticker. Tests pass their own channel together with Now.
	Ticks <-chan time.Time
	// Limits bound request bodies, Observe registrations, sessions per
	// client and unauthenticated TLS connections (zero fields: defaults).
	Limits Limits
	// RateLimit is the request rate limit of each client identity, unless
	// its domain sets its own (ClientDomain.RateLimit); zero fields:
	// DefaultRequestsPerSecond, DefaultRequestBurst.
	RateLimit RateLimit
	// CRL lists revoked client certificates (none: no revocation check).
	CRL CRL
	// KeyLogWriter, when set, receives the secrets of every DTLS and TLS
	// handshake in the NSS key log format, for Wireshark. Whoever reads
	// it can decrypt the sessions: for debugging only.
	KeyLogWriter io.Writer
	// SessionRedirect, when set, sends the sessions beyond a number to an
	// alternate server (redirect.go).
	SessionRedirect *SessionRedirect
	// Hooks receive what the hot path measures (hooks.go).
	Hooks Hooks
}

// Server is a DOTS signal-channel server: CoAP in, a call of the
// mitigation service, CoAP out.
type Server struct {
	opts    Options
	limits  Limits
	rlog    *rateLog // rate-limited warnings about what peers send
	rate    *rateLimiter
	log     *slog.Logger
	now     func() time.Time
	svc     *service.Service
	ownSvc  bool // built by New, closed by Close
	unwatch func()

	obs    *observers
	live   *liveness
	dedupe *dedupe // answers of DTLS requests, for their repeats
	redir  *redirects

	dtlsServers []*dtlsServer.Server
	tcpServers  []*tcpServer.Server
	listeners   []io.Closer
	addrs       []string
	wg          sync.WaitGroup
	stop        chan struct{}
	closeOnce   sync.Once

	// cur holds the client domains, CAs, CRL and session limits in
	// force; Reload replaces it (reload.go).
	cur      atomic.Pointer[clientSet]
	reloadMu sync.Mutex
	expiry   clientExpiry // client certificates seen (expiry.go)
}

// New builds a server. Unless opts.Service is given, it builds the
// mitigation service, which restores its state from the store: expired
// requests are removed, and the active ones are handed to the backends
// again (re-announced exactly, nothing else).
func New(opts Options) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.UDPReceiveBuffer == 0 {
		opts.UDPReceiveBuffer = 8 << 20
	}
	if opts.NotifyInterval == 0 {
		opts.NotifyInterval = time.Minute
	}
	if opts.ConfigMaxAge == 0 {
		opts.ConfigMaxAge = 3600
	}
	if err := opts.Limits.Validate(); err != nil {
		return nil, fmt.Errorf("dotsserver: limits: %w", err)
	}
	if err := validateRates(opts); err != nil {
		return nil, fmt.Errorf("dotsserver: %w", err)
	}
	if sr := opts.SessionRedirect; sr != nil {
		if err := sr.Validate(); err != nil {
			return nil, fmt.Errorf("dotsserver: session redirect: %w", err)
		}
	}
	s := &Server{opts: opts, limits: opts.Limits.withDefaults(), log: opts.Logger, now: opts.Now, svc: opts.Service, stop: make(chan struct{})}
	s.rate = newRateLimiter(opts.RateLimit)
	crl, err := newRevocations(opts.CRL, opts.Logger, opts.Now)
	if err != nil {
		return nil, fmt.Errorf("dotsserver: %w", err)
	}
	set, err := newClientSet(opts.Domains, opts.ClientCAs, crl, s.limits)
	if err != nil {
		return nil, fmt.Errorf("dotsserver: %w", err)
	}
	s.cur.Store(set)
	s.rlog = newRateLog(opts.Logger, opts.Now, 10*time.Second)
	if s.svc == nil {
		if opts.Store == nil {
			return nil, errors.New("dotsserver: a store is required")
		}
		res := opts.NameResolver
		if res == nil && opts.Resolver != nil {
			res = service.LookupResolver{Lookup: opts.Resolver}
		}
		svc, err := service.New(service.Options{Logger: opts.Logger, Now: opts.Now, Store: opts.Store,
			Backends: opts.Backends, Resolver: res, ResolveTimeout: opts.ResolveTimeout,
			IsDiversionAddr: opts.IsDiversionAddr, Policy: opts.Policy, Ranges: opts.Ranges})
		if err != nil {
			return nil, fmt.Errorf("dotsserver: %w", err)
		}
		s.svc, s.ownSvc = svc, true
	}
	s.opts.Ranges = s.svc.Ranges()
	s.obs = newObservers(s)
	s.live = newLiveness(s)
	s.dedupe = newDedupe(opts.Now)
	s.redir = newRedirects(s)
	return s, nil
}

// Service returns the mitigation service behind the signal channel.
func (s *Server) Service() *service.Service { return s.svc }

// Start opens the listeners and starts serving at once; the service
// re-announces the active mitigations in the background. Addrs tells the
// bound addresses.
func (s *Server) Start(ctx context.Context) error {
	s.unwatch = s.svc.Watch(s.obs.changed)
	s.svc.Start()
	for _, addr := range s.opts.Listen {
		if err := s.listen(addr); err != nil {
			s.Close()
			return err
		}
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.live.run(s.stop)
	}()
	s.watchCRL()
	s.reportDTLS()
	return nil
}

// Addrs returns the bound signal-channel addresses (host:port), one per Listen entry.
func (s *Server) Addrs() []string { return s.addrs }

func (s *Server) listen(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("listen address %q: %w", addr, err)
	}
	// With port 0, pick the UDP port first and bind TCP to the same number,
	// retrying a few times if TCP has it taken.
	for attempt := 0; ; attempt++ {
		dl, err := s.listenDTLS(net.JoinHostPort(host, port))
		if err != nil {
			return err
		}
		udpPort := fmt.Sprint(dl.Addr().(*net.UDPAddr).Port)
		tl, err := s.listenTLS(net.JoinHostPort(host, udpPort))
		if err != nil {
			dl.Close()
			if port == "0" && attempt < 5 {
				continue
			}
			return fmt.Errorf("listen TLS on %s: %w", net.JoinHostPort(host, udpPort), err)
		}
		s.serve(dl, tl)
		s.addrs = append(s.addrs, net.JoinHostPort(host, udpPort))
		s.log.Info("signal channel listening", "addr", net.JoinHostPort(host, udpPort), "transports", "dtls+tls")
		return nil
	}
}

func (s *Server) listenDTLS(addr string) (*dtlsListener, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			// SO_RCVBUFFORCE as root, else SO_RCVBUF (capped by net.core.rmem_max).
			if e := syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, s.opts.UDPReceiveBuffer); e != nil {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, s.opts.UDPReceiveBuffer)
			}
		})
		if err != nil {
			return err
		}
		if serr != nil {
			s.log.Warn("could not size the UDP receive buffer", "bytes", s.opts.UDPReceiveBuffer, "err", serr)
		}
		return nil
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen DTLS on %s: %w", addr, err)
	}
	// The gate bounds handshakes before pion sees them (dtlsgate.go).
	l, err := newDTLSListener(pc.(*net.UDPConn), s.limits.DTLS, s.log, s.rlog, append(append([]piondtls.ServerOption{
		piondtls.WithCertificates(s.opts.Certificate),
		// Certificate suites; PSK suites authenticate by the key. The chain
		// is verified by verifyDTLSPeer against the CAs in force (reload.go).
		piondtls.WithClientAuth(piondtls.RequireAnyClientCert),
		piondtls.WithCertificateRequestMessageHook(s.dtlsCertificateRequest),
		piondtls.WithVerifyPeerCertificate(s.verifyDTLSPeer),
		piondtls.WithExtendedMasterSecret(piondtls.RequireExtendedMasterSecret),
		piondtls.WithCipherSuites(s.dtlsSuites()...), // AEAD only (resume.go, psk.go)
	}, s.pskDTLSOptions()...), s.keyLogDTLS()...)...)
	if err != nil {
		return nil, fmt.Errorf("listen DTLS on %s: %w", addr, err)
	}
	return l, nil
}

func (s *Server) listenTLS(addr string) (*tlsListener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	maxMsg := s.limits.tcpMaxMessage()
	l := newTLSListener(ln, s.tlsConfig(), s.limits, s.rlog, func(tc *tls.Conn) net.Conn {
		return newFrameGuard(tc, maxMsg, s.limits.MaxBodyBytes, func(size uint64) {
			s.bodyRefused(tc.RemoteAddr(), int64(size))
		})
	})
	l.start()
	return l, nil
}

// bodyRefused logs (rate-limited) a request refused for its body size.
func (s *Server) bodyRefused(remote net.Addr, size int64) {
	host, _, _ := net.SplitHostPort(remote.String())
	s.rlog.warn("body:"+host, "request body over the limit refused with 4.13", "remote", remote.String(),
		"bytes", size, "limit", s.limits.MaxBodyBytes)
}

func (s *Server) tlsConfig() *tls.Config {
	c := &tls.Config{
		Certificates:     []tls.Certificate{s.opts.Certificate},
		ClientAuth:       tls.RequireAndVerifyClientCert,
		ClientCAs:        s.opts.ClientCAs,
		VerifyConnection: s.verifyTLSConn,
		MinVersion:       tls.VersionTLS12,
		CipherSuites:     tlsCipherSuites, // TLS 1.2: AEAD only (resume.go)
		NextProtos:       []string{"coap"},
		KeyLogWriter:     s.opts.KeyLogWriter,
	}
	c.GetConfigForClient = s.tlsConfigForClient(c) // the client CAs in force (reload.go)
	return c
}

// idleLimit is go-coap's inactivity backstop; heartbeats decide liveness.
const idleLimit = 2 * time.Hour

func (s *Server) serve(dl *dtlsListener, tl *tlsListener) {
	handler := mux.HandlerFunc(s.serveCOAP)
	// RFC 9132 §4.5 defaults until a session's client negotiates its own
	// (dedupe.go sets them per session).
	ack, factor, retransmit := transmission(session.Defaults)
	ds := dtls.NewServer(
		options.WithTransmission(1, ack, retransmit, factor),
		options.WithMux(handler),
		options.WithContext(context.Background()),
		options.WithInactivityMonitor(idleLimit, func(cc *udpClient.Conn) { _ = cc.Close() }),
		options.WithDTLSHandshakeTimeout(s.limits.DTLS.HandshakeTimeout),
		options.WithBlockwiseReceivingMessagesCacheMaxEntries(blockTransfersPerSession),
		options.WithProcessReceivedMessageFunc(config.ProcessReceivedMessageFunc[*udpClient.Conn](
			func(req *pool.Message, cc *udpClient.Conn, h config.HandlerFunc[*udpClient.Conn]) {
				s.live.received(cc, req)
				if ce := s.sessionRefused(cc); ce != nil && isRequest(req.Code()) {
					cc.ProcessReceivedMessageWithHandler(req, udpReply(codes.ServiceUnavailable, ce.Error(), message.MaxAge, sessionRetry))
					_ = cc.Close()
					return
				}
				if diag, bad := s.unmappedSession(cc, req); bad {
					s.udpUnauthorized(cc, req, diag)
					return
				}
				if th := s.throttle(cc, req); th != nil {
					if th.drop {
						cc.ReleaseMessage(req)
					} else {
						cc.ProcessReceivedMessageWithHandler(req, udpReply(codes.TooManyRequests, th.diag, message.MaxAge, th.maxAge))
					}
					return
				}
				if n, big := s.oversize(req); big {
					s.bodyRefused(cc.RemoteAddr(), n)
					cc.ProcessReceivedMessageWithHandler(req, s.udpTooLarge(n))
					return
				}
				onFreshStack(func() { s.dedupe.process(cc, req, nonForNon(req, h), s.sessionValues) })
			})),
		options.WithOnNewConn(func(cc *udpClient.Conn) { s.live.opened(cc, true) }),
		options.WithErrors(func(err error) { s.log.Debug("dtls", "err", err) }),
	)
	ts := tcp.NewServer(
		options.WithMux(handler),
		options.WithContext(context.Background()),
		options.WithInactivityMonitor(idleLimit, func(cc *tcpClient.Conn) { _ = cc.Close() }),
		options.WithMaxMessageSize(s.limits.tcpMaxMessage()),
		options.WithBlockwiseReceivingMessagesCacheMaxEntries(blockTransfersPerSession),
		// go-coap's TCP server does not apply WithProcessReceivedMessageFunc;
		// its request monitor sees every message before it is queued.
		options.WithRequestMonitor(tcpClient.RequestMonitorFunc(func(cc *tcpClient.Conn, req *pool.Message) (bool, error) {
			s.live.received(cc, req)
			if ce := s.sessionRefused(cc); ce != nil && isRequest(req.Code()) {
				if err := tcpReply(cc, req, codes.ServiceUnavailable, ce.Error(), message.MaxAge, sessionRetry); err != nil {
					return true, err
				}
				return true, ce // go-coap closes the session
			}
			if diag, bad := s.unmappedSession(cc, req); bad {
				return true, tcpUnauthorized(cc, req, diag)
			}
			if th := s.throttle(cc, req); th != nil {
				if err := tcpReply(cc, req, codes.TooManyRequests, th.diag, message.MaxAge, th.maxAge); err != nil {
					return true, err
				}
				holdTCP(cc, th) // ratelimit_tcp.go
				return true, nil
			}
			if n, big := s.oversize(req); big {
				s.bodyRefused(cc.RemoteAddr(), n)
				return true, s.tcpTooLarge(cc, req, n)
			}
			return false, nil
		})),
		options.WithOnNewConn(func(cc *tcpClient.Conn) { s.live.opened(cc, false) }),
		options.WithErrors(func(err error) { s.log.Debug("tls", "err", err) }),
	)
	s.dtlsServers = append(s.dtlsServers, ds)
	s.tcpServers = append(s.tcpServers, ts)
	s.listeners = append(s.listeners, dl, tl)
	s.wg.Add(2)
	go func() { defer s.wg.Done(); _ = ds.Serve(dl) }()
	go func() { defer s.wg.Done(); _ = ts.Serve(tl) }()
}

// Close stops listening, closes every session and flushes the store queue.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.stop)
		for _, d := range s.dtlsServers {
			d.Stop()
		}
		for _, t := range s.tcpServers {
			t.Stop()
		}
		for _, l := range s.listeners {
			_ = l.Close()
		}
		s.wg.Wait()
		if s.unwatch != nil {
			s.unwatch()
		}
		if s.ownSvc {
			s.svc.Close()
		}
	})
}

// nonForNon makes the answer to a Non-confirmable request Non-confirmable
// (RFC 7252 §5.2.3; RFC 9132 §4.4: mitigation requests and responses are
// NON). go-coap would otherwise send it as a separate Confirmable response.
// It also gives the block-wise layer's error answers their diagnostic.
// The request is read before h runs: a response handed to a waiting
// caller may be released by it.
func nonForNon(req *pool.Message, h config.HandlerFunc[*udpClient.Conn]) config.HandlerFunc[*udpClient.Conn] {
	non := req.Type() == message.NonConfirmable
	return func(w *responsewriter.ResponseWriter[*udpClient.Conn], r *pool.Message) {
		h(w, r)
		if !w.Message().IsModified() {
			return
		}
		backfillDiag(w.Message())
		if non && w.Message().Type() == message.Confirmable {
			w.Message().SetType(message.NonConfirmable)
		}
	}
}

// recovered answers 5.00 when a handler panics: the stack goes to the log,
// a short diagnostic to the client, and the process lives on.
func (s *Server) recovered(w mux.ResponseWriter, r *mux.Message) {
	v := recover()
	if v == nil {
		return
	}
	s.log.Error("signal-channel handler panicked", "panic", fmt.Sprint(v), "path", pathOf(r), "stack", string(debug.Stack()))
	_ = w.SetResponse(codes.InternalServerError, message.TextPlain, strings.NewReader("internal error: the request was not processed"))
}

func pathOf(r *mux.Message) string {
	p, _ := r.Options().Path()
	return p
}

// onFreshStack runs f on a short-lived goroutine and waits for it. go-coap
// calls the handler on a goroutine that lives as long as the session; the
// stack a request grows there would stay with every idle session (measured:
// +390 MB at 20,000 sessions). A fresh goroutine's stack goes away with it.
func onFreshStack(f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	<-done
}

// Store is the persistence the server's service needs (store.DB or store.Memory).
type Store = service.Store
