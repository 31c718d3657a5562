package l2

import (
	"time"

	"github.com/weftnet/weft/peers"
)

// Router is the tunnel.Router of encrypted L2 mode (it satisfies that interface without
// importing tunnel; tunnel's tests assert it): outbound Ethernet frames go to the peer that
// owns the destination MAC in a forwarding database, or to every peer of the VNI (head-end
// replication, bounded by the FDB's flood budget); inbound frames teach the FDB their
// source MAC.
//
// As cryptokey routing in L3 mode, a peer may speak only for what is its own (cryptokey.go):
// the inner IPv4/IPv6 source, the ARP sender and the NDP claims of a frame must route back
// to the sending peer through its allowed prefixes (SourceLookup), and its source MAC must
// not be one that gossip assigns to another peer (a static FDB entry) or that is in use
// behind another peer (a learned entry seen within FDBConfig.MoveHold). Anything else is
// DropNotAllowedSource. Unknown MACs are learned, since hosts bridge VMs and containers whose
// MACs nobody publishes.
//
// A static entry with a nil peer is a MAC of this host (the agent seeds its TAP MAC so):
// frames from peers that claim it are DropNotAllowedSource, and frames the host sends to it
// are DropToSelf, never handed to the loop as a nil peer.
//
// ARP suppression needs to answer on the local device, which a Router cannot; the agent can
// do it before the loop with FDB().ARPReply.
type Router struct {
	fdb     *FDB[*peers.Peer]
	sources SourceLookup
}

// DefaultMoveHold is the Router's FDBConfig.MoveHold when the config leaves it zero: a MAC
// that sent a frame through one peer in the last 5 s does not move to another. Busy MACs
// (ARP refreshes, TCP ACKs) cannot be taken over; a migrated VM's MAC follows it after a
// few seconds of silence at its old host.
const DefaultMoveHold = 5 * time.Second

// NewRouter returns a Router with an empty FDB for vni whose inbound source checks ask
// sources (the peer table) which peer owns an address. The agent adds every peer of the
// VNI with FDB().AddRemote, seeds their published MACs with FDB().SetStatic, and removes
// departed peers with FDB().RemoveRemote. Seeding the local TAP MAC with a nil peer
// (SetStatic(mac, nil)) makes frames from peers that claim it DropNotAllowedSource and
// frames to it DropToSelf. A zero cfg.MoveHold means DefaultMoveHold; negative, none.
func NewRouter(vni uint32, cfg FDBConfig, sources SourceLookup) *Router {
	if sources == nil {
		panic("l2.NewRouter: nil SourceLookup") // a programming error: no check could pass
	}
	if cfg.MoveHold == 0 {
		cfg.MoveHold = DefaultMoveHold
	}
	return &Router{fdb: NewFDB[*peers.Peer](vni, cfg), sources: sources}
}

// FDB returns the forwarding database (for gossip seeding and `weft fdb`).
func (r *Router) FDB() *FDB[*peers.Peer] { return r.fdb }

// Route appends the destination peers of the Ethernet frame pkt to dst. A frame shorter
// than an Ethernet header is DropMalformed; a frame to a MAC of this host (a static entry
// without peer) is DropToSelf; a flood beyond the budget is DropFloodCapped; a flood with
// no peer in the VNI is DropNoRoute. Every peer appended is non-nil. No allocation when dst
// has capacity.
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
	case flood != nil:
		return append(dst, flood...), peers.DropNone
	case to == nil:
		return dst, peers.DropToSelf
	}
	return append(dst, to), peers.DropNone
}

// Accept vets a frame authenticated as coming from src: its addresses must be src's to use
// (cryptokey.go), then its source MAC is learned (or refreshed) behind src. No allocation.
func (r *Router) Accept(src *peers.Peer, pkt []byte) peers.DropReason {
	eth, err := ParseEthernet(pkt)
	if err != nil {
		return peers.DropMalformed
	}
	if eth.Src.IsMulticast() || eth.Src.IsZero() {
		r.fdb.nInvalid.Add(1)
		return peers.DropMalformed
	}
	if why := r.checkSources(src, &eth, pkt); why != peers.DropNone {
		return why
	}
	if !r.fdb.Learn(eth.Src, src) {
		return peers.DropNotAllowedSource
	}
	return peers.DropNone
}
