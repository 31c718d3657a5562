package datapath

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/weftnet/weft/agent/config"
	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/crypto/cryptotest"
	"github.com/weftnet/weft/l2"
	"github.com/weftnet/weft/peers"
)

func TestNew_ChosenByConfig(t *testing.T) {
	for _, tc := range []struct{ mode, encryption, want string }{
		{"l3", "wireguard", "*datapath.l3Path"},
		{"l2", "wireguard", "*datapath.l2Path"},
		{"l2", "none", "*datapath.plainPath"},
	} {
		cfg := config.DefaultConfig()
		cfg.Mode, cfg.Encryption = tc.mode, tc.encryption
		if got := fmt.Sprintf("%T", New(ConfigOf(cfg), Deps{})); got != tc.want {
			t.Errorf("mode %s, encryption %s: %s, want %s", tc.mode, tc.encryption, got, tc.want)
		}
	}
}

// TestL2Path_Members: before Start (gossip may seed it), a member becomes a peer with its
// subnet and a flood remote whose published MAC is a static FDB entry, named by nameOf;
// RemoveMember forgets both.
func TestL2Path_Members(t *testing.T) {
	id := cryptotest.NewIdentity(t)
	table := peers.NewTable(id)
	cfg := config.DefaultConfig()
	cfg.Mode = "l2"
	d := New(ConfigOf(cfg), Deps{Table: func() *peers.Table { return table }})
	other, _ := crypto.GeneratePrivateKey()
	m := Member{Key: other.Public(), Endpoint: netip.MustParseAddrPort("192.0.2.7:51820"),
		MAC: l2.MAC{0x02, 1, 2, 3, 4, 5}, Addr: netip.MustParseAddr("10.42.7.1")}
	if err := d.AddMember(m, netip.MustParsePrefix("10.42.7.0/24")); err != nil {
		t.Fatal(err)
	}
	if p := table.Lookup(netip.MustParseAddr("10.42.7.9")); p == nil || p.Key() != m.Key {
		t.Fatalf("lookup 10.42.7.9: %v, want the member's peer", p)
	}
	nameOf := func(k crypto.PublicKey) string {
		if k == m.Key {
			return "seven"
		}
		return ""
	}
	if got := d.FDB(nameOf); len(got) != 1 || got[0].MAC != m.MAC.String() || got[0].Remote != "seven" || !got[0].Static {
		t.Fatalf("fdb %+v, want %s static at seven", got, m.MAC)
	}
	d.RemoveMember(m)
	if got := d.FDB(nameOf); len(got) != 0 || table.ByKey(m.Key) != nil {
		t.Fatalf("after RemoveMember: fdb %+v, peer %v", got, table.ByKey(m.Key))
	}
}
