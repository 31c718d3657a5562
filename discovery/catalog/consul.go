package catalog

// The Consul-compatible HTTP API: the read side of Consul's catalog, health, agent and
// status endpoints, and the agent's service writes, in Consul's JSON shapes and status
// codes, so that Consul's own clients (the Go client, Prometheus consul_sd_configs,
// consul-template, Traefik) discover weft's services unchanged.
//
// Every read is a blocking query when it carries ?index=N: the handler waits on the
// catalog index (watch.go) until it passes N or ?wait ends (default 5m, capped at 10m, as
// Consul caps it) and answers X-Consul-Index. An index ahead of the catalog's (the agent
// restarted and its counter began again) answers at once, so a client never hangs on a
// stale index. The handler runs on net/http's per-request goroutines; at most
// maxConsulWaiters requests block at a time, others get 429.
//
// weft maps Consul's model onto its own: a service's ID is its name (one instance per
// name per host), a node is a gossip member and its address the member's overlay address,
// the datacenter is ConsulConfig.Datacenter. What does not map is refused with 400 naming
// the field (consul_register.go), never silently dropped.

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"time"
)

// Limits of the Consul API.
const (
	// ConsulDefaultWait is the wait of a blocking query without ?wait (Consul's default).
	ConsulDefaultWait = 5 * time.Minute
	// ConsulMaxWait caps ?wait (Consul's cap).
	ConsulMaxWait = 10 * time.Minute
	// maxConsulBody bounds a request body; a registration is a few hundred bytes.
	maxConsulBody = 64 << 10
	// maxConsulWaiters bounds the blocking queries in flight: each holds a goroutine.
	maxConsulWaiters = 1024
	// maxConsulNodeName bounds a :node path value (a DNS name at most).
	maxConsulNodeName = 255
)

// ConsulSupported is the list of endpoints named in the 404 of an unknown one.
const ConsulSupported = "weft supports GET /v1/catalog/services, /v1/catalog/service/:name, /v1/catalog/nodes, " +
	"/v1/catalog/node/:node, /v1/health/service/:name, /v1/health/checks/:name, /v1/agent/self, " +
	"/v1/agent/services, /v1/agent/members, /v1/status/leader, /v1/status/peers; PUT /v1/agent/service/register, " +
	"/v1/agent/service/deregister/:id, /v1/agent/check/{pass,warn,fail}/:id, /v1/agent/check/update/:id"

// ConsulMember is one gossip member as /v1/agent/members lists it.
type ConsulMember struct {
	Name string
	// Addr is the member's gossip address.
	Addr netip.AddrPort
	// Status is "alive", "leaving", "left" or "failed".
	Status string
	Tags   map[string]string
}

// ConsulMembers lists the gossip members; the agent implements it over membership, so
// that catalog does not import it.
type ConsulMembers interface {
	ConsulMembers() []ConsulMember
}

// ConsulConfig configures NewConsulHandler.
type ConsulConfig struct {
	// Node is this agent's node name (Catalog's Node).
	Node string
	// Datacenter is answered in every shape; a ?dc= naming another is a 500, as in Consul.
	// Empty: "dc1", the name Consul's tools assume.
	Datacenter string
	// Token authorizes writes (X-Consul-Token, Authorization: Bearer or ?token=); when set,
	// every write needs it, over loopback too (consul_access.go). Empty: writes are
	// accepted only over loopback, from any local user, naming a local Host.
	Token string
	// AllowedSources: requests from other addresses are refused (403); loopback is always
	// allowed. Nil allows every source.
	AllowedSources []netip.Prefix
	// Members lists the gossip members; nil lists this node alone.
	Members ConsulMembers
	// Version is reported in /v1/agent/self.
	Version string
	// Refused counts a refused request by reason: "source" (not an allowed source), "token"
	// (a write without the token, or from another host when none is configured), "host"
	// (a token-less loopback write naming a foreign Host: DNS rebinding). nil: not counted.
	Refused func(reason string)
	// Logger; nil discards.
	Logger *slog.Logger
}

// ConsulHandler serves the Consul API over a Catalog.
type ConsulHandler struct {
	cfg     ConsulConfig
	cat     *Catalog
	log     *slog.Logger
	mux     *http.ServeMux
	waiters chan struct{}
}

// NewConsulHandler returns the handler of the Consul API.
func NewConsulHandler(cfg ConsulConfig, cat *Catalog) (*ConsulHandler, error) {
	if cat == nil {
		return nil, errors.New("catalog: consul: no catalog")
	}
	if cfg.Datacenter == "" {
		cfg.Datacenter = "dc1"
	}
	if err := ValidateServiceName(strings.ToLower(cfg.Datacenter)); err != nil {
		return nil, fmt.Errorf("catalog: consul: datacenter %q: a DNS label please", cfg.Datacenter)
	}
	h := &ConsulHandler{cfg: cfg, cat: cat, log: cfg.Logger, mux: http.NewServeMux(), waiters: make(chan struct{}, maxConsulWaiters)}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	h.routes()
	return h, nil
}

func (h *ConsulHandler) routes() {
	m := h.mux
	m.HandleFunc("GET /v1/catalog/services", h.read(h.catalogServices))
	m.HandleFunc("GET /v1/catalog/service/{name}", h.read(h.catalogService))
	m.HandleFunc("GET /v1/catalog/nodes", h.read(h.catalogNodes))
	m.HandleFunc("GET /v1/catalog/node/{node}", h.read(h.catalogNode))
	m.HandleFunc("GET /v1/health/service/{name}", h.read(h.healthService))
	m.HandleFunc("GET /v1/health/checks/{name}", h.read(h.healthChecks))
	m.HandleFunc("GET /v1/agent/self", h.read(h.agentSelf))
	m.HandleFunc("GET /v1/agent/services", h.read(h.agentServices))
	m.HandleFunc("GET /v1/agent/members", h.read(h.agentMembers))
	m.HandleFunc("GET /v1/status/leader", h.read(h.statusLeader))
	m.HandleFunc("GET /v1/status/peers", h.read(h.statusPeers))
	m.HandleFunc("PUT /v1/agent/service/register", h.write(h.serviceRegister))
	m.HandleFunc("PUT /v1/agent/service/deregister/{id}", h.write(h.serviceDeregister))
	for _, st := range []string{"pass", "warn", "fail", "update"} {
		m.HandleFunc("PUT /v1/agent/check/"+st+"/{id}", h.write(h.checkUpdate(st)))
	}
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		consulError(w, http.StatusNotFound, fmt.Sprintf("%s %s is not supported: %s", r.Method, r.URL.Path, ConsulSupported))
	})
}

// ServeHTTP implements http.Handler.
func (h *ConsulHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !h.sourceAllowed(r) {
		h.refused("source")
		consulError(w, http.StatusForbidden, "source address not allowed: the Consul API answers the overlay and this host")
		return
	}
	if dc := r.URL.Query().Get("dc"); dc != "" && !strings.EqualFold(dc, h.cfg.Datacenter) {
		consulError(w, http.StatusInternalServerError, "No path to datacenter")
		return
	}
	if r.URL.Query().Has("filter") {
		consulError(w, http.StatusBadRequest, "?filter is not supported by weft; filter on the client")
		return
	}
	h.mux.ServeHTTP(w, r)
}
