package agent

import (
	"net/netip"
	"slices"
	"strconv"
	"testing"

	"github.com/weftnet/weft/agent/config"
	"github.com/weftnet/weft/agent/resolver/resolvertest"
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

// TestCatalogGlue_ResolvedFollowsDNS: the agent points resolved at its overlay DNS address
// when DNS starts, and reverts on close.
func TestCatalogGlue_ResolvedFollowsDNS(t *testing.T) {
	a := testAgent(t, func(c *config.Config) { c.DNS.ResolvedDisabled = false })
	f := &resolvertest.Resolvectl{}
	g, err := startCatalogWith(a, hostResolver{RunDir: t.TempDir(), Run: f.Run, SameNetns: func() bool { return true }})
	if err != nil {
		t.Fatal(err)
	}
	port := g.svc.DNSAddrs()[0].Port()
	g.close()
	want := []string{"dns weft0 127.0.0.1:" + strconv.Itoa(int(port)), "domain weft0 ~weft", "default-route weft0 false", "revert weft0"}
	if got := f.Calls(); !slices.Equal(got, want) {
		t.Fatalf("resolvectl calls %q, want %q", got, want)
	}
}
