package metrics

import (
	"io"
	"log/slog"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/levee-dots/levee/dots"
)

// Options configure Metrics.
type Options struct {
	Logger *slog.Logger // nil: discard
	// MaxMitigationSeries bounds the mitigations that get drop series of
	// their own (default DefaultMaxMitigationSeries; see mitigations.go).
	MaxMitigationSeries int
}

// Metrics is dotsd's registry and the instruments the hot path feeds. Its
// methods are safe for concurrent use.
type Metrics struct {
	log *slog.Logger
	reg *prometheus.Registry
	max int

	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	hbSent   *prometheus.CounterVec
	hbMissed *prometheus.CounterVec

	dataRequests *prometheus.CounterVec
	dataLatency  *prometheus.HistogramVec
}

// latencyBuckets cover a request answered from memory (well under a
// millisecond) to one waiting on a slow disk or resolver (seconds).
var latencyBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}

// New builds the registry with the Go runtime and process collectors and
// the hot-path instruments. Collectors of components are added with
// Register.
func New(opts Options) *Metrics {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.MaxMitigationSeries <= 0 {
		opts.MaxMitigationSeries = DefaultMaxMitigationSeries
	}
	m := &Metrics{log: opts.Logger, reg: prometheus.NewRegistry(), max: opts.MaxMitigationSeries}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "levee_signal_requests_total",
		Help: "Signal-channel requests answered by the handler, by method, resource and response code.",
	}, []string{"method", "resource", "code"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "levee_signal_request_duration_seconds",
		Help:    "Time from the start of the signal-channel handler to its answer, by method and resource.",
		Buckets: latencyBuckets,
	}, []string{"method", "resource"})
	m.hbSent = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "levee_signal_heartbeats_sent_total",
		Help: "Heartbeats the server sent to its clients (RFC 9132 section 4.7), by transport.",
	}, []string{"transport"})
	m.hbMissed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "levee_signal_heartbeats_missed_total",
		Help: "Heartbeats the server sent that the client did not answer in time, by transport.",
	}, []string{"transport"})
	m.dataRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "levee_data_requests_total",
		Help: "Data-channel (RFC 8783) requests answered, by method (GET, POST, PUT, DELETE, OTHER) and HTTP status.",
	}, []string{"method", "code"})
	m.dataLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "levee_data_request_duration_seconds",
		Help:    "Time from a data-channel request's headers to its answer, by method.",
		Buckets: latencyBuckets,
	}, []string{"method"})
	m.reg.MustRegister(m.requests, m.latency, m.hbSent, m.hbMissed, m.dataRequests, m.dataLatency,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry returns the registry, to gather or to register more collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Register adds collectors (those of this package's New*Collector, or any).
func (m *Metrics) Register(cs ...prometheus.Collector) error {
	for _, c := range cs {
		if err := m.reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// Request counts one answered signal-channel request and observes its
// latency (dotsserver.Hooks.Request). A request the handler left
// unanswered has code "none".
func (m *Metrics) Request(method, resource string, code dots.Code, d time.Duration) {
	m.requests.WithLabelValues(method, resource, codeLabels[code]).Inc()
	m.latency.WithLabelValues(method, resource).Observe(d.Seconds())
}

// DataRequest counts one answered data-channel request and observes its
// latency (datachannel.Options.Observe); method is one of five values and
// status an HTTP status, so the series stay few.
func (m *Metrics) DataRequest(method string, status int, d time.Duration) {
	m.dataRequests.WithLabelValues(method, strconv.Itoa(status)).Inc()
	m.dataLatency.WithLabelValues(method).Observe(d.Seconds())
}

// Heartbeat counts one heartbeat sent, and whether it was missed
// (dotsserver.Hooks.Heartbeat).
func (m *Metrics) Heartbeat(transport string, answered bool) {
	m.hbSent.WithLabelValues(transport).Inc()
	if !answered {
		m.hbMissed.WithLabelValues(transport).Inc()
	}
}

// codeLabels are the response codes as label values ("2.01"), made once so
// that counting a request does not format one.
var codeLabels = func() (t [256]string) {
	for i := range t {
		t[i] = dots.Code(i).String()
	}
	t[0] = "none"
	return t
}()
