package peers

import "net/netip"

// trie is an immutable binary trie of allowed prefixes, one root per address family.
// It is built whole by the writer (buildTrie) and published through an atomic pointer, so
// lookups take no lock: copy-on-write at the granularity of the whole table, which is
// cheap because the control plane changes it rarely (a peer joins, leaves or moves a
// prefix) while the datapath reads it for every outbound packet.
type trie struct {
	v4, v6 *trieNode
}

type trieNode struct {
	child [2]*trieNode
	peer  *Peer // nil: no prefix ends here
}

// buildTrie builds a trie from prefix → owner. Prefixes must be masked.
func buildTrie(owners map[netip.Prefix]*Peer) *trie {
	t := &trie{}
	for p, peer := range owners {
		root := &t.v4
		if p.Addr().Is6() {
			root = &t.v6
		}
		if *root == nil {
			*root = &trieNode{}
		}
		n := *root
		b := p.Addr().AsSlice()
		for i := 0; i < p.Bits(); i++ {
			bit := (b[i>>3] >> (7 - uint(i&7))) & 1
			if n.child[bit] == nil {
				n.child[bit] = &trieNode{}
			}
			n = n.child[bit]
		}
		n.peer = peer
	}
	return t
}

// lookup returns the owner of the longest prefix holding a, or nil. No allocation.
func (t *trie) lookup(a netip.Addr) *Peer {
	if a.Is4In6() {
		a = a.Unmap()
	}
	var n *trieNode
	var b [16]byte
	bits := 0
	if a.Is4() {
		n = t.v4
		a4 := a.As4()
		copy(b[:], a4[:])
		bits = 32
	} else if a.Is6() {
		n = t.v6
		b = a.As16()
		bits = 128
	}
	var best *Peer
	for i := 0; n != nil; i++ {
		if n.peer != nil {
			best = n.peer
		}
		if i == bits {
			break
		}
		n = n.child[(b[i>>3]>>(7-uint(i&7)))&1]
	}
	return best
}
