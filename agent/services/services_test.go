package services

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	consul "github.com/hashicorp/consul/api"

	"github.com/weftnet/weft/agent/config"
	"github.com/weftnet/weft/discovery/catalog"
	"github.com/weftnet/weft/discovery/catalogdist"
	"github.com/weftnet/weft/discovery/membership"
)

// fakeHost is the agent as the subsystem sees it, without a device or gossip: this host's
// configuration, address and subnet, and the problems reported.
type fakeHost struct {
	mu       sync.Mutex
	problems []string
}

func (h *fakeHost) problem(msg string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.problems = append(h.problems, msg)
}

func (h *fakeHost) got() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.problems)
}

// testDeps are the Deps of host-a (10.42.1.1 in 10.42.1.0/24, DNS on a loopback port) as
// the agent prepares them up to the catalog.
func testDeps(t *testing.T, h *fakeHost, mutate func(*config.Config)) Deps {
	t.Helper()
	cfg := config.DefaultConfig()
	cfg.Name = "host-a"
	cfg.StateDir = t.TempDir()
	cfg.Gossip.Disabled = true
	cfg.Subnet = config.Prefix{Prefix: netip.MustParsePrefix("10.42.1.0/24")}
	cfg.DNS.Listen = []string{"127.0.0.1:0"}
	cfg.DNS.ResolvedDisabled = true
	if mutate != nil {
		mutate(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return Deps{
		Config:  cfg,
		Address: func() netip.Addr { return netip.MustParseAddr("10.42.1.1") },
		Subnet:  func() netip.Prefix { return cfg.Subnet.Prefix },
		Version: "test",
		Problem: h.problem,
	}
}

// TestStart_DNSPortTaken: a DNS port already taken leaves the subsystem up, with the
// problem reported; the Consul API still serves.
func TestStart_DNSPortTaken(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	taken := pc.LocalAddr().String()
	h := &fakeHost{}
	s, err := Start(testDeps(t, h, func(c *config.Config) {
		c.DNS.Listen = []string{taken}
		c.ConsulAPI.Listen = []string{"127.0.0.1:0"}
	}))
	if err != nil {
		t.Fatalf("Start with the DNS port taken: %v", err)
	}
	defer s.Close()
	if problems := h.got(); !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, "dns is not serving") && strings.Contains(p, taken) }) {
		t.Fatalf("status problems %q: want the DNS port named", problems)
	}
	client, err := consul.NewClient(&consul.Config{Address: s.consul.Addrs()[0].String()})
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Agent().ServiceRegister(&consul.AgentServiceRegistration{Name: "web", Port: 80}); err != nil {
		t.Fatal(err)
	}
	e, _, err := client.Catalog().Service("web", "", nil)
	if err != nil || len(e) != 1 || e[0].Address != "10.42.1.1" || e[0].Node != "host-a" {
		t.Fatalf("catalog: %v %+v", err, e)
	}
}

// TestStart_ConsulTokenFile: a token file readable by others is refused; a good one
// authorizes writes from other hosts.
func TestStart_ConsulTokenFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "token")
	if err := os.WriteFile(path, []byte("0123456789abcdef-token\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readTokenFile(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable token file: %v", err)
	}
	os.Chmod(path, 0o600)
	if tok, err := readTokenFile(path); err != nil || tok != "0123456789abcdef-token" {
		t.Fatalf("token: %q %v", tok, err)
	}
	os.WriteFile(path, []byte("short"), 0o600)
	if _, err := readTokenFile(path); err == nil {
		t.Fatal("a 5-byte token was accepted")
	}
	d := testDeps(t, &fakeHost{}, func(c *config.Config) {
		c.ConsulAPI.Listen = []string{"127.0.0.1:0"}
		c.ConsulAPI.TokenFile = path
	})
	if s, err := Start(d); err == nil {
		s.Close()
		t.Fatal("Start accepted a bad token file")
	}
}

// TestMemberEvent_OutOfBandCatalogTrust: a member the trust layer refuses (the gossip key
// but no certificate) announces a catalog by digest and sends its events: nothing of it is
// wanted or answered. A trusted member doing the same is answered; once it is refused (its
// certificate revoked), its services go.
func TestMemberEvent_OutOfBandCatalogTrust(t *testing.T) {
	trusted := map[string]bool{"good": true}
	var mu sync.Mutex
	d := testDeps(t, &fakeHost{}, nil)
	d.Trusted = func(name string) bool { mu.Lock(); defer mu.Unlock(); return trusted[name] }
	s, err := Start(d)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var shs []catalog.ServiceHealth
	for i := range 40 {
		shs = append(shs, catalog.ServiceHealth{Service: catalog.Service{Name: fmt.Sprintf("svc-%02d", i), Port: uint16(1000 + i)}})
	}
	v1, err := catalog.EncodeCatalog(shs)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := catalogdist.Encode(v1)
	if err != nil {
		t.Fatal(err)
	}
	member := func(name, subnet string) membership.Member {
		return membership.Member{Name: name, Status: membership.StatusAlive,
			Tags: map[string]string{catalog.CatalogTagKey: enc.Tag()},
			Info: membership.NodeInfo{Subnet: netip.MustParsePrefix(subnet)}}
	}
	send := func() {
		for _, p := range enc.Events {
			s.MemberEvent(membership.Event{Type: membership.EventUser, Name: catalogdist.EventName, Payload: p})
		}
	}
	s.MemberEvent(membership.Event{Type: membership.EventJoin, Member: member("evil", "10.42.9.0/24")})
	send()
	if in := s.Catalog().Instances("svc-07", false); len(in) != 0 {
		t.Fatalf("an untrusted member's catalog is answered: %+v", in)
	}
	if st := s.OutOfBand(); st.Pending != 0 || st.Applied != 0 {
		t.Fatalf("an untrusted member's digest tag was wanted: %+v", st)
	}
	s.MemberEvent(membership.Event{Type: membership.EventJoin, Member: member("good", "10.42.8.0/24")})
	send()
	if in := s.Catalog().Instances("svc-07", false); len(in) != 1 || in[0].Node != "good" {
		t.Fatalf("the trusted member's catalog: %+v", in)
	}
	mu.Lock()
	trusted["good"] = false
	mu.Unlock()
	s.SyncMember(member("good", "10.42.8.0/24"))
	if in := s.Catalog().Instances("svc-07", false); len(in) != 0 {
		t.Fatalf("a member no longer trusted is still answered: %+v", in)
	}
}
