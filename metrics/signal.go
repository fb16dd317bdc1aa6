package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/levee-dots/levee/dotsserver"
)

// SignalSource is what the signal-channel collector reads
// (*dotsserver.Server).
type SignalSource interface {
	Sessions() map[string]int
	DTLSStats() dotsserver.DTLSStats
	TLSStats() dotsserver.TLSStats
}

// signalCollector reads the signal channel's sessions and handshake
// counters at scrape time.
type signalCollector struct {
	src                                      SignalSource
	sessions, handshakes, inProgress, hellos *prometheus.Desc
}

// NewSignalCollector reads sessions by transport and the DTLS and TLS
// handshake counters from src.
func NewSignalCollector(src SignalSource) prometheus.Collector {
	return &signalCollector{src: src,
		sessions: prometheus.NewDesc("levee_signal_sessions",
			"Open signal-channel sessions (DTLS associations, TLS connections past their handshake), by transport.", []string{"transport"}, nil),
		handshakes: prometheus.NewDesc("levee_signal_handshakes_total",
			"Signal-channel handshakes that ended, by transport and result (completed, failed, timed_out).", []string{"transport", "result"}, nil),
		inProgress: prometheus.NewDesc("levee_signal_dtls_handshakes_in_progress",
			"DTLS handshakes in progress (bounded by limits.max-dtls-handshakes).", nil, nil),
		hellos: prometheus.NewDesc("levee_signal_dtls_hellos_dropped_total",
			"DTLS ClientHellos and stray datagrams dropped before a handshake, by reason (total_cap, prefix_cap, bad_cookie, other).", []string{"reason"}, nil),
	}
}

func (c *signalCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.sessions
	ch <- c.handshakes
	ch <- c.inProgress
	ch <- c.hellos
}

func (c *signalCollector) Collect(ch chan<- prometheus.Metric) {
	for t, n := range c.src.Sessions() {
		ch <- prometheus.MustNewConstMetric(c.sessions, prometheus.GaugeValue, float64(n), t)
	}
	d, t := c.src.DTLSStats(), c.src.TLSStats()
	for _, h := range []struct {
		transport, result string
		n                 uint64
	}{
		{"dtls", "completed", d.Completed}, {"dtls", "failed", d.Failed}, {"dtls", "timed_out", d.TimedOut},
		{"tls", "completed", t.Completed}, {"tls", "failed", t.Failed},
	} {
		ch <- prometheus.MustNewConstMetric(c.handshakes, prometheus.CounterValue, float64(h.n), h.transport, h.result)
	}
	ch <- prometheus.MustNewConstMetric(c.inProgress, prometheus.GaugeValue, float64(d.Handshakes))
	for _, h := range []struct {
		reason string
		n      uint64
	}{{"total_cap", d.DroppedTotalCap}, {"prefix_cap", d.DroppedPrefixCap}, {"bad_cookie", d.DroppedBadCookie}, {"other", d.DroppedOther}} {
		ch <- prometheus.MustNewConstMetric(c.hellos, prometheus.CounterValue, float64(h.n), h.reason)
	}
}
