package agent

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
	"github.com/weftnet/weft/agent/config"
	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/discovery/membership"
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

// newPolicyAgent is an Agent without gossip or datapath, enough for its policyGlue.
func newPolicyAgent(t *testing.T, caFile string) *Agent {
	t.Helper()
	cfg := config.DefaultConfig()
	cfg.Name = "h1"
	cfg.StateDir = t.TempDir()
	cfg.PolicyCAFile = caFile
	cfg.Groups = []string{"web"}
	priv, err := crypto.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	a := &Agent{cfg: cfg, log: testLog(t), priv: priv, subnet: netip.MustParsePrefix("10.42.1.0/24"), address: netip.MustParseAddr("10.42.1.1")}
	if a.pol, err = newPolicyGlue(a); err != nil {
		t.Fatal(err)
	}
	if err := a.pol.start(); err != nil {
		t.Fatal(err)
	}
	return a
}

func testLog(t *testing.T) *slog.Logger { return slog.New(slog.NewTextHandler(testWriter{t}, nil)) }

// deliver feeds the chunks of env to g as gossip would.
func deliver(g *policyGlue, env []byte, version uint64) {
	for _, c := range chunkEnvelope(env, version) {
		g.userEvent(policyEventName, c)
	}
}

const denyDoc = "default: deny\nrules:\n  - name: ping\n    from: {any: true}\n    to: {any: true, proto: icmp}\n"

func TestPolicyDist_ChunksInstallNewest(t *testing.T) {
	ca := newPolicyCA(t, "ca")
	a := newPolicyAgent(t, ca.file)
	g := a.pol
	big := denyDoc
	for len(big) < 3000 { // several chunks
		big += "  - from: {groups: [web]}\n    to: {services: [db], ports: [\"5432/tcp\"]}\n"
	}
	env := ca.sign(t, 5, big)
	if n := len(chunkEnvelope(env, 5)); n < 5 {
		t.Fatalf("%d chunks for %d bytes", n, len(env))
	}
	deliver(g, env, 5)
	st := g.status()
	if st.Version != 5 || st.Source != "gossip" || g.engine.Current() == nil {
		t.Fatalf("status %+v", st)
	}
	// Kept across a restart.
	kept, err := os.ReadFile(filepath.Join(a.cfg.StateDir, "policy.signed"))
	if err != nil || string(kept) != string(env) {
		t.Fatalf("kept %d bytes, err %v", len(kept), err)
	}
	again, err := newPolicyGlue(a)
	if err != nil {
		t.Fatal(err)
	}
	a.pol = again
	if err := again.start(); err != nil {
		t.Fatal(err)
	}
	if again.status().Version != 5 || again.engine.Current() == nil {
		t.Fatal("restart lost the policy")
	}
	// An older version changes nothing and is not a refusal.
	deliver(again, ca.sign(t, 4, "default: allow\n"), 4)
	if st := again.status(); st.Version != 5 || len(st.Refused) != 0 {
		t.Fatalf("after an older version: %+v", st)
	}
	// A newer one wins.
	deliver(again, ca.sign(t, 6, "default: allow\n"), 6)
	if v := again.status().Version; v != 6 {
		t.Fatalf("version %d after 6", v)
	}
}

// TestPolicyDist_Hostile: whoever holds the gossip key tries to install a policy.
func TestPolicyDist_Hostile(t *testing.T) {
	ca := newPolicyCA(t, "ca")
	evil := newPolicyCA(t, "ca") // same name, another key
	g := newPolicyAgent(t, ca.file).pol

	deliver(g, evil.sign(t, 9, "default: allow\n"), 9)
	// The evil CA's envelope relabelled with the real CA's issuer: a bad signature.
	spoof := evil.sign(t, 8, "default: allow\n")
	fp, _ := ca.cert.Fingerprint()
	id := fp.Issuer()
	copy(spoof[4:4+identity.IssuerSize], id[:])
	deliver(g, spoof, 8)
	// A valid envelope, its chunks claiming another version.
	deliver(g, ca.sign(t, 3, denyDoc), 99)
	// A chunk set whose digest does not match.
	chunks := chunkEnvelope(ca.sign(t, 10, denyDoc), 10)
	chunks[0][len(chunks[0])-1] ^= 1
	for _, c := range chunks {
		g.userEvent(policyEventName, c)
	}
	// Malformed chunks.
	g.userEvent(policyEventName, []byte{1, 2, 3})
	g.userEvent(policyEventName, append(make([]byte, 16), 5, 2, 0)) // index past count
	// Flood of half documents.
	for v := uint64(100); v < 100+policyMaxAssemblies+2; v++ {
		c := chunkEnvelope(make([]byte, 2*policyChunkData), v)
		g.userEvent(policyEventName, c[0])
	}
	if v := g.status().Version; v != 0 || g.engine.Current() != nil {
		t.Fatalf("a hostile document was installed: version %d", v)
	}
	// After the flood a real document still gets through (the flood's partials are evicted).
	deliver(g, ca.sign(t, 200, denyDoc), 200)
	if v := g.status().Version; v != 200 {
		t.Fatalf("a real document after a flood of partials: version %d", v)
	}
	// Signed by the CA but not a policy.
	notPolicy, err := identity.SignDocument(ca.cert, ca.key, "blocklist", 250, []byte(denyDoc))
	if err != nil {
		t.Fatal(err)
	}
	deliver(g, notPolicy, 250)
	// Signed by the CA but an invalid document.
	deliver(g, ca.sign(t, 251, "default: maybe\n"), 251)

	st := g.status()
	if st.Version != 200 {
		t.Fatalf("a hostile document was installed: %+v", st)
	}
	for reason, want := range map[string]uint64{
		"unknown_ca": 1, "bad_signature": 1, "version_mismatch": 1, "bad_digest": 1, "bad_chunk": 2,
		"assembly_evicted": 3, // two by the flood, one by the real document
		"wrong_purpose":    1, "invalid_document": 1,
	} {
		if got := st.Refused[reason]; got != want {
			t.Errorf("refused %s = %d, want %d (all: %v)", reason, got, want, st.Refused)
		}
	}

	// Without policy_ca_file nothing from gossip is trusted.
	g2 := newPolicyAgent(t, "").pol
	deliver(g2, ca.sign(t, 1, denyDoc), 1)
	if st := g2.status(); st.Version != 0 || st.Refused["no_ca"] != 1 {
		t.Fatalf("without a CA: %+v", st)
	}
}

func TestPolicyGlue_LocalFileWins(t *testing.T) {
	ca := newPolicyCA(t, "ca")
	cfg := config.DefaultConfig()
	cfg.Name = "h1"
	cfg.StateDir = t.TempDir()
	cfg.PolicyCAFile = ca.file
	cfg.PolicyFile = filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(cfg.PolicyFile, []byte("default: deny\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	priv, _ := crypto.GeneratePrivateKey()
	a := &Agent{cfg: cfg, log: testLog(t), priv: priv, subnet: netip.MustParsePrefix("10.42.1.0/24"), address: netip.MustParseAddr("10.42.1.1")}
	g, err := newPolicyGlue(a)
	if err != nil {
		t.Fatal(err)
	}
	a.pol = g
	if err := g.start(); err != nil {
		t.Fatal(err)
	}
	deliver(g, ca.sign(t, 7, "default: allow\n"), 7)
	st := g.status()
	if st.Source != "file" || st.Version != 7 {
		t.Fatalf("status %+v", st)
	}
	if v := g.engine.Test(netip.MustParseAddr("10.42.2.1"), a.address, 22, policy.ProtoTCP); v.Allowed() {
		t.Fatal("the gossiped allow replaced the local deny")
	}
}

func TestPolicyResolver_Endpoint(t *testing.T) {
	g := newPolicyAgent(t, "").pol
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
	a := newPolicyAgent(t, "")
	if !a.pol.status().Enforced {
		t.Fatal("l3 reported as not enforcing")
	}
	a.cfg.Mode, a.cfg.Encryption = "l2", "none"
	if a.pol.status().Enforced {
		t.Fatal("plain L2 reported as enforcing policy")
	}
}

// TestPolicyGlue_StaticPeersAndClientsHaveQuota: a static peer and a WireGuard client have
// no member identity, but each gets a name of its own that no document can write (no groups,
// no host rule matches it), so the flow quota bounds them too: a client flooding new flows
// is refused past MaxFlowsPerPeer, and the static peer keeps opening flows.
func TestPolicyGlue_StaticPeersAndClientsHaveQuota(t *testing.T) {
	a := newPolicyAgent(t, "")
	// The quota comes from the agent's policy_max_flows_per_peer.
	const quota = 5
	a.cfg.PolicyMaxFlowsPerPeer = quota
	var err error
	if a.pol, err = newPolicyGlue(a); err != nil {
		t.Fatal(err)
	}
	if err := a.pol.start(); err != nil {
		t.Fatal(err)
	}
	staticKey, clientKey := newKey(t).Public(), newKey(t).Public()
	a.cfg.Peers = []config.PeerConfig{{PublicKey: staticKey.String()}}
	setTestClients(t, a, []api.WGClient{{Name: "phone", PublicKey: clientKey.String(), Address: netip.MustParseAddr("10.42.1.200")}})
	a.pol.rebuild()

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
	if id := a.pol.identity(static); id == nil || id.Host != "static:"+staticKey.String() || len(id.Groups) != 0 {
		t.Fatalf("static peer's identity %+v", id)
	}
	if id := a.pol.identity(client); id == nil || id.Host != "client:phone" || len(id.Groups) != 0 {
		t.Fatalf("client's identity %+v", id)
	}
	if _, err := policy.Parse([]byte("rules: [{from: {hosts: [\"client:phone\"]}, to: {any: true}}]\n")); err == nil {
		t.Fatal("a document may name the client's quota identity as a host")
	}

	doc, err := policy.Parse([]byte("default: deny\nrules: [{from: {any: true}, to: {any: true}}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.pol.install(doc, "test"); err != nil {
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
		if r := a.pol.hook.Inbound(udp("10.42.1.200", uint16(1024+i)), client, 1); r == peers.DropPolicyFlowQuota {
			refused++
		} else if r != peers.DropNone {
			t.Fatalf("client flow %d: %v", i, r)
		}
	}
	if refused != 50 {
		t.Fatalf("client: %d of %d new flows refused, want 50 past its quota of %d", refused, quota+50, quota)
	}
	if r := a.pol.hook.Inbound(udp("192.168.50.7", 1024), static, 1); r != peers.DropNone {
		t.Fatalf("the static peer's flow after the client's flood: %v", r)
	}
}

// TestPolicyGlue_RefusedMemberNamesNobody: a gossip-key holder announcing this host's /24 is
// refused by the claim checks, and the policy's address index leaves it out too, so the
// rules never take it for this host (or give it this host's name and groups); an honest
// member is indexed as before.
func TestPolicyGlue_RefusedMemberNamesNobody(t *testing.T) {
	a, g := trustAgent(t, config.DefaultConfig())
	a.gsp = g
	a.subnet = pfx("10.42.6.0/24")
	info := func(sn string) membership.NodeInfo {
		return membership.NodeInfo{PublicKey: newKey(t).Public(), Subnet: pfx(sn), DataPort: 51820, VNI: 1, Mode: modeByte("l3", "wireguard")}
	}
	evil, honest := liveMember("evil", info("10.42.6.0/24")), liveMember("db", info("10.42.7.0/24"))
	g.apply(evil)
	g.apply(honest)
	if _, ok := g.refusedReason("evil"); !ok {
		t.Fatal("the claim of this host's subnet was not refused")
	}
	pg, err := newPolicyGlue(a)
	if err != nil {
		t.Fatal(err)
	}
	ix := &addrIndex{byNet: map[netip.Prefix]*policy.Endpoint{}}
	ids := map[crypto.PublicKey]*policy.Endpoint{}
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

// TestPolicyDist_BlocklistedCA: once the CA's fingerprint is in pki.blocklist (a reload), a
// document it signed is refused; before, the same CA's document installs.
func TestPolicyDist_BlocklistedCA(t *testing.T) {
	ca := newPolicyCA(t, "ca")
	a := newPolicyAgent(t, ca.file)
	g := a.pol
	deliver(g, ca.sign(t, 5, denyDoc), 5)
	if v := g.status().Version; v != 5 {
		t.Fatalf("the CA's document: version %d", v)
	}
	fp, _ := ca.cert.Fingerprint()
	a.pki.Store(&pkiState{Blocklist: identity.NewBlocklist(fp)})
	deliver(g, ca.sign(t, 6, "default: allow\n"), 6)
	if v := g.status().Version; v != 5 {
		t.Fatalf("a revoked CA's document was installed: version %d", v)
	}
	if n := g.status().Refused["blocklisted"]; n != 1 {
		t.Fatalf("refusals %v, want blocklisted: 1", g.status().Refused)
	}
}
