package catalog

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	consul "github.com/hashicorp/consul/api"

	"github.com/weftnet/weft/internal/testkit"
)

// consulCluster is n catalogs whose tags reach each other as gossip would deliver them
// (the tag codec end to end), each with the Consul API on its own loopback listener.
type consulCluster struct {
	cats    []*Catalog
	servers []*httptest.Server
	clients []*consul.Client
}

func nodeName(i int) string { return fmt.Sprintf("host-%c", 'a'+i) }

func newConsulCluster(t *testing.T, n int, cfg func(*ConsulConfig)) *consulCluster {
	t.Helper()
	cl := &consulCluster{}
	var mu sync.Mutex
	addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 42, byte(i + 1), 1}) }
	for i := range n {
		publish := func(v string) error {
			mu.Lock()
			defer mu.Unlock()
			for j, o := range cl.cats {
				if j != i && o != nil {
					if err := o.UpdateNode(nodeName(i), addr(i), v); err != nil {
						return err
					}
				}
			}
			return nil
		}
		c, _ := newTestCatalog(t, CatalogConfig{Node: nodeName(i), Addr: addr(i), Publish: publish})
		mu.Lock()
		cl.cats = append(cl.cats, c)
		mu.Unlock()
	}
	// Every node learns every other (an empty tag is a member without services).
	for i, c := range cl.cats {
		for j, o := range cl.cats {
			if i != j {
				if err := o.UpdateNode(nodeName(i), addr(i), c.Tag()); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	for i, c := range cl.cats {
		cc := ConsulConfig{Node: nodeName(i), Version: "test", Logger: testLogger(t)}
		if cfg != nil {
			cfg(&cc)
		}
		h, err := NewConsulHandler(cc, c)
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		client, err := consul.NewClient(&consul.Config{Address: srv.Listener.Addr().String(), HttpClient: srv.Client()})
		if err != nil {
			t.Fatal(err)
		}
		cl.servers = append(cl.servers, srv)
		cl.clients = append(cl.clients, client)
	}
	return cl
}

// TestConsulAPI_OfficialClient drives weft with HashiCorp's own Go client: register with
// a TTL check on one host, see it from another, pass the TTL, block until a third host
// registers, deregister.
func TestConsulAPI_OfficialClient(t *testing.T) {
	cl := newConsulCluster(t, 3, nil)
	a, b, c := cl.clients[0], cl.clients[1], cl.clients[2]

	err := a.Agent().ServiceRegister(&consul.AgentServiceRegistration{
		Name: "web", Port: 8080, Tags: []string{"v2", "http"},
		Check: &consul.AgentServiceCheck{TTL: "30s"},
	})
	if err != nil {
		t.Fatal(err)
	}
	svcs, err := a.Agent().Services()
	if err != nil || svcs["web"] == nil || svcs["web"].Port != 8080 {
		t.Fatalf("a's agent services: %v %+v", err, svcs)
	}

	// b sees it in the catalog, critical until the TTL passes.
	entries, meta, err := b.Catalog().Service("web", "v2", nil)
	if err != nil || len(entries) != 1 {
		t.Fatalf("b: Catalog().Service: %v %+v", err, entries)
	}
	if e := entries[0]; e.Node != "host-a" || e.Address != "10.42.1.1" || e.ServicePort != 8080 || e.ServiceID != "web" {
		t.Fatalf("b: catalog entry %+v", e)
	}
	if meta.LastIndex == 0 || !meta.KnownLeader {
		t.Fatalf("b: query meta %+v: want an index and a known leader", meta)
	}
	if entries, _, _ := b.Catalog().Service("web", "nosuchtag", nil); len(entries) != 0 {
		t.Fatalf("tag filter: %+v", entries)
	}
	passing, _, err := b.Health().Service("web", "", true, nil)
	if err != nil || len(passing) != 0 {
		t.Fatalf("b: passing before the TTL passed: %v %+v", err, passing)
	}

	if err := a.Agent().PassTTL("service:web", "ok"); err != nil {
		t.Fatal(err)
	}
	var entry *consul.ServiceEntry
	testkit.Eventually(t, testkit.Timeout, func() bool {
		p, _, err := b.Health().Service("web", "", true, nil)
		if err == nil && len(p) == 1 {
			entry = p[0]
		}
		return entry != nil
	}, "b sees web passing")
	if entry.Node.Node != "host-a" || entry.Node.Address != "10.42.1.1" || entry.Service.Port != 8080 ||
		entry.Checks.AggregatedStatus() != consul.HealthPassing {
		t.Fatalf("health entry %+v node %+v service %+v status %s", entry, entry.Node, entry.Service, entry.Checks.AggregatedStatus())
	}
	if checks, _, err := b.Health().Checks("web", nil); err != nil || len(checks) != 1 || checks[0].Status != "passing" {
		t.Fatalf("b: health checks %v %+v", err, checks)
	}

	// A blocking query on b returns when c registers.
	_, meta, err = b.Catalog().Services(nil)
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		svcs map[string][]string
		meta *consul.QueryMeta
		err  error
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		s, m, err := b.Catalog().Services(&consul.QueryOptions{WaitIndex: meta.LastIndex, WaitTime: time.Minute})
		done <- result{s, m, err}
	}()
	select {
	case r := <-done:
		t.Fatalf("blocking query returned before any change: %+v", r)
	case <-time.After(200 * time.Millisecond):
	}
	if err := c.Agent().ServiceRegister(&consul.AgentServiceRegistration{Name: "db", Port: 5432}); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if r.err != nil || r.meta.LastIndex <= meta.LastIndex {
			t.Fatalf("blocking query: %v, index %d after %d", r.err, r.meta.LastIndex, meta.LastIndex)
		}
		if _, ok := r.svcs["db"]; !ok {
			t.Fatalf("blocking query returned without db: %v", r.svcs)
		}
		t.Logf("blocking query returned %v after the third host registered", time.Since(start).Round(time.Millisecond))
	case <-time.After(10 * time.Second):
		t.Fatal("blocking query did not return after the third host registered")
	}

	nodes, _, err := b.Catalog().Nodes(nil)
	if err != nil || len(nodes) != 3 {
		t.Fatalf("nodes: %v %+v", err, nodes)
	}
	node, _, err := b.Catalog().Node("host-c", nil)
	if err != nil || node == nil || node.Services["db"] == nil || node.Node.Address != "10.42.3.1" {
		t.Fatalf("node host-c: %v %+v", err, node)
	}
	if node, _, err := b.Catalog().Node("nosuch", nil); err != nil || node != nil {
		t.Fatalf("unknown node: %v %+v", err, node)
	}
	self, err := b.Agent().Self()
	if err != nil || self["Config"]["Datacenter"] != "dc1" || self["Config"]["NodeName"] != "host-b" {
		t.Fatalf("agent self: %v %+v", err, self)
	}
	if members, err := b.Agent().Members(false); err != nil || len(members) != 1 || members[0].Status != 1 {
		t.Fatalf("members: %v %+v", err, members)
	}
	if leader, err := b.Status().Leader(); err != nil || leader == "" {
		t.Fatalf("leader: %q %v", leader, err)
	}
	if peers, err := b.Status().Peers(); err != nil || len(peers) != 1 {
		t.Fatalf("peers: %v %v", peers, err)
	}

	if err := a.Agent().FailTTL("service:web", "broken"); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, testkit.Timeout, func() bool {
		p, _, err := b.Health().Service("web", "", true, nil)
		return err == nil && len(p) == 0
	}, "b sees web critical")
	if err := a.Agent().UpdateTTL("service:web", "fine again", consul.HealthPassing); err != nil {
		t.Fatal(err)
	}
	if err := a.Agent().ServiceDeregister("web"); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, testkit.Timeout, func() bool {
		e, _, err := b.Catalog().Service("web", "", nil)
		return err == nil && len(e) == 0
	}, "b no longer sees web")
	if err := a.Agent().ServiceDeregister("web"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("deregistering twice: %v, want a 404", err)
	}
}

// TestConsulAPI_RegisterRefusesWhatDoesNotMap: a Consul field weft cannot keep is a 400
// naming it, never dropped in silence.
func TestConsulAPI_RegisterRefusesWhatDoesNotMap(t *testing.T) {
	cl := newConsulCluster(t, 1, nil)
	a := cl.clients[0]
	for _, tc := range []struct {
		reg   consul.AgentServiceRegistration
		field string
	}{
		{consul.AgentServiceRegistration{Name: "x", Port: 1, Meta: map[string]string{"k": "v"}}, "Meta"},
		{consul.AgentServiceRegistration{Name: "x", Port: 1, ID: "x-1"}, "ID"},
		{consul.AgentServiceRegistration{Name: "x", Port: 1, Address: "192.0.2.1"}, "Address"},
		{consul.AgentServiceRegistration{Name: "x", Port: 0}, "Port"},
		{consul.AgentServiceRegistration{Name: "x_y", Port: 1}, "name"},
		{consul.AgentServiceRegistration{Name: "x", Port: 1, Check: &consul.AgentServiceCheck{Args: []string{"/bin/true"}, Interval: "10s"}}, "Args"},
		{consul.AgentServiceRegistration{Name: "x", Port: 1, Check: &consul.AgentServiceCheck{GRPC: "x:1", Interval: "10s"}}, "GRPC"},
		{consul.AgentServiceRegistration{Name: "x", Port: 1, Check: &consul.AgentServiceCheck{TTL: "10s", DeregisterCriticalServiceAfter: "1m"}}, "DeregisterCriticalServiceAfter"},
		{consul.AgentServiceRegistration{Name: "x", Port: 1, Check: &consul.AgentServiceCheck{HTTP: "http://x/", Interval: "10s", Method: "POST"}}, "Method"},
		{consul.AgentServiceRegistration{Name: "x", Port: 1, Check: &consul.AgentServiceCheck{TTL: "soon"}}, "TTL"},
		{consul.AgentServiceRegistration{Name: "x", Port: 1, Check: &consul.AgentServiceCheck{TCP: "nohostport", Interval: "1s"}}, "TCP"},
		{consul.AgentServiceRegistration{Name: "x", Port: 1, Checks: consul.AgentServiceChecks{{TTL: "1s"}, {TTL: "2s"}}}, "Checks"},
		{consul.AgentServiceRegistration{Name: "x", Port: 1, Tags: []string{"has space"}}, "tag"},
	} {
		err := a.Agent().ServiceRegister(&tc.reg)
		if err == nil || !strings.Contains(err.Error(), "400") || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("register %+v: %v; want a 400 naming %s", tc.reg, err, tc.field)
		}
	}
	if len(cl.cats[0].Local()) != 0 {
		t.Fatalf("refused registrations were kept: %+v", cl.cats[0].Local())
	}
	// What does map is accepted: HTTP and TCP checks with their intervals, weights.
	for _, reg := range []consul.AgentServiceRegistration{
		{Name: "h", Port: 80, Weights: &consul.AgentWeights{Passing: 3, Warning: 1},
			Check: &consul.AgentServiceCheck{HTTP: "http://127.0.0.1:1/health", Interval: "10s", Timeout: "2s", SuccessBeforePassing: 2}},
		{Name: "t", ID: "t", Port: 81, Address: "10.42.1.1", Checks: consul.AgentServiceChecks{{TCP: "127.0.0.1:1", Interval: "5s", CheckID: "service:t"}}},
	} {
		if err := a.Agent().ServiceRegister(&reg); err != nil {
			t.Errorf("register %+v: %v", reg, err)
		}
	}
	local := cl.cats[0].Local()
	if len(local) != 2 || local[0].Service.Weight != 3 || local[0].Service.Check.Kind != CheckHTTP ||
		local[0].Service.Check.Timeout != 2*time.Second || local[0].Service.Check.PassesBeforePassing != 2 ||
		local[1].Service.Check.Kind != CheckTCP || local[1].Service.Check.Interval != 5*time.Second {
		t.Fatalf("mapped registrations: %+v", local)
	}
}

func do(t *testing.T, client *http.Client, method, url string, body io.Reader, hdr ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestConsulAPI_HostileInput: oversized and malformed bodies, unknown fields, path
// traversal and junk in path values, unknown endpoints, bad blocking parameters.
func TestConsulAPI_HostileInput(t *testing.T) {
	cl := newConsulCluster(t, 1, nil)
	base := cl.servers[0].URL
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	huge := `{"Name":"x","Port":1,"Tags":["` + strings.Repeat("a", 2*maxConsulBody) + `"]}`
	for _, tc := range []struct {
		method, path, body string
		code               int
		want               string
	}{
		{"PUT", "/v1/agent/service/register", huge, 413, ""},
		{"PUT", "/v1/agent/service/register", `{"Name":"x",`, 400, "decode"},
		{"PUT", "/v1/agent/service/register", `[1,2]`, 400, "decode"},
		{"PUT", "/v1/agent/service/register", `{"Name":"x","Port":1} {"Name":"y"}`, 400, "after"},
		{"PUT", "/v1/agent/service/register", `{"Name":"x","Port":1,"Evil":true}`, 400, "Evil"},
		{"PUT", "/v1/agent/service/register", `{"Name":"x","Port":99999}`, 400, "Port"},
		{"PUT", "/v1/agent/service/register", `{"Name":"x","Port":1,"Check":{"TTL":"1s","Bogus":1}}`, 400, "Bogus"},
		{"PUT", "/v1/agent/service/register", `{"Name":"` + strings.Repeat("n", 70) + `","Port":1}`, 400, "name"},
		{"GET", "/v1/catalog/service/..%2F..%2Fetc%2Fpasswd", "", 400, "Invalid service name"},
		{"GET", "/v1/health/service/web%00", "", 400, "Invalid service name"},
		{"GET", "/v1/catalog/node/..%2Fx", "", 400, "Invalid node name"},
		{"PUT", "/v1/agent/service/deregister/..%2F..%2Fservices", "", 400, "Invalid service ID"},
		{"PUT", "/v1/agent/check/pass/service:..%2Fx", "", 400, "Invalid check ID"},
		{"PUT", "/v1/agent/check/pass/service:nosuch", "", 404, "Unknown check"},
		{"PUT", "/v1/agent/check/update/service:nosuch", `{"Status":"weird"}`, 400, "status"},
		{"GET", "/v1/kv/secret", "", 404, "weft supports"},
		{"GET", "/v1/acl/tokens", "", 404, "weft supports"},
		{"DELETE", "/v1/catalog/services", "", 404, "weft supports"},
		{"GET", "/v1/catalog/services?index=abc", "", 400, "index"},
		{"GET", "/v1/catalog/services?index=1&wait=forever", "", 400, "wait"},
		{"GET", "/v1/catalog/services?dc=elsewhere", "", 500, "datacenter"},
		{"GET", "/v1/catalog/services?filter=x", "", 400, "filter"},
	} {
		var body io.Reader
		if tc.body != "" {
			body = strings.NewReader(tc.body)
		}
		code, got := do(t, noRedirect, tc.method, base+tc.path, body)
		if code != tc.code || !strings.Contains(got, tc.want) {
			t.Errorf("%s %s: %d %q; want %d containing %q", tc.method, tc.path, code, trunc(got), tc.code, tc.want)
		}
	}
	// A raw ../ in the path never reaches a handler with it: the mux cleans it (a redirect).
	code, _ := do(t, noRedirect, "GET", base+"/v1/catalog/service/../../../etc/passwd", nil)
	if code == 200 {
		t.Fatalf("path traversal answered 200")
	}
	if len(cl.cats[0].Local()) != 0 {
		t.Fatalf("hostile input registered something: %+v", cl.cats[0].Local())
	}
	// An index ahead of the catalog's (a restarted agent) answers at once.
	start := time.Now()
	code, _ = do(t, http.DefaultClient, "GET", base+"/v1/catalog/services?index=999999&wait=30s", nil)
	if code != 200 || time.Since(start) > 5*time.Second {
		t.Fatalf("index ahead: %d after %v", code, time.Since(start))
	}
	// ?wait is capped.
	if d, err := parseConsulWait("1h"); err != nil || d != ConsulMaxWait {
		t.Fatalf("wait 1h: %v %v", d, err)
	}
}

func trunc(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

// TestConsulAPI_WritesNeedToken: with a token configured every write needs it, over
// loopback too (any of the three places Consul reads it from); a wrong or missing one is
// 403; reads from outside AllowedSources are 403 too. Without a token, a loopback write
// naming a local Host passes and one naming a web page's domain (DNS rebinding) does not.
func TestConsulAPI_WritesNeedToken(t *testing.T) {
	cat, _ := newTestCatalog(t, CatalogConfig{Node: "self", Addr: netip.MustParseAddr("10.42.1.1")})
	h, err := NewConsulHandler(ConsulConfig{Node: "self", Token: "s3cret",
		AllowedSources: []netip.Prefix{netip.MustParsePrefix("10.42.0.0/16")}}, cat)
	if err != nil {
		t.Fatal(err)
	}
	req := func(remote, local, token, hdr string) int {
		r := httptest.NewRequest("PUT", "/v1/agent/service/register", strings.NewReader(`{"Name":"w","Port":1}`))
		r.RemoteAddr = remote
		r.Host = local
		r = r.WithContext(contextWithLocal(r, local))
		switch hdr {
		case "x":
			r.Header.Set("X-Consul-Token", token)
		case "bearer":
			r.Header.Set("Authorization", "Bearer "+token)
		case "query":
			r.URL.RawQuery = "token=" + token
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	for _, tc := range []struct {
		remote, local, token, hdr string
		code                      int
	}{
		{"127.0.0.1:5000", "127.0.0.1:8500", "", "", 403}, // a local user without the token (issue 23)
		{"127.0.0.1:5000", "127.0.0.1:8500", "s3cret", "x", 200},
		{"10.42.2.1:5000", "10.42.1.1:8500", "", "", 403},
		{"10.42.2.1:5000", "10.42.1.1:8500", "wrong", "x", 403},
		{"10.42.2.1:5000", "10.42.1.1:8500", "s3cre", "x", 403},
		{"10.42.2.1:5000", "10.42.1.1:8500", "s3cret", "x", 200},
		{"10.42.2.1:5000", "10.42.1.1:8500", "s3cret", "bearer", 200},
		{"10.42.2.1:5000", "10.42.1.1:8500", "s3cret", "query", 200},
		{"127.0.0.1:5000", "10.42.1.1:8500", "", "", 403},
		{"192.0.2.7:5000", "10.42.1.1:8500", "s3cret", "x", 403}, // not an overlay source
	} {
		if got := req(tc.remote, tc.local, tc.token, tc.hdr); got != tc.code {
			t.Errorf("%+v: %d, want %d", tc, got, tc.code)
		}
	}
	// No token configured. DNS rebinding: a web page whose name now resolves to 127.0.0.1
	// makes a browser on this host write over loopback, with its own domain as Host.
	// Refused; the local names a client uses pass.
	h2, _ := NewConsulHandler(ConsulConfig{Node: "self"}, cat)
	for host, code := range map[string]int{"evil.example:8500": 403, "evil.example": 403, "localhost:8500": 200,
		"LOCALHOST": 200, "[::1]:8500": 200, "127.0.0.1": 200, "10.42.1.1:8500": 403} {
		r := httptest.NewRequest("PUT", "/v1/agent/service/register", strings.NewReader(`{"Name":"w","Port":1}`))
		r.RemoteAddr, r.Host = "127.0.0.1:5000", host
		r = r.WithContext(contextWithLocal(r, "127.0.0.1:8500"))
		w := httptest.NewRecorder()
		h2.ServeHTTP(w, r)
		if w.Code != code {
			t.Errorf("loopback write with Host %q: %d, want %d (%s)", host, w.Code, code, w.Body.String())
		}
		if code == 403 && !strings.Contains(w.Body.String(), "localhost or 127.0.0.1") {
			t.Errorf("Host %q refused without saying what to do: %s", host, w.Body.String())
		}
	}
	// No token configured: writes from other hosts are refused, with a message that says how.
	r := httptest.NewRequest("PUT", "/v1/agent/service/deregister/w", nil)
	r.RemoteAddr = "10.42.2.1:5000"
	r = r.WithContext(contextWithLocal(r, "10.42.1.1:8500"))
	r.Header.Set("X-Consul-Token", "")
	w := httptest.NewRecorder()
	h2.ServeHTTP(w, r)
	if w.Code != 403 || !strings.Contains(w.Body.String(), "token_file") {
		t.Fatalf("no token configured: %d %q", w.Code, w.Body.String())
	}
}

func contextWithLocal(r *http.Request, local string) context.Context {
	ap := netip.MustParseAddrPort(local)
	return context.WithValue(r.Context(), http.LocalAddrContextKey, net.Addr(net.TCPAddrFromAddrPort(ap)))
}

// TestConsulServer_ListenShutdown: a taken port is an error and nothing stays bound.
func TestConsulServer_ListenShutdown(t *testing.T) {
	cat, _ := newTestCatalog(t, CatalogConfig{Node: "self"})
	h, _ := NewConsulHandler(ConsulConfig{Node: "self"}, cat)
	s, err := NewConsulServer([]string{"127.0.0.1:0"}, h, nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := s.Addrs()[0].String()
	if _, err := NewConsulServer([]string{"127.0.0.1:0", addr}, h, nil); err == nil {
		t.Fatal("a taken port did not fail")
	}
	code, body := do(t, http.DefaultClient, "GET", "http://"+addr+"/v1/status/leader", nil)
	if code != 200 || !strings.Contains(body, addr) {
		t.Fatalf("leader: %d %q", code, body)
	}
	// A blocking query in flight answers at once on Shutdown, not after its wait.
	blocked := make(chan int, 1)
	go func() {
		resp, err := http.Get("http://" + addr + "/v1/catalog/services?index=" + strconv.FormatUint(cat.Index(), 10) + "&wait=5m")
		if err != nil {
			blocked <- 0
			return
		}
		resp.Body.Close()
		blocked <- resp.StatusCode
	}()
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	if err := s.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-blocked:
		if code != 200 || time.Since(start) > 3*time.Second {
			t.Fatalf("blocking query on shutdown: %d after %v", code, time.Since(start))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a blocking query held Shutdown")
	}
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Fatal("still listening after Shutdown")
	}
}

// FuzzConsulRegistration: no body panics the decoder or the mapping; whatever maps
// validates.
func FuzzConsulRegistration(f *testing.F) {
	f.Add([]byte(`{"Name":"web","Port":80,"Tags":["a"],"Check":{"TTL":"10s"}}`))
	f.Add([]byte(`{"Name":"h","Port":80,"Weights":{"Passing":3,"Warning":1},"Checks":[{"HTTP":"http://x/","Interval":"1s"}]}`))
	f.Add([]byte(`{"Name":"t","Port":1,"Check":{"TCP":"a:1","Interval":"1s","Timeout":"500ms"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		reg, err := decodeConsulRegistration(bytes.NewReader(b))
		if err != nil {
			return
		}
		s, err := reg.toService(netip.MustParseAddr("10.42.1.1"))
		if err != nil {
			return
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("mapped service does not validate: %v", err)
		}
	})
}

// BenchmarkConsulHandler_HealthService: one /v1/health/service read of 100 instances,
// what a Prometheus or Traefik poll costs the agent.
func BenchmarkConsulHandler_HealthService(b *testing.B) {
	cat, err := NewCatalog(CatalogConfig{Node: "self", Addr: netip.MustParseAddr("10.42.0.1")})
	if err != nil {
		b.Fatal(err)
	}
	defer cat.Close()
	for i := range 100 {
		if err := cat.UpdateNode(fmt.Sprintf("host-%d", i), netip.AddrFrom4([4]byte{10, 42, byte(i + 1), 1}), "1;web:8080::v1,http"); err != nil {
			b.Fatal(err)
		}
	}
	h, _ := NewConsulHandler(ConsulConfig{Node: "self"}, cat)
	req := httptest.NewRequest("GET", "/v1/health/service/web?passing=1", nil)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatal(w.Code)
		}
	}
}

// TestConsulAPI_BlockingQueriesBounded: past the waiter cap a blocking query is 429, not
// one more goroutine parked for ten minutes.
func TestConsulAPI_BlockingQueriesBounded(t *testing.T) {
	cat, _ := newTestCatalog(t, CatalogConfig{Node: "self"})
	h, _ := NewConsulHandler(ConsulConfig{Node: "self"}, cat)
	h.waiters = make(chan struct{}, 1) // the cap, shrunk from maxConsulWaiters
	srv := httptest.NewServer(h)
	defer srv.Close()
	url := srv.URL + "/v1/catalog/services?index=" + strconv.FormatUint(cat.Index(), 10) + "&wait=30s"
	first := make(chan int, 1)
	go func() {
		resp, err := http.Get(url)
		if err != nil {
			first <- 0
			return
		}
		resp.Body.Close()
		first <- resp.StatusCode
	}()
	testkit.Eventually(t, testkit.Timeout, func() bool { return len(h.waiters) == 1 }, "the first query blocks")
	if code, body := do(t, http.DefaultClient, "GET", url, nil); code != 429 {
		t.Fatalf("second blocking query: %d %q, want 429", code, body)
	}
	if code, _ := do(t, http.DefaultClient, "GET", srv.URL+"/v1/catalog/services", nil); code != 200 {
		t.Fatalf("a non-blocking read while the cap is full: %d", code)
	}
	if err := cat.Register(Service{Name: "wake", Port: 1}); err != nil {
		t.Fatal(err)
	}
	if code := <-first; code != 200 {
		t.Fatalf("first query: %d", code)
	}
}
