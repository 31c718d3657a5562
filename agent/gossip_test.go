package agent

import (
	"net/netip"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/weftnet/weft/agent/config"
	"github.com/weftnet/weft/agent/gossip"
	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/discovery/membership"
	"github.com/weftnet/weft/internal/testkit"
	"github.com/weftnet/weft/peers"
)

func localCluster(t *testing.T, name string, priv crypto.PrivateKey) *membership.Cluster {
	t.Helper()
	dc := membership.DefaultLocalConfig()
	dc.NodeName = name
	dc.Insecure = true
	dc.Node = membership.NodeInfo{PublicKey: priv.Public(), DataPort: 51820, VNI: 1, Proto: ProtocolVersion, Mode: gossip.ModeByte("l3", "wireguard")}
	c, err := membership.New(dc)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestGossip_ResyncAll: the resync that repairs dropped membership events adds live members
// and withdraws members that failed, from the member list alone (no events consumed).
func TestGossip_ResyncAll(t *testing.T) {
	privA, _ := crypto.GeneratePrivateKey()
	privB, _ := crypto.GeneratePrivateKey()
	cA, cB := localCluster(t, "a", privA), localCluster(t, "b", privB)
	t.Cleanup(func() {
		_ = cA.Shutdown()
		_ = cB.Shutdown()
		// memberlist's probe goroutines may outlive Shutdown briefly: let them end before
		// the package's goleak check runs.
		testkit.Eventually(t, 15*time.Second, func() bool { return goleak.Find() == nil }, "serf goroutines to end")
	})
	if _, err := cB.Join([]string{cA.LocalMember().Addr.String()}); err != nil {
		t.Fatal(err)
	}
	cfg := config.DefaultConfig()
	cfg.Name = "a"
	id := crypto.NewIdentity(privA)
	defer id.Close()
	a := &Agent{cfg: cfg, log: NewLogger(testWriter{t}, "debug"), priv: privA, table: peers.NewTable(id)}
	a.dp = newDatapath(a) // L3: members go into the table (no device needed for that)
	g := gossip.Attach(cA, a.gossipConfig(), a.gossipDeps())

	// b's subnet is its current one: the two allocators may have picked the same /24 at
	// first (about one run in 256), and then one of them moves; the resync follows the move.
	testkit.Eventually(t, 15*time.Second, func() bool {
		g.Resync()
		p := a.table.ByKey(privB.Public())
		if p == nil {
			return false
		}
		got := p.AllowedIPs()
		return len(got) == 1 && got[0] == cB.Subnet()
	}, "b's peer with b's current subnet after a resync")
	p := a.table.ByKey(privB.Public())
	if want := netip.AddrPortFrom(cB.LocalMember().Addr.Addr(), 51820); p.Endpoint() != want {
		t.Fatalf("b's endpoint %s, want %s", p.Endpoint(), want)
	}
	cB.Shutdown() // no leave: a sees b fail
	testkit.Eventually(t, 15*time.Second, func() bool {
		g.Resync()
		return a.table.ByKey(privB.Public()) == nil
	}, "b withdrawn after a resync")
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }
