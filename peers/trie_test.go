package peers

import (
	"fmt"
	"maps"
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

// sameTrie reports whether two tries have the same shape, bits and owners.
func sameTrie(a, b *trieNode) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.hi == b.hi && a.lo == b.lo && a.bits == b.bits && a.peer == b.peer &&
		sameTrie(a.child[0], b.child[0]) && sameTrie(a.child[1], b.child[1])
}

// TestTrie_WithDifferential: a trie changed one prefix at a time (path copying, as the
// table publishes it) answers every lookup as the reference does, has exactly the shape a
// whole build gives (compressed again after deletes), and leaves the snapshot it came from
// untouched.
func TestTrie_WithDifferential(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	ps := make([]*Peer, 8)
	for i := range ps {
		ps[i] = &Peer{key: crypto.PublicKey{byte(i)}}
	}
	for round := range 20 {
		owners := make(map[netip.Prefix]*Peer)
		tr := &trie{}
		for op := range 400 {
			v6 := r.IntN(2) == 0
			maxBits := 32
			if v6 {
				maxBits = 128
			}
			pfx := netip.PrefixFrom(randAddr(r, v6), r.IntN(maxBits+1)).Masked()
			before, beforeOwners := tr, maps.Clone(owners)
			if r.IntN(3) == 0 {
				// delete one that exists (or, now and then, one that does not)
				for q := range owners {
					if r.IntN(2) == 0 {
						pfx = q
						break
					}
				}
				delete(owners, pfx)
				tr = tr.with(pfx, nil)
			} else {
				owners[pfx] = ps[r.IntN(len(ps))]
				tr = tr.with(pfx, owners[pfx])
			}
			want := buildTrie(owners)
			if !sameTrie(tr.v4, want.v4) || !sameTrie(tr.v6, want.v6) {
				t.Fatalf("round %d op %d (%v): incremental trie differs from a whole build", round, op, pfx)
			}
			if old := buildTrie(beforeOwners); !sameTrie(before.v4, old.v4) || !sameTrie(before.v6, old.v6) {
				t.Fatalf("round %d op %d (%v): the previous snapshot changed", round, op, pfx)
			}
			for range 50 {
				a := randAddr(r, r.IntN(2) == 0)
				if got, want := tr.lookup(a), slowLookup(owners, a); got != want {
					t.Fatalf("round %d op %d: lookup(%v) = %p, want %p", round, op, a, got, want)
				}
			}
		}
	}
}

// BenchmarkTable_UpsertAt: adding and removing one peer in a table of N (the cost of a
// member event in the datapath's table): flat in N.
func BenchmarkTable_UpsertAt(b *testing.B) {
	for _, n := range []int{100, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			tb := newTestTable(b)
			for i := range n {
				pfx := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0}), 24)
				if _, err := tb.Upsert(PeerConfig{PublicKey: crypto.PublicKey{byte(i), byte(i >> 8), 1}, AllowedIPs: []netip.Prefix{pfx}}); err != nil {
					b.Fatal(err)
				}
			}
			pc := PeerConfig{PublicKey: crypto.PublicKey{9, 9, 9}, AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.200.1.0/24")}}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := tb.Upsert(pc); err != nil {
					b.Fatal(err)
				}
				tb.Remove(pc.PublicKey)
			}
		})
	}
}
