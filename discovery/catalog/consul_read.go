package catalog

// The read endpoints of the Consul API: catalog, health, agent and status, each a
// readFunc that the blocking query (consul_query.go) wraps.

import (
	"net"
	"net/http"
	"slices"
	"strings"
)

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
