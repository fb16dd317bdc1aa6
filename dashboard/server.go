package dashboard

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Server is the dashboard's listener.
type Server struct {
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
}

// Serve listens on addr and serves h. With clientCAs, the listener speaks
// TLS with cert and asks for a client certificate from those CAs (one is
// not required at the handshake: a browser without one can still log in
// with the token if there is one; h refuses everyone else). The server's
// own errors (failed handshakes, bad requests) go to log at debug level;
// nil: discarded.
func Serve(addr string, h http.Handler, cert *tls.Certificate, clientCAs *x509.CertPool, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: h,
		ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 16 << 10,
		ErrorLog: slog.NewLogLogger(log.With("listener", "dashboard").Handler(), slog.LevelDebug)}
	if clientCAs != nil {
		if cert == nil {
			ln.Close()
			return nil, errors.New("dashboard: a server certificate is required with client-ca")
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{*cert}, ClientCAs: clientCAs,
			ClientAuth: tls.VerifyClientCertIfGiven, MinVersion: tls.VersionTLS12}
		ln = tls.NewListener(ln, srv.TLSConfig)
	}
	s := &Server{srv: srv, ln: ln, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		_ = srv.Serve(ln)
	}()
	return s, nil
}

// Addr is the address the dashboard listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Close stops listening and ends the open connections (live streams
// included) within a few seconds.
func (s *Server) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if s.srv.Shutdown(ctx) != nil {
		_ = s.srv.Close()
	}
	<-s.done
}
