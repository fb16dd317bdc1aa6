package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/levee-dots/levee/divert"
	"github.com/levee-dots/levee/divert/bgp"
	"github.com/levee-dots/levee/divert/dns"
	"github.com/levee-dots/levee/divert/scrub"
	"github.com/levee-dots/levee/dotsserver"
	"github.com/levee-dots/levee/pki"
	"github.com/levee-dots/levee/service"
	"github.com/levee-dots/levee/store"
)

const usage = `usage:
  dotsd --config FILE                 run the server from a YAML configuration
  dotsd dev --dir DIR [flags]         create (once) a development PKI and configuration in DIR, then run
  dotsd bgp neighbors --config FILE   show the BGP neighbors of the running dotsd (admin socket)
  dotsd dns conflicts --config FILE   list (or --clear NAME) the DNS restore conflicts of the running dotsd
  dotsd check-config FILE             validate FILE and the files it names without starting
  dotsd redirect --config FILE        show, set (--to NAME [--ttl D] [--clients CUID,...]) or --clear the redirect of clients
flags:
  --signal-listen ADDR:PORT           override the signal-channel address (default 127.0.0.1:4646)
  --dashboard-listen ADDR:PORT        dev: the web dashboard's address (default 127.0.0.1:8080; off: none)
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "bgp" {
		return runBGP(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "dns" {
		return runDNS(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "redirect" {
		return runRedirect(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "dev" {
		return runDev(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "check-config" {
		return runCheckConfig(args[1:], stdout, stderr, time.Now())
	}
	fs := flag.NewFlagSet("dotsd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	cfgPath := fs.String("config", "", "configuration file")
	listen := fs.String("signal-listen", "", "override the signal-channel address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *cfgPath == "" {
		fmt.Fprint(stderr, usage)
		return errors.New("--config FILE is required (or use 'dotsd dev --dir DIR')")
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	if *listen != "" {
		cfg.Signal.Listen, cfg.listenFlag = []string{*listen}, true
	}
	return serve(ctx, cfg, stderr)
}

func newLogger(cfg *fileConfig, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(orDefault(cfg.Log.Level, "info")))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func orDefault(v, d string) string {
	if v == "" {
		return d
	}
	return v
}

// serve builds the server from cfg and runs it until ctx ends.
func serve(ctx context.Context, cfg *fileConfig, logw io.Writer) error {
	log := newLogger(cfg, logw)
	if cfg.MemoryLimitMiB > 0 {
		debug.SetMemoryLimit(cfg.MemoryLimitMiB << 20)
		log.Info("soft memory limit set", "mib", cfg.MemoryLimitMiB)
	}
	cert, _, err := pki.LoadKeyPair(cfg.TLS.Certificate, cfg.TLS.Key)
	if err != nil {
		return fmt.Errorf("tls.certificate: %w", err)
	}
	cas, err := pki.LoadCertPool(cfg.TLS.ClientCAs...)
	if err != nil {
		return fmt.Errorf("tls.client-cas: %w", err)
	}
	crl, err := cfg.crl()
	if err != nil {
		return err
	}
	dash, err := prepareDashboard(cfg, cert)
	if err != nil {
		return err
	}
	db, err := store.Open(cfg.Store.Path, store.Options{})
	if err != nil {
		return fmt.Errorf("store.path: %w", err)
	}
	defer db.Close()
	// Before any backend starts (the BGP speaker dials the routers): a
	// second dotsd on a live server's admin socket stops here.
	if cfg.Admin.Socket != "" {
		if err := checkSocket(cfg.Admin.Socket); err != nil {
			return err
		}
	}
	var svc *service.Service
	updates := func(backend string, k divert.Key, a divert.Applied) {
		if svc != nil {
			svc.DiversionUpdate(backend, k, a)
		}
	}
	var backends []divert.Diverter
	var speaker *bgp.Backend
	if cfg.Divert.BGP != nil {
		speaker, err = bgp.New(ctx, *cfg.Divert.BGP, log, updates)
		if err != nil {
			return err
		}
		defer speaker.Close()
		backends = append(backends, speaker)
	}
	var dnsBackend *dns.Backend
	if cfg.dns != nil {
		backend, err := dns.New(*cfg.dns, db, log, updates)
		if err != nil {
			return err
		}
		dnsBackend = backend
		backends = append(backends, backend)
		if cfg.Divert.DNS.RestoreOnShutdown {
			defer restoreDNS(backend, log)
		}
	}
	// The scrubbing backend's poller reports from its own goroutine,
	// started before svc exists: it reaches svc through an atomic pointer.
	var scrubSvc atomic.Pointer[service.Service]
	var scrubber *scrub.Backend
	if cfg.Divert.Scrub != nil {
		var defaultKind func(string) string
		if cfg.Divert.BGP != nil {
			defaultKind = cfg.Divert.BGP.Countermeasure
		}
		scrubber, err = scrub.New(*cfg.Divert.Scrub, scrub.Options{Logger: log, DefaultCountermeasure: defaultKind,
			Updates: func(backend string, k divert.Key, a divert.Applied) {
				if s := scrubSvc.Load(); s != nil {
					s.DiversionUpdate(backend, k, a)
				}
			},
			Measurements: func(backend string, k divert.Key, c divert.Counters) {
				if s := scrubSvc.Load(); s != nil {
					s.Measured(backend, k, c)
				}
			}})
		if err != nil {
			return err
		}
		defer scrubber.Close()
		backends = append(backends, scrubber)
	}
	if len(backends) == 0 {
		log.Warn("no mitigator is configured: mitigation requests are accepted and stored, but no traffic is diverted")
	}
	var redirect redirectAdmin
	admin, err := startAdmin(cfg.Admin.Socket, cfg.Store.Path, speaker, dnsBackend, log, redirect.routes)
	if err != nil {
		return err
	}
	defer admin.Close()
	isDiversion := func(netip.Addr) bool { return false }
	if dnsBackend != nil {
		isDiversion = dnsBackend.IsDiversionAddr
	}
	mx := newMetrics(cfg.Metrics, log) // nil unless metrics.listen
	svcStore, err := mx.store(db)
	if err != nil {
		return err
	}
	svc, err = service.New(service.Options{Logger: log, Store: svcStore, Backends: backends,
		Resolver:       cfg.resolver(isDiversion),
		ResolveTimeout: cfg.Resolver.Timeout, IsDiversionAddr: isDiversion, Policy: cfg.policy(), Ladders: cfg.Escalation})
	if err != nil {
		return err
	}
	defer svc.Close()
	scrubSvc.Store(svc)
	defer scrubSvc.Store(nil) // no sample reaches a closed service
	keyLog, closeKeyLog, err := openKeyLog(ctx, cfg.TLS.KeyLog, log, nil)
	if err != nil {
		return err
	}
	defer closeKeyLog()
	srv, err := dotsserver.New(dotsserver.Options{
		Logger: log, Listen: cfg.Signal.Listen, Certificate: cert, ClientCAs: cas, Domains: cfg.domains(),
		Service: svc, UDPReceiveBuffer: cfg.Signal.UDPReceiveBuffer,
		NotifyInterval: cfg.Signal.NotifyInterval, ConfigMaxAge: cfg.Signal.ConfigMaxAge,
		Limits: cfg.Limits.server(), RateLimit: cfg.Limits.rate(), CRL: crl,
		SessionRedirect: cfg.sessionRedirect(), Hooks: mx.hooks(),
		KeyLogWriter: keyLogWriter(keyLog),
	})
	if err != nil {
		return err
	}
	redirect.set(srv)
	if err := srv.Start(ctx); err != nil {
		return err
	}
	data, err := startData(cfg, svc, srv, cert, cas, mx.dataObserver(), log)
	if err != nil {
		srv.Close()
		return err
	}
	stopDashboard, err := dash.start(dashboardParts{svc: svc, srv: srv, speaker: speaker, scrubber: scrubber, backends: backends}, log)
	if err != nil {
		if data != nil {
			data.Close()
		}
		srv.Close()
		return err
	}
	defer stopDashboard()
	rl := &reloader{log: log, srv: srv, svc: svc, speaker: speaker, cur: cfg}
	stopReload := watchReload(ctx, rl)
	certs := &certExpiry{log: log, now: time.Now, config: rl.config, clients: srv.ClientCertNotAfter}
	stopExpiry := watchExpiry(ctx, certs, nil)
	stopMetrics, err := mx.start(srv, svc, speaker, dnsBackend, certs)
	if err != nil {
		stopExpiry()
		stopReload()
		if data != nil {
			data.Close()
		}
		srv.Close()
		return err
	}
	defer stopMetrics()
	log.Info("dotsd ready", "signal", srv.Addrs(), "data", cfg.Data.Listen, "store", cfg.Store.Path, "clients", len(cfg.Clients))
	<-ctx.Done()
	stopExpiry()
	stopReload()
	log.Info("shutting down")
	if data != nil {
		data.Close()
	}
	srv.Close()
	return nil
}

// restoreDNS puts every diverted name back (divert.dns.restore-on-shutdown).
func restoreDNS(b *dns.Backend, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.Sync(ctx, nil); err != nil {
		log.Error("restoring diverted names at shutdown", "err", err)
		return
	}
	log.Info("diverted names restored at shutdown")
}
