package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/levee-dots/levee/divert/bgp"
)

// BGPSource is what the BGP collector reads (*bgp.Backend).
type BGPSource interface {
	Neighbors() []bgp.NeighborStatus
	RouteStats() bgp.RouteStats
}

// bgpCollector reads the embedded speaker at scrape time. Its labels are
// neighbor names and route kinds from the configuration: bounded by it.
type bgpCollector struct {
	src                                             BGPSource
	neighbors, up, nroutes, sessions, routes, flows *prometheus.Desc
	budget                                          *prometheus.Desc
}

// NewBGPCollector reads neighbors by state, routes announced by kind and
// the FlowSpec budgets from src.
func NewBGPCollector(src BGPSource) prometheus.Collector {
	n := []string{"neighbor"}
	return &bgpCollector{src: src,
		neighbors: prometheus.NewDesc("levee_bgp_neighbors", "BGP neighbors by session state (established, down).", []string{"state"}, nil),
		up:        prometheus.NewDesc("levee_bgp_neighbor_established", "1 when the session with the neighbor is established, else 0.", n, nil),
		nroutes:   prometheus.NewDesc("levee_bgp_neighbor_routes", "Routes announced to the neighbor (those of the kinds it receives, in families it negotiated).", n, nil),
		sessions:  prometheus.NewDesc("levee_bgp_neighbor_established_sessions_total", "Times the session with the neighbor reached ESTABLISHED since start.", n, nil),
		routes:    prometheus.NewDesc("levee_bgp_routes", "Routes in the speaker's RIB, by kind (rtbh, flowspec, scrubbing).", []string{"kind"}, nil),
		flows:     prometheus.NewDesc("levee_bgp_flowspec_rules", "FlowSpec rules announced: what the neighbors' budgets bound.", nil, nil),
		budget:    prometheus.NewDesc("levee_bgp_flowspec_budget_rules", "FlowSpec budget of each neighbor that receives FlowSpec.", n, nil),
	}
}

func (c *bgpCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.neighbors, c.up, c.nroutes, c.sessions, c.routes, c.flows, c.budget} {
		ch <- d
	}
}

func (c *bgpCollector) Collect(ch chan<- prometheus.Metric) {
	states := map[string]int{"established": 0, "down": 0}
	for _, n := range c.src.Neighbors() {
		up := 0.0
		if n.Established {
			states["established"]++
			up = 1
		} else {
			states["down"]++
		}
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, up, n.Name)
		ch <- prometheus.MustNewConstMetric(c.nroutes, prometheus.GaugeValue, float64(n.Routes), n.Name)
		ch <- prometheus.MustNewConstMetric(c.sessions, prometheus.CounterValue, float64(n.Sessions), n.Name)
	}
	for s, k := range states {
		ch <- prometheus.MustNewConstMetric(c.neighbors, prometheus.GaugeValue, float64(k), s)
	}
	st := c.src.RouteStats()
	for _, kind := range []string{bgp.KindRTBH, bgp.KindFlowSpec, bgp.KindScrubbing} {
		ch <- prometheus.MustNewConstMetric(c.routes, prometheus.GaugeValue, float64(st.ByKind[kind]), kind)
	}
	ch <- prometheus.MustNewConstMetric(c.flows, prometheus.GaugeValue, float64(st.FlowSpec))
	for name, b := range st.FlowSpecBudget {
		ch <- prometheus.MustNewConstMetric(c.budget, prometheus.GaugeValue, float64(b), name)
	}
}
