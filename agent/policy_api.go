package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/weftnet/weft/agent/api"
)

// The control API of network policy:
//
//	GET  /v1/policy                              PolicyStatus (rules with hit and drop counts)
//	POST /v1/policy                              PolicyApply (a signed envelope) → PolicyApplied
//	GET  /v1/policy/test?from=H&to=H2&port=P     PolicyTest

func (a *Agent) policyRoutes(mux *http.ServeMux) {
	ready := func(w http.ResponseWriter) bool {
		if a.pol == nil {
			writeError(w, http.StatusServiceUnavailable, errors.New("network policy is not running yet (the agent is starting): retry in a few seconds"))
			return false
		}
		return true
	}
	mux.HandleFunc("GET /v1/policy", func(w http.ResponseWriter, r *http.Request) {
		if ready(w) {
			writeJSON(w, http.StatusOK, a.pol.status())
		}
	})
	mux.HandleFunc("POST /v1/policy", func(w http.ResponseWriter, r *http.Request) {
		if !ready(w) {
			return
		}
		var req api.PolicyApply
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4*maxPolicyEnvelope)).Decode(&req); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("bad policy request: %w", err))
			return
		}
		v, err := a.pol.apply(req.Signed)
		switch {
		case errors.Is(err, errStale), errors.Is(err, errNoCA):
			writeError(w, http.StatusConflict, err)
		case err != nil && v == 0:
			writeError(w, http.StatusBadRequest, err)
		case err != nil:
			writeError(w, http.StatusBadGateway, err)
		default:
			writeJSON(w, http.StatusOK, api.PolicyApplied{Version: v})
		}
	})
	mux.HandleFunc("GET /v1/policy/test", func(w http.ResponseWriter, r *http.Request) {
		if !ready(w) {
			return
		}
		q := r.URL.Query()
		res, err := a.pol.test(q.Get("from"), q.Get("to"), q.Get("port"))
		if err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		writeJSON(w, http.StatusOK, res)
	})
}

// policyCollector exports the policy's counters at scrape time.
type policyCollector struct {
	a                                    *Agent
	refused, version, hits, drops, flows *prometheus.Desc
}

func newPolicyCollector(a *Agent) *policyCollector {
	return &policyCollector{
		a:       a,
		refused: prometheus.NewDesc("weft_policy_refused_total", "Signed policy documents (or their chunks) refused, by reason.", []string{"reason"}, nil),
		version: prometheus.NewDesc("weft_policy_version", "Version of the newest signed policy this host holds (0: none).", nil, nil),
		hits:    prometheus.NewDesc("weft_policy_rule_hits_total", "Flows a policy rule admitted (rule -1: the default).", []string{"rule", "name"}, nil),
		drops:   prometheus.NewDesc("weft_policy_rule_drops_total", "Packets a policy rule refused (rule -1: the default).", []string{"rule", "name"}, nil),
		flows:   prometheus.NewDesc("weft_policy_flows", "Flows in the policy's flow table.", nil, nil),
	}
}

func (c *policyCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.refused, c.version, c.hits, c.drops, c.flows} {
		ch <- d
	}
}

func (c *policyCollector) Collect(ch chan<- prometheus.Metric) {
	if c.a.pol == nil {
		return
	}
	st := c.a.pol.status()
	for r, n := range st.Refused {
		ch <- prometheus.MustNewConstMetric(c.refused, prometheus.CounterValue, float64(n), r)
	}
	ch <- prometheus.MustNewConstMetric(c.version, prometheus.GaugeValue, float64(st.Version))
	ch <- prometheus.MustNewConstMetric(c.flows, prometheus.GaugeValue, float64(st.Flows))
	for _, r := range st.Rules {
		idx := fmt.Sprint(r.Index)
		ch <- prometheus.MustNewConstMetric(c.hits, prometheus.CounterValue, float64(r.Hits), idx, r.Name)
		ch <- prometheus.MustNewConstMetric(c.drops, prometheus.CounterValue, float64(r.Drops), idx, r.Name)
	}
}
