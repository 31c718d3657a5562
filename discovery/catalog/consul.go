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
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
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
	// Token authorizes writes from other hosts (X-Consul-Token, Authorization: Bearer or
	// ?token=). Writes over a loopback connection need none. Empty: writes are accepted
	// only over loopback.
	Token string
	// AllowedSources: requests from other addresses are refused (403); loopback is always
	// allowed. Nil allows every source.
	AllowedSources []netip.Prefix
	// Members lists the gossip members; nil lists this node alone.
	Members ConsulMembers
	// Version is reported in /v1/agent/self.
	Version string
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

func remoteAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// viaLoopback reports whether the request came over a loopback connection (from this host).
func viaLoopback(r *http.Request) bool {
	la, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if la == nil {
		return false
	}
	lap, err := netip.ParseAddrPort(la.String())
	return err == nil && lap.Addr().Unmap().IsLoopback() && remoteAddr(r).IsLoopback()
}

func (h *ConsulHandler) sourceAllowed(r *http.Request) bool {
	if h.cfg.AllowedSources == nil {
		return true
	}
	a := remoteAddr(r)
	if a.IsLoopback() {
		return true
	}
	for _, p := range h.cfg.AllowedSources {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// requestToken is the token a request carries, from the header, a bearer or ?token=.
func requestToken(r *http.Request) string {
	if t := r.Header.Get("X-Consul-Token"); t != "" {
		return t
	}
	if t, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return strings.TrimSpace(t)
	}
	return r.URL.Query().Get("token")
}

// loopbackHost reports whether a request's Host names this host as a local client does:
// localhost or a loopback address (any port). A web page that made a browser send the
// request through DNS rebinding names its own domain there.
func loopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.Trim(host, "[]"), ".")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// authorized: a write over loopback that names localhost or a loopback address as its Host,
// or one with the configured token (compared in constant time).
func (h *ConsulHandler) authorized(r *http.Request) bool {
	if viaLoopback(r) && loopbackHost(r.Host) {
		return true
	}
	if h.cfg.Token == "" {
		return false
	}
	got := sha256.Sum256([]byte(requestToken(r)))
	want := sha256.Sum256([]byte(h.cfg.Token))
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

// consulError answers in Consul's manner: a status and a plain-text message.
func consulError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	fmt.Fprintln(w, msg)
}

// httpError carries a status code out of a handler.
type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &httpError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

// readFunc answers one read; it runs after the blocking wait.
type readFunc func(r *http.Request) (any, error)

// read wraps a read endpoint with the blocking query and Consul's headers.
func (h *ConsulHandler) read(fn readFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if s := q.Get("index"); s != "" {
			idx, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				consulError(w, http.StatusBadRequest, fmt.Sprintf("Invalid index %q: not a number", s))
				return
			}
			wait := ConsulDefaultWait
			if ws := q.Get("wait"); ws != "" {
				if wait, err = parseConsulWait(ws); err != nil {
					consulError(w, http.StatusBadRequest, err.Error())
					return
				}
			}
			if idx > 0 && idx <= h.cat.Index() {
				select {
				case h.waiters <- struct{}{}:
				default:
					consulError(w, http.StatusTooManyRequests, "too many blocking queries in flight; retry later")
					return
				}
				ctx, cancel := context.WithTimeout(r.Context(), wait)
				_, _ = h.cat.Wait(ctx, idx) // a timeout answers the unchanged state, as Consul does
				cancel()
				<-h.waiters
			}
		}
		idx := h.cat.Index()
		v, err := fn(r)
		if err != nil {
			var he *httpError
			if errors.As(err, &he) {
				consulError(w, he.code, he.msg)
				return
			}
			consulError(w, http.StatusInternalServerError, err.Error())
			return
		}
		w.Header().Set("X-Consul-Index", strconv.FormatUint(idx, 10))
		// Every agent answers from its own gossip view: there is no leader to lose.
		w.Header().Set("X-Consul-KnownLeader", "true")
		w.Header().Set("X-Consul-LastContact", "0")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		enc := json.NewEncoder(w)
		if q.Has("pretty") {
			enc.SetIndent("", "    ")
		}
		_ = enc.Encode(v)
	}
}

// parseConsulWait parses ?wait: a Go duration ("30s", "5m") or bare seconds, capped.
func parseConsulWait(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		n, nerr := strconv.ParseUint(s, 10, 32)
		if nerr != nil {
			return 0, fmt.Errorf("Invalid wait time %q: want a duration like 30s", s)
		}
		d = time.Duration(n) * time.Second
	}
	if d <= 0 {
		return 0, fmt.Errorf("Invalid wait time %q: must be positive", s)
	}
	return min(d, ConsulMaxWait), nil
}

// writeFunc performs one write.
type writeFunc func(w http.ResponseWriter, r *http.Request) error

// write wraps a write endpoint: authorization, the body bound, the error mapping.
func (h *ConsulHandler) write(fn writeFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !h.authorized(r) {
			msg := "Permission denied: writes from other hosts need the token (X-Consul-Token)"
			switch {
			case viaLoopback(r) && !loopbackHost(r.Host):
				msg = "Permission denied: a write over loopback must address the agent as localhost or 127.0.0.1 (Host " +
					strconv.Quote(r.Host) + " is refused: a web page could send it) or carry the token"
			case h.cfg.Token == "":
				msg = "Permission denied: writes are accepted over loopback only (set consul_api.token_file to allow other hosts)"
			}
			consulError(w, http.StatusForbidden, msg)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxConsulBody)
		if err := fn(w, r); err != nil {
			code := http.StatusInternalServerError
			var he *httpError
			var mbe *http.MaxBytesError
			switch {
			case errors.As(err, &he):
				code = he.code
			case errors.As(err, &mbe):
				code = http.StatusRequestEntityTooLarge
			case errors.Is(err, ErrInvalidService), errors.Is(err, ErrInvalidCheck), errors.Is(err, ErrNotTTL):
				code = http.StatusBadRequest
			case errors.Is(err, ErrUnknownService):
				code = http.StatusNotFound
			case errors.Is(err, ErrCatalogFull):
				code = http.StatusInsufficientStorage
			}
			h.log.Debug("consul api: write refused", "path", r.URL.Path, "code", code, "err", err)
			consulError(w, code, err.Error())
			return
		}
		w.WriteHeader(http.StatusOK)
	}
}

// Consul's JSON shapes (the fields its clients read; Go field names are the JSON keys).

type consulWeights struct {
	Passing int
	Warning int
}

type consulNode struct {
	ID              string
	Node            string
	Address         string
	Datacenter      string
	TaggedAddresses map[string]string
	Meta            map[string]string
	CreateIndex     uint64
	ModifyIndex     uint64
}

type consulCatalogService struct {
	ID                       string
	Node                     string
	Address                  string
	Datacenter               string
	TaggedAddresses          map[string]string
	NodeMeta                 map[string]string
	ServiceID                string
	ServiceName              string
	ServiceAddress           string
	ServiceTags              []string
	ServiceMeta              map[string]string
	ServicePort              int
	ServiceWeights           consulWeights
	ServiceEnableTagOverride bool
	CreateIndex              uint64
	ModifyIndex              uint64
}

type consulAgentService struct {
	ID                string
	Service           string
	Tags              []string
	Meta              map[string]string
	Port              int
	Address           string
	Weights           consulWeights
	EnableTagOverride bool
	Datacenter        string
}

type consulHealthCheck struct {
	Node        string
	CheckID     string
	Name        string
	Status      string
	Notes       string
	Output      string
	ServiceID   string
	ServiceName string
	ServiceTags []string
	Type        string
	ExposedPort int
	Definition  struct{}
	CreateIndex uint64
	ModifyIndex uint64
}

type consulServiceEntry struct {
	Node    *consulNode
	Service *consulAgentService
	Checks  []consulHealthCheck
}

type consulCatalogNode struct {
	Node     *consulNode
	Services map[string]*consulAgentService
}

type consulMember struct {
	Name        string
	Addr        string
	Port        uint16
	Tags        map[string]string
	Status      int
	ProtocolMin uint8
	ProtocolMax uint8
	ProtocolCur uint8
	DelegateMin uint8
	DelegateMax uint8
	DelegateCur uint8
}

// nodeID is a stable UUID-shaped ID derived from the node name: Consul's tools expect one.
func nodeID(node string) string {
	s := sha256.Sum256([]byte("weft-node:" + node))
	return fmt.Sprintf("%x-%x-%x-%x-%x", s[0:4], s[4:6], s[6:8], s[8:10], s[10:16])
}

func (h *ConsulHandler) node(name string, addr netip.Addr, idx uint64) *consulNode {
	a := ""
	if addr.IsValid() {
		a = addr.String()
	}
	return &consulNode{ID: nodeID(name), Node: name, Address: a, Datacenter: h.cfg.Datacenter,
		TaggedAddresses: map[string]string{"lan": a, "wan": a}, Meta: map[string]string{},
		CreateIndex: idx, ModifyIndex: idx}
}

func (h *ConsulHandler) agentService(s Service) *consulAgentService {
	return &consulAgentService{ID: s.Name, Service: s.Name, Tags: nonNilTags(s.Tags), Meta: map[string]string{},
		Port: int(s.Port), Weights: consulWeights{Passing: int(max(s.Weight, 1)), Warning: 1}, Datacenter: h.cfg.Datacenter}
}

func nonNilTags(t []string) []string {
	if t == nil {
		return []string{}
	}
	return t
}

// serviceCheck is the service's check as Consul names it: "service:NAME".
func serviceCheck(in Instance, output string, idx uint64) consulHealthCheck {
	return consulHealthCheck{Node: in.Node, CheckID: "service:" + in.Service.Name, Name: "Service '" + in.Service.Name + "' check",
		Status: in.Health.String(), Output: output, ServiceID: in.Service.Name, ServiceName: in.Service.Name,
		ServiceTags: nonNilTags(in.Service.Tags), Type: "ttl", CreateIndex: idx, ModifyIndex: idx}
}

// serfHealth is the node check Consul attaches to every node: the catalog lists alive members only.
func serfHealth(node string, idx uint64) consulHealthCheck {
	return consulHealthCheck{Node: node, CheckID: "serfHealth", Name: "Serf Health Status", Status: "passing",
		Output: "Agent alive and reachable", ServiceTags: []string{}, CreateIndex: idx, ModifyIndex: idx}
}

// pathName reads and checks a :name path value: one DNS label (a service name).
func pathName(r *http.Request, key string) (string, error) {
	name := strings.ToLower(r.PathValue(key))
	if err := ValidateServiceName(name); err != nil {
		return "", badRequest("Invalid service name %q: %v", r.PathValue(key), err)
	}
	return name, nil
}

func hasAllTags(s Service, tags []string) bool {
	for _, t := range tags {
		if !hasTagFold(s.Tags, t) {
			return false
		}
	}
	return true
}

func (h *ConsulHandler) catalogServices(*http.Request) (any, error) {
	out := map[string][]string{}
	for _, in := range h.cat.All() {
		tags := out[in.Service.Name]
		if tags == nil {
			tags = []string{}
		}
		for _, t := range in.Service.Tags {
			if !slices.Contains(tags, t) {
				tags = append(tags, t)
			}
		}
		slices.Sort(tags)
		out[in.Service.Name] = tags
	}
	return out, nil
}

func (h *ConsulHandler) instances(r *http.Request, onlyPassing bool) ([]Instance, error) {
	name, err := pathName(r, "name")
	if err != nil {
		return nil, err
	}
	tags := r.URL.Query()["tag"]
	var out []Instance
	for _, in := range h.cat.Instances(name, onlyPassing) {
		if hasAllTags(in.Service, tags) {
			out = append(out, in)
		}
	}
	return out, nil
}

func (h *ConsulHandler) catalogService(r *http.Request) (any, error) {
	ins, err := h.instances(r, false)
	if err != nil {
		return nil, err
	}
	idx := h.cat.Index()
	out := make([]consulCatalogService, 0, len(ins))
	for _, in := range ins {
		n := h.node(in.Node, in.Addr, idx)
		out = append(out, consulCatalogService{ID: n.ID, Node: in.Node, Address: n.Address, Datacenter: h.cfg.Datacenter,
			TaggedAddresses: n.TaggedAddresses, NodeMeta: map[string]string{}, ServiceID: in.Service.Name,
			ServiceName: in.Service.Name, ServiceTags: nonNilTags(in.Service.Tags), ServiceMeta: map[string]string{},
			ServicePort: int(in.Service.Port), ServiceWeights: consulWeights{Passing: int(max(in.Service.Weight, 1)), Warning: 1},
			CreateIndex: idx, ModifyIndex: idx})
	}
	return out, nil
}

func (h *ConsulHandler) catalogNodes(*http.Request) (any, error) {
	idx := h.cat.Index()
	out := []*consulNode{}
	for _, name := range h.cat.Nodes() {
		addr, _ := h.cat.NodeAddr(name)
		out = append(out, h.node(name, addr, idx))
	}
	return out, nil
}

func (h *ConsulHandler) catalogNode(r *http.Request) (any, error) {
	name := r.PathValue("node")
	if len(name) == 0 || len(name) > maxConsulNodeName || strings.ContainsAny(name, "/\\") || strings.Contains(name, "..") {
		return nil, badRequest("Invalid node name %q", name)
	}
	addr, ok := h.cat.NodeAddr(name)
	if !ok && !slices.ContainsFunc(h.cat.Nodes(), func(n string) bool { return strings.EqualFold(n, name) }) {
		return nil, nil // Consul answers an unknown node with 200 and null
	}
	idx := h.cat.Index()
	out := &consulCatalogNode{Services: map[string]*consulAgentService{}}
	for _, in := range h.cat.All() {
		if strings.EqualFold(in.Node, name) {
			out.Services[in.Service.Name] = h.agentService(in.Service)
			name = in.Node
		}
	}
	out.Node = h.node(name, addr, idx)
	return out, nil
}

func (h *ConsulHandler) healthService(r *http.Request) (any, error) {
	passing := false
	if v, ok := r.URL.Query()["passing"]; ok {
		// ?passing, ?passing=1, ?passing=true; ?passing=false means all.
		passing = len(v) == 0 || v[0] == "" || v[0] == "1" || strings.EqualFold(v[0], "true")
	}
	ins, err := h.instances(r, passing)
	if err != nil {
		return nil, err
	}
	idx := h.cat.Index()
	outputs := h.localOutputs()
	out := make([]consulServiceEntry, 0, len(ins))
	for _, in := range ins {
		out = append(out, consulServiceEntry{
			Node:    h.node(in.Node, in.Addr, idx),
			Service: h.agentService(in.Service),
			Checks:  []consulHealthCheck{serfHealth(in.Node, idx), serviceCheck(in, outputs[in.Node+"/"+in.Service.Name], idx)},
		})
	}
	return out, nil
}

// localOutputs are the last check outputs of local services, keyed by "node/name" (only
// the owner knows them: gossip carries the state, not the output).
func (h *ConsulHandler) localOutputs() map[string]string {
	out := map[string]string{}
	for _, l := range h.cat.Local() {
		out[h.cfg.Node+"/"+l.Service.Name] = l.Output
	}
	return out
}

func (h *ConsulHandler) healthChecks(r *http.Request) (any, error) {
	ins, err := h.instances(r, false)
	if err != nil {
		return nil, err
	}
	idx := h.cat.Index()
	outputs := h.localOutputs()
	out := make([]consulHealthCheck, 0, len(ins))
	for _, in := range ins {
		out = append(out, serviceCheck(in, outputs[in.Node+"/"+in.Service.Name], idx))
	}
	return out, nil
}

func (h *ConsulHandler) agentSelf(*http.Request) (any, error) {
	addr, _ := h.cat.NodeAddr(h.cfg.Node)
	a := ""
	if addr.IsValid() {
		a = addr.String()
	}
	return map[string]any{
		"Config": map[string]any{
			"Datacenter": h.cfg.Datacenter, "NodeName": h.cfg.Node, "NodeID": nodeID(h.cfg.Node),
			"Server": false, "Revision": "weft", "Version": h.cfg.Version,
		},
		"Member": h.selfMember(a),
		"Meta":   map[string]string{},
	}, nil
}

func (h *ConsulHandler) selfMember(addr string) consulMember {
	for _, m := range h.members() {
		if m.Name == h.cfg.Node {
			return m
		}
	}
	return consulMember{Name: h.cfg.Node, Addr: addr, Status: 1, Tags: map[string]string{}}
}

func (h *ConsulHandler) agentServices(*http.Request) (any, error) {
	out := map[string]*consulAgentService{}
	for _, l := range h.cat.Local() {
		out[l.Service.Name] = h.agentService(l.Service)
	}
	return out, nil
}

var memberStatus = map[string]int{"alive": 1, "leaving": 2, "left": 3, "failed": 4}

func (h *ConsulHandler) members() []consulMember {
	if h.cfg.Members == nil {
		addr, _ := h.cat.NodeAddr(h.cfg.Node)
		a := ""
		if addr.IsValid() {
			a = addr.String()
		}
		return []consulMember{{Name: h.cfg.Node, Addr: a, Status: 1, Tags: map[string]string{}}}
	}
	var out []consulMember
	for _, m := range h.cfg.Members.ConsulMembers() {
		tags := map[string]string{}
		for k, v := range m.Tags {
			tags[k] = v
		}
		tags["dc"] = h.cfg.Datacenter
		tags["role"] = "node"
		out = append(out, consulMember{Name: m.Name, Addr: m.Addr.Addr().String(), Port: m.Addr.Port(), Tags: tags,
			Status: memberStatus[m.Status], ProtocolMin: 1, ProtocolMax: 5, ProtocolCur: 2, DelegateMin: 2, DelegateMax: 5, DelegateCur: 4})
	}
	slices.SortFunc(out, func(a, b consulMember) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func (h *ConsulHandler) agentMembers(*http.Request) (any, error) {
	out := h.members()
	if out == nil {
		out = []consulMember{}
	}
	return out, nil
}

// statusLeader: every weft agent is the authority for its own view, so it names itself.
func (h *ConsulHandler) statusLeader(r *http.Request) (any, error) {
	return h.selfAddr(r), nil
}

func (h *ConsulHandler) selfAddr(r *http.Request) string {
	if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok && la != nil {
		return la.String()
	}
	return ""
}

func (h *ConsulHandler) statusPeers(r *http.Request) (any, error) {
	return []string{h.selfAddr(r)}, nil
}

// ConsulServer serves a ConsulHandler on listen addresses.
type ConsulServer struct {
	h   http.Handler
	log *slog.Logger
	// base is every request's parent context: Shutdown cancels it first, so blocking
	// queries answer at once and the graceful shutdown does not wait out their ?wait.
	base   context.Context
	cancel context.CancelFunc
	mu     sync.Mutex
	srvs   []*http.Server
	addrs  []netip.AddrPort
	wg     sync.WaitGroup
}

// NewConsulServer binds every address (host:port; port 0 picks one) and serves h on them
// until Shutdown. On error nothing stays bound.
func NewConsulServer(listen []string, h http.Handler, log *slog.Logger) (*ConsulServer, error) {
	if len(listen) == 0 {
		return nil, errors.New("catalog: consul: no listen address")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &ConsulServer{h: h, log: log}
	s.base, s.cancel = context.WithCancel(context.Background())
	var lns []net.Listener
	for _, addr := range listen {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			s.cancel()
			return nil, fmt.Errorf("catalog: consul: listen %s: %w", addr, err)
		}
		lns = append(lns, ln)
		s.addrs = append(s.addrs, ln.Addr().(*net.TCPAddr).AddrPort())
	}
	for _, ln := range lns {
		srv := &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      ConsulMaxWait + time.Minute, // a blocking query answers within its wait
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    16 << 10,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
			BaseContext:       func(net.Listener) context.Context { return s.base },
		}
		s.srvs = append(s.srvs, srv)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("consul api stopped", "addr", ln.Addr(), "err", err)
			}
		}()
	}
	log.Info("consul api listening", "addrs", s.addrs)
	return s, nil
}

// Addrs returns the bound addresses.
func (s *ConsulServer) Addrs() []netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.addrs)
}

// Shutdown stops the servers; blocking queries still waiting are cut when ctx ends.
func (s *ConsulServer) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	srvs := s.srvs
	s.srvs = nil
	s.mu.Unlock()
	s.cancel()
	var errs []error
	for _, srv := range srvs {
		if err := srv.Shutdown(ctx); err != nil {
			errs = append(errs, err, srv.Close())
		}
	}
	s.wg.Wait()
	return errors.Join(errs...)
}
