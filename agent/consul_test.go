package agent

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	consul "github.com/hashicorp/consul/api"
	"github.com/weftnet/weft/agent/config"
)

// testAgent is an Agent prepared as Run prepares it up to the catalog, without a device
// or gossip: enough for startCatalog.
func testAgent(t *testing.T, mutate func(*config.Config)) *Agent {
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
	a, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	a.subnet = cfg.Subnet.Prefix
	a.address = netip.MustParseAddr("10.42.1.1")
	return a
}

// TestStartCatalog_DNSPortTaken: a DNS port already taken leaves the agent up, with the
// problem in its status; the Consul API still serves.
func TestStartCatalog_DNSPortTaken(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	taken := pc.LocalAddr().String()
	a := testAgent(t, func(c *config.Config) {
		c.DNS.Listen = []string{taken}
		c.ConsulAPI.Listen = []string{"127.0.0.1:0"}
	})
	g, err := startCatalog(a)
	if err != nil {
		t.Fatalf("startCatalog with the DNS port taken: %v", err)
	}
	defer g.close()
	a.cat = g
	st := a.Status()
	if !slices.ContainsFunc(st.Problems, func(p string) bool { return strings.Contains(p, "dns is not serving") && strings.Contains(p, taken) }) {
		t.Fatalf("status problems %q: want the DNS port named", st.Problems)
	}
	client, err := consul.NewClient(&consul.Config{Address: g.consul.Addrs()[0].String()})
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

// TestStartCatalog_ConsulTokenFile: a token file readable by others is refused; a good one
// authorizes writes from other hosts.
func TestStartCatalog_ConsulTokenFile(t *testing.T) {
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
	a := testAgent(t, func(c *config.Config) {
		c.ConsulAPI.Listen = []string{"127.0.0.1:0"}
		c.ConsulAPI.TokenFile = path
	})
	if g, err := startCatalog(a); err == nil {
		g.close()
		t.Fatal("startCatalog accepted a bad token file")
	}
}

// fakeResolvectl records resolvectl invocations; failOn fails the step with that verb.
type fakeResolvectl struct {
	mu     sync.Mutex
	calls  []string
	failOn string
}

func (f *fakeResolvectl) run(_ context.Context, args ...string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, strings.Join(args, " "))
	if args[0] == f.failOn {
		return []byte("Failed to set DNS configuration: Access denied"), errors.New("exit status 1")
	}
	return nil, nil
}

func (f *fakeResolvectl) got() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// TestCatalogGlue_ResolvedFollowsDNS: the agent points resolved at its overlay DNS address
// when DNS starts, and reverts on close.
func TestCatalogGlue_ResolvedFollowsDNS(t *testing.T) {
	a := testAgent(t, func(c *config.Config) { c.DNS.ResolvedDisabled = false })
	f := &fakeResolvectl{}
	g := &catalogGlue{a: a, resolver: hostResolver{RunDir: t.TempDir(), Run: f.run, SameNetns: func() bool { return true }}}
	g2, err := startCatalogWith(a, g)
	if err != nil {
		t.Fatal(err)
	}
	port := g2.dns.Addrs()[0].Port()
	g2.close()
	want := []string{"dns weft0 127.0.0.1:" + strconv.Itoa(int(port)), "domain weft0 ~weft", "default-route weft0 false", "revert weft0"}
	if got := f.got(); !slices.Equal(got, want) {
		t.Fatalf("resolvectl calls %q, want %q", got, want)
	}
}
