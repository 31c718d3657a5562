package gossip

import (
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/discovery/membership"
	"github.com/weftnet/weft/discovery/trust"
	"github.com/weftnet/weft/internal/testkit"
)

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

// fakeDatapath records the peers the glue adds and removes.
type fakeDatapath struct {
	mu    sync.Mutex
	peers map[crypto.PublicKey]fakePeer
}

type fakePeer struct {
	p      Peer
	subnet netip.Prefix
}

func (d *fakeDatapath) add(p Peer, sn netip.Prefix) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.peers[p.Key] = fakePeer{p, sn}
	return nil
}

func (d *fakeDatapath) remove(p Peer) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.peers, p.Key)
}

func (d *fakeDatapath) get(k crypto.PublicKey) (fakePeer, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	p, ok := d.peers[k]
	return p, ok
}

// testGlue is the glue of host "a" over c (nil: none) with a fake datapath and no CA.
func testGlue(t *testing.T, c *membership.Cluster, priv crypto.PrivateKey) (*Gossip, *fakeDatapath) {
	t.Helper()
	dp := &fakeDatapath{peers: map[crypto.PublicKey]fakePeer{}}
	deps := Deps{
		Log: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
		PKI: func() *trust.PKI { return nil },
		Policy: func(now time.Time) *trust.Policy {
			return &trust.Policy{Cluster: membership.DefaultClusterCIDR, OwnKey: priv.Public(), Now: now}
		},
		AddPeer:       dp.add,
		RemovePeer:    dp.remove,
		SubnetChanged: func(netip.Prefix) {},
		Problem:       func(msg string) { t.Log("problem:", msg) },
	}
	cfg := Config{Name: "a", Node: membership.NodeInfo{PublicKey: priv.Public(), DataPort: 51820, VNI: 1, Proto: 1, Mode: ModeByte("l3", "wireguard")}}
	return Attach(c, cfg, deps), dp
}

func localCluster(t *testing.T, name string, priv crypto.PrivateKey) *membership.Cluster {
	t.Helper()
	dc := membership.DefaultLocalConfig()
	dc.NodeName = name
	dc.Insecure = true
	dc.Node = membership.NodeInfo{PublicKey: priv.Public(), DataPort: 51820, VNI: 1, Proto: 1, Mode: ModeByte("l3", "wireguard")}
	c, err := membership.New(dc)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestGossip_ResyncReplays: a resync peers the live members and withdraws the ones that are
// gone from the member list, and replays each to the subscribers (Replay set): present
// members as updates, gone ones as reaps; every subscriber sees every event, in order.
func TestGossip_ResyncReplays(t *testing.T) {
	privA, _ := crypto.GeneratePrivateKey()
	privB, _ := crypto.GeneratePrivateKey()
	cA, cB := localCluster(t, "a", privA), localCluster(t, "b", privB)
	t.Cleanup(func() {
		_ = cA.Shutdown()
		_ = cB.Shutdown()
		// memberlist's probe goroutines may outlive Shutdown briefly.
		testkit.Eventually(t, 15*time.Second, func() bool { return goleak.Find() == nil }, "serf goroutines to end")
	})
	if _, err := cB.Join([]string{cA.LocalMember().Addr.String()}); err != nil {
		t.Fatal(err)
	}
	g, dp := testGlue(t, cA, privA)
	var mu sync.Mutex
	var first, second []Event
	g.Subscribe(func(ev Event) { mu.Lock(); first = append(first, ev); mu.Unlock() })
	g.Subscribe(func(ev Event) { mu.Lock(); second = append(second, ev); mu.Unlock() })

	testkit.Eventually(t, 15*time.Second, func() bool {
		g.Resync()
		p, ok := dp.get(privB.Public())
		return ok && p.subnet == cB.Subnet()
	}, "b peered with its current subnet after a resync")
	p, _ := dp.get(privB.Public())
	if want := netip.AddrPortFrom(cB.LocalMember().Addr.Addr(), 51820); p.p.Endpoint != want || p.p.Addr != cB.Subnet().Addr().Next() {
		t.Fatalf("b applied as %+v, want endpoint %s", p.p, want)
	}
	if g.NameOf(privB.Public()) != "b" {
		t.Fatalf("NameOf(b's key) = %q", g.NameOf(privB.Public()))
	}

	// A member that is gone from the list entirely (here: one applied by hand) is withdrawn
	// and replayed as a reap.
	ghostKey, _ := crypto.GeneratePrivateKey()
	ghost := membership.Member{Name: "ghost", Addr: netip.MustParseAddrPort("192.0.2.1:7946"), Status: membership.StatusAlive,
		Info: membership.NodeInfo{PublicKey: ghostKey.Public(), Subnet: netip.MustParsePrefix("10.42.200.0/24"), DataPort: 51820, VNI: 1, Mode: ModeByte("l3", "wireguard")}}
	g.Apply(ghost)
	if _, ok := dp.get(ghostKey.Public()); !ok {
		t.Fatal("the ghost was not peered")
	}
	mu.Lock()
	first, second = nil, nil
	mu.Unlock()
	g.Resync()
	if _, ok := dp.get(ghostKey.Public()); ok {
		t.Fatal("the ghost is still peered after a resync")
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.EqualFunc(first, second, func(x, y Event) bool {
		return x.Type == y.Type && x.Member.Name == y.Member.Name && x.Replay == y.Replay
	}) {
		t.Fatalf("the subscribers saw different events: %v / %v", first, second)
	}
	seen := map[string]membership.EventType{}
	for _, ev := range first {
		if !ev.Replay {
			t.Fatalf("a resync event is not marked Replay: %+v", ev)
		}
		seen[ev.Member.Name] = ev.Type
	}
	if seen["b"] != membership.EventUpdate || seen["a"] != membership.EventUpdate || seen["ghost"] != membership.EventReap {
		t.Fatalf("replayed %v, want a and b updated, ghost reaped", seen)
	}
}

// TestGossip_RefusedNeverPeered: a member whose claim the trust rules refuse is not handed
// to the datapath, is reported refused, and is peered once its claim is honest.
func TestGossip_RefusedNeverPeered(t *testing.T) {
	priv, _ := crypto.GeneratePrivateKey()
	g, dp := testGlue(t, nil, priv)
	k, _ := crypto.GeneratePrivateKey()
	m := membership.Member{Name: "m", Addr: netip.MustParseAddrPort("192.0.2.1:7946"), Status: membership.StatusAlive,
		Info: membership.NodeInfo{PublicKey: k.Public(), Subnet: netip.MustParsePrefix("10.42.7.9/32"), DataPort: 51820, VNI: 1, Mode: ModeByte("l3", "wireguard")}}
	g.Apply(m)
	if _, ok := dp.get(k.Public()); ok || !g.IsRefused("m") {
		t.Fatalf("a /32 claim: peered %v, refused %v", ok, g.IsRefused("m"))
	}
	if r, _ := g.Refused("m"); r.Reason != trust.ReasonSubnetNotSlot {
		t.Fatalf("refusal %+v", r)
	}
	m.Info.Subnet = netip.MustParsePrefix("10.42.7.0/24")
	g.Apply(m)
	if _, ok := dp.get(k.Public()); !ok || g.IsRefused("m") {
		t.Fatalf("the honest claim: peered %v, refused %v", ok, g.IsRefused("m"))
	}
	if got := g.RefusedCounts()[trust.ReasonSubnetNotSlot]; got != 1 {
		t.Fatalf("refusals counted %d", got)
	}
}
