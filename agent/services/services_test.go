package services

import (
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
