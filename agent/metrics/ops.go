package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftnet/weft/discovery/catalog"
	"github.com/weftnet/weft/internal/version"
)

// OpsCollector adds what an operator alerts on: the build, each peer's state and its
// handshake attempts given up, and the catalog's instances by health. Read at scrape
// time, like Collector.
type OpsCollector struct {
	src Source

	buildInfo, peerState, handshakeFailures, services *prometheus.Desc
	noReplyHandshakes, pathMTU                        *prometheus.Desc
}

var _ prometheus.Collector = (*OpsCollector)(nil)

// NewOpsCollector returns an OpsCollector reading src (its Peers and Instances).
func NewOpsCollector(src Source) *OpsCollector {
	return &OpsCollector{
		src:               src.orNone(),
		buildInfo:         prometheus.NewDesc("weft_build_info", "Always 1; the labels name the build.", []string{"version", "commit", "goversion"}, nil),
		peerState:         prometheus.NewDesc("weft_peer_state", "1 for the state a peer is in (up, handshaking, handshake failing, no endpoint, idle).", []string{"peer", "name", "state"}, nil),
		handshakeFailures: prometheus.NewDesc("weft_peer_handshake_failures_total", "Handshake attempts with a peer given up unanswered (after RekeyAttemptTime).", []string{"peer", "name"}, nil),
		noReplyHandshakes: prometheus.NewDesc("weft_peer_no_reply_handshakes_total", "New handshakes with a peer started because data sent got no authenticated reply for 15 s (the peer had lost the session).", []string{"peer", "name"}, nil),
		pathMTU:           prometheus.NewDesc("weft_peer_path_mtu_bytes", "The largest underlay IP packet the path to a peer's endpoint carries, as the datapath found it (route MTU, ICMP errors, probes); absent until known.", []string{"peer", "name"}, nil),
		services:          prometheus.NewDesc("weft_services", "Service instances in the catalog by health.", []string{"health"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *OpsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.buildInfo, c.peerState, c.handshakeFailures, c.noReplyHandshakes, c.pathMTU, c.services} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *OpsCollector) Collect(ch chan<- prometheus.Metric) {
	in := version.Get()
	ch <- prometheus.MustNewConstMetric(c.buildInfo, prometheus.GaugeValue, 1, in.Version, in.Commit, in.GoVersion)
	for _, p := range c.src.Peers() {
		ch <- prometheus.MustNewConstMetric(c.peerState, prometheus.GaugeValue, 1, p.PublicKey, p.Name, p.State)
		ch <- prometheus.MustNewConstMetric(c.handshakeFailures, prometheus.CounterValue, float64(p.HandshakeFailures), p.PublicKey, p.Name)
		ch <- prometheus.MustNewConstMetric(c.noReplyHandshakes, prometheus.CounterValue, float64(p.NoReplyHandshakes), p.PublicKey, p.Name)
		if p.PathMTU > 0 {
			ch <- prometheus.MustNewConstMetric(c.pathMTU, prometheus.GaugeValue, float64(p.PathMTU), p.PublicKey, p.Name)
		}
	}
	counts := map[string]int{}
	for _, h := range []catalog.Health{catalog.HealthPassing, catalog.HealthWarning, catalog.HealthCritical} {
		counts[h.String()] = 0
	}
	for _, inst := range c.src.Instances() {
		counts[inst.Health.String()]++
	}
	for h, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.services, prometheus.GaugeValue, float64(n), h)
	}
}
