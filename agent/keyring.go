package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftnet/weft/agent/api"
	"github.com/weftnet/weft/agent/internal/jsonhttp"
	"github.com/weftnet/weft/discovery/membership"
)

// THIS host's gossip keyring over the control API (`weft keyring`; the control socket is
// root's only). Gossip cannot change a keyring: Serf holds none (weft's own transport
// encrypts gossip, discovery/membership/transport.go), so a rotation is run on each host:
//
//	GET    /v1/keyring              KeyringStatus (this host's keys)
//	POST   /v1/keyring   KeyRequest install a key on this host
//	PUT    /v1/keyring   KeyRequest make it the key this host sends with
//	DELETE /v1/keyring   KeyRequest remove it from this host
//
// The host keeps its keyring in STATE_DIR/gossip.keyring (0600), which wins over gossip.key
// at the next start (the rotated-out key may still be in the configuration).

func (a *Agent) keyringRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/keyring", func(w http.ResponseWriter, r *http.Request) {
		if a.gsp == nil {
			jsonhttp.WriteError(w, http.StatusConflict, errGossipOff)
			return
		}
		st, err := a.gsp.Cluster().ListKeys()
		writeKeyring(w, st, err)
	})
	op := func(f func(*membership.Cluster, string) (membership.KeyringStatus, error)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if a.gsp == nil {
				jsonhttp.WriteError(w, http.StatusConflict, errGossipOff)
				return
			}
			var req api.KeyRequest
			if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&req); err != nil || req.Key == "" {
				jsonhttp.WriteError(w, http.StatusBadRequest, fmt.Errorf("bad keyring request: want {\"key\": BASE64}: %v", err))
				return
			}
			st, err := f(a.gsp.Cluster(), req.Key)
			writeKeyring(w, st, err)
		}
	}
	mux.HandleFunc("POST /v1/keyring", op((*membership.Cluster).InstallKey))
	mux.HandleFunc("PUT /v1/keyring", op((*membership.Cluster).UseKey))
	mux.HandleFunc("DELETE /v1/keyring", op((*membership.Cluster).RemoveKey))
}

var errGossipOff = errors.New("gossip is disabled on this agent: there is no keyring")

func writeKeyring(w http.ResponseWriter, st membership.KeyringStatus, err error) {
	if err != nil {
		code := http.StatusBadRequest // not a key
		if errors.Is(err, membership.ErrKeyring) {
			code = http.StatusConflict // a key not installed, the primary, or no keyring
		}
		jsonhttp.WriteError(w, code, err)
		return
	}
	jsonhttp.WriteJSON(w, http.StatusOK, st)
}

// newGossipDropsCollector exports weft_gossip_dropped_total{reason}: gossip input that weft's
// gossip encryption dropped (wrong key, tampered, not weft's format), read at scrape time.
func newGossipDropsCollector(a *Agent) prometheus.Collector {
	return &gossipDropsCollector{a: a, desc: prometheus.NewDesc("weft_gossip_dropped_total",
		"Gossip packets and stream records dropped by the gossip encryption, by reason (packet_no_key, stream_no_key: a host without the cluster's key, or tampering).",
		[]string{"reason"}, nil)}
}

type gossipDropsCollector struct {
	a    *Agent
	desc *prometheus.Desc
}

func (c *gossipDropsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *gossipDropsCollector) Collect(ch chan<- prometheus.Metric) {
	if c.a.gsp == nil {
		return
	}
	for reason, n := range c.a.gsp.Cluster().TransportDrops() {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(n), reason)
	}
}
