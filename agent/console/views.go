package console

// The JSON the page reads besides the cluster (sampler.go): services grouped by name with
// their worst health, the policy with its counters, and the flow test.

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/weftnet/weft/agent/api"
	"github.com/weftnet/weft/discovery/catalog"
)

// Services is /api/services and the "services" event.
type Services struct {
	Index    uint64    `json:"index"`
	Running  bool      `json:"running"` // false: no catalog
	Services []Service `json:"services"`
}

// Service is one service name: its instances and the worst of their health.
type Service struct {
	Name      string     `json:"name"`
	Health    string     `json:"health"`
	Passing   int        `json:"passing"`
	Instances []Instance `json:"instances"`
}

// Instance is one instance; Output is its check's last output, known for this host's own.
type Instance struct {
	Node   string   `json:"node"`
	Addr   string   `json:"addr"`
	Port   uint16   `json:"port"`
	Tags   []string `json:"tags,omitempty"`
	Health string   `json:"health"`
	Check  string   `json:"check,omitempty"` // "http http://…", "ttl", …
	Output string   `json:"output,omitempty"`
}

func (s *Server) services() Services {
	out := Services{Services: []Service{}}
	cat := s.src.Catalog
	if cat == nil {
		return out
	}
	out.Running = true
	out.Index = cat.Index()
	self := ""
	if s.src.Self != nil {
		self = s.src.Self()
	}
	outputs := map[string]string{}
	for _, l := range cat.Local() {
		outputs[l.Service.Name] = l.Output
	}
	by := map[string]*Service{}
	for _, in := range cat.All() {
		sv := by[in.Service.Name]
		if sv == nil {
			sv = &Service{Name: in.Service.Name, Health: catalog.HealthPassing.String()}
			by[in.Service.Name] = sv
		}
		addr := in.Addr
		if in.Service.Address.IsValid() {
			addr = in.Service.Address
		}
		iv := Instance{Node: in.Node, Addr: addr.String(), Port: in.Service.Port, Tags: in.Service.Tags, Health: in.Health.String()}
		if c := in.Service.Check; c != nil {
			iv.Check = strings.TrimSpace(c.Kind.String() + " " + c.Target)
		}
		if in.Node == self {
			iv.Output = outputs[in.Service.Name]
		}
		if in.Health == catalog.HealthPassing {
			sv.Passing++
		}
		if in.Health > healthOf(sv.Health) {
			sv.Health = in.Health.String()
		}
		sv.Instances = append(sv.Instances, iv)
	}
	for _, sv := range by {
		slices.SortFunc(sv.Instances, func(a, b Instance) int { return strings.Compare(a.Node, b.Node) })
		out.Services = append(out.Services, *sv)
	}
	slices.SortFunc(out.Services, func(a, b Service) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func healthOf(s string) catalog.Health {
	var h catalog.Health
	_ = h.UnmarshalText([]byte(s))
	return h
}

// Policy is /api/policy and the "policy" event.
type Policy struct {
	Source   string            `json:"source"`
	Version  uint64            `json:"version"`
	Enforced bool              `json:"enforced"`
	Flows    int               `json:"flows"`
	Drops    map[string]uint64 `json:"drops"`
	// TotalDrops is every packet the policy refused, all reasons.
	TotalDrops uint64            `json:"total_drops"`
	Refused    map[string]uint64 `json:"refused,omitempty"`
	Document   string            `json:"document,omitempty"`
	Rules      []Rule            `json:"rules"`
}

// Rule is one rule with its counters (Index -1: the default).
type Rule struct {
	Index  int    `json:"index"`
	Name   string `json:"name,omitempty"`
	Action string `json:"action"`
	Rule   string `json:"rule"`
	Hits   uint64 `json:"hits"`
	Drops  uint64 `json:"drops"`
}

var errNoPolicy = errors.New("network policy is not running yet")

func (s *Server) policy() (Policy, error) {
	if s.src.Policy == nil {
		return Policy{}, errNoPolicy
	}
	st, err := s.src.Policy()
	if err != nil {
		return Policy{}, err
	}
	p := Policy{Source: st.Source, Version: st.Version, Enforced: st.Enforced, Flows: st.Flows, Drops: st.Drops,
		Refused: st.Refused, Document: st.Document, Rules: make([]Rule, 0, len(st.Rules))}
	if p.Drops == nil {
		p.Drops = map[string]uint64{}
	}
	for _, n := range st.Drops {
		p.TotalDrops += n
	}
	for _, r := range st.Rules {
		p.Rules = append(p.Rules, Rule{Index: r.Index, Name: r.Name, Action: string(r.Action), Rule: r.Rule, Hits: r.Hits, Drops: r.Drops})
	}
	return p, nil
}

// PolicyTest is /api/policy/test: the agent's answer and the verdict the form shows.
type PolicyTest struct {
	api.PolicyTest
	Verdict string `json:"verdict"` // allow or deny
}

// policyTest answers ?from=A&to=B&port=P[&proto=tcp|udp|icmp] with the code of
// `weft policy test`.
func (s *Server) policyTest(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	from, to, port, proto := q.Get("from"), q.Get("to"), q.Get("port"), strings.ToLower(q.Get("proto"))
	switch proto {
	case "", "tcp", "udp":
		if proto != "" {
			port += "/" + proto
		}
	case "icmp":
		port = "icmp"
	default:
		writeJSON(w, http.StatusBadRequest, api.Error{Error: fmt.Sprintf("proto %q: must be tcp, udp or icmp", proto)})
		return
	}
	if from == "" || to == "" || (port == "" && proto != "icmp") {
		writeJSON(w, http.StatusBadRequest, api.Error{Error: "from, to and port are needed (a member's name or an address; a port)"})
		return
	}
	if s.src.PolicyTest == nil {
		writeJSON(w, http.StatusServiceUnavailable, api.Error{Error: errNoPolicy.Error()})
		return
	}
	res, err := s.src.PolicyTest(from, to, port)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, api.Error{Error: err.Error()})
		return
	}
	v := "deny"
	if res.Allowed {
		v = "allow"
	}
	writeJSON(w, http.StatusOK, PolicyTest{PolicyTest: res, Verdict: v})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
