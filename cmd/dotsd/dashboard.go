package main

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/levee-dots/levee/dashboard"
	"github.com/levee-dots/levee/divert"
	"github.com/levee-dots/levee/divert/bgp"
	"github.com/levee-dots/levee/divert/scrub"
	"github.com/levee-dots/levee/dotsserver"
	"github.com/levee-dots/levee/pki"
	"github.com/levee-dots/levee/service"
)

// devDashboardListen is where `dotsd dev` serves the dashboard.
const devDashboardListen = "127.0.0.1:8080"

// dashboardParts are what the dashboard reads: the service, the signal
// channel's sessions and the backends' status.
type dashboardParts struct {
	svc      *service.Service
	srv      *dotsserver.Server
	speaker  *bgp.Backend
	scrubber *scrub.Backend
	backends []divert.Diverter
}

// dashboardSetup is the dashboard's configuration, its token and CA read.
type dashboardSetup struct {
	cfg        dashboard.Config
	bestEffort bool
	token      []byte
	serverCert *tls.Certificate // with clientCAs: TLS on the listener
	clientCAs  *x509.CertPool
}

// prepareDashboard reads the token file (refusing one that group or others
// may read) and the operator CA, before anything starts.
func prepareDashboard(cfg *fileConfig, cert tls.Certificate) (*dashboardSetup, error) {
	s := &dashboardSetup{cfg: cfg.Dashboard, bestEffort: cfg.dashboardBestEffort}
	if s.cfg.Listen == "" {
		return s, nil
	}
	if s.cfg.TokenFile != "" {
		tok, err := dashboard.LoadToken(s.cfg.TokenFile)
		if err != nil {
			return nil, err
		}
		s.token = tok
	}
	if s.cfg.ClientCA != "" {
		pool, err := pki.LoadCertPool(s.cfg.ClientCA)
		if err != nil {
			return nil, fmt.Errorf("dashboard.client-ca: %w", err)
		}
		s.clientCAs, s.serverCert = pool, &cert
	}
	return s, nil
}

// checkDashboardFiles reads the dashboard's token file and operator CA as
// a start would (dotsd check-config), and hands the CA's certificates to
// check.
func (c *fileConfig) checkDashboardFiles(check func(what string, certs ...*x509.Certificate)) error {
	if c.Dashboard.Listen == "" {
		return nil
	}
	if _, err := prepareDashboard(c, tls.Certificate{}); err != nil {
		return err
	}
	if ca := c.Dashboard.ClientCA; ca != "" {
		cas, err := pki.LoadCerts("CA certificate", ca)
		if err != nil {
			return fmt.Errorf("dashboard.client-ca: %w", err)
		}
		check("dashboard.client-ca "+ca, cas...)
	}
	return nil
}

// start serves the dashboard when dashboard.listen is set: with the token
// of dashboard.token-file, and, with dashboard.client-ca, over TLS with the
// server certificate, accepting the operator CA's client certificates. It
// returns the function that stops it.
func (s *dashboardSetup) start(p dashboardParts, log *slog.Logger) (func(), error) {
	if s.cfg.Listen == "" {
		return func() {}, nil
	}
	opts := dashboard.Options{Service: p.svc, Sessions: p.srv, Logger: log, Token: s.token}
	if p.speaker != nil {
		opts.Neighbors = p.speaker
	}
	if p.scrubber != nil {
		opts.Scrubbers = p.scrubber
	}
	for _, b := range p.backends {
		opts.Backends = append(opts.Backends, b.Name())
	}
	d, err := dashboard.New(opts)
	if err != nil {
		return nil, err
	}
	srv, err := dashboard.Serve(s.cfg.Listen, d, s.serverCert, s.clientCAs, log)
	if err != nil {
		d.Close()
		if s.bestEffort {
			log.Warn("dashboard not started (dotsd dev --dashboard-listen ADDR for another address)", "listen", s.cfg.Listen, "err", err)
			return func() {}, nil
		}
		return nil, fmt.Errorf("dashboard.listen: %w", err)
	}
	scheme := "http"
	if s.serverCert != nil {
		scheme = "https"
	}
	log.Info("dashboard listening", "url", scheme+"://"+srv.Addr().String()+"/", "token-file", s.cfg.TokenFile, "client-ca", s.cfg.ClientCA)
	return func() { d.Close(); srv.Close() }, nil
}

// writeDevToken writes a fresh random dashboard token to path (0600),
// unless the file exists.
func writeDevToken(path string) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return err
	}
	return pki.WriteFile(path, []byte(hex.EncodeToString(b)+"\n"), 0o600)
}

// devDashboard turns the dashboard on for `dotsd dev` at listen (unless
// the configuration has its own, or listen is "off"), with a token file
// in dir, and prints its address. At the default address, one in use only
// costs the dashboard (logged), not the server.
func devDashboard(cfg *fileConfig, dir, listen string, explicit bool, stdout io.Writer) error {
	if cfg.Dashboard.Listen == "" && listen != "off" {
		cfg.Dashboard = dashboard.Config{Listen: listen, TokenFile: filepath.Join(dir, "dashboard.token")}
		cfg.dashboardBestEffort = !explicit
		if err := cfg.Dashboard.Validate(); err != nil {
			return fmt.Errorf("dev: --dashboard-listen: %w", err)
		}
		if err := writeDevToken(cfg.Dashboard.TokenFile); err != nil {
			return fmt.Errorf("dev: %w", err)
		}
	}
	if cfg.Dashboard.Listen == "" {
		return nil
	}
	scheme := "http"
	if cfg.Dashboard.ClientCA != "" {
		scheme = "https"
	}
	fmt.Fprintf(stdout, "  dashboard: %s://%s/", scheme, cfg.Dashboard.Listen)
	if cfg.Dashboard.TokenFile != "" {
		fmt.Fprintf(stdout, " (log in with the token in %s)", cfg.Dashboard.TokenFile)
	}
	fmt.Fprintln(stdout)
	return nil
}

// flagSet reports whether the flag was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
