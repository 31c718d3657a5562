package gossip

import (
	"net/netip"
	"testing"

	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/discovery/membership"
)

// TestGossip_Trusted: Trusted is true only for a member judged and accepted; a refused
// member, a member never judged (another mode or VNI, no subnet, gone) and an unknown name
// are not trusted, although IsRefused is false for all but the first.
func TestGossip_Trusted(t *testing.T) {
	priv, _ := crypto.GeneratePrivateKey()
	g, _ := testGlue(t, nil, priv)
	member := func(name, subnet string, edit func(*membership.NodeInfo)) membership.Member {
		k, _ := crypto.GeneratePrivateKey()
		m := membership.Member{Name: name, Addr: netip.MustParseAddrPort("192.0.2.1:7946"), Status: membership.StatusAlive,
			Info: membership.NodeInfo{PublicKey: k.Public(), Subnet: netip.MustParsePrefix(subnet), DataPort: 51820, VNI: 1, Mode: ModeByte("l3", "wireguard")}}
		if edit != nil {
			edit(&m.Info)
		}
		return m
	}
	honest := member("honest", "10.42.7.0/24", nil)
	for _, m := range []membership.Member{
		honest,
		member("refused", "10.42.8.9/32", nil),
		member("other-mode", "10.42.9.0/24", func(n *membership.NodeInfo) { n.Mode = ModeByte("l2", "wireguard") }),
		member("other-vni", "10.42.10.0/24", func(n *membership.NodeInfo) { n.VNI = 9 }),
	} {
		g.Apply(m)
	}
	for name, want := range map[string]bool{"honest": true, "refused": false, "other-mode": false, "other-vni": false, "nobody": false} {
		if got := g.Trusted(name); got != want {
			t.Errorf("Trusted(%q) = %v, want %v", name, got, want)
		}
	}
	if g.IsRefused("other-mode") {
		t.Error("a member in another mode is reported refused: it was never judged")
	}
	honest.Status = membership.StatusFailed
	g.Apply(honest)
	if g.Trusted("honest") {
		t.Error("a failed member is still trusted")
	}
}
