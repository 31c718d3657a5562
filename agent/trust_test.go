package agent

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weftnet/weft/agent/config"
	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/discovery/catalog"
	"github.com/weftnet/weft/discovery/membership"
	"github.com/weftnet/weft/identity"
	"github.com/weftnet/weft/peers"
)

func newKey(t *testing.T) crypto.PrivateKey {
	t.Helper()
	k, err := crypto.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// testPolicy: this host holds 10.42.1.0/24; a static peer holds 10.99.0.0/24 and one is an
// exit host (0.0.0.0/0); 10.200.0.0/16 is allowed for static claims.
func testPolicy(t *testing.T, own, staticKey crypto.PublicKey) *claimPolicy {
	return &claimPolicy{
		cluster:       pfx("10.42.0.0/16"),
		allowedStatic: []netip.Prefix{pfx("10.200.0.0/16")},
		own:           pfx("10.42.1.0/24"),
		ownKey:        own,
		l2:            true,
		static: []staticClaim{
			{key: staticKey, hasKey: true, prefixes: []netip.Prefix{pfx("10.99.0.0/24")}},
			{prefixes: []netip.Prefix{pfx("0.0.0.0/0")}},
		},
		now: time.Now(),
	}
}

// TestCheckClaim_Forgeries: every forged claim is refused with its reason; honest claims pass.
func TestCheckClaim_Forgeries(t *testing.T) {
	own, static, member, victim := newKey(t).Public(), newKey(t).Public(), newKey(t).Public(), newKey(t).Public()
	p := testPolicy(t, own, static)
	honest := membership.NodeInfo{PublicKey: member, Subnet: pfx("10.42.7.0/24"), MAC: tapMACOf(member)}
	cases := []struct {
		name   string
		edit   func(n *membership.NodeInfo)
		reason string
	}{
		{"honest", func(*membership.NodeInfo) {}, ""},
		{"honest static /24 in the cluster", func(n *membership.NodeInfo) { n.Static = true }, ""},
		{"honest static in allowed_static", func(n *membership.NodeInfo) { n.Subnet, n.Static = pfx("10.200.3.0/24"), true }, ""},
		{"no MAC (l3 host in gossip)", func(n *membership.NodeInfo) { n.MAC = [6]byte{} }, ""},
		{"prefix too wide", func(n *membership.NodeInfo) { n.Subnet = pfx("10.42.0.0/16") }, reasonSubnetNotSlot},
		{"/23", func(n *membership.NodeInfo) { n.Subnet = pfx("10.42.6.0/23") }, reasonSubnetNotSlot},
		{"/32 inside another's subnet", func(n *membership.NodeInfo) { n.Subnet = pfx("10.42.9.1/32") }, reasonSubnetNotSlot},
		{"/32 inside own subnet", func(n *membership.NodeInfo) { n.Subnet = pfx("10.42.1.1/32") }, reasonSubnetNotSlot},
		{"outside the cluster CIDR", func(n *membership.NodeInfo) { n.Subnet = pfx("10.43.7.0/24") }, reasonSubnetNotSlot},
		{"IPv6", func(n *membership.NodeInfo) { n.Subnet = pfx("fd00::/120") }, reasonSubnetNotSlot},
		{"static 0.0.0.0/0", func(n *membership.NodeInfo) { n.Subnet, n.Static = pfx("0.0.0.0/0"), true }, reasonStaticNotAllow},
		{"static /32 inside another's subnet", func(n *membership.NodeInfo) { n.Subnet, n.Static = pfx("10.42.9.1/32"), true }, reasonStaticNotAllow},
		{"static wider than allowed_static", func(n *membership.NodeInfo) { n.Subnet, n.Static = pfx("10.200.0.0/15"), true }, reasonStaticNotAllow},
		{"own subnet", func(n *membership.NodeInfo) { n.Subnet = pfx("10.42.1.0/24") }, reasonOverlapsOwn},
		{"static peer's prefix", func(n *membership.NodeInfo) { n.Subnet, n.Static = pfx("10.99.0.0/24"), true }, reasonStaticNotAllow},
		{"MAC not derived from the key", func(n *membership.NodeInfo) { n.MAC = tapMACOf(victim) }, reasonMACNotDerived},
		{"own public key", func(n *membership.NodeInfo) { n.PublicKey, n.MAC = own, tapMACOf(own) }, reasonOwnKey},
		{"static peer's public key", func(n *membership.NodeInfo) { n.PublicKey, n.MAC = static, tapMACOf(static) }, reasonStaticPeerKey},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			info := honest
			tc.edit(&info)
			_, err := checkClaim(p, memberClaim{name: "m", info: info})
			got := ""
			if err != nil {
				got = err.reason
			}
			if got != tc.reason {
				t.Fatalf("reason %q (%v), want %q", got, err, tc.reason)
			}
		})
	}

	// A static peer prefix inside allowed_static is still protected: overlap is refused.
	p.static[0].prefixes = []netip.Prefix{pfx("10.200.9.0/24")}
	info := honest
	info.Subnet, info.Static = pfx("10.200.9.0/24"), true
	if _, err := checkClaim(p, memberClaim{name: "m", info: info}); err == nil || err.reason != reasonOverlapsStatic {
		t.Fatalf("claim of a static peer's prefix: %v, want %s", err, reasonOverlapsStatic)
	}
	// In L3 the MAC is not checked (it is not used).
	p.l2 = false
	info = honest
	info.MAC = tapMACOf(victim)
	if _, err := checkClaim(p, memberClaim{name: "m", info: info}); err != nil {
		t.Fatalf("l3: %v", err)
	}
}

type testCA struct {
	cert *identity.Certificate
	key  ed25519.PrivateKey
	pool *identity.CAPool
}

func newTestCA(t testing.TB, name string) testCA {
	t.Helper()
	// Two years, so a test's one-year host certificate signed a second later (the clock may
	// tick in between) still lies inside the CA's validity.
	c, k, err := identity.NewCA(identity.CASpec{Name: name, NotBefore: time.Now().AddDate(0, 0, -30), NotAfter: time.Now().AddDate(2, 0, 0)}, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := identity.NewCAPool(c)
	if err != nil {
		t.Fatal(err)
	}
	return testCA{cert: c, key: k, pool: pool}
}

func (ca testCA) sign(t *testing.T, name string, key crypto.PublicKey, from, to time.Time, prefixes ...string) *identity.Certificate {
	t.Helper()
	spec := identity.HostSpec{Name: name, PublicKey: key, NotBefore: from, NotAfter: to, Groups: []string{"web"}}
	for _, p := range prefixes {
		spec.Prefixes = append(spec.Prefixes, pfx(p))
	}
	c, err := identity.Sign(ca.cert, ca.key, spec)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func tagOf(t *testing.T, c *identity.Certificate) string {
	t.Helper()
	s, err := c.EncodeTag()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestCheckClaim_Certificates: with a CA, a member needs a valid certificate of a trusted CA
// that names its name, key and subnet.
func TestCheckClaim_Certificates(t *testing.T) {
	own, member := newKey(t).Public(), newKey(t).Public()
	ca, other := newTestCA(t, "cluster"), newTestCA(t, "other")
	now := time.Now()
	from, to := now.Add(-time.Hour), now.Add(30*24*time.Hour)
	good := ca.sign(t, "m", member, from, to, "10.42.7.0/24")
	fp, _ := good.Fingerprint()
	revoked := ca.sign(t, "m", member, from, to.Add(time.Hour), "10.42.7.0/24")
	rfp, _ := revoked.Fingerprint()
	p := testPolicy(t, own, newKey(t).Public())
	p.pki = &pkiState{pool: ca.pool, blocklist: identity.NewBlocklist(rfp)}
	info := membership.NodeInfo{PublicKey: member, Subnet: pfx("10.42.7.0/24"), MAC: tapMACOf(member)}
	cases := []struct {
		name, member, cert string
		subnet             netip.Prefix
		reason             string
	}{
		{"valid", "m", tagOf(t, good), info.Subnet, ""},
		{"no certificate", "m", "", info.Subnet, reasonNoCertificate},
		{"garbage", "m", "not base64!", info.Subnet, "malformed"},
		{"unknown version", "m", "AAAA", info.Subnet, "unknown_version"},
		{"other CA", "m", tagOf(t, other.sign(t, "m", member, from, to, "10.42.7.0/24")), info.Subnet, "unknown_ca"},
		{"expired", "m", tagOf(t, ca.sign(t, "m", member, now.Add(-48*time.Hour), now.Add(-time.Hour), "10.42.7.0/24")), info.Subnet, "expired"},
		{"not yet valid", "m", tagOf(t, ca.sign(t, "m", member, now.Add(time.Hour), to, "10.42.7.0/24")), info.Subnet, "not_yet_valid"},
		{"blocklisted", "m", tagOf(t, revoked), info.Subnet, "blocklisted"},
		{"name mismatch", "other-host", tagOf(t, good), info.Subnet, "name_mismatch"},
		{"key mismatch", "m", tagOf(t, ca.sign(t, "m", newKey(t).Public(), from, to, "10.42.7.0/24")), info.Subnet, "key_mismatch"},
		{"subnet outside the certificate", "m", tagOf(t, good), pfx("10.42.8.0/24"), "prefix_not_allowed"},
		{"a certificate does not widen the gossip rules", "m", tagOf(t, ca.sign(t, "m", member, from, to, "10.42.0.0/16")), pfx("10.42.9.1/32"), reasonSubnetNotSlot},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := info
			in.Subnet = tc.subnet
			claims, err := checkClaim(p, memberClaim{name: tc.member, info: in, cert: tc.cert})
			got := ""
			if err != nil {
				got = err.reason
			}
			if got != tc.reason {
				t.Fatalf("reason %q (%v), want %q", got, err, tc.reason)
			}
			if tc.reason == "" && (claims.Fingerprint != fp || !claims.HasGroup("web")) {
				t.Fatalf("claims %+v", claims)
			}
		})
	}
}

// TestLoadPKI: the agent refuses to start with a certificate of another CA or of another key
// or name, and says what to do; an expired one starts with a warning.
func TestLoadPKI(t *testing.T) {
	dir := t.TempDir()
	priv := newKey(t)
	ca, other := newTestCA(t, "cluster"), newTestCA(t, "other")
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pemOf := func(c *identity.Certificate) []byte {
		b, err := c.MarshalPEM()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	caFile := write("ca.crt", pemOf(ca.cert))
	now := time.Now()
	from, to := now.Add(-time.Hour), now.AddDate(0, 1, 0)
	cases := []struct {
		name string
		cert *identity.Certificate
		want string
	}{
		{"valid", ca.sign(t, "h", priv.Public(), from, to, "10.42.7.0/24"), ""},
		{"other CA", other.sign(t, "h", priv.Public(), from, to), "unknown CA"},
		{"other key", ca.sign(t, "h", newKey(t).Public(), from, to), "this host's is"},
		{"other name", ca.sign(t, "g", priv.Public(), from, to), `node name "g"`},
		{"expiring soon", ca.sign(t, "h", priv.Public(), from, now.Add(48*time.Hour)), "warn:expires in"},
		{"expired", ca.sign(t, "h", priv.Public(), now.Add(-48*time.Hour), now.Add(-time.Hour)), "warn:not valid"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.PKIConfig{CA: caFile, Cert: write("host.crt", pemOf(tc.cert))}
			st, err := loadPKI(cfg, "h", priv.Public(), now)
			warn, isWarn := strings.CutPrefix(tc.want, "warn:")
			switch {
			case tc.want == "" || isWarn:
				if err != nil {
					t.Fatal(err)
				}
				ws := strings.Join(st.warnings(now), "\n")
				if (warn == "") != (ws == "") || !strings.Contains(ws, warn) {
					t.Fatalf("warnings %q, want %q", ws, warn)
				}
			case err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "weft ca sign") && !strings.Contains(err.Error(), "set name"):
				t.Fatalf("error %v, want it to contain %q and what to do", err, tc.want)
			}
		})
	}
	if st, err := loadPKI(config.PKIConfig{CA: caFile, Cert: write("host.crt", pemOf(cases[0].cert))}, "h", priv.Public(), now); err != nil || st.pinnedSubnet(pfx("10.42.0.0/16")) != pfx("10.42.7.0/24") {
		t.Fatalf("pinned subnet: %v %v", st, err)
	}
}

// trustAgent is an L3 agent with a peer table and gossip glue but no device or Serf events:
// applyMember drives it with forged members.
func trustAgent(t *testing.T, cfg config.Config) (*Agent, *gossip) {
	t.Helper()
	priv := newKey(t)
	cfg.Name = "self"
	id := crypto.NewIdentity(priv)
	t.Cleanup(id.Close)
	a := &Agent{cfg: cfg, log: NewLogger(testWriter{t}, "debug"), priv: priv, table: peers.NewTable(id)}
	a.dp = newDatapath(a)
	return a, newGossip(a, nil)
}

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
	if _, err := a.dp.(*l3Path).upsertStatic(cfg.Peers[0], false); err != nil { // no kernel route
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
		{reasonSubnetNotSlot, evil(func(n *membership.NodeInfo) { n.Subnet = pfx("10.42.5.9/32") })},
		{reasonStaticNotAllow, evil(func(n *membership.NodeInfo) { n.Subnet, n.Static = pfx("0.0.0.0/0"), true })},
		{reasonStaticPeerKey, evil(func(n *membership.NodeInfo) { n.PublicKey = staticKey })},
	}
	for _, f := range forgeries {
		g.apply(f.m)
		g.apply(f.m) // a repeat of the same claim is not counted again
		if r, _ := g.refusedReason("evil"); r.reason != f.reason {
			t.Fatalf("refusal %+v, want %s", r, f.reason)
		}
		if route("10.42.5.9") != victimKey || route("10.42.77.1") != (crypto.PublicKey{}) {
			t.Fatalf("%s: routes moved: 10.42.5.9 → %v, 10.42.77.1 → %v", f.reason, route("10.42.5.9"), route("10.42.77.1"))
		}
		if p := a.table.ByKey(staticKey); p == nil || len(p.AllowedIPs()) != 1 || p.AllowedIPs()[0] != pfx("10.99.0.0/24") || p.Endpoint().Port() != 51820 {
			t.Fatalf("%s: the static peer changed: %+v", f.reason, p)
		}
		if got := g.refusedCounts()[f.reason]; got != 1 {
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
		if r, _ := g.refusedReason(n); r.reason != reasonDuplicateKey {
			t.Fatalf("%s: refusal %+v, want duplicate_key", n, r)
		}
	}
	if d := g.duplicates(); len(d) != 1 || !strings.Contains(d[0], "evil, victim") {
		t.Fatalf("conflicts %v", d)
	}
	// The copier goes: the victim is peered again with its subnet.
	dup.Status = membership.StatusFailed
	g.apply(dup)
	if route("10.42.5.9") != victimKey {
		t.Fatal("the victim is not peered again after the duplicate went")
	}
	if _, ok := g.refusedReason("victim"); ok || len(g.duplicates()) != 0 {
		t.Fatal("the victim is still refused")
	}

	// A member announcing this host's subnet is refused.
	a.subnet = pfx("10.42.6.0/24")
	g.apply(evil(func(*membership.NodeInfo) {}))
	if r, _ := g.refusedReason("evil"); r.reason != reasonOverlapsOwn || route("10.42.6.1") != (crypto.PublicKey{}) {
		t.Fatalf("claim of this host's subnet: %+v", r)
	}
}

// TestAgent_PeerGroups: the groups of a verified member's certificate; nil without a CA.
func TestAgent_PeerGroups(t *testing.T) {
	a, g := trustAgent(t, config.DefaultConfig())
	a.gsp = g
	ca := newTestCA(t, "cluster")
	key := newKey(t).Public()
	cert := ca.sign(t, "m", key, time.Now().Add(-time.Hour), time.Now().Add(time.Hour), "10.42.7.0/24")
	m := liveMember("m", membership.NodeInfo{PublicKey: key, Subnet: pfx("10.42.7.0/24"), DataPort: 51820, VNI: 1, Mode: modeByte("l3", "wireguard")})
	m.Tags = map[string]string{identity.TagKey: tagOf(t, cert)}
	g.apply(m)
	if got := a.peerGroups(key); got != nil {
		t.Fatalf("without a CA: %v", got)
	}
	a.pki.Store(&pkiState{pool: ca.pool})
	g.apply(m)
	if got := a.peerGroups(key); len(got) != 1 || got[0] != "web" {
		t.Fatalf("groups %v, want [web]", got)
	}
	// Blocklisted after a reload: refused, withdrawn, no groups.
	fp, _ := cert.Fingerprint()
	a.pki.Store(&pkiState{pool: ca.pool, blocklist: identity.NewBlocklist(fp)})
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
	cert, err := identity.Sign(ca.cert, ca.key, spec)
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

// FuzzCheckClaim: hostile node-info and certificate tags never panic the validator, and what
// it accepts keeps the rules: a /24 of the cluster CIDR (or an allowed static prefix) that
// overlaps neither this host's subnet nor a static peer's, the MAC derived from the key.
func FuzzCheckClaim(f *testing.F) {
	own, static := crypto.PublicKey{1}, crypto.PublicKey{2}
	member := crypto.PublicKey{3}
	for _, n := range []membership.NodeInfo{
		{PublicKey: member, Subnet: pfx("10.42.7.0/24"), MAC: tapMACOf(member)},
		{PublicKey: member, Subnet: pfx("0.0.0.0/0"), Static: true, StaticSince: 1},
		{PublicKey: member, Subnet: pfx("10.200.1.0/24"), Static: true},
		{PublicKey: own, Subnet: pfx("10.42.1.1/32")},
	} {
		tag, err := n.EncodeTag()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(tag, "", "m", false)
		f.Add(tag, "AAAA", "m", true)
	}
	ca := newTestCA(f, "fuzz")
	f.Fuzz(func(t *testing.T, infoTag, certTag, name string, withCA bool) {
		info, err := membership.DecodeNodeInfo(infoTag)
		if err != nil {
			return // the membership layer drops it before the validator
		}
		p := testPolicy(t, own, static)
		if withCA {
			p.pki = &pkiState{pool: ca.pool}
		}
		if _, cerr := checkClaim(p, memberClaim{name: name, info: info, cert: certTag}); cerr != nil {
			if !slices.Contains(refusalReasons(), cerr.reason) {
				t.Fatalf("reason %q is not a declared label", cerr.reason)
			}
			return
		}
		sn := info.Subnet
		inCluster := sn.Bits() == 24 && p.cluster.Contains(sn.Addr())
		if !inCluster && !(info.Static && prefixWithin(sn, p.allowedStatic[0])) {
			t.Fatalf("accepted subnet %s (static %v)", sn, info.Static)
		}
		if sn.Overlaps(p.own) || sn.Overlaps(pfx("10.99.0.0/24")) || info.PublicKey == own || info.PublicKey == static {
			t.Fatalf("accepted %+v", info)
		}
		if info.MAC != ([6]byte{}) && tapMACOf(info.PublicKey) != info.MAC {
			t.Fatalf("accepted MAC %x for key %x", info.MAC, info.PublicKey)
		}
	})
}

// TestPolicyGlue_GroupsFromCertificate: with a cluster CA a member's policy groups are its
// certificate's; a groups tag it writes itself (here claiming db) counts for nothing.
func TestPolicyGlue_GroupsFromCertificate(t *testing.T) {
	a, g := trustAgent(t, config.DefaultConfig())
	a.gsp = g
	pol, err := newPolicyGlue(a)
	if err != nil {
		t.Fatal(err)
	}
	ca := newTestCA(t, "cluster")
	key := newKey(t).Public()
	cert := ca.sign(t, "m", key, time.Now().Add(-time.Hour), time.Now().Add(time.Hour), "10.42.7.0/24")
	m := liveMember("m", membership.NodeInfo{PublicKey: key, Subnet: pfx("10.42.7.0/24"), DataPort: 51820, VNI: 1, Mode: modeByte("l3", "wireguard")})
	m.Tags = map[string]string{identity.TagKey: tagOf(t, cert), "groups": "db"}
	pol.MemberEvent(membership.Event{Type: membership.EventJoin, Member: m}) // what the member announces
	if got := pol.Groups(key); len(got) != 1 || got[0] != "db" {
		t.Fatalf("without a CA the gossiped groups count: %v", got)
	}
	a.pki.Store(&pkiState{pool: ca.pool})
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
