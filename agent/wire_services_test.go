package agent

import (
	"context"
	"errors"
	"net/netip"
	"path/filepath"
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

func TestHostResolver_Configure(t *testing.T) {
	f := &fakeResolvectl{}
	r := hostResolver{runDir: t.TempDir(), run: f.run, sameNetns: func() bool { return true }}
	revert, err := r.configure("weft0", netip.MustParseAddrPort("10.42.1.1:53"), "weft.")
	if err != nil {
		t.Fatal(err)
	}
	if err := revert(); err != nil {
		t.Fatal(err)
	}
	want := []string{"dns weft0 10.42.1.1", "domain weft0 ~weft", "default-route weft0 false", "revert weft0"}
	if got := f.got(); !slices.Equal(got, want) {
		t.Fatalf("resolvectl calls %q, want %q", got, want)
	}
	if s := resolvedServer(netip.MustParseAddrPort("127.0.0.1:5353")); s != "127.0.0.1:5353" {
		t.Fatalf("non-53 port: %s", s)
	}

	// A failing step reverts what was set and names the step.
	f = &fakeResolvectl{failOn: "domain"}
	r.run = f.run
	if _, err := r.configure("weft0", netip.MustParseAddrPort("10.42.1.1:53"), "weft."); err == nil || !strings.Contains(err.Error(), "resolvectl domain") {
		t.Fatalf("failing domain step: %v", err)
	}
	if got := f.got(); got[len(got)-1] != "revert weft0" {
		t.Fatalf("no revert after a failed step: %q", got)
	}

	// Not running, or another network namespace: not configured, and resolvectl is never run.
	f = &fakeResolvectl{}
	for _, r := range []hostResolver{
		{runDir: filepath.Join(t.TempDir(), "absent"), run: f.run, sameNetns: func() bool { return true }},
		{runDir: t.TempDir(), run: f.run, sameNetns: func() bool { return false }},
	} {
		if _, err := r.configure("weft0", netip.MustParseAddrPort("10.42.1.1:53"), "weft."); !errors.Is(err, errNoResolved) {
			t.Fatalf("configure without resolved: %v", err)
		}
	}
	if got := f.got(); len(got) != 0 {
		t.Fatalf("resolvectl run without resolved: %q", got)
	}
}

// TestCatalogGlue_ResolvedFollowsDNS: the agent points resolved at its overlay DNS address
// when DNS starts, and reverts on close.
func TestCatalogGlue_ResolvedFollowsDNS(t *testing.T) {
	a := testAgent(t, func(c *config.Config) { c.DNS.ResolvedDisabled = false })
	f := &fakeResolvectl{}
	g, err := startCatalogWith(a, hostResolver{runDir: t.TempDir(), run: f.run, sameNetns: func() bool { return true }})
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

func TestResolverSetup(t *testing.T) {
	cfg := config.DefaultConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	none := hostResolver{runDir: filepath.Join(t.TempDir(), "absent")}
	out := resolverSetup(cfg, none)
	for _, want := range []string{"server=/weft/127.0.0.1", "nameserver 127.0.0.1", "not running"} {
		if !strings.Contains(out, want) {
			t.Errorf("setup without resolved lacks %q:\n%s", want, out)
		}
	}
	cfg.DNS.Listen = []string{"127.0.0.1:5353"}
	if out := resolverSetup(cfg, none); !strings.Contains(out, "server=/weft/127.0.0.1#5353") || !strings.Contains(out, "cannot name a port") {
		t.Errorf("port 5353:\n%s", out)
	}
	running := hostResolver{runDir: t.TempDir(), sameNetns: func() bool { return true }}
	if out := resolverSetup(cfg, running); !strings.Contains(out, "configures it itself") {
		t.Errorf("with resolved:\n%s", out)
	}
	cfg.DNS.Listen = []string{"overlay:53"}
	if out := resolverSetup(cfg, none); !strings.Contains(out, "no loopback address") {
		t.Errorf("no loopback listen:\n%s", out)
	}
}
