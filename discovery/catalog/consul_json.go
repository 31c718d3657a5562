package catalog

// Consul's JSON shapes (the fields its clients read; Go field names are the JSON keys),
// and how weft's services, instances and members are written into them.

import (
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

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
