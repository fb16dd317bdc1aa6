package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"time"

	"github.com/levee-dots/levee/pki"
	"github.com/levee-dots/levee/scrub"
	"github.com/levee-dots/levee/scrub/agent"
)

const usage = "usage: scrubd --config FILE\n"

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("scrubd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	cfgPath := fs.String("config", "", "configuration file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 || *cfgPath == "" {
		fmt.Fprint(stderr, usage)
		return errors.New("--config FILE is required")
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	return serve(ctx, cfg, stderr)
}

func newLogger(cfg *fileConfig, w io.Writer) *slog.Logger {
	var level slog.Level
	if cfg.Log.Level != "" {
		_ = level.UnmarshalText([]byte(cfg.Log.Level))
	}
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// serve runs the node until ctx ends.
func serve(ctx context.Context, cfg *fileConfig, logw io.Writer) error {
	log := newLogger(cfg, logw)
	cert, _, err := pki.LoadKeyPair(cfg.TLS.Certificate, cfg.TLS.Key)
	if err != nil {
		return fmt.Errorf("tls.certificate: %w", err)
	}
	cas, err := pki.LoadCertPool(cfg.TLS.ClientCAs...)
	if err != nil {
		return fmt.Errorf("tls.client-cas: %w", err)
	}
	opts := scrub.NFTOptions{Interface: cfg.Interface, TableName: cfg.Table, Logger: log, NoTrack: cfg.NoTrack == nil || *cfg.NoTrack,
		Bounds: scrub.Bounds{MaxMitigations: cfg.Bounds.MaxMitigations, MaxRules: cfg.Bounds.MaxRules,
			MaxTargets: cfg.Bounds.MaxTargets, MaxSources: cfg.Bounds.MaxSources}}
	if cfg.NetNS != "" {
		f, err := os.Open(netnsPath(cfg.NetNS))
		if err != nil {
			return fmt.Errorf("netns: %w", err)
		}
		defer f.Close()
		opts.NetNS = int(f.Fd())
	}
	node, err := dataPlane(cfg, opts, log)
	if err != nil {
		return err
	}
	metered, stopMetrics, err := withMetrics(cfg.Metrics, node, log)
	if err != nil {
		if !cfg.KeepOnStop {
			_ = node.Close()
		}
		return err
	}
	node = metered
	defer stopMetrics()
	if !cfg.KeepOnStop {
		defer func() {
			if err := node.Close(); err != nil {
				log.Error("removing the data plane", "err", err)
			}
		}()
	}
	h, err := agent.New(agent.Options{Node: node, Logger: log, Authorize: authorize(cfg.TLS.ClientNames),
		Bounds: agent.Bounds{MaxMitigations: cfg.Bounds.MaxMitigations, MaxRules: cfg.Bounds.MaxRules,
			MaxTargets: cfg.Bounds.MaxMitigationTargets, MaxBodyBytes: cfg.Bounds.MaxBodyBytes}})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{
		Handler:           h,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: cas, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(ln, "", "") }()
	log.Info("scrubd ready", "listen", ln.Addr().String(), "interface", cfg.Interface, "netns", cfg.NetNS, "boot", h.Boot())
	select {
	case <-ctx.Done():
	case err := <-errc:
		return fmt.Errorf("serving: %w", err)
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	return nil
}

// dataPlane is the nftables filter, with the return path beside it when
// the configuration has a return section.
func dataPlane(cfg *fileConfig, opts scrub.NFTOptions, log *slog.Logger) (scrub.Node, error) {
	filter, err := scrub.NewNFT(opts)
	if err != nil {
		return nil, fmt.Errorf("no data plane: %w", err)
	}
	if cfg.ret == nil {
		return filter, nil
	}
	ro := *cfg.ret
	ro.NetNS, ro.Logger = opts.NetNS, log
	ret, err := scrub.NewReturn(ro)
	if err != nil {
		var oe *scrub.OptionError
		if errors.As(err, &oe) {
			return nil, fmt.Errorf("return.%s: %s", oe.Key, oe.Msg)
		}
		return nil, fmt.Errorf("no return path: %w", err)
	}
	log.Info("return path", "tunnel", ret.Kind(), "name", ro.Name, "table", ro.Table, "rule-priority", ro.RulePriority)
	return scrub.NewRouted(filter, ret), nil
}

// authorize refuses a verified client whose certificate names none of
// names (CN or DNS SAN); nil names: any certificate of the CAs.
func authorize(names []string) func(*http.Request) error {
	if len(names) == 0 {
		return nil
	}
	return func(r *http.Request) error {
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
			return errors.New("no client certificate")
		}
		leaf := r.TLS.PeerCertificates[0]
		if slices.Contains(names, leaf.Subject.CommonName) || slices.ContainsFunc(leaf.DNSNames, func(n string) bool { return slices.Contains(names, n) }) {
			return nil
		}
		return fmt.Errorf("client %q may not program this node (tls.client-names)", leaf.Subject.CommonName)
	}
}
