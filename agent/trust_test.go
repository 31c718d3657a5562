package agent

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/weftnet/weft/agent/config"
	"github.com/weftnet/weft/agent/gossip"
	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/crypto/cryptotest"
	"github.com/weftnet/weft/discovery/catalog"
	"github.com/weftnet/weft/discovery/membership"
	"github.com/weftnet/weft/discovery/trust"
	"github.com/weftnet/weft/identity"
	"github.com/weftnet/weft/identity/identitytest"
	"github.com/weftnet/weft/peers"
)

func newKey(t *testing.T) crypto.PrivateKey { return cryptotest.NewKey(t) }

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// testCA is a throwaway cluster CA (identitytest).
type testCA = identitytest.CA

func newTestCA(t testing.TB, name string) testCA { return identitytest.NewCA(t, name) }

func tagOf(t *testing.T, c *identity.Certificate) string { return identitytest.Tag(t, c) }

// trustAgent is an L3 agent with a peer table and gossip glue but no device or Serf events:
// applyMember drives it with forged members.
func trustAgent(t *testing.T, cfg config.Config) (*Agent, *testGossip) {
	t.Helper()
	priv := newKey(t)
	cfg.Name = "self"
	id := crypto.NewIdentity(priv)
	t.Cleanup(id.Close)
	a := &Agent{cfg: cfg, log: NewLogger(testWriter{t}, "debug"), priv: priv, table: peers.NewTable(id)}
	a.dp = newDatapath(a)
	return a, &testGossip{gossip.Attach(nil, a.gossipConfig(), a.gossipDeps())}
}

// testGossip is the gossip subsystem driven as its event loop does (gossip.Apply, Refused).
type testGossip struct{ *gossip.Gossip }

func (g *testGossip) apply(m membership.Member) bool { return g.Apply(m) }

func (g *testGossip) refusedReason(name string) (trust.Refusal, bool) { return g.Refused(name) }

func modeByte(mode, encryption string) byte { return gossip.ModeByte(mode, encryption) }

func liveMember(name string, info membership.NodeInfo) membership.Member {
	return membership.Member{Name: name, Addr: netip.MustParseAddrPort("192.0.2.1:7946"), Status: membership.StatusAlive, Info: info}
}

// TestGossip_HostileClaims: a hostile member cannot take a victim's addresses, a static
// peer's key, or a victim's key; refusals are counted once per change and never remove what
// an honest member holds; a duplicate key is peered with neither until one goes.
func TestGossip_HostileClaims(t *testing.T) {
	staticKey := newKey(t).Public()
	cfg := config.DefaultConfig()
	cfg.Peers = []config.PeerConfig{{PublicKey: staticKey.String(), AllowedIPs: []config.Prefix{{Prefix: pfx("10.99.0.0/24")}}, Endpoint: config.AddrPort{AddrPort: netip.MustParseAddrPort("192.0.2.9:51820")}}}
	a, g := trustAgent(t, cfg)
	if err := addStaticNoRoute(a, cfg.Peers[0]); err != nil { // no kernel route
		t.Fatal(err)
	}
	victimKey, evilKey := newKey(t).Public(), newKey(t).Public()
	victim := liveMember("victim", membership.NodeInfo{PublicKey: victimKey, Subnet: pfx("10.42.5.0/24"), DataPort: 51820, VNI: 1, Mode: modeByte("l3", "wireguard")})
	g.apply(victim)
	evil := func(edit func(n *membership.NodeInfo)) membership.Member {
		n := membership.NodeInfo{PublicKey: evilKey, Subnet: pfx("10.42.6.0/24"), DataPort: 51820, VNI: 1, Mode: modeByte("l3", "wireguard")}
		edit(&n)
		return liveMember("evil", n)
	}
	route := func(addr string) crypto.PublicKey {
		p := a.table.Lookup(netip.MustParseAddr(addr))
		if p == nil {
			return crypto.PublicKey{}
		}
		return p.Key()
	}
	if route("10.42.5.9") != victimKey {
		t.Fatal("the victim's subnet is not routed to it")
	}
	forgeries := []struct {
		reason string
		m      membership.Member
	}{
		{trust.ReasonSubnetNotSlot, evil(func(n *membership.NodeInfo) { n.Subnet = pfx("10.42.5.9/32") })},
		{trust.ReasonStaticNotAllow, evil(func(n *membership.NodeInfo) { n.Subnet, n.Static = pfx("0.0.0.0/0"), true })},
		{trust.ReasonStaticPeerKey, evil(func(n *membership.NodeInfo) { n.PublicKey = staticKey })},
	}
	for _, f := range forgeries {
		g.apply(f.m)
		g.apply(f.m) // a repeat of the same claim is not counted again
		if r, _ := g.refusedReason("evil"); r.Reason != f.reason {
			t.Fatalf("refusal %+v, want %s", r, f.reason)
		}
		if route("10.42.5.9") != victimKey || route("10.42.77.1") != (crypto.PublicKey{}) {
			t.Fatalf("%s: routes moved: 10.42.5.9 → %v, 10.42.77.1 → %v", f.reason, route("10.42.5.9"), route("10.42.77.1"))
		}
		if p := a.table.ByKey(staticKey); p == nil || len(p.AllowedIPs()) != 1 || p.AllowedIPs()[0] != pfx("10.99.0.0/24") || p.Endpoint().Port() != 51820 {
			t.Fatalf("%s: the static peer changed: %+v", f.reason, p)
		}
		if got := g.RefusedCounts()[f.reason]; got != 1 {
			t.Fatalf("%s counted %d times, want 1", f.reason, got)
		}
	}
	// The member that announced the static peer's key leaves: the static peer stays.
	left := forgeries[2].m
	left.Status = membership.StatusLeft
	g.apply(left)
	if a.table.ByKey(staticKey) == nil {
		t.Fatal("a member leaving removed the static peer")
	}
	if _, ok := g.refusedReason("evil"); ok {
		t.Fatal("a member that left is still shown as refused")
	}

	// The victim's key announced by another member: neither is peered, and it is reported.
	dup := evil(func(n *membership.NodeInfo) { n.PublicKey = victimKey })
	g.apply(dup)
	if a.table.ByKey(victimKey) != nil {
		t.Fatal("a duplicated key is still peered")
	}
	for _, n := range []string{"victim", "evil"} {
		if r, _ := g.refusedReason(n); r.Reason != trust.ReasonDuplicateKey {
			t.Fatalf("%s: refusal %+v, want duplicate_key", n, r)
		}
	}
	if d := g.Duplicates(); len(d) != 1 || !strings.Contains(d[0], "evil, victim") {
		t.Fatalf("conflicts %v", d)
	}
	// The copier goes: the victim is peered again with its subnet.
	dup.Status = membership.StatusFailed
	g.apply(dup)
	if route("10.42.5.9") != victimKey {
		t.Fatal("the victim is not peered again after the duplicate went")
	}
	if _, ok := g.refusedReason("victim"); ok || len(g.Duplicates()) != 0 {
		t.Fatal("the victim is still refused")
	}

	// A member announcing this host's subnet is refused.
	a.subnet = pfx("10.42.6.0/24")
	g.apply(evil(func(*membership.NodeInfo) {}))
	if r, _ := g.refusedReason("evil"); r.Reason != trust.ReasonOverlapsOwn || route("10.42.6.1") != (crypto.PublicKey{}) {
		t.Fatalf("claim of this host's subnet: %+v", r)
	}
}

// TestAgent_PeerGroups: the groups of a verified member's certificate; nil without a CA.
func TestAgent_PeerGroups(t *testing.T) {
	a, g := trustAgent(t, config.DefaultConfig())
	a.gsp = g.Gossip
	ca := newTestCA(t, "cluster")
	key := newKey(t).Public()
	cert := ca.Sign(t, "m", key, time.Now().Add(-time.Hour), time.Now().Add(time.Hour), "10.42.7.0/24")
	m := liveMember("m", membership.NodeInfo{PublicKey: key, Subnet: pfx("10.42.7.0/24"), DataPort: 51820, VNI: 1, Mode: modeByte("l3", "wireguard")})
	m.Tags = map[string]string{identity.TagKey: tagOf(t, cert)}
	g.apply(m)
	if got := a.peerGroups(key); got != nil {
		t.Fatalf("without a CA: %v", got)
	}
	a.pki.Store(&trust.PKI{Pool: ca.Pool})
	g.apply(m)
	if got := a.peerGroups(key); len(got) != 1 || got[0] != "web" {
		t.Fatalf("groups %v, want [web]", got)
	}
	// Blocklisted after a reload: refused, withdrawn, no groups.
	fp, _ := cert.Fingerprint()
	a.pki.Store(&trust.PKI{Pool: ca.Pool, Blocklist: identity.NewBlocklist(fp)})
	g.apply(m)
	if a.peerGroups(key) != nil || a.table.ByKey(key) != nil {
		t.Fatal("a blocklisted member keeps its groups or its peer")
	}
}

// TestCatalogBudget_WithCertificate measures what a host certificate in gossip leaves the
// catalog: the tags of an L3 and an L2 host with and without a typical certificate (12-char
// name, one /24, two groups), the catalog budget startCatalog computes from them, and how
// many realistic services (12-char name, 4-digit port, one tag, a check) fit. README's
// "Catalog budget" quotes these figures.
func TestCatalogBudget_WithCertificate(t *testing.T) {
	key := newKey(t).Public()
	ca := newTestCA(t, "cluster")
	spec := identity.HostSpec{Name: "host-0001.eu", PublicKey: key, Prefixes: []netip.Prefix{pfx("10.42.7.0/24")},
		Groups: []string{"prod", "web"}, NotBefore: time.Now(), NotAfter: time.Now().AddDate(1, 0, 0)}
	cert, err := identity.Sign(ca.Cert, ca.Key, spec)
	if err != nil {
		t.Fatal(err)
	}
	certTag := tagOf(t, cert)
	fits := func(budget int) int {
		for n := 1; ; n++ {
			var shs []catalog.ServiceHealth
			for i := range n {
				shs = append(shs, catalog.ServiceHealth{Service: catalog.Service{Name: fmt.Sprintf("service-%04d", i),
					Port: uint16(8000 + i), Tags: []string{"http"}}, Health: catalog.HealthCritical})
			}
			v, err := catalog.EncodeCatalog(shs)
			if err != nil {
				t.Fatal(err)
			}
			if len(v) > budget {
				return n - 1
			}
		}
	}
	for _, mode := range []string{"l3", "l2"} {
		info := membership.NodeInfo{PublicKey: key, DataPort: 51820, VNI: 1, Proto: ProtocolVersion, Mode: modeByte(mode, "wireguard"), Subnet: pfx("10.42.7.0/24")}
		if mode == "l2" {
			info.MAC = tapMACOf(key)
		}
		n, err := info.EncodeTag()
		if err != nil {
			t.Fatal(err)
		}
		without := membership.EncodedTagsSize(map[string]string{membership.TagNodeInfo: n})
		with := membership.EncodedTagsSize(map[string]string{membership.TagNodeInfo: n, identity.TagKey: certTag})
		bWithout := min(catalog.DefaultCatalogBudget, membership.TagBudget-without-6)
		bWith := min(catalog.DefaultCatalogBudget, membership.TagBudget-with-6)
		t.Logf("%s: tags %d bytes without a certificate (catalog budget %d: %d services), %d with one of %d characters (budget %d: %d services)",
			mode, without, bWithout, fits(bWithout), with, len(certTag), bWith, fits(bWith))
		if fits(bWith) < 8 {
			t.Fatalf("%s: only %d services fit beside a certificate", mode, fits(bWith))
		}
	}
}

// TestPolicyGlue_GroupsFromCertificate: with a cluster CA a member's policy groups are its
// certificate's; a groups tag it writes itself (here claiming db) counts for nothing.
func TestPolicyGlue_GroupsFromCertificate(t *testing.T) {
	a, g := trustAgent(t, config.DefaultConfig())
	a.gsp = g.Gossip
	pol, err := newPolicy(a)
	if err != nil {
		t.Fatal(err)
	}
	ca := newTestCA(t, "cluster")
	key := newKey(t).Public()
	cert := ca.Sign(t, "m", key, time.Now().Add(-time.Hour), time.Now().Add(time.Hour), "10.42.7.0/24")
	m := liveMember("m", membership.NodeInfo{PublicKey: key, Subnet: pfx("10.42.7.0/24"), DataPort: 51820, VNI: 1, Mode: modeByte("l3", "wireguard")})
	m.Tags = map[string]string{identity.TagKey: tagOf(t, cert), "groups": "db"}
	g.apply(m)                                                               // gossip judges it first, then fans the event out
	pol.MemberEvent(membership.Event{Type: membership.EventJoin, Member: m}) // what the member announces
	if got := pol.Groups(key); len(got) != 1 || got[0] != "db" {
		t.Fatalf("without a CA the gossiped groups count: %v", got)
	}
	a.pki.Store(&trust.PKI{Pool: ca.Pool})
	g.apply(m)
	if got := pol.Groups(key); len(got) != 1 || got[0] != "web" {
		t.Fatalf("with a CA: groups %v, want the certificate's [web]", got)
	}
	if got := pol.Groups(newKey(t).Public()); got != nil {
		t.Fatalf("an unknown member has groups %v", got)
	}
}

// TestReloadPKI_RemovingTheCANeedsARestart: a reload that drops pki.ca is refused with what
// to do, and the CA stays in force (it is not silently kept while the config says none).
func TestReloadPKI_RemovingTheCANeedsARestart(t *testing.T) {
	a, _ := trustAgent(t, config.DefaultConfig())
	a.cfg.PKI = config.PKIConfig{CA: "/etc/weft/ca.crt", Cert: "/etc/weft/host.crt"}
	next := a.cfg
	next.PKI = config.PKIConfig{}
	if _, err := a.reloadPKIStep(&next); err == nil || !strings.Contains(err.Error(), "restart") {
		t.Fatalf("reload without pki.ca: %v, want a refusal naming the restart", err)
	}
	if a.cfg.PKI.CA != "/etc/weft/ca.crt" {
		t.Fatalf("pki.ca is now %q", a.cfg.PKI.CA)
	}
}

// TestGossip_SubnetTakeover: without a CA, a gossip-key holder announces the victim's exact
// /24 with its own key, sorting below and above the victim's. With the real peer table: the
// victim's prefix stays routed to the victim with its allowed IPs whole, the forger is never
// a peer, and the refusal is counted once (subnet_held).
func TestGossip_SubnetTakeover(t *testing.T) {
	for _, lower := range []bool{true, false} {
		t.Run(fmt.Sprintf("forger_key_lower=%v", lower), func(t *testing.T) {
			a, g := trustAgent(t, config.DefaultConfig())
			victimKey := newKey(t).Public()
			victim := liveMember("victim", membership.NodeInfo{PublicKey: victimKey, Subnet: pfx("10.42.5.0/24"), DataPort: 51820, VNI: 1, Mode: modeByte("l3", "wireguard")})
			g.apply(victim)
			var evilKey crypto.PublicKey
			for {
				evilKey = newKey(t).Public()
				if (bytesCompare(evilKey, victimKey) < 0) == lower {
					break
				}
			}
			forged := liveMember("evil", membership.NodeInfo{PublicKey: evilKey, Subnet: pfx("10.42.5.0/24"), DataPort: 51820, VNI: 1, Mode: modeByte("l3", "wireguard")})
			g.apply(forged)
			g.apply(forged)
			if p := a.table.Lookup(netip.MustParseAddr("10.42.5.9")); p == nil || p.Key() != victimKey {
				t.Fatalf("10.42.5.9 no longer routes to the victim %s (forger %s took over the prefix)", victimKey, evilKey)
			}
			if p := a.table.ByKey(victimKey); p == nil || len(p.AllowedIPs()) != 1 || p.AllowedIPs()[0] != pfx("10.42.5.0/24") {
				t.Fatalf("the victim's allowed IPs: %+v", p)
			}
			if a.table.ByKey(evilKey) != nil {
				t.Fatal("the forger is a peer")
			}
			if r, _ := g.refusedReason("evil"); r.Reason != trust.ReasonSubnetHeld {
				t.Fatalf("refusal %+v, want %s", r, trust.ReasonSubnetHeld)
			}
			if n := g.RefusedCounts()[trust.ReasonSubnetHeld]; n != 1 {
				t.Fatalf("counted %d, want 1", n)
			}
		})
	}
}

func bytesCompare(a, b crypto.PublicKey) int { return strings.Compare(string(a[:]), string(b[:])) }
