package peers

import (
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/weftnet/weft/crypto"
)

// slowLookup is the reference: scan every prefix, keep the longest that holds a.
func slowLookup(owners map[netip.Prefix]*Peer, a netip.Addr) *Peer {
	best, bestBits := (*Peer)(nil), -1
	for p, peer := range owners {
		if p.Contains(a) && p.Bits() > bestBits {
			best, bestBits = peer, p.Bits()
		}
	}
	return best
}

func randAddr(r *rand.Rand, v6 bool) netip.Addr {
	if v6 {
		var b [16]byte
		for i := range b {
			b[i] = byte(r.IntN(4)) // few distinct values: prefixes nest and overlap
		}
		return netip.AddrFrom16(b)
	}
	var b [4]byte
	for i := range b {
		b[i] = byte(r.IntN(4))
	}
	return netip.AddrFrom4(b)
}

func TestTrie_LookupDifferential(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 20 {
		ps := make([]*Peer, 8)
		for i := range ps {
			ps[i] = &Peer{key: crypto.PublicKey{byte(i)}}
		}
		owners := make(map[netip.Prefix]*Peer)
		for range 200 {
			v6 := r.IntN(2) == 0
			maxBits := 32
			if v6 {
				maxBits = 128
			}
			pfx := netip.PrefixFrom(randAddr(r, v6), r.IntN(maxBits+1)).Masked()
			owners[pfx] = ps[r.IntN(len(ps))]
		}
		tr := buildTrie(owners)
		for range 2000 {
			a := randAddr(r, r.IntN(2) == 0)
			if got, want := tr.lookup(a), slowLookup(owners, a); got != want {
				t.Fatalf("round %d: lookup(%v) = %p, want %p", round, a, got, want)
			}
		}
	}
}

func TestTrie_LookupEmptyAndMapped(t *testing.T) {
	p := &Peer{}
	tr := buildTrie(map[netip.Prefix]*Peer{netip.MustParsePrefix("10.0.0.0/8"): p})
	// An IPv4-mapped IPv6 address is IPv6: it never matches an IPv4 prefix (wireguard-go).
	if got := tr.lookup(netip.MustParseAddr("::ffff:10.1.2.3")); got != nil {
		t.Errorf("4in6 lookup = %p, want no match", got)
	}
	if got := tr.lookup(netip.MustParseAddr("10.1.2.3")); got != p {
		t.Errorf("v4 lookup = %p, want %p", got, p)
	}
	q := &Peer{}
	tr = buildTrie(map[netip.Prefix]*Peer{netip.MustParsePrefix("10.0.0.0/8"): p, netip.MustParsePrefix("::ffff:10.0.0.0/104"): q})
	if got := tr.lookup(netip.MustParseAddr("::ffff:10.1.2.3")); got != q {
		t.Errorf("4in6 lookup with a mapped prefix = %p, want %p (the IPv6 prefix's owner)", got, q)
	}
	if got := tr.lookup(netip.MustParseAddr("2001:db8::1")); got != nil {
		t.Errorf("v6 lookup in v4-only trie = %p", got)
	}
	if got := tr.lookup(netip.Addr{}); got != nil {
		t.Errorf("invalid addr lookup = %p", got)
	}
}

func BenchmarkTable_Lookup(b *testing.B) {
	tb := newTestTable(b)
	for i := range 256 {
		_, _ = tb.Upsert(PeerConfig{PublicKey: crypto.PublicKey{byte(i)},
			AllowedIPs: []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 42, byte(i), 0}), 24)}})
	}
	a := netip.MustParseAddr("10.42.77.5")
	b.ReportAllocs()
	for b.Loop() {
		if tb.Lookup(a) == nil {
			b.Fatal("no route")
		}
	}
}
