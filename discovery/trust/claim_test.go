package trust

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/discovery/membership"
	"github.com/weftnet/weft/identity"
	"github.com/weftnet/weft/identity/identitytest"
)

func newKey(t testing.TB) crypto.PrivateKey {
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
func testPolicy(t *testing.T, own, staticKey crypto.PublicKey) *Policy {
	return &Policy{
		Cluster:       pfx("10.42.0.0/16"),
		AllowedStatic: []netip.Prefix{pfx("10.200.0.0/16")},
		Own:           pfx("10.42.1.0/24"),
		OwnKey:        own,
		L2:            true,
		Static: []StaticClaim{
			{Key: staticKey, HasKey: true, Prefixes: []netip.Prefix{pfx("10.99.0.0/24")}},
			{Prefixes: []netip.Prefix{pfx("0.0.0.0/0")}},
		},
		Now: time.Now(),
	}
}

// TestCheckClaim_Forgeries: every forged claim is refused with its reason; honest claims pass.
func TestCheckClaim_Forgeries(t *testing.T) {
	own, static, member, victim := newKey(t).Public(), newKey(t).Public(), newKey(t).Public(), newKey(t).Public()
	p := testPolicy(t, own, static)
	honest := membership.NodeInfo{PublicKey: member, Subnet: pfx("10.42.7.0/24"), MAC: DerivedMAC(member)}
	cases := []struct {
		name   string
		edit   func(n *membership.NodeInfo)
		reason string
	}{
		{"honest", func(*membership.NodeInfo) {}, ""},
		{"honest static /24 in the cluster", func(n *membership.NodeInfo) { n.Static = true }, ""},
		{"honest static in allowed_static", func(n *membership.NodeInfo) { n.Subnet, n.Static = pfx("10.200.3.0/24"), true }, ""},
		{"no MAC (l3 host in gossip)", func(n *membership.NodeInfo) { n.MAC = [6]byte{} }, ""},
		{"prefix too wide", func(n *membership.NodeInfo) { n.Subnet = pfx("10.42.0.0/16") }, ReasonSubnetNotSlot},
		{"/23", func(n *membership.NodeInfo) { n.Subnet = pfx("10.42.6.0/23") }, ReasonSubnetNotSlot},
		{"/32 inside another's subnet", func(n *membership.NodeInfo) { n.Subnet = pfx("10.42.9.1/32") }, ReasonSubnetNotSlot},
		{"/32 inside own subnet", func(n *membership.NodeInfo) { n.Subnet = pfx("10.42.1.1/32") }, ReasonSubnetNotSlot},
		{"outside the cluster CIDR", func(n *membership.NodeInfo) { n.Subnet = pfx("10.43.7.0/24") }, ReasonSubnetNotSlot},
		{"IPv6", func(n *membership.NodeInfo) { n.Subnet = pfx("fd00::/120") }, ReasonSubnetNotSlot},
		{"static 0.0.0.0/0", func(n *membership.NodeInfo) { n.Subnet, n.Static = pfx("0.0.0.0/0"), true }, ReasonStaticNotAllow},
		{"static /32 inside another's subnet", func(n *membership.NodeInfo) { n.Subnet, n.Static = pfx("10.42.9.1/32"), true }, ReasonStaticNotAllow},
		{"static wider than allowed_static", func(n *membership.NodeInfo) { n.Subnet, n.Static = pfx("10.200.0.0/15"), true }, ReasonStaticNotAllow},
		{"own subnet", func(n *membership.NodeInfo) { n.Subnet = pfx("10.42.1.0/24") }, ReasonOverlapsOwn},
		{"static peer's prefix", func(n *membership.NodeInfo) { n.Subnet, n.Static = pfx("10.99.0.0/24"), true }, ReasonStaticNotAllow},
		{"MAC not derived from the key", func(n *membership.NodeInfo) { n.MAC = DerivedMAC(victim) }, ReasonMACNotDerived},
		{"own public key", func(n *membership.NodeInfo) { n.PublicKey, n.MAC = own, DerivedMAC(own) }, ReasonOwnKey},
		{"static peer's public key", func(n *membership.NodeInfo) { n.PublicKey, n.MAC = static, DerivedMAC(static) }, ReasonStaticPeerKey},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			info := honest
			tc.edit(&info)
			_, err := CheckClaim(p, MemberClaim{Name: "m", Info: info})
			got := ""
			if err != nil {
				got = err.Reason
			}
			if got != tc.reason {
				t.Fatalf("reason %q (%v), want %q", got, err, tc.reason)
			}
		})
	}

	// A static peer prefix inside allowed_static is still protected: overlap is refused.
	p.Static[0].Prefixes = []netip.Prefix{pfx("10.200.9.0/24")}
	info := honest
	info.Subnet, info.Static = pfx("10.200.9.0/24"), true
	if _, err := CheckClaim(p, MemberClaim{Name: "m", Info: info}); err == nil || err.Reason != ReasonOverlapsStatic {
		t.Fatalf("claim of a static peer's prefix: %v, want %s", err, ReasonOverlapsStatic)
	}
	// In L3 the MAC is not checked (it is not used).
	p.L2 = false
	info = honest
	info.MAC = DerivedMAC(victim)
	if _, err := CheckClaim(p, MemberClaim{Name: "m", Info: info}); err != nil {
		t.Fatalf("l3: %v", err)
	}
}

// testCA is a throwaway cluster CA (identitytest).
type testCA = identitytest.CA

func newTestCA(t testing.TB, name string) testCA { return identitytest.NewCA(t, name) }

func tagOf(t *testing.T, c *identity.Certificate) string { return identitytest.Tag(t, c) }

// TestCheckClaim_Certificates: with a CA, a member needs a valid certificate of a trusted CA
// that names its name, key and subnet.
func TestCheckClaim_Certificates(t *testing.T) {
	own, member := newKey(t).Public(), newKey(t).Public()
	ca, other := newTestCA(t, "cluster"), newTestCA(t, "other")
	now := time.Now()
	from, to := now.Add(-time.Hour), now.Add(30*24*time.Hour)
	good := ca.Sign(t, "m", member, from, to, "10.42.7.0/24")
	fp, _ := good.Fingerprint()
	revoked := ca.Sign(t, "m", member, from, to.Add(time.Hour), "10.42.7.0/24")
	rfp, _ := revoked.Fingerprint()
	p := testPolicy(t, own, newKey(t).Public())
	p.PKI = &PKI{Pool: ca.Pool, Blocklist: identity.NewBlocklist(rfp)}
	info := membership.NodeInfo{PublicKey: member, Subnet: pfx("10.42.7.0/24"), MAC: DerivedMAC(member)}
	cases := []struct {
		name, member, cert string
		subnet             netip.Prefix
		reason             string
	}{
		{"valid", "m", tagOf(t, good), info.Subnet, ""},
		{"no certificate", "m", "", info.Subnet, ReasonNoCertificate},
		{"garbage", "m", "not base64!", info.Subnet, "malformed"},
		{"unknown version", "m", "AAAA", info.Subnet, "unknown_version"},
		{"other CA", "m", tagOf(t, other.Sign(t, "m", member, from, to, "10.42.7.0/24")), info.Subnet, "unknown_ca"},
		{"expired", "m", tagOf(t, ca.Sign(t, "m", member, now.Add(-48*time.Hour), now.Add(-time.Hour), "10.42.7.0/24")), info.Subnet, "expired"},
		{"not yet valid", "m", tagOf(t, ca.Sign(t, "m", member, now.Add(time.Hour), to, "10.42.7.0/24")), info.Subnet, "not_yet_valid"},
		{"blocklisted", "m", tagOf(t, revoked), info.Subnet, "blocklisted"},
		{"name mismatch", "other-host", tagOf(t, good), info.Subnet, "name_mismatch"},
		{"key mismatch", "m", tagOf(t, ca.Sign(t, "m", newKey(t).Public(), from, to, "10.42.7.0/24")), info.Subnet, "key_mismatch"},
		{"subnet outside the certificate", "m", tagOf(t, good), pfx("10.42.8.0/24"), "prefix_not_allowed"},
		{"a certificate does not widen the gossip rules", "m", tagOf(t, ca.Sign(t, "m", member, from, to, "10.42.0.0/16")), pfx("10.42.9.1/32"), ReasonSubnetNotSlot},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := info
			in.Subnet = tc.subnet
			claims, err := CheckClaim(p, MemberClaim{Name: tc.member, Info: in, Cert: tc.cert})
			got := ""
			if err != nil {
				got = err.Reason
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

// FuzzCheckClaim: hostile node-info and certificate tags never panic the validator, and what
// it accepts keeps the rules: a /24 of the cluster CIDR (or an allowed static prefix) that
// overlaps neither this host's subnet nor a static peer's, the MAC derived from the key.
func FuzzCheckClaim(f *testing.F) {
	own, static := crypto.PublicKey{1}, crypto.PublicKey{2}
	member := crypto.PublicKey{3}
	for _, n := range []membership.NodeInfo{
		{PublicKey: member, Subnet: pfx("10.42.7.0/24"), MAC: DerivedMAC(member)},
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
			p.PKI = &PKI{Pool: ca.Pool}
		}
		if _, cerr := CheckClaim(p, MemberClaim{Name: name, Info: info, Cert: certTag}); cerr != nil {
			if !slices.Contains(RefusalReasons(), cerr.Reason) {
				t.Fatalf("reason %q is not a declared label", cerr.Reason)
			}
			return
		}
		sn := info.Subnet
		inCluster := sn.Bits() == 24 && p.Cluster.Contains(sn.Addr())
		if !inCluster && !(info.Static && PrefixWithin(sn, p.AllowedStatic[0])) {
			t.Fatalf("accepted subnet %s (static %v)", sn, info.Static)
		}
		if sn.Overlaps(p.Own) || sn.Overlaps(pfx("10.99.0.0/24")) || info.PublicKey == own || info.PublicKey == static {
			t.Fatalf("accepted %+v", info)
		}
		if info.MAC != ([6]byte{}) && DerivedMAC(info.PublicKey) != info.MAC {
			t.Fatalf("accepted MAC %x for key %x", info.MAC, info.PublicKey)
		}
	})
}

// TestDerivedMAC: locally administered and unicast, stable per key, and shown as l2.MAC shows
// MACs (the refusal's detail).
func TestDerivedMAC(t *testing.T) {
	k := newKey(t).Public()
	m := DerivedMAC(k)
	if m[0]&0x03 != 0x02 || DerivedMAC(k) != m || DerivedMAC(newKey(t).Public()) == m {
		t.Fatalf("MAC %x", m)
	}
	if s := macString([6]byte{0x02, 0xab, 0, 1, 0x2c, 0xff}); s != "02:ab:00:01:2c:ff" {
		t.Fatalf("macString %q", s)
	}
}
