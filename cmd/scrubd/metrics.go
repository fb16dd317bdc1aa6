package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/levee-dots/levee/scrub"
)

// metricsConfig is the metrics key: Prometheus /metrics on an address of
// its own, off unless listen is set.
type metricsConfig struct {
	Listen string `yaml:"listen"`
}

func (c metricsConfig) validate() error {
	if c.Listen == "" {
		return nil
	}
	_, port, err := net.SplitHostPort(c.Listen)
	if n, perr := strconv.ParseUint(port, 10, 16); err != nil || perr != nil || n == 0 {
		return fmt.Errorf("metrics.listen: %q is not host:port with a port 1-65535 (e.g. 127.0.0.1:9465)", c.Listen)
	}
	return nil
}

// meteredNode is a scrub.Node whose Sets are timed and whose installed
// state is counted for Prometheus: the mitigations, targets and rules of
// the last Set that succeeded (none before the first).
type meteredNode struct {
	scrub.Node
	apply    prometheus.Histogram
	failures prometheus.Counter

	mitigations, targets, rules *prometheus.Desc

	mu        sync.Mutex
	installed scrub.Desired

	addr string // where /metrics is served
}

// applyBuckets cover an nftables transaction of a few rules (milliseconds)
// to one of the node's whole bound (seconds).
var applyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

func newMeteredNode(n scrub.Node) *meteredNode {
	return &meteredNode{Node: n,
		apply: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "levee_scrub_apply_duration_seconds",
			Help: "Time to install one desired state on the data plane (one nftables transaction), failed ones included.", Buckets: applyBuckets}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{Name: "levee_scrub_apply_failures_total",
			Help: "Desired states the data plane refused or failed to install (the previous state stays)."}),
		mitigations: prometheus.NewDesc("levee_scrub_mitigations", "Mitigations installed on the node.", nil, nil),
		targets:     prometheus.NewDesc("levee_scrub_targets", "Target prefixes installed on the node, over all mitigations.", nil, nil),
		rules:       prometheus.NewDesc("levee_scrub_rules", "Filter rules installed on the node, by action (drop, accept).", []string{"action"}, nil),
	}
}

// Set installs d and observes how long it took.
func (n *meteredNode) Set(ctx context.Context, d scrub.Desired) error {
	start := time.Now()
	err := n.Node.Set(ctx, d)
	n.apply.Observe(time.Since(start).Seconds())
	if err != nil {
		n.failures.Inc()
		return err
	}
	n.mu.Lock()
	n.installed = d
	n.mu.Unlock()
	return nil
}

func (n *meteredNode) Describe(ch chan<- *prometheus.Desc) {
	n.apply.Describe(ch)
	n.failures.Describe(ch)
	ch <- n.mitigations
	ch <- n.targets
	ch <- n.rules
}

func (n *meteredNode) Collect(ch chan<- prometheus.Metric) {
	n.apply.Collect(ch)
	n.failures.Collect(ch)
	n.mu.Lock()
	d := n.installed
	n.mu.Unlock()
	targets, rules := 0, map[string]int{scrub.ActionDrop: 0, scrub.ActionAccept: 0}
	for _, m := range d.Mitigations {
		targets += len(m.Targets)
		for _, r := range m.Rules {
			a := r.Action
			if a == "" {
				a = scrub.ActionDrop
			}
			rules[a]++
		}
	}
	ch <- prometheus.MustNewConstMetric(n.mitigations, prometheus.GaugeValue, float64(len(d.Mitigations)))
	ch <- prometheus.MustNewConstMetric(n.targets, prometheus.GaugeValue, float64(targets))
	for a, k := range rules {
		ch <- prometheus.MustNewConstMetric(n.rules, prometheus.GaugeValue, float64(k), a)
	}
}

// withMetrics wraps node so that it is measured and serves /metrics on
// cfg.Listen; with no listen address it returns node as it is. The
// returned function stops serving.
func withMetrics(cfg metricsConfig, node scrub.Node, log *slog.Logger) (scrub.Node, func(), error) {
	if cfg.Listen == "" {
		return node, func() {}, nil
	}
	mn := newMeteredNode(node)
	reg := prometheus.NewRegistry()
	reg.MustRegister(mn, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	addr, stop, err := serveMetrics(cfg.Listen, reg, log)
	if err != nil {
		return nil, nil, err
	}
	mn.addr = addr
	return mn, stop, nil
}

// serveMetrics serves g at /metrics on addr until the returned function is
// called; it returns the bound address.
func serveMetrics(addr string, g prometheus.Gatherer, log *slog.Logger) (string, func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("metrics.listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn), MaxRequestsInFlight: 4, Timeout: 10 * time.Second}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 15 * time.Second, IdleTimeout: 60 * time.Second, MaxHeaderBytes: 16 << 10}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "err", err)
		}
	}()
	log.Info("metrics listening", "addr", ln.Addr().String(), "path", "/metrics")
	return ln.Addr().String(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	}, nil
}
