package tunnel

import (
	"encoding/binary"

	"github.com/weftnet/weft/peers"
	"github.com/weftnet/weft/tap"
)

/* Inner checksums left partial between weft peers
 *
 * The kernel hands a TUN/TAP with offload its TCP and UDP packets with the transport
 * checksum still to be computed (CHECKSUM_PARTIAL: the field holds the pseudo-header sum),
 * and TSO super-packets whose segments need one each. A receiving weft that writes into a
 * device with offload can hand such a packet up the same way (the kernel then computes the
 * checksum only if it forwards the packet), so between two such peers nobody computes it.
 *
 * - A weft whose device takes partial checksums (tap.Device with offload: weft's TUN, the
 *   TAP with offload) sets vxlan.CsumAccepted on every data packet it sends; the receiver
 *   keeps what the peer's last authenticated data packet said (Peer.AcceptsPartial; a new
 *   handshake forgets it until the next data packet).
 * - The sender reads with tap.Device.ReadPartial. A packet it leaves partial is sent to one
 *   peer that accepts, in VXLAN framing, with vxlan.CsumPartial set; every other packet is
 *   completed first (tap.Complete): to peers that do not accept (older weft, wireguard-go's
 *   TUN, WireGuard clients), flood copies, fragments, packets queued for a handshake.
 * - The receiver does not take the sender's word for where the checksum is: partialAt
 *   finds it in the inner packet, and a flag on a packet where it finds none, or sent to a
 *   receiver that never said it accepts, is dropped (malformed).
 *
 * The flag and the packet are inside the AEAD: only the peer's own key holder can set it,
 * and what it could do with it (a packet delivered with a wrong checksum) it could do with
 * a wrong checksum anyway.
 */

// partialDevice is a device that hands over and takes partial checksums (tap.Device).
type partialDevice interface {
	PartialChecksums() bool
	ReadPartial(bufs [][]byte, sizes []int, partial []tap.Partial, offset int) (int, error)
	WritePartial(bufs [][]byte, offset int, partial []tap.Partial) (int, error)
}

// partialAt finds the transport checksum of the inner packet pkt (an IP packet, or with
// l2 an untagged Ethernet frame): IPv4 without fragmentation or IPv6 without extension
// headers, carrying TCP or UDP whose header fits. ok is false for anything else.
func partialAt(pkt []byte, l2 bool) (p tap.Partial, ok bool) {
	ip := 0
	if l2 {
		if len(pkt) < EthernetHeader {
			return p, false
		}
		et := binary.BigEndian.Uint16(pkt[12:])
		if et != 0x0800 && et != 0x86dd {
			return p, false
		}
		ip = EthernetHeader
		if (et == 0x86dd) != (len(pkt) > ip && pkt[ip]>>4 == 6) {
			return p, false
		}
	}
	if len(pkt) < ip+20 {
		return p, false
	}
	var proto byte
	var start int
	switch pkt[ip] >> 4 {
	case 4:
		ihl := int(pkt[ip]&0xf) * 4
		if ihl < 20 || binary.BigEndian.Uint16(pkt[ip+6:])&0x3fff != 0 {
			return p, false // a fragment carries no whole transport header
		}
		proto, start = pkt[ip+9], ip+ihl
	case 6:
		if len(pkt) < ip+40 {
			return p, false
		}
		proto, start = pkt[ip+6], ip+40
	default:
		return p, false
	}
	switch proto {
	case 6: // TCP
		if len(pkt) < start+20 {
			return p, false
		}
		return tap.Partial{Start: uint16(start), Field: 16}, true
	case 17: // UDP
		if len(pkt) < start+8 {
			return p, false
		}
		return tap.Partial{Start: uint16(start), Field: 6}, true
	}
	return p, false
}

// leavePartial reports whether the packet pkt, whose checksum the device left partial at
// pp, may go to p as it is: p takes partial checksums, speaks VXLAN framing, and the
// receiver will find the checksum where the device says it is.
func (t *Tunnel) leavePartial(p *peers.Peer, pkt []byte, pp tap.Partial) bool {
	if p == nil || !p.AcceptsPartial() || p.WireGuardFraming() {
		return false
	}
	at, ok := partialAt(pkt, t.cfg.NextProtoL2)
	return ok && at == pp
}
