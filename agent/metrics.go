package agent

import (
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metricsCollector reads the agent's counters at scrape time, so the datapath keeps its
// own atomics and pays nothing per packet for metrics.
type metricsCollector struct {
	a *Agent

	peerBytes, peerPackets, peerHandshakes, peerDrops, peerLastHandshake *prometheus.Desc
	drops, members, up                                                   *prometheus.Desc
	dnsForwards, proxyEvents                                             *prometheus.Desc
}

func newMetricsCollector(a *Agent) *metricsCollector {
	return &metricsCollector{
		a:                 a,
		peerBytes:         prometheus.NewDesc("weft_peer_bytes_total", "Bytes of inner traffic exchanged with a peer.", []string{"peer", "name", "direction"}, nil),
		peerPackets:       prometheus.NewDesc("weft_peer_packets_total", "Packets exchanged with a peer.", []string{"peer", "name", "direction"}, nil),
		peerHandshakes:    prometheus.NewDesc("weft_peer_handshakes_total", "Completed handshakes with a peer.", []string{"peer", "name"}, nil),
		peerDrops:         prometheus.NewDesc("weft_peer_drops_total", "Packets from or to a peer dropped, by reason.", []string{"peer", "name", "reason"}, nil),
		peerLastHandshake: prometheus.NewDesc("weft_peer_last_handshake_timestamp_seconds", "Unix time of the last completed handshake with a peer.", []string{"peer", "name"}, nil),
		drops:             prometheus.NewDesc("weft_drops_total", "Packets the datapath dropped, by reason.", []string{"reason"}, nil),
		members:           prometheus.NewDesc("weft_members", "Gossip members by status.", []string{"status"}, nil),
		up:                prometheus.NewDesc("weft_up", "1 while the agent runs.", nil, nil),
		proxyEvents:       prometheus.NewDesc("weft_proxy_events_total", "Rootless mode (--netstack): connections and datagrams the SOCKS5 and HTTP proxies, forwards and exposes carried or refused, by event (socks5_connect, http_connect, relay_tcp, not_allowed, conn_limit, ...).", []string{"event"}, nil),
		dnsForwards:       prometheus.NewDesc("weft_dns_forwards_total", "DNS queries outside the domain, by outcome: forwarded, failed (upstream error), busy (past the in-flight bound: SERVFAIL), refused (source not this host or the overlay).", []string{"result"}, nil),
	}
}

func (c *metricsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.peerBytes, c.peerPackets, c.peerHandshakes, c.peerDrops, c.peerLastHandshake, c.drops, c.members, c.up, c.dnsForwards, c.proxyEvents} {
		ch <- d
	}
}

func (c *metricsCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1)
	for _, p := range c.a.Peers() {
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
	if c.a.dpUp.Load() {
		drops, _ := c.a.dp.stats() // every mode counts under the same reason names
		for reason, n := range drops {
			ch <- prometheus.MustNewConstMetric(c.drops, prometheus.CounterValue, float64(n), reason)
		}
	}
	for event, n := range c.a.dp.proxyEvents() {
		ch <- prometheus.MustNewConstMetric(c.proxyEvents, prometheus.CounterValue, float64(n), event)
	}
	if c.a.cat != nil {
		if s, ok := c.a.cat.dnsStats(); ok {
			for result, n := range map[string]uint64{"forwarded": s.Forwarded, "failed": s.ForwardFailed, "busy": s.ForwardBusy, "refused": s.ForwardRefused} {
				ch <- prometheus.MustNewConstMetric(c.dnsForwards, prometheus.CounterValue, float64(n), result)
			}
		}
	}
	counts := map[string]int{"alive": 0, "leaving": 0, "left": 0, "failed": 0}
	for _, m := range c.a.Members() {
		counts[m.Status]++
	}
	for status, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.members, prometheus.GaugeValue, float64(n), status)
	}
}

// serveMetrics serves /metrics on addr until the returned closer is called.
func serveMetrics(addr string, a *Agent, log *slog.Logger) (func(), error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(newMetricsCollector(a), newTrustCollector(a), newPolicyCollector(a), newOpsCollector(a), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "err", err)
		}
	}()
	log.Info("metrics", "listen", ln.Addr().String())
	return func() { _ = srv.Close() }, nil
}
