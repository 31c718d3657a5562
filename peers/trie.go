package peers

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
)

// trie is an immutable, path-compressed binary trie of allowed prefixes, one root per
// address family, published through an atomic pointer, so lookups take no lock. The
// writer changes one prefix by copying the nodes on its path (trie.with: at most one node
// per address bit, the rest shared), so a member joining a 10,000-host table costs what it
// costs in a 10-host one; buildTrie builds a whole trie at once (tests). Path compression
// skips the single-child chains a cluster CIDR produces (10.42.0.0/16 cut into /24s is
// two node visits, not twenty-four).
type trie struct {
	v4, v6 *trieNode
}

// trieNode matches the first bits of an address, held left-aligned in hi:lo (IPv4 in
// the top 32 bits of hi).
type trieNode struct {
	hi, lo uint64
	bits   int
	peer   *Peer // nil: no prefix ends here
	child  [2]*trieNode
}

// buildNode is the uncompressed trie used while building.
type buildNode struct {
	child [2]*buildNode
	peer  *Peer
}

func addrBits(a netip.Addr) (hi, lo uint64, max int) {
	if a.Is4() {
		b := a.As4()
		return uint64(binary.BigEndian.Uint32(b[:])) << 32, 0, 32
	}
	b := a.As16()
	return binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:]), 128
}

func bitAt(hi, lo uint64, i int) int {
	if i < 64 {
		return int(hi>>(63-uint(i))) & 1
	}
	return int(lo>>(127-uint(i))) & 1
}

func setBit(hi, lo uint64, i, v int) (uint64, uint64) {
	if v == 0 {
		return hi, lo
	}
	if i < 64 {
		return hi | 1<<(63-uint(i)), lo
	}
	return hi, lo | 1<<(127-uint(i))
}

// buildTrie builds a trie from prefix → owner. Prefixes must be masked.
func buildTrie(owners map[netip.Prefix]*Peer) *trie {
	var r4, r6 *buildNode
	for p, peer := range owners {
		root := &r4
		if p.Addr().Is6() {
			root = &r6
		}
		if *root == nil {
			*root = &buildNode{}
		}
		n := *root
		hi, lo, _ := addrBits(p.Addr())
		for i := 0; i < p.Bits(); i++ {
			bit := bitAt(hi, lo, i)
			if n.child[bit] == nil {
				n.child[bit] = &buildNode{}
			}
			n = n.child[bit]
		}
		n.peer = peer
	}
	return &trie{v4: compress(r4, 0, 0, 0), v6: compress(r6, 0, 0, 0)}
}

// compress turns the subtree at n (reached by the first depth bits of hi:lo) into
// compressed nodes, skipping chains of valueless single-child nodes.
func compress(n *buildNode, hi, lo uint64, depth int) *trieNode {
	if n == nil {
		return nil
	}
	for n.peer == nil && (n.child[0] == nil) != (n.child[1] == nil) {
		bit := 0
		if n.child[0] == nil {
			bit = 1
		}
		hi, lo = setBit(hi, lo, depth, bit)
		n = n.child[bit]
		depth++
	}
	if n.peer == nil && n.child[0] == nil && n.child[1] == nil {
		return nil
	}
	out := &trieNode{hi: hi, lo: lo, bits: depth, peer: n.peer}
	for b := range 2 {
		if n.child[b] != nil {
			h, l := setBit(hi, lo, depth, b)
			out.child[b] = compress(n.child[b], h, l, depth+1)
		}
	}
	return out
}

// matches reports whether the first n.bits bits of hi:lo equal n's.
func (n *trieNode) matches(hi, lo uint64) bool {
	if n.bits <= 64 {
		return hi&^(^uint64(0)>>uint(n.bits)) == n.hi
	}
	return hi == n.hi && lo&^(^uint64(0)>>uint(n.bits-64)) == n.lo
}

// lookup returns the owner of the longest prefix holding a, or nil. No allocation.
//
// An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is an IPv6 address here: it is looked up
// among the IPv6 prefixes and never matches an IPv4 one, as in wireguard-go's AllowedIPs.
// Otherwise a peer allowed 10.0.0.0/8 could send IPv6 packets from ::ffff:10.x.y.z, which
// a dual-stack socket on the receiver reads as IPv4 10.x.y.z: the source would pass a check
// written for another protocol.
func (t *trie) lookup(a netip.Addr) *Peer {
	if !a.IsValid() {
		return nil
	}
	n := t.v6
	if a.Is4() {
		n = t.v4
	}
	hi, lo, max := addrBits(a)
	var best *Peer
	for n != nil && n.matches(hi, lo) {
		if n.peer != nil {
			best = n.peer
		}
		if n.bits == max {
			break
		}
		n = n.child[bitAt(hi, lo, n.bits)]
	}
	return best
}

// with returns a trie in which p (masked) is owned by peer, or by nobody when peer is nil.
// t is left as it is: the nodes on p's path are copied, all others shared (path copying),
// so a writer changes one prefix in O(address bits) while readers keep their snapshot.
func (t *trie) with(p netip.Prefix, peer *Peer) *trie {
	hi, lo, _ := addrBits(p.Addr())
	out := *t
	root := &out.v4
	if p.Addr().Is6() {
		root = &out.v6
	}
	if peer != nil {
		*root = insertNode(*root, hi, lo, p.Bits(), peer)
	} else {
		*root = deleteNode(*root, hi, lo, p.Bits())
	}
	return &out
}

// commonBits is the length of the common prefix of hi:lo and n's bits, at most limit.
func commonBits(hi, lo, nhi, nlo uint64, limit int) int {
	c := bits.LeadingZeros64(hi ^ nhi)
	if c == 64 {
		c += bits.LeadingZeros64(lo ^ nlo)
	}
	return min(c, limit)
}

// maskBits keeps the first n bits of hi:lo.
func maskBits(hi, lo uint64, n int) (uint64, uint64) {
	switch {
	case n <= 0:
		return 0, 0
	case n < 64:
		return hi &^ (^uint64(0) >> uint(n)), 0
	case n == 64:
		return hi, 0
	case n < 128:
		return hi, lo &^ (^uint64(0) >> uint(n-64))
	}
	return hi, lo
}

// insertNode returns the subtree n with the prefix hi:lo/plen owned by peer.
func insertNode(n *trieNode, hi, lo uint64, plen int, peer *Peer) *trieNode {
	if n == nil {
		return &trieNode{hi: hi, lo: lo, bits: plen, peer: peer}
	}
	c := commonBits(hi, lo, n.hi, n.lo, min(plen, n.bits))
	switch {
	case c == n.bits && c == plen: // the prefix is n's
		cp := *n
		cp.peer = peer
		return &cp
	case c == n.bits: // n holds the prefix: go down
		cp := *n
		b := bitAt(hi, lo, n.bits)
		cp.child[b] = insertNode(n.child[b], hi, lo, plen, peer)
		return &cp
	case c == plen: // the prefix holds n: a new node above it
		out := &trieNode{hi: hi, lo: lo, bits: plen, peer: peer}
		out.child[bitAt(n.hi, n.lo, plen)] = n
		return out
	}
	// They part at bit c: a valueless node with both as children.
	shi, slo := maskBits(hi, lo, c)
	out := &trieNode{hi: shi, lo: slo, bits: c}
	out.child[bitAt(hi, lo, c)] = &trieNode{hi: hi, lo: lo, bits: plen, peer: peer}
	out.child[bitAt(n.hi, n.lo, c)] = n
	return out
}

// deleteNode returns the subtree n without an owner for hi:lo/plen, compressed again (a
// valueless node keeps two children); n itself when the prefix has no owner in it.
func deleteNode(n *trieNode, hi, lo uint64, plen int) *trieNode {
	if n == nil || n.bits > plen || commonBits(hi, lo, n.hi, n.lo, n.bits) < n.bits {
		return n
	}
	cp := *n
	if n.bits == plen {
		if n.peer == nil {
			return n
		}
		cp.peer = nil
	} else {
		b := bitAt(hi, lo, n.bits)
		c := deleteNode(n.child[b], hi, lo, plen)
		if c == n.child[b] {
			return n
		}
		cp.child[b] = c
	}
	if cp.peer == nil {
		switch {
		case cp.child[0] == nil:
			return cp.child[1]
		case cp.child[1] == nil:
			return cp.child[0]
		}
	}
	return &cp
}
