package netpolicy

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/weftnet/weft/agent/api"
	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/discovery/membership"
	"github.com/weftnet/weft/internal/testkit"
	"github.com/weftnet/weft/peers"
	"github.com/weftnet/weft/policy"
)

// tcpSYN is a TCP SYN from src to dst:dport.
func tcpSYN(src, dst string, sport, dport uint16) []byte {
	seg := make([]byte, 20)
	binary.BigEndian.PutUint16(seg[0:], sport)
	binary.BigEndian.PutUint16(seg[2:], dport)
	seg[12], seg[13] = 5<<4, 0x02
	return testkit.IPv4(netip.MustParseAddr(src), netip.MustParseAddr(dst), 6, seg)
}

// clientsCluster is this host h1 (10.42.1.0/24) with two live members: hostb
// (10.42.2.0/24, group g) announcing its WireGuard client 10.42.2.200, and "evil"
// (10.42.3.0/24) whose client tag is evilTag. The policy in force lets group g reach h1 on
// port 22 and denies the rest.
type clientsCluster struct {
	p     *Policy
	peerB *peers.Peer
}

func newClientsCluster(t *testing.T, evilTag string) clientsCluster {
	t.Helper()
	d := testDeps(t, "")
	keyB, keyE := newKey(t).Public(), newKey(t).Public()
	member := func(name, sn string, key crypto.PublicKey, tags map[string]string) membership.Member {
		return membership.Member{Name: name, Addr: netip.MustParseAddrPort("192.0.2.1:7946"), Status: membership.StatusAlive, Tags: tags,
			Info: membership.NodeInfo{PublicKey: key, Subnet: netip.MustParsePrefix(sn), DataPort: 51820, VNI: 1, Mode: 3}}
	}
	members := []membership.Member{
		member("hostb", "10.42.2.0/24", keyB, map[string]string{groupsTag: "g", "wc": "10.42.2:200"}),
		member("evil", "10.42.3.0/24", keyE, map[string]string{groupsTag: "x", "wc": evilTag}),
	}
	d.Members = func() []membership.Member { return members }
	p := newStarted(t, d)
	for _, m := range members {
		p.MemberEvent(membership.Event{Type: membership.EventJoin, Member: m})
	}
	p.rebuild()
	doc, err := policy.Parse([]byte("default: deny\nrules:\n  - {name: g-ssh, from: {groups: [g]}, to: {hosts: [h1], ports: [\"22/tcp\"]}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.install(doc, "test"); err != nil {
		t.Fatal(err)
	}
	self := crypto.NewIdentity(newKey(t))
	t.Cleanup(self.Close)
	tbl := peers.NewTable(self)
	// hostb's peer: cryptokey routing gives it its whole /24, the client's address too.
	peerB, err := tbl.Upsert(peers.PeerConfig{PublicKey: keyB, AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.42.2.0/24")}})
	if err != nil {
		t.Fatal(err)
	}
	return clientsCluster{p: p, peerB: peerB}
}

// TestPolicyClients_ClientIsNotItsHost is the fourth attack of issue 23: a rule lets group g
// (hostb's) reach h1 on port 22. hostb itself passes; hostb's WireGuard client, whose
// packets hostb forwards (they arrive from hostb's peer, with the client's source address),
// is refused: it is judged as the client of hostb, with no groups, never as hostb.
func TestPolicyClients_ClientIsNotItsHost(t *testing.T) {
	c := newClientsCluster(t, "")
	if r := c.p.Hook().Inbound(tcpSYN("10.42.2.1", "10.42.1.1", 40000, 22), c.peerB, 1); r != peers.DropNone {
		t.Fatalf("hostb itself to h1:22: %v, want allowed", r)
	}
	if r := c.p.Hook().Inbound(tcpSYN("10.42.2.200", "10.42.1.1", 40001, 22), c.peerB, 1); r != peers.DropPolicyDenied {
		t.Fatalf("hostb's WireGuard client to h1:22: %v, want %v (it passed the rule written for its host's group)", r, peers.DropPolicyDenied)
	}
	// weft policy test and the outbound side resolve the client's address the same way.
	if v := c.p.engine.Test(netip.MustParseAddr("10.42.2.200"), ownAddress, 22, policy.ProtoTCP); v.Allowed() {
		t.Fatalf("policy test from the client: %v", v)
	}
	ep, ok := c.p.res.Endpoint(netip.MustParseAddr("10.42.2.200"))
	if !ok || ep.Host != "client@hostb" || len(ep.Groups) != 0 {
		t.Fatalf("the client's address resolves to %+v %v, want client@hostb with no groups", ep, ok)
	}
	if ep, ok := c.p.res.Endpoint(netip.MustParseAddr("10.42.2.201")); !ok || ep.Host != "hostb" {
		t.Fatalf("hostb's other addresses resolve to %+v %v, want hostb", ep, ok)
	}
}

// TestPolicyClients_ForgedAnnouncementRefused: a member ("evil", 10.42.3.0/24) announces
// hostb's own address 10.42.2.1 as its "client" to have hostb judged as a group-less
// client. The tag reaches outside evil's /24: it is refused whole and counted once, and
// hostb's traffic is judged as hostb. Malformed tags are refused and counted the same way.
func TestPolicyClients_ForgedAnnouncementRefused(t *testing.T) {
	for _, tc := range []struct {
		tag, reason string
	}{
		{"10.42.2:1", clientTagOutsideSubnet},
		{"10.42.2:1-254", clientTagOutsideSubnet},
		{"10.42.3:1,1", clientTagMalformed},
		{"10.42.3:0-255", clientTagMalformed},
		{"garbage", clientTagMalformed},
	} {
		t.Run(tc.tag, func(t *testing.T) {
			c := newClientsCluster(t, tc.tag)
			c.p.rebuild() // a second rebuild does not count the same tag again
			if got := c.p.ClientTagsRefused(); got[tc.reason] != 1 || len(got) != 1 {
				t.Fatalf("refusals %v, want one %s", got, tc.reason)
			}
			if r := c.p.Hook().Inbound(tcpSYN("10.42.2.1", "10.42.1.1", 40000, 22), c.peerB, 1); r != peers.DropNone {
				t.Fatalf("hostb to h1:22 after evil's tag: %v, want allowed", r)
			}
			if ep, ok := c.p.res.Endpoint(netip.MustParseAddr("10.42.2.1")); !ok || ep.Host != "hostb" {
				t.Fatalf("10.42.2.1 resolves to %+v %v, want hostb", ep, ok)
			}
			if ep, ok := c.p.res.Endpoint(netip.MustParseAddr("10.42.3.1")); !ok || ep.Host != "evil" {
				t.Fatalf("10.42.3.1 resolves to %+v %v, want evil", ep, ok)
			}
			// hostb's own, honest announcement still holds.
			if ep, _ := c.p.res.Endpoint(netip.MustParseAddr("10.42.2.200")); ep.Host != "client@hostb" {
				t.Fatalf("hostb's client resolves to %+v", ep)
			}
		})
	}
	// A member announcing its own addresses as clients only gives up its own groups there.
	c := newClientsCluster(t, "10.42.3:7")
	if got := c.p.ClientTagsRefused(); len(got) != 0 {
		t.Fatalf("an honest tag refused: %v", got)
	}
	if ep, _ := c.p.res.Endpoint(netip.MustParseAddr("10.42.3.7")); ep.Host != "client@evil" {
		t.Fatalf("evil's client resolves to %+v", ep)
	}
}

// TestPolicyClients_OwnClients: at the host that serves them, its clients' addresses are
// the clients' (named), not the host's: a rule letting g reach h1 does not reach h1's
// phone through h1.
func TestPolicyClients_OwnClients(t *testing.T) {
	c := newClientsCluster(t, "")
	key := newKey(t).Public()
	c.p.deps.Clients = func() []api.WGClient {
		return []api.WGClient{{Name: "phone", PublicKey: key.String(), Address: netip.MustParseAddr("10.42.1.200")}}
	}
	c.p.rebuild()
	if ep, ok := c.p.res.Endpoint(netip.MustParseAddr("10.42.1.200")); !ok || ep.Host != "client@h1/phone" || len(ep.Groups) != 0 {
		t.Fatalf("own client resolves to %+v %v", ep, ok)
	}
	if r := c.p.Hook().Inbound(tcpSYN("10.42.2.1", "10.42.1.200", 40000, 22), c.peerB, 1); r != peers.DropPolicyDenied {
		t.Fatalf("hostb to h1's phone on 22: %v, want denied", r)
	}
	if r := c.p.Hook().Inbound(tcpSYN("10.42.2.1", "10.42.1.1", 40000, 22), c.peerB, 1); r != peers.DropNone {
		t.Fatalf("hostb to h1:22: %v, want allowed", r)
	}
}

// TestPolicyClients_IdentityNoAlloc: the per-packet identity costs no allocation, for a
// client's packet and for its host's.
func TestPolicyClients_IdentityNoAlloc(t *testing.T) {
	c := newClientsCluster(t, "")
	client, host := tcpSYN("10.42.2.200", "10.42.1.1", 1, 22), tcpSYN("10.42.2.1", "10.42.1.1", 1, 22)
	if ep := c.p.identity(client, c.peerB); ep == nil || ep.Host != "client@hostb" {
		t.Fatalf("client packet: %+v", ep)
	}
	if ep := c.p.identity(host, c.peerB); ep == nil || ep.Host != "hostb" {
		t.Fatalf("host packet: %+v", ep)
	}
	if ep := c.p.identity(client[:12], c.peerB); ep == nil || ep.Host != "hostb" {
		t.Fatalf("truncated packet: %+v", ep)
	}
	if n := testing.AllocsPerRun(100, func() { c.p.identity(client, c.peerB); c.p.identity(host, c.peerB) }); n != 0 {
		t.Fatalf("identity allocates %v", n)
	}
}
