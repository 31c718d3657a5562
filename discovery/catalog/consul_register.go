package catalog

// The writes of the Consul API: a Consul registration mapped onto a weft Service, and the
// TTL updates. The body is decoded with unknown fields refused; every Consul field weft
// cannot honour is refused with 400 naming it, so a client never believes in a
// registration that weft does not keep.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"
)

// consulRegistration is Consul's AgentServiceRegistration: every field its clients send,
// so that only fields Consul does not know count as unknown.
type consulRegistration struct {
	Kind              string
	ID                string
	Name              string
	Tags              []string
	Port              int
	Ports             json.RawMessage
	Address           string
	SocketPath        string
	TaggedAddresses   json.RawMessage
	EnableTagOverride bool
	Meta              map[string]string
	Weights           *consulWeights
	Check             *consulCheck
	Checks            []*consulCheck
	Proxy             json.RawMessage
	Connect           json.RawMessage
	Namespace         string
	Partition         string
	Locality          json.RawMessage
}

// consulCheck is Consul's AgentServiceCheck.
type consulCheck struct {
	CheckID                        string
	Name                           string
	ScriptArgs                     []string
	Args                           []string
	DockerContainerID              string
	Shell                          string
	Interval                       string
	Timeout                        string
	TTL                            string
	HTTP                           string
	Header                         map[string][]string
	Method                         string
	Body                           string
	TCP                            string
	TCPUseTLS                      bool
	UDP                            string
	Status                         string
	Notes                          string
	TLSServerName                  string
	TLSSkipVerify                  bool
	GRPC                           string
	GRPCUseTLS                     bool
	H2PING                         string
	H2PingUseTLS                   bool
	AliasNode                      string
	AliasService                   string
	OSService                      string
	SuccessBeforePassing           int
	FailuresBeforeWarning          int
	FailuresBeforeCritical         int
	DeregisterCriticalServiceAfter string
	ServiceID                      string
}

func rawSet(m json.RawMessage) bool {
	s := strings.TrimSpace(string(m))
	return s != "" && s != "null" && s != "{}" && s != "[]"
}

// decodeConsulRegistration parses a registration body strictly: one JSON object, no
// unknown fields, nothing after it.
func decodeConsulRegistration(r io.Reader) (consulRegistration, error) {
	var reg consulRegistration
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&reg); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return reg, err
		}
		return reg, badRequest("Request decode failed: %v", err)
	}
	if dec.More() {
		return reg, badRequest("Request decode failed: data after the JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return reg, badRequest("Request decode failed: data after the JSON object")
	}
	return reg, nil
}

// toService maps a Consul registration onto a weft Service, refusing what does not map.
// self is this host's overlay address: the only Address a registration may name.
func (reg consulRegistration) toService(self netip.Addr) (Service, error) {
	unsupported := func(field, why string) error {
		return badRequest("Invalid service: %s is not supported by weft: %s", field, why)
	}
	switch {
	case reg.Kind != "" && reg.Kind != "typical":
		return Service{}, unsupported("Kind", "only typical services (no Connect proxies or gateways)")
	case rawSet(reg.Ports):
		return Service{}, unsupported("Ports", "one Port per service")
	case reg.SocketPath != "":
		return Service{}, unsupported("SocketPath", "services are reached over the overlay address")
	case rawSet(reg.TaggedAddresses):
		return Service{}, unsupported("TaggedAddresses", "a service has the host's overlay address")
	case reg.EnableTagOverride:
		return Service{}, unsupported("EnableTagOverride", "tags belong to the registering host")
	case len(reg.Meta) > 0:
		return Service{}, unsupported("Meta", "the gossip catalog carries name, port, tags and weight only; use Tags")
	case rawSet(reg.Proxy), rawSet(reg.Connect):
		return Service{}, unsupported("Connect/Proxy", "no service mesh")
	case reg.Namespace != "" && reg.Namespace != "default", reg.Partition != "" && reg.Partition != "default":
		return Service{}, unsupported("Namespace/Partition", "one namespace")
	case rawSet(reg.Locality):
		return Service{}, unsupported("Locality", "no locality-aware routing")
	case len(reg.Checks) > 1 || (reg.Check != nil && len(reg.Checks) > 0):
		return Service{}, unsupported("Checks", "at most one check per service")
	}
	if reg.Address != "" {
		a, err := netip.ParseAddr(reg.Address)
		if err != nil || a.Unmap() != self {
			return Service{}, unsupported("Address", fmt.Sprintf("a service is answered at the host's overlay address %v; omit Address", self))
		}
	}
	if reg.Port < 1 || reg.Port > 65535 {
		return Service{}, badRequest("Invalid service: Port %d: want 1-65535", reg.Port)
	}
	name := strings.ToLower(reg.Name)
	if reg.ID != "" && !strings.EqualFold(reg.ID, reg.Name) {
		return Service{}, unsupported("ID", "a service's ID is its name (one instance per name per host); omit ID or set it to Name")
	}
	s := Service{Name: name, Port: uint16(reg.Port), Tags: reg.Tags}
	if reg.Weights != nil {
		if reg.Weights.Passing < 0 || reg.Weights.Passing > 65535 {
			return Service{}, badRequest("Invalid service: Weights.Passing %d: want 1-65535", reg.Weights.Passing)
		}
		if reg.Weights.Warning > 1 {
			return Service{}, unsupported("Weights.Warning", "warning instances are not answered")
		}
		s.Weight = uint16(reg.Weights.Passing)
	}
	chk := reg.Check
	if len(reg.Checks) == 1 {
		chk = reg.Checks[0]
	}
	if chk != nil {
		def, err := chk.toCheckDef(name)
		if err != nil {
			return Service{}, err
		}
		s.Check = def
	}
	s = s.Normalized()
	if err := s.Validate(); err != nil {
		return Service{}, badRequest("Invalid service: %v", err)
	}
	return s, nil
}

func parseCheckDur(field, v string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, badRequest("Invalid check: %s %q: want a duration like 10s", field, v)
	}
	return d, nil
}

// toCheckDef maps a Consul check onto ttl, http or tcp.
func (c *consulCheck) toCheckDef(service string) (*CheckDef, error) {
	unsupported := func(field, why string) error {
		return badRequest("Invalid check: %s is not supported by weft: %s", field, why)
	}
	switch {
	case len(c.ScriptArgs) > 0 || len(c.Args) > 0:
		return nil, unsupported("Args", "script checks run commands as the agent's user; declare exec checks in weft.yaml")
	case c.DockerContainerID != "" || c.Shell != "":
		return nil, unsupported("DockerContainerID", "no Docker checks")
	case c.GRPC != "" || c.GRPCUseTLS:
		return nil, unsupported("GRPC", "use an HTTP or TCP check")
	case c.H2PING != "" || c.H2PingUseTLS:
		return nil, unsupported("H2PING", "use an HTTP or TCP check")
	case c.UDP != "":
		return nil, unsupported("UDP", "use a TCP or TTL check")
	case c.AliasNode != "" || c.AliasService != "":
		return nil, unsupported("AliasService", "no alias checks")
	case c.OSService != "":
		return nil, unsupported("OSService", "no OS service checks")
	case c.TCPUseTLS:
		return nil, unsupported("TCPUseTLS", "a TCP check only connects")
	case len(c.Header) > 0:
		return nil, unsupported("Header", "HTTP checks send a plain GET")
	case c.Method != "" && !strings.EqualFold(c.Method, "GET"):
		return nil, unsupported("Method", "HTTP checks send GET")
	case c.Body != "":
		return nil, unsupported("Body", "HTTP checks send GET")
	case c.TLSServerName != "" || c.TLSSkipVerify:
		return nil, unsupported("TLSSkipVerify/TLSServerName", "HTTPS checks verify with the system roots")
	case c.FailuresBeforeWarning != 0:
		return nil, unsupported("FailuresBeforeWarning", "a failing check goes straight to its result after FailuresBeforeCritical")
	case c.DeregisterCriticalServiceAfter != "":
		return nil, unsupported("DeregisterCriticalServiceAfter", "a critical service stays registered (it is not answered) until deregistered")
	case c.Status != "" && c.Status != "critical":
		return nil, unsupported("Status", "a new check starts critical until it passes")
	case c.CheckID != "" && !strings.EqualFold(c.CheckID, "service:"+service) && !strings.EqualFold(c.CheckID, service):
		return nil, unsupported("CheckID", fmt.Sprintf("a service's check is %q", "service:"+service))
	case c.ServiceID != "" && !strings.EqualFold(c.ServiceID, service):
		return nil, unsupported("ServiceID", "a check belongs to the service it is registered with")
	case c.SuccessBeforePassing < 0 || c.FailuresBeforeCritical < 0:
		return nil, badRequest("Invalid check: thresholds must not be negative")
	}
	kinds := 0
	for _, s := range []string{c.TTL, c.HTTP, c.TCP} {
		if s != "" {
			kinds++
		}
	}
	if kinds != 1 {
		return nil, badRequest("Invalid check: exactly one of TTL, HTTP or TCP is needed (weft maps these three)")
	}
	interval, err := parseCheckDur("Interval", c.Interval)
	if err != nil {
		return nil, err
	}
	timeout, err := parseCheckDur("Timeout", c.Timeout)
	if err != nil {
		return nil, err
	}
	def := &CheckDef{Interval: interval, Timeout: timeout,
		FailuresBeforeCritical: c.FailuresBeforeCritical, PassesBeforePassing: c.SuccessBeforePassing}
	switch {
	case c.TTL != "":
		if def.TTL, err = parseCheckDur("TTL", c.TTL); err != nil {
			return nil, err
		}
		def.Kind, def.Interval, def.Timeout = CheckTTL, 0, 0
	case c.HTTP != "":
		def.Kind, def.Target = CheckHTTP, c.HTTP
		if interval == 0 {
			return nil, badRequest("Invalid check: HTTP needs Interval")
		}
	default:
		if _, _, err := net.SplitHostPort(c.TCP); err != nil {
			return nil, badRequest("Invalid check: TCP %q: want host:port", c.TCP)
		}
		def.Kind, def.Target = CheckTCP, c.TCP
		if interval == 0 {
			return nil, badRequest("Invalid check: TCP needs Interval")
		}
	}
	return def, nil
}

func (h *ConsulHandler) serviceRegister(w http.ResponseWriter, r *http.Request) error {
	reg, err := decodeConsulRegistration(r.Body)
	if err != nil {
		return err
	}
	self, _ := h.cat.NodeAddr(h.cfg.Node)
	s, err := reg.toService(self)
	if err != nil {
		return err
	}
	return h.cat.Register(s)
}

func (h *ConsulHandler) serviceDeregister(w http.ResponseWriter, r *http.Request) error {
	id := strings.ToLower(r.PathValue("id"))
	if err := ValidateServiceName(id); err != nil {
		return badRequest("Invalid service ID %q: %v", r.PathValue("id"), err)
	}
	if err := h.cat.Deregister(id); err != nil {
		if errors.Is(err, ErrUnknownService) {
			return &httpError{http.StatusNotFound, fmt.Sprintf("Unknown service ID %q", id)}
		}
		return err
	}
	return nil
}

// checkService maps a check ID ("service:NAME", or NAME) to its service.
func checkService(id string) (string, error) {
	name := strings.ToLower(id)
	name = strings.TrimPrefix(name, "service:")
	if err := ValidateServiceName(name); err != nil {
		return "", badRequest("Invalid check ID %q: weft's check IDs are service:NAME", id)
	}
	return name, nil
}

// checkUpdate serves /v1/agent/check/{pass,warn,fail,update}/:id for ttl checks.
func (h *ConsulHandler) checkUpdate(verb string) writeFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		name, err := checkService(r.PathValue("id"))
		if err != nil {
			return err
		}
		note := r.URL.Query().Get("note")
		health := map[string]Health{"pass": HealthPassing, "warn": HealthWarning, "fail": HealthCritical}[verb]
		if verb == "update" {
			var body struct{ Status, Output string }
			b, err := io.ReadAll(r.Body)
			if err != nil {
				return err
			}
			dec := json.NewDecoder(bytes.NewReader(b))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&body); err != nil {
				return badRequest("Request decode failed: %v", err)
			}
			if err := health.UnmarshalText([]byte(body.Status)); err != nil {
				return badRequest("Invalid check status %q: want passing, warning or critical", body.Status)
			}
			note = body.Output
		}
		if len(note) > maxCheckOutput {
			note = note[:maxCheckOutput]
		}
		if err := h.cat.UpdateTTL(name, health, note); err != nil {
			if errors.Is(err, ErrUnknownService) {
				return &httpError{http.StatusNotFound, fmt.Sprintf("Unknown check ID %q", r.PathValue("id"))}
			}
			return err
		}
		return nil
	}
}

// UpdateTTL sets a ttl check's state and restarts its timer, as Consul's TTL updates do:
// passing is Renew; warning and critical hold until the next update or the TTL's expiry.
func (c *Catalog) UpdateTTL(name string, h Health, output string) error {
	if h == HealthPassing && output == "" {
		return c.Renew(name)
	}
	if output == "" {
		output = h.String() + " at " + time.Now().UTC().Format(time.RFC3339)
	}
	return c.setTTL("update", name, h, output)
}
