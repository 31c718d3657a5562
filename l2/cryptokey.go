package l2

import (
	"net/netip"

	"github.com/weftnet/weft/peers"
)

// Cryptokey routing for Ethernet: in encrypted L2 a frame is authenticated as coming from a
// peer, and what it says about addresses must be the peer's to say, as L3 mode checks the
// inner source of every packet. Router.Accept runs these checks before it learns the source
// MAC; every refusal is DropNotAllowedSource (a frame that does not parse, DropMalformed).
// Inside at most two VLAN tags (ParseEthernet), per EtherType:
//
//   - IPv4: the source address must route back to the peer (SourceLookup.Lookup(src) == peer).
//   - ARP: the sender hardware address must be the frame's source MAC (so an ARP cannot point
//     another host's neighbour cache at a MAC the Ethernet check did not vet, such as the
//     receiver's own), and the sender protocol address must route back to the peer: a
//     gratuitous ARP for another host's address is refused.
//   - IPv6: the source must route back to the peer, or be a link-local address whose interface
//     identifier is the modified EUI-64 of the frame's source MAC (what the kernel gives a TAP:
//     NDP, router solicitations and MLD come from it; the agent makes its TAP use EUI-64). In
//     NDP (ICMPv6 133–136, found past hop-by-hop, routing and destination options headers;
//     fragments are never NDP, RFC 6980) every source/target link-layer address option must
//     be the frame's source MAC, and a neighbour advertisement's target address must pass the
//     same test as a source: a spoofed NA is the IPv6 form of a gratuitous ARP.
//   - Unspecified sources pass: 0.0.0.0 (a DHCP client, an ARP probe) and :: (duplicate
//     address detection) come from hosts that have no address yet, and nothing can be
//     answered to them, so they cannot be used to speak for another host.
//   - Other EtherTypes carry no address weft knows how to check; only the MAC rule applies.
//
// A link-local or unspecified source proves nothing about which peer owns the MAC; the
// learning rule (a learned MAC does not move while in use at another peer, FDBConfig.MoveHold;
// a static one never moves) holds on its own.

// SourceLookup answers which peer owns an inner address: the longest allowed prefix that holds
// it (*peers.Table). An IPv4-mapped IPv6 address matches no IPv4 prefix.
type SourceLookup interface {
	Lookup(netip.Addr) *peers.Peer
}

const (
	ipv4HeaderLen = 20
	ipv6HeaderLen = 40

	ipProtoICMPv6   = 58
	ipProtoHopOpts  = 0
	ipProtoRouting  = 43
	ipProtoFragment = 44
	ipProtoDstOpts  = 60
	maxIPv6ExtHdrs  = 4 // more before an upper layer is no NDP a kernel accepts; not walked

	ndpRouterSolicitation = 133
	ndpRouterAdvert       = 134
	ndpNeighborSolicit    = 135
	ndpNeighborAdvert     = 136
	ndpOptSourceLLAddr    = 1
	ndpOptTargetLLAddr    = 2
)

// checkSources applies the rules above to the frame pkt (parsed as eth) from peer.
// No allocation.
func (r *Router) checkSources(peer *peers.Peer, eth *EthernetFrame, pkt []byte) peers.DropReason {
	payload := pkt[eth.PayloadOffset:]
	switch eth.EtherType {
	case EtherTypeIPv4:
		if len(payload) < ipv4HeaderLen || payload[0]>>4 != 4 {
			return peers.DropMalformed
		}
		return r.checkV4(peer, [4]byte(payload[12:16]))
	case EtherTypeARP:
		a, err := ParseARP(payload)
		if err != nil {
			return peers.DropMalformed
		}
		if a.SenderMAC != eth.Src {
			return peers.DropNotAllowedSource
		}
		return r.checkV4(peer, a.SenderIP.As4())
	case EtherTypeIPv6:
		if len(payload) < ipv6HeaderLen || payload[0]>>4 != 6 {
			return peers.DropMalformed
		}
		if why := r.checkV6(peer, eth.Src, [16]byte(payload[8:24]), true); why != peers.DropNone {
			return why
		}
		return r.checkNDP(peer, eth.Src, payload)
	}
	return peers.DropNone
}

func (r *Router) checkV4(peer *peers.Peer, a [4]byte) peers.DropReason {
	if a == [4]byte{} {
		return peers.DropNone // 0.0.0.0: DHCP, ARP probes
	}
	if r.sources.Lookup(netip.AddrFrom4(a)) != peer {
		return peers.DropNotAllowedSource
	}
	return peers.DropNone
}

// checkV6 vets an IPv6 address that the frame from src MAC claims as its own: the IPv6
// source (unspecified allowed) or a neighbour advertisement's target (unspecified refused).
func (r *Router) checkV6(peer *peers.Peer, src MAC, a [16]byte, unspecifiedOK bool) peers.DropReason {
	if a == [16]byte{} {
		if unspecifiedOK {
			return peers.DropNone // ::, duplicate address detection
		}
		return peers.DropNotAllowedSource
	}
	if a[0] == 0xfe && a[1]&0xc0 == 0x80 { // fe80::/10
		if a[8] == src[0]^0x02 && a[9] == src[1] && a[10] == src[2] && a[11] == 0xff &&
			a[12] == 0xfe && a[13] == src[3] && a[14] == src[4] && a[15] == src[5] {
			return peers.DropNone
		}
		return peers.DropNotAllowedSource
	}
	if r.sources.Lookup(netip.AddrFrom16(a)) != peer {
		return peers.DropNotAllowedSource
	}
	return peers.DropNone
}

// checkNDP vets the link-layer address options and the NA target of an NDP message in the
// IPv6 packet ip (whose fixed header is known to be there).
func (r *Router) checkNDP(peer *peers.Peer, src MAC, ip []byte) peers.DropReason {
	next, off := ip[6], ipv6HeaderLen
	for range maxIPv6ExtHdrs {
		if next != ipProtoHopOpts && next != ipProtoRouting && next != ipProtoDstOpts {
			break
		}
		if len(ip) < off+8 {
			return peers.DropMalformed
		}
		next, off = ip[off], off+(int(ip[off+1])+1)*8
	}
	if next != ipProtoICMPv6 || len(ip) < off+8 {
		return peers.DropNone // fragments, other upper layers, or a chain too long: no NDP
	}
	icmp := ip[off:]
	var opts []byte
	switch icmp[0] {
	case ndpRouterSolicitation:
		opts = icmp[8:]
	case ndpRouterAdvert:
		if len(icmp) < 16 {
			return peers.DropMalformed
		}
		opts = icmp[16:]
	case ndpNeighborSolicit, ndpNeighborAdvert:
		if len(icmp) < 24 {
			return peers.DropMalformed
		}
		if icmp[0] == ndpNeighborAdvert {
			if why := r.checkV6(peer, src, [16]byte(icmp[8:24]), false); why != peers.DropNone {
				return why
			}
		}
		opts = icmp[24:]
	default:
		return peers.DropNone
	}
	for len(opts) >= 2 {
		n := int(opts[1]) * 8
		if n == 0 || n > len(opts) {
			return peers.DropMalformed // RFC 4861 §4.6: a zero-length option invalidates the message
		}
		if (opts[0] == ndpOptSourceLLAddr || opts[0] == ndpOptTargetLLAddr) && (n != 8 || MAC(opts[2:8]) != src) {
			return peers.DropNotAllowedSource
		}
		opts = opts[n:]
	}
	return peers.DropNone
}
