package peers

import (
	"encoding/binary"
	"net/netip"
)

// trie is an immutable, path-compressed binary trie of allowed prefixes, one root per
// address family. It is built whole by the writer (buildTrie) and published through an
// atomic pointer, so lookups take no lock: copy-on-write at the granularity of the whole
// table, which is cheap because the control plane changes it rarely (a peer joins, leaves
// or moves a prefix) while the datapath reads it for every packet. Path compression
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
