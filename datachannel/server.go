package datachannel

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dots/data"
	"github.com/levee-dots/levee/service"
)

// Defaults of Options.
const (
	DefaultMaxBody           = 1 << 20 // bytes of one request body
	DefaultReadHeaderTimeout = 5 * time.Second
	DefaultReadTimeout       = 30 * time.Second
	DefaultWriteTimeout      = 30 * time.Second
	DefaultIdleTimeout       = 2 * time.Minute
	maxHeaderBytes           = 16 << 10
)

// Identity is an authenticated client: the cuid derived from its
// certificate, the certificate's SPKI hash, and its domain.
type Identity struct {
	CUID, SPKI string
	Domain     *service.Domain
}

// Options configure a Server.
type Options struct {
	Logger  *slog.Logger // nil: discard
	Service *service.Service
	// Certificate is the server's certificate; ClientCAs verify clients
	// (the signal channel's, RFC 8783 §3).
	Certificate tls.Certificate
	ClientCAs   *x509.CertPool
	// CurrentClientCAs, when set, gives the client CAs in force for each
	// new connection (a SIGHUP reload of the signal channel replaces
	// them); ClientCAs is then the fallback when it returns nil.
	CurrentClientCAs func() *x509.CertPool
	// Identify maps a verified client certificate to its identity, by the
	// signal channel's rules (dotsserver.IdentifyCertificate).
	Identify func(*x509.Certificate) (Identity, error)
	MaxBody  int64 // 0: DefaultMaxBody
	// Observe, when set, is told each request answered: its method (GET,
	// POST, PUT, DELETE or OTHER), the HTTP status and the time taken (for
	// metrics).
	Observe func(method string, status int, d time.Duration)

	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration // 0: defaults
}

// Server is a running data-channel server.
type Server struct {
	opts Options
	log  *slog.Logger
	http *http.Server
	ln   net.Listener
	wg   sync.WaitGroup
}

// New checks the options and builds the server; Listen starts it.
func New(opts Options) (*Server, error) {
	if opts.Service == nil || opts.Identify == nil || opts.ClientCAs == nil {
		return nil, errors.New("datachannel: Service, Identify and ClientCAs are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.MaxBody <= 0 {
		opts.MaxBody = DefaultMaxBody
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&opts.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	def(&opts.ReadTimeout, DefaultReadTimeout)
	def(&opts.WriteTimeout, DefaultWriteTimeout)
	def(&opts.IdleTimeout, DefaultIdleTimeout)
	s := &Server{opts: opts, log: opts.Logger}
	s.http = &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: opts.ReadHeaderTimeout, ReadTimeout: opts.ReadTimeout,
		WriteTimeout: opts.WriteTimeout, IdleTimeout: opts.IdleTimeout, MaxHeaderBytes: maxHeaderBytes,
		ErrorLog: slog.NewLogLogger(opts.Logger.Handler(), slog.LevelDebug),
		TLSConfig: &tls.Config{
			MinVersion:   tls.VersionTLS12,
			Certificates: []tls.Certificate{opts.Certificate},
			ClientAuth:   tls.RequireAndVerifyClientCert,
			ClientCAs:    opts.ClientCAs,
		},
	}
	if opts.CurrentClientCAs != nil {
		base := s.http.TLSConfig
		s.http.TLSConfig = base.Clone()
		s.http.TLSConfig.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
			cas := opts.CurrentClientCAs()
			if cas == nil {
				return nil, nil // base
			}
			c := base.Clone()
			c.ClientCAs = cas
			return c, nil
		}
	}
	return s, nil
}

// Listen starts serving HTTPS on addr (e.g. "127.0.0.1:8443").
func (s *Server) Listen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("datachannel: listen %s: %w", addr, err)
	}
	s.ln = ln
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.http.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("data channel stopped", "err", err)
		}
	}()
	s.log.Info("data channel listening", "addr", ln.Addr().String())
	return nil
}

// Addr is the listening address (after Listen).
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Close stops the server, letting requests in flight finish for up to 5 s.
func (s *Server) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.http.Shutdown(ctx); err != nil {
		s.http.Close()
	}
	s.wg.Wait()
}

// Handler is the HTTP handler (without TLS: it needs r.TLS from a
// verified connection).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/host-meta", s.hostMeta)
	mux.HandleFunc("/restconf", s.apiRoot)
	mux.HandleFunc("/restconf/", s.restconf)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, data.Errorf(404, data.TagInvalidValue, "no resource %s: the RESTCONF root is /restconf (RFC 8040 §3.1)", r.URL.Path))
	})
	if s.opts.Observe == nil {
		return mux
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		mux.ServeHTTP(sw, r)
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		s.opts.Observe(methodLabel(r.Method), sw.status, time.Since(start))
	})
}

// statusWriter notes the status a handler answered with.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// methodLabel bounds the method to the ones the data channel serves, so
// that a client cannot make up label values.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete:
		return m
	}
	return "OTHER"
}

// hostMeta is RFC 8040 §3.1 root discovery (RFC 6415 XRD).
func (s *Server) hostMeta(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		s.fail(w, r, data.Errorf(405, data.TagOperationNotSup, "%s is not allowed on host-meta", r.Method))
		return
	}
	w.Header().Set("Content-Type", "application/xrd+xml")
	io.WriteString(w, "<XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'>\n  <Link rel='restconf' href='/restconf'/>\n</XRD>\n")
}

// apiRoot is the RESTCONF API resource (RFC 8040 §3.3).
func (s *Server) apiRoot(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		s.fail(w, r, data.Errorf(405, data.TagOperationNotSup, "%s is not allowed on the RESTCONF root", r.Method))
		return
	}
	id, err := s.identify(r)
	if err == nil {
		_, err = s.client(id, "")
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.reply(w, http.StatusOK, []byte(`{"ietf-restconf:restconf":{"data":{},"operations":{},"yang-library-version":"2016-06-21"}}`))
}

// identify maps the request's client certificate to its identity.
func (s *Server) identify(r *http.Request) (Identity, error) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return Identity{}, data.Errorf(403, data.TagAccessDenied, "a client certificate is required (RFC 8783 §3)")
	}
	id, err := s.opts.Identify(r.TLS.PeerCertificates[0])
	if err != nil {
		return Identity{}, data.Errorf(403, data.TagAccessDenied, "client certificate not accepted: %v", err)
	}
	return id, nil
}

// client checks that the identified client may speak as cuid (the signal
// channel's cuid binding, RFC 9132 §4.4.1); "" is its derived cuid.
func (s *Server) client(id Identity, cuid string) (service.Client, error) {
	if cuid == "" {
		cuid = id.CUID
	}
	if err := s.opts.Service.CheckCUID(id.CUID, id.SPKI, cuid); err != nil {
		var pe *dots.Error
		msg := err.Error()
		if errors.As(err, &pe) {
			msg = pe.Diag
		}
		return service.Client{}, data.Errorf(403, data.TagAccessDenied, "dots-client=%s: %s", cuid, msg)
	}
	return service.Client{CUID: cuid, Domain: id.Domain}, nil
}

const mediaType = "application/yang-data+json"

func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	e := data.AsError(err)
	if e.Status >= 500 {
		s.log.Error("data channel request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	w.Header().Set("Content-Type", mediaType)
	w.WriteHeader(e.Status)
	w.Write(e.Body())
}

func (s *Server) reply(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", mediaType)
	w.WriteHeader(status)
	w.Write(body)
}
