package netpolicy

import (
	"crypto/ed25519"
	"encoding/binary"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/weftnet/weft/agent/api"
	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/crypto/cryptotest"
	"github.com/weftnet/weft/discovery/membership"
	"github.com/weftnet/weft/discovery/policydist"
	"github.com/weftnet/weft/identity"
	"github.com/weftnet/weft/peers"
	"github.com/weftnet/weft/policy"
)

type policyCA struct {
	cert *identity.Certificate
	key  ed25519.PrivateKey
	file string
}

func newPolicyCA(t *testing.T, name string) policyCA {
	t.Helper()
	now := time.Now()
	c, k, err := identity.NewCA(identity.CASpec{Name: name, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), name+".crt")
	if err := os.WriteFile(file, p, 0o644); err != nil {
		t.Fatal(err)
	}
	return policyCA{cert: c, key: k, file: file}
}

func (ca policyCA) sign(t *testing.T, version uint64, doc string) []byte {
	t.Helper()
	env, err := identity.SignDocument(ca.cert, ca.key, "policy", version, []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return env
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

func testLog(t *testing.T) *slog.Logger { return slog.New(slog.NewTextHandler(testWriter{t}, nil)) }

func newKey(t *testing.T) crypto.PrivateKey { return cryptotest.NewKey(t) }

var (
	ownSubnet  = netip.MustParsePrefix("10.42.1.0/24")
	ownAddress = netip.MustParseAddr("10.42.1.1")
)

// testDeps is a host "h1" in group web on 10.42.1.0/24, without gossip or catalog.
func testDeps(t *testing.T, caFile string) Deps {
	pc := policy.DefaultConfig()
	return Deps{
		Config: Config{Name: "h1", StateDir: t.TempDir(), PolicyCAFile: caFile, Groups: []string{"web"},
			MaxFlows: pc.MaxFlows, MaxFlowsPerPeer: pc.MaxFlowsPerPeer},
		PublicKey: newKey(t).Public(),
		Logger:    testLog(t),
		Self:      func() (netip.Prefix, netip.Addr) { return ownSubnet, ownAddress },
	}
}

// newStarted builds and starts the subsystem over d.
func newStarted(t *testing.T, d Deps) *Policy {
	t.Helper()
	p, err := New(d)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	return p
}

// deliver feeds the chunks of env to p as gossip would.
func deliver(p *Policy, env []byte, version uint64) {
	for _, c := range policydist.Chunks(env, version) {
		p.MemberEvent(membership.Event{Type: membership.EventUser, Name: policydist.EventName, Payload: c})
	}
}

func TestPolicyGlue_LocalFileWins(t *testing.T) {
	ca := newPolicyCA(t, "ca")
	d := testDeps(t, ca.file)
	d.Config.PolicyFile = filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(d.Config.PolicyFile, []byte("default: deny\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	g := newStarted(t, d)
	deliver(g, ca.sign(t, 7, "default: allow\n"), 7)
	st := g.Status()
	if st.Source != "file" || st.Version != 7 {
		t.Fatalf("status %+v", st)
	}
	if v := g.engine.Test(netip.MustParseAddr("10.42.2.1"), ownAddress, 22, policy.ProtoTCP); v.Allowed() {
		t.Fatal("the gossiped allow replaced the local deny")
	}
}

// TestPolicyGlue_SignedInstalls: a signed document from gossip is put in force (source
// gossip) and kept across a restart of the subsystem.
func TestPolicyGlue_SignedInstalls(t *testing.T) {
	ca := newPolicyCA(t, "ca")
	d := testDeps(t, ca.file)
	g := newStarted(t, d)
	deliver(g, ca.sign(t, 5, "default: deny\n"), 5)
	if st := g.Status(); st.Version != 5 || st.Source != "gossip" || g.engine.Current() == nil {
		t.Fatalf("status %+v", st)
	}
	again := newStarted(t, d)
	if st := again.Status(); st.Version != 5 || st.Source != "gossip" || again.engine.Current() == nil {
		t.Fatalf("after a restart: %+v", st)
	}
}

func TestPolicyResolver_Endpoint(t *testing.T) {
	g := newStarted(t, testDeps(t, ""))
	if ep, ok := g.res.Endpoint(netip.MustParseAddr("10.42.1.77")); !ok || ep.Host != "h1" || len(ep.Groups) != 1 || ep.Groups[0] != "web" {
		t.Fatalf("own subnet: %+v %v", ep, ok)
	}
	if _, ok := g.res.Endpoint(netip.MustParseAddr("10.42.9.1")); ok {
		t.Fatal("an unknown address resolved")
	}
	if allocs := testing.AllocsPerRun(100, func() { g.res.Endpoint(netip.MustParseAddr("10.42.1.5")) }); allocs != 0 {
		t.Errorf("Endpoint allocates %v", allocs)
	}
	if got := parseGroups("web,db,,a b,web," + string(make([]byte, 40))); len(got) != 2 || got[0] != "web" || got[1] != "db" {
		t.Errorf("parseGroups = %q", got)
	}
}

// TestPolicyGlue_PlainL2NotEnforced: plain L2 has no authenticated sender; the status says
// the policy is not enforced (the agent also logs it at start).
func TestPolicyGlue_PlainL2NotEnforced(t *testing.T) {
	if !newStarted(t, testDeps(t, "")).Status().Enforced {
		t.Fatal("l3 reported as not enforcing")
	}
	d := testDeps(t, "")
	d.Config.PlainL2 = true // mode l2, encryption none
	if newStarted(t, d).Status().Enforced {
		t.Fatal("plain L2 reported as enforcing policy")
	}
}

// TestPolicyGlue_StaticPeersAndClientsHaveQuota: a static peer and a WireGuard client have
// no member identity, but each gets a name of its own that no document can write (no groups,
// no host rule matches it), so the flow quota bounds them too: a client flooding new flows
// is refused past MaxFlowsPerPeer, and the static peer keeps opening flows.
func TestPolicyGlue_StaticPeersAndClientsHaveQuota(t *testing.T) {
	d := testDeps(t, "")
	// The quota comes from the agent's policy_max_flows_per_peer.
	const quota = 5
	d.Config.MaxFlowsPerPeer = quota
	var staticPeers []string
	var clients []api.WGClient
	d.StaticPeers = func() []string { return staticPeers }
	d.Clients = func() []api.WGClient { return clients }
	g := newStarted(t, d)
	staticKey, clientKey := newKey(t).Public(), newKey(t).Public()
	staticPeers = []string{staticKey.String()}
	clients = []api.WGClient{{Name: "phone", PublicKey: clientKey.String(), Address: netip.MustParseAddr("10.42.1.200")}}
	g.rebuild()

	self := crypto.NewIdentity(newKey(t))
	t.Cleanup(self.Close)
	tbl := peers.NewTable(self)
	static, err := tbl.Upsert(peers.PeerConfig{PublicKey: staticKey, AllowedIPs: []netip.Prefix{netip.MustParsePrefix("192.168.50.0/24")}})
	if err != nil {
		t.Fatal(err)
	}
	client, err := tbl.Upsert(peers.PeerConfig{PublicKey: clientKey, AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.42.1.200/32")}})
	if err != nil {
		t.Fatal(err)
	}
	if id := g.identity(nil, static); id == nil || id.Host != "static:"+staticKey.String() || len(id.Groups) != 0 {
		t.Fatalf("static peer's identity %+v", id)
	}
	if id := g.identity(nil, client); id == nil || id.Host != "client@h1/phone" || len(id.Groups) != 0 {
		t.Fatalf("client's identity %+v", id)
	}
	if _, err := policy.Parse([]byte("rules: [{from: {hosts: [\"client@h1/phone\"]}, to: {any: true}}]\n")); err == nil {
		t.Fatal("a document may name the client's quota identity as a host")
	}

	doc, err := policy.Parse([]byte("default: deny\nrules: [{from: {any: true}, to: {any: true}}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := g.install(doc, "test"); err != nil {
		t.Fatal(err)
	}
	udp := func(src string, sport uint16) []byte {
		p := make([]byte, 28)
		p[0], p[8], p[9] = 0x45, 64, 17
		binary.BigEndian.PutUint16(p[2:], 28)
		s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr("10.42.1.1").As4()
		copy(p[12:16], s[:])
		copy(p[16:20], d[:])
		binary.BigEndian.PutUint16(p[20:], sport)
		binary.BigEndian.PutUint16(p[22:], 53)
		binary.BigEndian.PutUint16(p[24:], 8)
		return p
	}
	refused := 0
	for i := range quota + 50 {
		if r := g.Hook().Inbound(udp("10.42.1.200", uint16(1024+i)), client, 1); r == peers.DropPolicyFlowQuota {
			refused++
		} else if r != peers.DropNone {
			t.Fatalf("client flow %d: %v", i, r)
		}
	}
	if refused != 50 {
		t.Fatalf("client: %d of %d new flows refused, want 50 past its quota of %d", refused, quota+50, quota)
	}
	if r := g.Hook().Inbound(udp("192.168.50.7", 1024), static, 1); r != peers.DropNone {
		t.Fatalf("the static peer's flow after the client's flood: %v", r)
	}
}

// TestPolicyGlue_RefusedMemberNamesNobody: a member whose claims the trust checks refuse
// (here: a gossip-key holder announcing this host's /24) is left out of the policy's
// address index, so the rules never take it for this host (or give it this host's name and
// groups); an honest member is indexed as before. That the agent's trust checks refuse
// such a claim, and that Deps.Trusted reports it, is tested in package agent
// (TestPolicyWiring_RefusedMember, TestPolicyWiring_UncertifiedMemberNamesNobody).
func TestPolicyGlue_RefusedMemberNamesNobody(t *testing.T) {
	d := testDeps(t, "")
	d.Trusted = func(name string) bool { return name != "evil" }
	pg, err := New(d)
	if err != nil {
		t.Fatal(err)
	}
	info := func(sn string) membership.NodeInfo {
		return membership.NodeInfo{PublicKey: newKey(t).Public(), Subnet: netip.MustParsePrefix(sn), DataPort: 51820, VNI: 1, Mode: 3}
	}
	live := func(name string, info membership.NodeInfo) membership.Member {
		return membership.Member{Name: name, Addr: netip.MustParseAddrPort("192.0.2.1:7946"), Status: membership.StatusAlive, Info: info}
	}
	evil, honest := live("evil", info("10.42.6.0/24")), live("db", info("10.42.7.0/24"))
	ix := newAddrIndex()
	ids := map[crypto.PublicKey]*ident{}
	pg.indexMembers(ix, ids, []membership.Member{evil, honest})
	if ep, ok := ix.lookup(netip.MustParseAddr("10.42.6.9")); ok {
		t.Fatalf("the refused member names this host's /24: %+v", ep)
	}
	if ids[crypto.PublicKey(evil.Info.PublicKey)] != nil {
		t.Fatal("the refused member has a policy identity")
	}
	if ep, ok := ix.lookup(netip.MustParseAddr("10.42.7.9")); !ok || ep.Host != "db" {
		t.Fatalf("the honest member: %+v %v", ep, ok)
	}
}
