package agent

// The agent's side of agent/metrics: the values its collectors read, and its listeners.

import (
	"log/slog"

	"github.com/weftnet/weft/agent/config"
	"github.com/weftnet/weft/agent/metrics"
	"github.com/weftnet/weft/discovery/catalog"
)

// metricsSource is what the collectors read of a, at scrape time.
func metricsSource(a *Agent) metrics.Source {
	return metrics.Source{
		Peers:   a.Peers,
		Members: a.Members,
		Drops: func() (map[string]uint64, bool) {
			if !a.dpUp.Load() {
				return nil, false
			}
			drops, _ := a.dp.Stats() // every mode counts under the same reason names
			return drops, true
		},
		ProxyEvents: func() map[string]uint64 { return proxyEvents(a.dp) },
		DNSStats: func() (catalog.DNSStats, bool) {
			if a.cat == nil {
				return catalog.DNSStats{}, false
			}
			return a.cat.svc.DNSStats()
		},
		Instances: func() []catalog.Instance {
			if a.cat == nil {
				return nil
			}
			return a.cat.cat.All()
		},
		HTTPRefused: a.httpRefused.Snapshot,
	}
}

// newMetricsCollector and newOpsCollector read a at scrape time.
func newMetricsCollector(a *Agent) *metrics.Collector {
	return metrics.NewCollector(metricsSource(a))
}
func newOpsCollector(a *Agent) *metrics.OpsCollector {
	return metrics.NewOpsCollector(metricsSource(a))
}

// serveMetrics serves /metrics on addr until the returned closer is called.
func serveMetrics(addr string, a *Agent, log *slog.Logger) (func(), error) {
	return metrics.Serve(addr, log, &a.httpRefused, newMetricsCollector(a), newTrustCollector(a), newGossipDropsCollector(a), newPolicyCollector(a), newCatalogCollector(a), newOpsCollector(a))
}

// servePprof serves the pprof handlers on cfg.PprofListen until the returned closer is called.
func servePprof(cfg config.DebugConfig, refused *metrics.HTTPRefusals, log *slog.Logger) (func(), error) {
	return metrics.ServePprof(cfg, log, refused)
}
