// Package metrics exports dotsd's state and counters to Prometheus: a
// registry of its own (never the global default), collectors that read the
// signal channel, the mitigation service and the backends at scrape time,
// and counters and histograms that the hot path feeds through the
// components' hooks (dotsserver.Hooks, the store wrapper). Serve puts the
// registry on an HTTP address of its own. The metrics, their labels and
// the bound on per-mitigation series are listed in README.md.
package metrics
