package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/levee-dots/levee/divert/dns"
)

// DNSSource is what the DNS collector reads (*dns.Backend).
type DNSSource interface {
	UpdateStats() map[string]dns.ZoneStats
}

// dnsCollector reads the DNS backend's update counters at scrape time; its
// zone label takes the configured zones only.
type dnsCollector struct {
	src                          DNSSource
	updates, failures, readFails *prometheus.Desc
}

// NewDNSCollector reads the dynamic updates sent and failed, by zone.
func NewDNSCollector(src DNSSource) prometheus.Collector {
	return &dnsCollector{src: src,
		updates:   prometheus.NewDesc("levee_dns_updates_total", "RFC 2136 dynamic updates sent to the zone's primary, by zone.", []string{"zone"}, nil),
		failures:  prometheus.NewDesc("levee_dns_update_failures_total", "Dynamic updates that did not take effect (refused, unverified, unanswered, in conflict), by zone.", []string{"zone"}, nil),
		readFails: prometheus.NewDesc("levee_dns_read_failures_total", "Reads of a name's records from the zone's primary that were refused or not answered, by zone.", []string{"zone"}, nil),
	}
}

func (c *dnsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.updates
	ch <- c.failures
	ch <- c.readFails
}

func (c *dnsCollector) Collect(ch chan<- prometheus.Metric) {
	for zone, st := range c.src.UpdateStats() {
		ch <- prometheus.MustNewConstMetric(c.updates, prometheus.CounterValue, float64(st.Updates), zone)
		ch <- prometheus.MustNewConstMetric(c.failures, prometheus.CounterValue, float64(st.Failures), zone)
		ch <- prometheus.MustNewConstMetric(c.readFails, prometheus.CounterValue, float64(st.ReadFailures), zone)
	}
}
