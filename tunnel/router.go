package tunnel

import (
	"encoding/binary"
	"net/netip"

	"github.com/weftnet/weft/peers"
	"github.com/weftnet/weft/vxlan"
)

// Router is the seam between the encrypted loop and the forwarding logic of a mode.
// L3 mode uses the peer table's allowed prefixes (l3Router, the default); L2 mode plugs
// in a forwarding database over Ethernet frames. The loop owns buffers, crypto, batching
// and counters; the Router only decides.
//
// Plugging in L2: set Config.NextProtoL2 (frames travel as VXLAN-GPE next protocol 0x03,
// unpadded, and inbound packets of other protocols count as DropWrongProto) and
// Config.Router to a Router over Ethernet frames, e.g. an FDB keyed by *peers.Peer:
// Route looks up the destination MAC (flooding unknown/broadcast to several peers),
// Accept learns the source MAC behind src and refuses what src may not send. The loop,
// the crypto and the counters stay the same.
//
// Route is called by the single outbound goroutine, Accept concurrently by the inbound
// goroutines (one per bind receive function); an implementation must be safe for that
// and must not allocate per packet.
type Router interface {
	// Route chooses the peers an outbound inner packet (an IP packet in L3 mode, an
	// Ethernet frame in L2 mode) goes to: it appends them to dst and returns the slice.
	// pkt is borrowed for the call and must not be modified or retained. Returning no
	// peer drops the packet, counted under the returned reason (DropNoRoute when none is
	// given). Returning several floods: the loop seals a copy for each extra peer, at
	// most Config.MaxFloodCopies per batch (the rest count as DropFloodCapped).
	Route(pkt []byte, dst []*peers.Peer) ([]*peers.Peer, peers.DropReason)
	// Accept vets an inbound inner packet authenticated as coming from src, after the
	// VNI check and (L3) padding removal. peers.DropNone delivers it to the device; any
	// other reason drops it and counts that reason for src. pkt is borrowed for the call
	// and must not be modified or retained. L2 mode may learn src's MAC here.
	Accept(src *peers.Peer, pkt []byte) peers.DropReason
}

// l3Router routes IP packets by longest-prefix match of the destination over the peers'
// allowed prefixes, and accepts an inbound packet only when its source address routes back
// to the peer that sent it (WireGuard's cryptokey routing).
type l3Router struct{ table *peers.Table }

// NewL3Router returns the default Router of L3 mode over table.
func NewL3Router(table *peers.Table) Router { return l3Router{table: table} }

func (r l3Router) Route(pkt []byte, dst []*peers.Peer) ([]*peers.Peer, peers.DropReason) {
	a, ok := ipAddr(pkt, false)
	if !ok {
		return dst, peers.DropMalformed
	}
	p := r.table.Lookup(a)
	if p == nil {
		return dst, peers.DropNoRoute
	}
	return append(dst, p), peers.DropNone
}

func (r l3Router) Accept(src *peers.Peer, pkt []byte) peers.DropReason {
	a, ok := ipAddr(pkt, true)
	if !ok {
		return peers.DropMalformed
	}
	if r.table.Lookup(a) != src {
		return peers.DropNotAllowedSource
	}
	return peers.DropNone
}

// ipAddr returns the destination (or source) address of an IPv4 or IPv6 packet.
func ipAddr(pkt []byte, source bool) (netip.Addr, bool) {
	if len(pkt) < 1 {
		return netip.Addr{}, false
	}
	switch pkt[0] >> 4 {
	case 4:
		if len(pkt) < 20 {
			return netip.Addr{}, false
		}
		off := 16
		if source {
			off = 12
		}
		return netip.AddrFrom4([4]byte(pkt[off : off+4])), true
	case 6:
		if len(pkt) < 40 {
			return netip.Addr{}, false
		}
		off := 24
		if source {
			off = 8
		}
		return netip.AddrFrom16([16]byte(pkt[off : off+16])), true
	}
	return netip.Addr{}, false
}

// ipLen returns the length an IP packet claims for itself, so that padding can be cut
// off, and the VXLAN-GPE protocol it is carried as.
func ipLen(pkt []byte) (int, vxlan.NextProto, bool) {
	if len(pkt) < 1 {
		return 0, 0, false
	}
	switch pkt[0] >> 4 {
	case 4:
		if len(pkt) < 20 {
			return 0, 0, false
		}
		n := int(binary.BigEndian.Uint16(pkt[2:4]))
		return n, vxlan.ProtoIPv4, n >= 20 && n <= len(pkt)
	case 6:
		if len(pkt) < 40 {
			return 0, 0, false
		}
		n := 40 + int(binary.BigEndian.Uint16(pkt[4:6]))
		return n, vxlan.ProtoIPv6, n <= len(pkt)
	}
	return 0, 0, false
}
