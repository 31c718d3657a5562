package agent

// The agent's side of the services subsystem (agent/services): what it gets of the agent,
// and the handle the rest of the agent keeps on it.

import (
	"net/http"
	"net/netip"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/weftnet/weft/agent/services"
	"github.com/weftnet/weft/discovery/catalog"
)

// catalogGlue is the agent's handle on the services subsystem: the subsystem, and the
// catalog it runs, which gossip, policy, reload, the netstack and the status read.
type catalogGlue struct {
	svc *services.Server
	cat *catalog.Catalog
}

func startCatalog(a *Agent) (*catalogGlue, error) { return startCatalogWith(a, hostResolver{}) }

// startCatalogWith starts the services subsystem, configuring the host's resolver through
// r (zero: the system's; a seam for tests).
func startCatalogWith(a *Agent, r hostResolver) (*catalogGlue, error) {
	svc, err := services.Start(servicesDeps(a, r))
	if err != nil {
		return nil, err
	}
	return &catalogGlue{svc: svc, cat: svc.Catalog()}, nil
}

// servicesDeps is what the services subsystem gets of the agent.
func servicesDeps(a *Agent, r hostResolver) services.Deps {
	d := services.Deps{
		Config:  a.cfg,
		Address: func() netip.Addr { a.mu.Lock(); defer a.mu.Unlock(); return a.address },
		Subnet:  func() netip.Prefix { a.mu.Lock(); defer a.mu.Unlock(); return a.subnet },
		Members: a.Members,
		Clients: a.clientAddr,
		HostResolver: func(addrs []netip.AddrPort, overlay netip.Addr) func() {
			return a.setupResolver(r, addrs, overlay)
		},
		Version: Version,
		Logger:  a.log,
		Problem: a.problem,
		Refused: a.httpRefused.Add,
	}
	if a.gsp != nil {
		d.Tags = a.gsp.Cluster()
		d.UserEvent = a.gsp.Cluster().UserEvent
		d.Trusted = a.gsp.Trusted
	}
	return d
}

func (g *catalogGlue) close() { g.svc.Close() }

// serviceRoutes adds /v1/services… to the control API.
func (a *Agent) serviceRoutes(mux *http.ServeMux) {
	services.Routes(mux, func() *catalog.Catalog {
		if a.cat == nil {
			return nil
		}
		return a.cat.cat
	})
}

// newCatalogCollector exports the catalog's refusals and the carrying of catalogs too large
// for the tag (discovery/catalogdist), read at scrape time.
func newCatalogCollector(a *Agent) prometheus.Collector {
	return &catalogCollector{a: a,
		dropped: prometheus.NewDesc("weft_catalog_dropped_total",
			"Other hosts' catalog data refused, by reason: foreign_address (a service naming an address outside its host's subnet), too_large and too_many_services (an announcement past catalog.max_bytes or catalog.max_services), bad_tag, bad_event, bad_manifest, bad_chunk, bad_length, bad_catalog, bad_request, pending_full, unannounced.",
			[]string{"reason"}, nil),
		applied:  prometheus.NewDesc("weft_catalog_received_total", "Catalogs too large for the tag received and installed.", nil, nil),
		sent:     prometheus.NewDesc("weft_catalog_sent_total", "Broadcasts of this host's catalog when too large for the tag (after a change or a request).", nil, nil),
		requests: prometheus.NewDesc("weft_catalog_requests_total", "Requests this host sent for catalogs it lagged behind on.", nil, nil),
		pending:  prometheus.NewDesc("weft_catalog_pending", "Catalogs announced by other hosts and not received yet.", nil, nil),
	}
}

type catalogCollector struct {
	a                                         *Agent
	dropped, applied, sent, requests, pending *prometheus.Desc
}

func (c *catalogCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.dropped
	ch <- c.applied
	ch <- c.sent
	ch <- c.requests
	ch <- c.pending
}

func (c *catalogCollector) Collect(ch chan<- prometheus.Metric) {
	g := c.a.cat
	if g == nil {
		return
	}
	st := g.svc.OutOfBand()
	st.Dropped["foreign_address"] += g.cat.ForeignAddressDrops()
	for reason, n := range st.Dropped {
		ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(n), reason)
	}
	ch <- prometheus.MustNewConstMetric(c.applied, prometheus.CounterValue, float64(st.Applied))
	ch <- prometheus.MustNewConstMetric(c.sent, prometheus.CounterValue, float64(st.Sent))
	ch <- prometheus.MustNewConstMetric(c.requests, prometheus.CounterValue, float64(st.Requests))
	ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(st.Pending))
}
