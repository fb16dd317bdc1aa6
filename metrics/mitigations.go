package metrics

import (
	"cmp"
	"slices"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/levee-dots/levee/dotsserver/mitigation"
)

// MitigationSource is what the mitigations collector reads: every client's
// requests with their measured counters (*service.Service).
type MitigationSource interface {
	AllMitigations() []*mitigation.Record
}

// DefaultMaxMitigationSeries is how many mitigations get drop series of
// their own by default.
const DefaultMaxMitigationSeries = 100

// mitigationsCollector reads the service at scrape time.
//
// Drop series carry the labels domain, cuid and mid: one set per measured
// mitigation, so their number grows with the attacks. It is bounded: at
// most max mitigations (those dropping the most bits per second, then
// bytes, then by cuid and mid) get series of their own; the rest are only
// counted in levee_mitigation_drop_series_omitted, and they stay part of
// the totals over all mitigations (levee_dropped_*_per_second).
// Rates are in bytes per second (Prometheus base units): bps-dropped / 8.
type mitigationsCollector struct {
	src MitigationSource
	max int

	count, omitted, totalBPS, totalPPS *prometheus.Desc
	bytes, pkts, bps, pps              *prometheus.Desc
}

// NewMitigationsCollector reads mitigations by status and client domain,
// and the drop counters and rates the mitigators measured, from src.
func (m *Metrics) NewMitigationsCollector(src MitigationSource) prometheus.Collector {
	per := []string{"domain", "cuid", "mid"}
	return &mitigationsCollector{src: src, max: m.max,
		count: prometheus.NewDesc("levee_mitigations",
			"Mitigation requests held by the service, by status (RFC 9132 Table 7) and client domain.", []string{"status", "domain"}, nil),
		omitted: prometheus.NewDesc("levee_mitigation_drop_series_omitted",
			"Measured mitigations without drop series of their own (over the series bound); counted in the totals.", nil, nil),
		totalBPS: prometheus.NewDesc("levee_dropped_bytes_per_second",
			"Bytes per second the mitigators drop, summed over every measured mitigation.", nil, nil),
		totalPPS: prometheus.NewDesc("levee_dropped_packets_per_second",
			"Packets per second the mitigators drop, summed over every measured mitigation.", nil, nil),
		bytes: prometheus.NewDesc("levee_mitigation_dropped_bytes_total",
			"Bytes the mitigators dropped for a mitigation (RFC 9132 bytes-dropped).", per, nil),
		pkts: prometheus.NewDesc("levee_mitigation_dropped_packets_total",
			"Packets the mitigators dropped for a mitigation (RFC 9132 pkts-dropped).", per, nil),
		bps: prometheus.NewDesc("levee_mitigation_dropped_bytes_per_second",
			"Bytes per second the mitigators drop for a mitigation (RFC 9132 bps-dropped, in bits, divided by 8).", per, nil),
		pps: prometheus.NewDesc("levee_mitigation_dropped_packets_per_second",
			"Packets per second the mitigators drop for a mitigation (RFC 9132 pps-dropped).", per, nil),
	}
}

func (c *mitigationsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.count, c.omitted, c.totalBPS, c.totalPPS, c.bytes, c.pkts, c.bps, c.pps} {
		ch <- d
	}
}

type statusKey struct{ status, domain string }

func (c *mitigationsCollector) Collect(ch chan<- prometheus.Metric) {
	recs := c.src.AllMitigations()
	counts := map[statusKey]int{}
	var measured []*mitigation.Record
	for _, r := range recs {
		counts[statusKey{r.Status.String(), r.Domain}]++
		if r.Counters != nil {
			measured = append(measured, r)
		}
	}
	for k, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.count, prometheus.GaugeValue, float64(n), k.status, k.domain)
	}
	if len(measured) == 0 {
		return // nothing measures drops: no drop series at all
	}
	var bps, pps uint64
	for _, r := range measured {
		bps += r.Counters.BPSDropped
		pps += r.Counters.PPSDropped
	}
	ch <- prometheus.MustNewConstMetric(c.totalBPS, prometheus.GaugeValue, float64(bps)/8)
	ch <- prometheus.MustNewConstMetric(c.totalPPS, prometheus.GaugeValue, float64(pps))
	slices.SortFunc(measured, func(a, b *mitigation.Record) int {
		return cmp.Or(cmp.Compare(b.Counters.BPSDropped, a.Counters.BPSDropped),
			cmp.Compare(b.Counters.BytesDropped, a.Counters.BytesDropped),
			cmp.Compare(a.CUID, b.CUID), cmp.Compare(a.MID, b.MID))
	})
	omitted := 0
	if len(measured) > c.max {
		omitted = len(measured) - c.max
		measured = measured[:c.max]
	}
	ch <- prometheus.MustNewConstMetric(c.omitted, prometheus.GaugeValue, float64(omitted))
	for _, r := range measured {
		l := []string{r.Domain, r.CUID, strconv.FormatUint(uint64(r.MID), 10)}
		ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.CounterValue, float64(r.Counters.BytesDropped), l...)
		ch <- prometheus.MustNewConstMetric(c.pkts, prometheus.CounterValue, float64(r.Counters.PktsDropped), l...)
		ch <- prometheus.MustNewConstMetric(c.bps, prometheus.GaugeValue, float64(r.Counters.BPSDropped)/8, l...)
		ch <- prometheus.MustNewConstMetric(c.pps, prometheus.GaugeValue, float64(r.Counters.PPSDropped), l...)
	}
}
