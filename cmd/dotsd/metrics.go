package main

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/levee-dots/levee/divert/bgp"
	"github.com/levee-dots/levee/divert/dns"
	"github.com/levee-dots/levee/dotsserver"
	"github.com/levee-dots/levee/metrics"
	"github.com/levee-dots/levee/service"
)

// metricsConfig is the metrics key: Prometheus /metrics on an address of
// its own, off unless listen is set.
type metricsConfig struct {
	Listen string `yaml:"listen"`
	// MaxMitigationSeries bounds the mitigations with drop series of their
	// own (default 100; metrics/README.md).
	MaxMitigationSeries int `yaml:"max-mitigation-series"`
	// optional: a listen address that cannot be bound is logged, not fatal
	// (the development default, which another process may hold).
	optional bool
}

func (c metricsConfig) validate(bad func(key, format string, args ...any) error) error {
	if c.Listen != "" && !isHostPort(c.Listen) {
		return bad("metrics.listen", "%q is not host:port with a port 1-65535, e.g. 127.0.0.1:9464", c.Listen)
	}
	if c.MaxMitigationSeries < 0 {
		return bad("metrics.max-mitigation-series", "%d: must not be negative", c.MaxMitigationSeries)
	}
	return nil
}

// dotsdMetrics is dotsd's metrics; nil when metrics.listen is not set
// (every method is then a no-op).
type dotsdMetrics struct {
	*metrics.Metrics
	cfg metricsConfig
	log *slog.Logger
}

func newMetrics(cfg metricsConfig, log *slog.Logger) *dotsdMetrics {
	if cfg.Listen == "" {
		return nil
	}
	return &dotsdMetrics{Metrics: metrics.New(metrics.Options{Logger: log, MaxMitigationSeries: cfg.MaxMitigationSeries}), cfg: cfg, log: log}
}

// store returns st with its commits timed.
func (x *dotsdMetrics) store(st service.Store) (service.Store, error) {
	if x == nil {
		return st, nil
	}
	return x.TimeStore(st)
}

// hooks are the signal channel's hot-path hooks.
func (x *dotsdMetrics) hooks() dotsserver.Hooks {
	if x == nil {
		return dotsserver.Hooks{}
	}
	return dotsserver.Hooks{Request: x.Request, Heartbeat: x.Heartbeat}
}

// dataObserver feeds the data channel's requests to the metrics (nil
// without metrics).
func (x *dotsdMetrics) dataObserver() func(string, int, time.Duration) {
	if x == nil {
		return nil
	}
	return x.DataRequest
}

// start registers the components' collectors and serves /metrics; the
// returned function stops serving.
func (x *dotsdMetrics) start(srv *dotsserver.Server, svc *service.Service, speaker *bgp.Backend, dnsBackend *dns.Backend, certs *certExpiry) (func(), error) {
	if x == nil {
		return func() {}, nil
	}
	err := x.Register(metrics.NewSignalCollector(srv), x.NewMitigationsCollector(svc), metrics.NewCertCollector(certs.NotAfter))
	if err == nil && speaker != nil {
		err = x.Register(metrics.NewBGPCollector(speaker))
	}
	if err == nil && dnsBackend != nil {
		err = x.Register(metrics.NewDNSCollector(dnsBackend))
	}
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	ms, err := x.Serve(x.cfg.Listen)
	if err != nil {
		if x.cfg.optional {
			x.log.Warn("metrics not served: the address is taken (dotsd dev --metrics-listen ADDR picks another)", "addr", x.cfg.Listen, "err", err)
			return func() {}, nil
		}
		return nil, err
	}
	return func() { _ = ms.Close() }, nil
}

// devMetricsListen is where `dotsd dev` serves /metrics.
const devMetricsListen = "127.0.0.1:9464"

// devMetrics turns metrics on for `dotsd dev`: at flag's address, "off" for
// none, or (neither the flag nor the file setting one) at devMetricsListen
// when it is free.
func devMetrics(c *metricsConfig, flag string) error {
	switch {
	case flag == "off":
		c.Listen = ""
	case flag != "":
		if !isHostPort(flag) {
			return fmt.Errorf("dev: --metrics-listen %q is not host:port with a port 1-65535 (or off)", flag)
		}
		c.Listen = flag
	case c.Listen == "":
		c.Listen, c.optional = devMetricsListen, true
	}
	return nil
}
