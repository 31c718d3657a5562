package agent

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

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
	g, err := startCatalogWith(a, hostResolver{RunDir: t.TempDir(), Run: f.run, SameNetns: func() bool { return true }})
	if err != nil {
		t.Fatal(err)
	}
	port := g.svc.DNSAddrs()[0].Port()
	g.close()
	want := []string{"dns weft0 127.0.0.1:" + strconv.Itoa(int(port)), "domain weft0 ~weft", "default-route weft0 false", "revert weft0"}
	if got := f.got(); !slices.Equal(got, want) {
		t.Fatalf("resolvectl calls %q, want %q", got, want)
	}
}
