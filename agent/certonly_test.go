package agent

import (
	"net/netip"
	"testing"
	"time"

	"github.com/weftnet/weft/agent/config"
	"github.com/weftnet/weft/agent/netpolicy"
	"github.com/weftnet/weft/agent/services"
	"github.com/weftnet/weft/discovery/catalog"
	"github.com/weftnet/weft/discovery/membership"
	"github.com/weftnet/weft/discovery/trust"
	"github.com/weftnet/weft/identity"
)

// fakeTags stands for the gossip node's tags the catalog publishes into.
type fakeTags map[string]string

func (f fakeTags) SetTag(k, v string) error { f[k] = v; return nil }
func (f fakeTags) TagBytes() int            { return 100 }

// TestServicesWiring_UncertifiedMemberNotServed: with a cluster CA, members holding the
// gossip key but no certificate announce a "db" service at a certified victim's /24. One runs
// the same mode (refused: no_certificate); the others another mode or VNI, which gossip does
// not peer with and therefore never judges. None of their services may be answered by DNS
// or the Consul API (both read the catalog); the victim's are.
func TestServicesWiring_UncertifiedMemberNotServed(t *testing.T) {
	a, g := trustAgent(t, config.DefaultConfig())
	a.gsp = g.Gossip
	ca := newTestCA(t, "cluster")
	a.pki.Store(&trust.PKI{Pool: ca.Pool})

	d := servicesDeps(a, hostResolver{})
	d.Tags = fakeTags{}
	d.Config.DNS.Disabled = true
	d.Config.Subnet = config.Prefix{Prefix: pfx("10.42.1.0/24")}
	d.Address = func() netip.Addr { return netip.MustParseAddr("10.42.1.1") }
	d.Subnet = func() netip.Prefix { return pfx("10.42.1.0/24") }
	s, err := services.Start(d)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	db, err := catalog.EncodeCatalog([]catalog.ServiceHealth{{Service: catalog.Service{Name: "db", Port: 5432}, Health: catalog.HealthPassing}})
	if err != nil {
		t.Fatal(err)
	}
	victimKey := newKey(t).Public()
	victim := liveMember("victim", membership.NodeInfo{PublicKey: victimKey, Subnet: pfx("10.42.5.0/24"), DataPort: 51820, VNI: 1, Mode: modeByte("l3", "wireguard")})
	cert := ca.Sign(t, "victim", victimKey, time.Now().Add(-time.Hour), time.Now().Add(time.Hour), "10.42.5.0/24")
	victim.Tags = map[string]string{identity.TagKey: tagOf(t, cert), catalog.CatalogTagKey: db}
	evil := func(name string, edit func(n *membership.NodeInfo)) membership.Member {
		n := membership.NodeInfo{PublicKey: newKey(t).Public(), Subnet: pfx("10.42.6.0/24"), DataPort: 51820, VNI: 1, Mode: modeByte("l3", "wireguard")}
		edit(&n)
		m := liveMember(name, n)
		m.Tags = map[string]string{catalog.CatalogTagKey: db}
		return m
	}
	members := []membership.Member{
		victim,
		evil("evil-same-mode", func(*membership.NodeInfo) {}),
		evil("evil-l2", func(n *membership.NodeInfo) { n.Mode = modeByte("l2", "wireguard") }),
		evil("evil-vni", func(n *membership.NodeInfo) { n.VNI = 7 }),
		evil("evil-victims-24", func(n *membership.NodeInfo) { n.Mode, n.Subnet = modeByte("l2", "wireguard"), pfx("10.42.5.0/24") }),
	}
	for _, m := range members {
		g.apply(m) // the gossip event loop judges first, then fans the event out
		s.MemberEvent(membership.Event{Type: membership.EventJoin, Member: m})
	}
	var got []string
	for _, in := range s.Catalog().Instances("db", false) {
		got = append(got, in.Node+"="+in.Addr.String())
	}
	if len(got) != 1 || got[0] != "victim=10.42.5.1" {
		t.Fatalf("db instances %q, want only the certified victim's [victim=10.42.5.1]: a member without a certificate had its services served", got)
	}
}

// TestPolicyWiring_UncertifiedMemberNamesNobody: with a cluster CA, a member without a
// certificate in another mode (never judged by gossip, so never refused) announces a
// certified victim's /24. Its name must not resolve to an address in the policy (weft policy
// test, and the address index the rules match on, which is built the same way).
func TestPolicyWiring_UncertifiedMemberNamesNobody(t *testing.T) {
	a, g := trustAgent(t, config.DefaultConfig())
	a.gsp = g.Gossip
	ca := newTestCA(t, "cluster")
	a.pki.Store(&trust.PKI{Pool: ca.Pool})
	victimKey := newKey(t).Public()
	victim := liveMember("victim", membership.NodeInfo{PublicKey: victimKey, Subnet: pfx("10.42.5.0/24"), DataPort: 51820, VNI: 1, Mode: modeByte("l3", "wireguard")})
	cert := ca.Sign(t, "victim", victimKey, time.Now().Add(-time.Hour), time.Now().Add(time.Hour), "10.42.5.0/24")
	victim.Tags = map[string]string{identity.TagKey: tagOf(t, cert)}
	evil := liveMember("evil", membership.NodeInfo{PublicKey: newKey(t).Public(), Subnet: pfx("10.42.5.0/24"), DataPort: 51820, VNI: 1, Mode: modeByte("l2", "wireguard")})
	members := []membership.Member{victim, evil}
	for _, m := range members {
		g.apply(m)
	}
	d := policyDeps(a)
	d.Members = func() []membership.Member { return members }
	d.SetTag = func(string, string) error { return nil }
	d.UserEvent = func(string, []byte) error { return nil }
	pol, err := netpolicy.New(d)
	if err != nil {
		t.Fatal(err)
	}
	if err := pol.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := pol.Test("victim", "10.42.1.1", "80/tcp"); err != nil {
		t.Fatalf("the certified member's name: %v", err)
	}
	if res, err := pol.Test("evil", "10.42.1.1", "80/tcp"); err == nil {
		t.Fatalf("an uncertified member's name resolves in the policy: %+v", res)
	}
}

// TestPolicyWiring_GroupsTagOfImpostor: without a CA (gossiped groups count), a member that
// announces a victim's public key with a groups tag of its choosing is refused (duplicate
// key); the victim's groups must not become the impostor's, also after the impostor goes.
func TestPolicyWiring_GroupsTagOfImpostor(t *testing.T) {
	a, g := trustAgent(t, config.DefaultConfig())
	a.gsp = g.Gossip
	pol, err := newPolicy(a)
	if err != nil {
		t.Fatal(err)
	}
	key := newKey(t).Public()
	victim := liveMember("victim", membership.NodeInfo{PublicKey: key, Subnet: pfx("10.42.5.0/24"), DataPort: 51820, VNI: 1, Mode: modeByte("l3", "wireguard")})
	victim.Tags = map[string]string{"groups": "web"}
	evil := liveMember("evil", membership.NodeInfo{PublicKey: key, Subnet: pfx("10.42.6.0/24"), DataPort: 51820, VNI: 1, Mode: modeByte("l3", "wireguard")})
	evil.Tags = map[string]string{"groups": "admin"}
	for _, ev := range []membership.Event{
		{Type: membership.EventJoin, Member: victim},
		{Type: membership.EventJoin, Member: evil},
		{Type: membership.EventFailed, Member: func() membership.Member { m := evil; m.Status = membership.StatusFailed; return m }()},
	} {
		g.apply(ev.Member) // the gossip loop judges first, then fans the event out
		pol.MemberEvent(ev)
	}
	if got := pol.Groups(key); len(got) != 1 || got[0] != "web" {
		t.Fatalf("the victim's groups are %v after an impostor announced its key, want [web]", got)
	}
}
