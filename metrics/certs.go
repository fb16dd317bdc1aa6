package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// CertSource is what the certificate collector reads: the earliest end of
// each kind of certificate dotsd holds or has seen (server-certificate,
// client-ca, client-certificate), as last checked. A kind with no
// certificate is absent.
type CertSource func() map[string]time.Time

// certCollector exports the ends as Unix times; its kind label takes the
// few kinds the source names.
type certCollector struct {
	src      CertSource
	notAfter *prometheus.Desc
}

// NewCertCollector reads the earliest certificate ends at scrape time, so
// that an alert can fire before one of them ends (e.g.
// levee_certificate_not_after_seconds - time() < 14*86400).
func NewCertCollector(src CertSource) prometheus.Collector {
	return &certCollector{src: src,
		notAfter: prometheus.NewDesc("levee_certificate_not_after_seconds",
			"Earliest NotAfter (Unix time) of the certificates of a kind: server-certificate, client-ca, client-certificate (seen in handshakes).", []string{"kind"}, nil),
	}
}

func (c *certCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.notAfter }

func (c *certCollector) Collect(ch chan<- prometheus.Metric) {
	for kind, t := range c.src() {
		ch <- prometheus.MustNewConstMetric(c.notAfter, prometheus.GaugeValue, float64(t.Unix()), kind)
	}
}
