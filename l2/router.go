package l2

import (
	"github.com/weftnet/weft/peers"
)

// Router is the tunnel.Router of encrypted L2 mode (it satisfies that interface without
// importing tunnel; tunnel's tests assert it): outbound Ethernet frames go to the peer that
// owns the destination MAC in a forwarding database, or to every peer of the VNI (head-end
// replication, bounded by the FDB's flood budget); inbound frames teach the FDB their
// source MAC.
//
// As cryptokey routing in L3 mode, a peer may not speak for a MAC that gossip assigns to
// another peer: a frame whose source MAC has a static entry of another peer is dropped
// (DropNotAllowedSource). Unknown MACs are learned, since hosts bridge VMs and containers
// whose MACs nobody publishes.
//
// ARP suppression needs to answer on the local device, which a Router cannot; the agent can
// do it before the loop with FDB().ARPReply.
type Router struct {
	fdb *FDB[*peers.Peer]
}

// NewRouter returns a Router with an empty FDB for vni. The agent adds every peer of the
// VNI with FDB().AddRemote, seeds their published MACs with FDB().SetStatic, and removes
// departed peers with FDB().RemoveRemote. Seeding the local TAP MAC with a nil peer
// (SetStatic(mac, nil)) makes frames from peers that claim it DropNotAllowedSource.
func NewRouter(vni uint32, cfg FDBConfig) *Router {
	return &Router{fdb: NewFDB[*peers.Peer](vni, cfg)}
}

// FDB returns the forwarding database (for gossip seeding and `weft fdb`).
func (r *Router) FDB() *FDB[*peers.Peer] { return r.fdb }

// Route appends the destination peers of the Ethernet frame pkt to dst. A frame shorter
// than an Ethernet header is DropMalformed; a flood beyond the budget is DropFloodCapped; a
// flood with no peer in the VNI is DropNoRoute. No allocation when dst has capacity.
func (r *Router) Route(pkt []byte, dst []*peers.Peer) ([]*peers.Peer, peers.DropReason) {
	if len(pkt) < EthernetHeaderLen {
		return dst, peers.DropMalformed
	}
	to, flood, err := r.fdb.Route(MAC(pkt[0:6]))
	switch {
	case err == ErrFloodBudget:
		return dst, peers.DropFloodCapped
	case err != nil:
		return dst, peers.DropNoRoute
	case flood == nil:
		return append(dst, to), peers.DropNone
	}
	return append(dst, flood...), peers.DropNone
}

// Accept learns the source MAC of a frame authenticated as coming from src. No allocation
// for a known MAC.
func (r *Router) Accept(src *peers.Peer, pkt []byte) peers.DropReason {
	if len(pkt) < EthernetHeaderLen {
		return peers.DropMalformed
	}
	s := MAC(pkt[6:12])
	if s.IsMulticast() || s.IsZero() {
		r.fdb.nInvalid.Add(1)
		return peers.DropMalformed
	}
	if !r.fdb.Learn(s, src) {
		return peers.DropNotAllowedSource
	}
	return peers.DropNone
}
