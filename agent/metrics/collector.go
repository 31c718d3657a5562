package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftnet/weft/agent/api"
	"github.com/weftnet/weft/discovery/catalog"
)

// Source is where the collectors read the agent's values, at scrape time, so the datapath
// keeps its own atomics and pays nothing per packet for metrics. A nil function reads as
// nothing to report.
type Source struct {
	// Peers lists the datapath peers with their counters and states.
	Peers func() []api.Peer
	// Members lists the gossip members.
	Members func() []api.Member
	// Drops are the datapath's drops by reason (every mode counts under the same reason
	// names); false while the device is not up.
	Drops func() (map[string]uint64, bool)
	// ProxyEvents are rootless mode's proxy counters by event; nil outside --netstack.
	ProxyEvents func() map[string]uint64
	// DNSStats are the DNS server's forwarding counters; false while none serves.
	DNSStats func() (catalog.DNSStats, bool)
	// Instances lists the catalog's service instances; nil while the catalog is not running.
	Instances func() []catalog.Instance
	// HTTPRefused are the requests the agent's HTTP listeners (metrics, pprof, Consul API)
	// refused, by listener and reason (HTTPRefusals.Snapshot).
	HTTPRefused func() map[HTTPRefusal]uint64
}

// orNone replaces src's nil functions by ones that report nothing.
func (src Source) orNone() Source {
	if src.Peers == nil {
		src.Peers = func() []api.Peer { return nil }
	}
	if src.Members == nil {
		src.Members = func() []api.Member { return nil }
	}
	if src.Drops == nil {
		src.Drops = func() (map[string]uint64, bool) { return nil, false }
	}
	if src.ProxyEvents == nil {
		src.ProxyEvents = func() map[string]uint64 { return nil }
	}
	if src.DNSStats == nil {
		src.DNSStats = func() (catalog.DNSStats, bool) { return catalog.DNSStats{}, false }
	}
	if src.Instances == nil {
		src.Instances = func() []catalog.Instance { return nil }
	}
	if src.HTTPRefused == nil {
		src.HTTPRefused = func() map[HTTPRefusal]uint64 { return nil }
	}
	return src
}

// Collector exports the agent's traffic, drops, members, proxy and DNS counters.
type Collector struct {
	src Source

	peerBytes, peerPackets, peerHandshakes, peerDrops, peerLastHandshake *prometheus.Desc
	drops, members, up                                                   *prometheus.Desc
	dnsForwards, proxyEvents, httpRefused                                *prometheus.Desc
}

var _ prometheus.Collector = (*Collector)(nil)

// NewCollector returns a Collector reading src.
func NewCollector(src Source) *Collector {
	return &Collector{
		src:               src.orNone(),
		peerBytes:         prometheus.NewDesc("weft_peer_bytes_total", "Bytes of inner traffic exchanged with a peer.", []string{"peer", "name", "direction"}, nil),
		peerPackets:       prometheus.NewDesc("weft_peer_packets_total", "Packets exchanged with a peer.", []string{"peer", "name", "direction"}, nil),
		peerHandshakes:    prometheus.NewDesc("weft_peer_handshakes_total", "Completed handshakes with a peer.", []string{"peer", "name"}, nil),
		peerDrops:         prometheus.NewDesc("weft_peer_drops_total", "Packets from or to a peer dropped, by reason.", []string{"peer", "name", "reason"}, nil),
		peerLastHandshake: prometheus.NewDesc("weft_peer_last_handshake_timestamp_seconds", "Unix time of the last completed handshake with a peer.", []string{"peer", "name"}, nil),
		drops:             prometheus.NewDesc("weft_drops_total", "Packets the datapath dropped, by reason.", []string{"reason"}, nil),
		members:           prometheus.NewDesc("weft_members", "Gossip members by status.", []string{"status"}, nil),
		up:                prometheus.NewDesc("weft_up", "1 while the agent runs.", nil, nil),
		proxyEvents:       prometheus.NewDesc("weft_proxy_events_total", "Rootless mode (--netstack): connections and datagrams the SOCKS5 and HTTP proxies, forwards and exposes carried or refused, by event (socks5_connect, http_connect, relay_tcp, not_allowed, conn_limit, ...).", []string{"event"}, nil),
		httpRefused:       prometheus.NewDesc("weft_http_refused_total", "Requests the agent's HTTP listeners refused, by listener (metrics, pprof, consul_api, ui) and reason: host (a Host that is neither an address nor localhost: DNS rebinding), token (a Consul API write or a console request without the configured token), source (a source address not allowed), origin and cross_site (a cross-origin read of the console), method (a console request other than GET or HEAD).", []string{"listener", "reason"}, nil),
		dnsForwards:       prometheus.NewDesc("weft_dns_forwards_total", "DNS queries outside the domain, by outcome: forwarded, failed (upstream error), busy (past the in-flight bound: SERVFAIL), refused (source not this host or the overlay).", []string{"result"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.peerBytes, c.peerPackets, c.peerHandshakes, c.peerDrops, c.peerLastHandshake, c.drops, c.members, c.up, c.dnsForwards, c.proxyEvents, c.httpRefused} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1)
	for _, p := range c.src.Peers() {
		ch <- prometheus.MustNewConstMetric(c.peerBytes, prometheus.CounterValue, float64(p.RxBytes), p.PublicKey, p.Name, "rx")
		ch <- prometheus.MustNewConstMetric(c.peerBytes, prometheus.CounterValue, float64(p.TxBytes), p.PublicKey, p.Name, "tx")
		ch <- prometheus.MustNewConstMetric(c.peerPackets, prometheus.CounterValue, float64(p.RxPackets), p.PublicKey, p.Name, "rx")
		ch <- prometheus.MustNewConstMetric(c.peerPackets, prometheus.CounterValue, float64(p.TxPackets), p.PublicKey, p.Name, "tx")
		ch <- prometheus.MustNewConstMetric(c.peerHandshakes, prometheus.CounterValue, float64(p.Handshakes), p.PublicKey, p.Name)
		if !p.LastHandshake.IsZero() {
			ch <- prometheus.MustNewConstMetric(c.peerLastHandshake, prometheus.GaugeValue, float64(p.LastHandshake.UnixNano())/1e9, p.PublicKey, p.Name)
		}
		for reason, n := range p.Drops {
			ch <- prometheus.MustNewConstMetric(c.peerDrops, prometheus.CounterValue, float64(n), p.PublicKey, p.Name, reason)
		}
	}
	if drops, ok := c.src.Drops(); ok {
		for reason, n := range drops {
			ch <- prometheus.MustNewConstMetric(c.drops, prometheus.CounterValue, float64(n), reason)
		}
	}
	for event, n := range c.src.ProxyEvents() {
		ch <- prometheus.MustNewConstMetric(c.proxyEvents, prometheus.CounterValue, float64(n), event)
	}
	if s, ok := c.src.DNSStats(); ok {
		for result, n := range map[string]uint64{"forwarded": s.Forwarded, "failed": s.ForwardFailed, "busy": s.ForwardBusy, "refused": s.ForwardRefused} {
			ch <- prometheus.MustNewConstMetric(c.dnsForwards, prometheus.CounterValue, float64(n), result)
		}
	}
	for k, n := range c.src.HTTPRefused() {
		ch <- prometheus.MustNewConstMetric(c.httpRefused, prometheus.CounterValue, float64(n), k.Listener, k.Reason)
	}
	counts := map[string]int{"alive": 0, "leaving": 0, "left": 0, "failed": 0}
	for _, m := range c.src.Members() {
		counts[m.Status]++
	}
	for status, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.members, prometheus.GaugeValue, float64(n), status)
	}
}
