package services

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/weftnet/weft/agent/api"
	"github.com/weftnet/weft/agent/config"
	"github.com/weftnet/weft/discovery/catalog"
	"github.com/weftnet/weft/discovery/membership"
)

// fakeTags records what the catalog publishes, as the gossip node's tags would.
type fakeTags struct{ tags map[string]string }

func (f *fakeTags) SetTag(k, v string) error { f.tags[k] = v; return nil }
func (f *fakeTags) TagBytes() int            { return 100 }

var _ Tags = (*fakeTags)(nil)

// TestServer_MemberEvent: an alive member's catalog tag is answered at the first address
// of its subnet; a refused, left or subnet-less member is not; this host is never touched.
func TestServer_MemberEvent(t *testing.T) {
	refused := map[string]bool{}
	d := testDeps(t, &fakeHost{}, func(c *config.Config) { c.DNS.Disabled = true })
	tags := &fakeTags{tags: map[string]string{}}
	d.Tags = tags
	d.Trusted = func(name string) bool { return !refused[name] }
	s, err := Start(d)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Catalog().Register(catalog.Service{Name: "web", Port: 80}); err != nil {
		t.Fatal(err)
	}
	tag := tags.tags[catalog.CatalogTagKey]
	if tag == "" {
		t.Fatal("registering published no catalog tag")
	}
	member := func(name string, st membership.Status, subnet string) membership.Member {
		m := membership.Member{Name: name, Status: st, Tags: map[string]string{catalog.CatalogTagKey: tag}}
		if subnet != "" {
			m.Info.Subnet = netip.MustParsePrefix(subnet)
		}
		return m
	}
	addrs := func() []string {
		var out []string
		for _, in := range s.Catalog().Instances("web", false) {
			out = append(out, in.Node+"="+in.Addr.String())
		}
		return out
	}
	want := func(step string, w ...string) {
		t.Helper()
		if got := addrs(); strings.Join(got, " ") != strings.Join(w, " ") {
			t.Fatalf("%s: web instances %q, want %q", step, got, w)
		}
	}
	want("local only", "host-a=10.42.1.1")

	s.MemberEvent(membership.Event{Type: membership.EventJoin, Member: member("host-b", membership.StatusAlive, "10.42.2.0/24")})
	want("b joined", "host-a=10.42.1.1", "host-b=10.42.2.1")

	refused["host-b"] = true
	s.SyncMember(member("host-b", membership.StatusAlive, "10.42.2.0/24"))
	want("b refused", "host-a=10.42.1.1")
	refused["host-b"] = false
	s.SyncMember(member("host-b", membership.StatusAlive, "10.42.2.0/24"))
	want("b accepted again", "host-a=10.42.1.1", "host-b=10.42.2.1")

	s.MemberEvent(membership.Event{Type: membership.EventUpdate, Member: member("host-b", membership.StatusAlive, "")})
	want("b without a subnet", "host-a=10.42.1.1")
	s.MemberEvent(membership.Event{Type: membership.EventJoin, Member: member("host-b", membership.StatusAlive, "10.42.2.0/24")})
	s.MemberEvent(membership.Event{Type: membership.EventFailed, Member: member("host-b", membership.StatusFailed, "10.42.2.0/24")})
	want("b failed", "host-a=10.42.1.1")

	// This host's own events never remove or rewrite its services.
	s.MemberEvent(membership.Event{Type: membership.EventLeave, Member: member("host-a", membership.StatusLeft, "10.42.9.0/24")})
	s.MemberEvent(membership.Event{Type: membership.EventUpdate, Member: member("host-a", membership.StatusAlive, "10.42.9.0/24")})
	want("own events", "host-a=10.42.1.1")
}

// TestRoutes: the control API's service routes answer 503 while no catalog runs, and
// register, list and deregister through the catalog once it does.
func TestRoutes(t *testing.T) {
	var running *catalog.Catalog
	mux := http.NewServeMux()
	Routes(mux, func() *catalog.Catalog { return running })
	do := func(method, path, body string) *httptest.ResponseRecorder {
		t.Helper()
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader(body)))
		return rec
	}
	if rec := do("GET", "/v1/services", ""); rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "the service catalog is not running") {
		t.Fatalf("without a catalog: %d %s", rec.Code, rec.Body)
	}
	s, err := Start(testDeps(t, &fakeHost{}, func(c *config.Config) { c.DNS.Disabled = true }))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	running = s.Catalog()
	if rec := do("POST", "/v1/services", `{"name":"web","port":80}`); rec.Code != http.StatusOK {
		t.Fatalf("register: %d %s", rec.Code, rec.Body)
	}
	rec := do("GET", "/v1/services", "")
	var resp api.ServicesResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil || rec.Code != http.StatusOK || len(resp.Instances) != 1 || resp.Instances[0].Service.Name != "web" {
		t.Fatalf("list: %d %v %s", rec.Code, err, rec.Body)
	}
	if rec.Header().Get("X-Weft-Index") == "" {
		t.Fatal("no X-Weft-Index header")
	}
	if rec := do("GET", "/v1/services?index=x", ""); rec.Code != http.StatusBadRequest {
		t.Fatalf("bad index: %d", rec.Code)
	}
	if rec := do("DELETE", "/v1/services/db", ""); rec.Code != http.StatusNotFound {
		t.Fatalf("deregister unknown: %d %s", rec.Code, rec.Body)
	}
	if rec := do("DELETE", "/v1/services/web", ""); rec.Code != http.StatusOK {
		t.Fatalf("deregister: %d %s", rec.Code, rec.Body)
	}
	if rec := do("GET", "/v1/services/web", ""); rec.Code != http.StatusOK || strings.TrimSpace(rec.Body.String()) != "[]" {
		t.Fatalf("after deregister: %d %s", rec.Code, rec.Body)
	}
}

// TestServer_Rebind: after the overlay address moved, DNS and the Consul API listen on the
// new one ("overlay:PORT").
func TestServer_Rebind(t *testing.T) {
	d := testDeps(t, &fakeHost{}, nil)
	// Port 0 (any free port), which validation refuses in a configuration, set after it.
	d.Config.DNS.Listen = []string{"overlay:0"}
	d.Config.ConsulAPI.Listen = []string{"overlay:0"}
	d.Address = func() netip.Addr { return netip.MustParseAddr("127.0.0.1") }
	s, err := Start(d)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	at := func(want string) {
		t.Helper()
		dns := s.DNSAddrs()
		s.mu.Lock()
		consul := s.consul.Addrs()
		s.mu.Unlock()
		if len(dns) == 0 || dns[0].Addr().String() != want || len(consul) == 0 || consul[0].Addr().String() != want {
			t.Fatalf("dns on %v, consul on %v: want both on %s", dns, consul, want)
		}
	}
	at("127.0.0.1")
	s.Rebind(netip.MustParseAddr("127.0.0.2"))
	at("127.0.0.2")
}
