package netpolicy

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/weftnet/weft/agent/api"
	"github.com/weftnet/weft/agent/internal/jsonhttp"
	"github.com/weftnet/weft/discovery/policydist"
)

// The control API of network policy:
//
//	GET  /v1/policy                              PolicyStatus (rules with hit and drop counts)
//	POST /v1/policy                              PolicyApply (a signed envelope) → PolicyApplied
//	GET  /v1/policy/test?from=H&to=H2&port=P     PolicyTest

// Routes adds the /v1/policy routes to mux. get returns the subsystem, nil while the
// agent is starting (the routes then answer 503).
func Routes(mux *http.ServeMux, get func() *Policy) {
	ready := func(w http.ResponseWriter) *Policy {
		p := get()
		if p == nil {
			jsonhttp.WriteError(w, http.StatusServiceUnavailable, errors.New("network policy is not running yet (the agent is starting): retry in a few seconds"))
		}
		return p
	}
	mux.HandleFunc("GET /v1/policy", func(w http.ResponseWriter, r *http.Request) {
		if p := ready(w); p != nil {
			jsonhttp.WriteJSON(w, http.StatusOK, p.Status())
		}
	})
	mux.HandleFunc("POST /v1/policy", func(w http.ResponseWriter, r *http.Request) {
		p := ready(w)
		if p == nil {
			return
		}
		var req api.PolicyApply
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4*policydist.MaxEnvelope)).Decode(&req); err != nil {
			jsonhttp.WriteError(w, http.StatusBadRequest, fmt.Errorf("bad policy request: %w", err))
			return
		}
		v, err := p.Apply(req.Signed)
		switch {
		case errors.Is(err, policydist.ErrStale), errors.Is(err, policydist.ErrNoCA):
			jsonhttp.WriteError(w, http.StatusConflict, err)
		case err != nil && v == 0:
			jsonhttp.WriteError(w, http.StatusBadRequest, err)
		case err != nil:
			jsonhttp.WriteError(w, http.StatusBadGateway, err)
		default:
			jsonhttp.WriteJSON(w, http.StatusOK, api.PolicyApplied{Version: v})
		}
	})
	mux.HandleFunc("GET /v1/policy/test", func(w http.ResponseWriter, r *http.Request) {
		p := ready(w)
		if p == nil {
			return
		}
		q := r.URL.Query()
		res, err := p.Test(q.Get("from"), q.Get("to"), q.Get("port"))
		if err != nil {
			jsonhttp.WriteError(w, http.StatusBadRequest, err)
			return
		}
		jsonhttp.WriteJSON(w, http.StatusOK, res)
	})
}

// collector exports the policy's counters at scrape time.
type collector struct {
	get                                  func() *Policy
	refused, version, hits, drops, flows *prometheus.Desc
	clientTags                           *prometheus.Desc
}

// NewCollector returns the weft_policy_* metrics, read from get() at scrape time (nil:
// not running yet, nothing exported).
func NewCollector(get func() *Policy) prometheus.Collector {
	return &collector{
		get:     get,
		refused: prometheus.NewDesc("weft_policy_refused_total", "Signed policy documents (or their chunks) refused, by reason.", []string{"reason"}, nil),
		version: prometheus.NewDesc("weft_policy_version", "Version of the newest signed policy this host holds (0: none).", nil, nil),
		hits:    prometheus.NewDesc("weft_policy_rule_hits_total", "Flows a policy rule admitted (rule -1: the default).", []string{"rule", "name"}, nil),
		drops:   prometheus.NewDesc("weft_policy_rule_drops_total", "Packets a policy rule refused (rule -1: the default).", []string{"rule", "name"}, nil),
		flows:   prometheus.NewDesc("weft_policy_flows", "Flows in the policy's flow table.", nil, nil),
		clientTags: prometheus.NewDesc("weft_policy_client_tags_refused_total",
			"WireGuard client announcements of members refused (malformed, or outside the member's /24), by reason.", []string{"reason"}, nil),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.refused, c.version, c.hits, c.drops, c.flows, c.clientTags} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	p := c.get()
	if p == nil {
		return
	}
	st := p.Status()
	for r, n := range st.Refused {
		ch <- prometheus.MustNewConstMetric(c.refused, prometheus.CounterValue, float64(n), r)
	}
	for r, n := range p.ClientTagsRefused() {
		ch <- prometheus.MustNewConstMetric(c.clientTags, prometheus.CounterValue, float64(n), r)
	}
	ch <- prometheus.MustNewConstMetric(c.version, prometheus.GaugeValue, float64(st.Version))
	ch <- prometheus.MustNewConstMetric(c.flows, prometheus.GaugeValue, float64(st.Flows))
	for _, r := range st.Rules {
		idx := fmt.Sprint(r.Index)
		ch <- prometheus.MustNewConstMetric(c.hits, prometheus.CounterValue, float64(r.Hits), idx, r.Name)
		ch <- prometheus.MustNewConstMetric(c.drops, prometheus.CounterValue, float64(r.Drops), idx, r.Name)
	}
}
