package tunnel

import (
	"encoding/binary"
	"net/netip"
)

/* What the tunnel writes back into the device when an inner packet does not fit the path
 * to its peer (pmtu.go decides when): the ICMP error a router on that path would send,
 * so the inner sender's own path-MTU discovery (TCP's above all) shrinks its packets.
 * The error comes from the packet's destination: an address that routes back through
 * the device (the host's own overlay address would be a martian source there), as if the
 * narrow hop were the peer. Inner IPv4 packets without DF are fragmented instead.
 */

const (
	// icmpV4Quote bounds the part of the offending packet an ICMPv4 error quotes: the
	// whole error stays within 576 bytes (RFC 1812 4.3.2.3).
	icmpV4Quote = 576 - 20 - 8
	// icmpV6Quote: as much of the offending packet as fits in the IPv6 minimum MTU
	// (RFC 4443 2.4 (c)).
	icmpV6Quote = 1280 - 40 - 8
	// icmpBufSize holds the largest error the tunnel writes.
	icmpBufSize = 40 + 8 + icmpV6Quote

	minIPv4MTU = 576  // the smallest MTU the tunnel tells an IPv4 sender (RFC 791's datagram every host takes)
	minIPv6MTU = 1280 // IPv6's minimum link MTU (RFC 8200)
)

// icmpTooBig writes into out the ICMP error for pkt, an inner IP packet too big for the
// next hop's MTU mtu: IPv4 "fragmentation needed" (type 3, code 4) or ICMPv6 "packet too
// big" (type 2). It returns the error's length, or 0 when pkt must not be answered:
// malformed, from an unspecified, multicast or loopback source, to an IPv4 multicast or
// broadcast destination, a non-first fragment, or itself an ICMP error (RFC 1122 3.2.2,
// RFC 4443 2.4). out must hold icmpBufSize bytes.
func icmpTooBig(out, pkt []byte, mtu int) int {
	if len(pkt) < 1 {
		return 0
	}
	switch pkt[0] >> 4 {
	case 4:
		return icmpV4TooBig(out, pkt, mtu)
	case 6:
		return icmpV6TooBig(out, pkt, mtu)
	}
	return 0
}

func icmpV4TooBig(out, pkt []byte, mtu int) int {
	if len(pkt) < 20 {
		return 0
	}
	hl := int(pkt[0]&0x0f) * 4
	if hl < 20 || len(pkt) < hl {
		return 0
	}
	src, dst := netip.AddrFrom4([4]byte(pkt[12:16])), netip.AddrFrom4([4]byte(pkt[16:20]))
	if !src.IsValid() || src.IsUnspecified() || src.IsMulticast() || src.IsLoopback() ||
		dst.IsMulticast() || dst == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return 0
	}
	if binary.BigEndian.Uint16(pkt[6:8])&0x1fff != 0 {
		return 0 // not the first fragment
	}
	if pkt[9] == 1 && len(pkt) > hl && !icmpV4Informational(pkt[hl]) {
		return 0
	}
	mtu = max(mtu, minIPv4MTU)
	q := min(len(pkt), icmpV4Quote)
	n := 20 + 8 + q
	h := out[:20]
	h[0], h[1] = 0x45, 0xc0 // internetwork control, as the kernel's own ICMP
	binary.BigEndian.PutUint16(h[2:4], uint16(n))
	binary.BigEndian.PutUint32(h[4:8], 0) // id 0, no flags
	h[8], h[9] = 64, 1
	h[10], h[11] = 0, 0
	copy(h[12:16], pkt[16:20]) // from the packet's destination
	copy(h[16:20], pkt[12:16]) // to its source
	binary.BigEndian.PutUint16(h[10:12], ^checksum(h, 0))
	m := out[20:n]
	m[0], m[1], m[2], m[3] = 3, 4, 0, 0
	binary.BigEndian.PutUint16(m[4:6], 0)
	binary.BigEndian.PutUint16(m[6:8], uint16(min(mtu, 0xffff)))
	copy(m[8:], pkt[:q])
	binary.BigEndian.PutUint16(m[2:4], ^checksum(m, 0))
	return n
}

// icmpV4Informational: query types an error may answer (echo, timestamp, …); the
// error types (3 unreachable, 4 source quench, 5 redirect, 11 time exceeded, 12
// parameter problem) must not be answered.
func icmpV4Informational(typ byte) bool {
	switch typ {
	case 3, 4, 5, 11, 12:
		return false
	}
	return true
}

func icmpV6TooBig(out, pkt []byte, mtu int) int {
	if len(pkt) < 40 {
		return 0
	}
	src := netip.AddrFrom16([16]byte(pkt[8:24]))
	if src.IsUnspecified() || src.IsMulticast() || src.IsLoopback() {
		return 0
	}
	// An ICMPv6 error directly after the fixed header is not answered (extension headers
	// in between are not walked: answering is then allowed, and harmless).
	if pkt[6] == 58 && len(pkt) > 40 && pkt[40] < 128 {
		return 0
	}
	mtu = max(mtu, minIPv6MTU)
	q := min(len(pkt), icmpV6Quote)
	plen := 8 + q
	n := 40 + plen
	h := out[:40]
	h[0], h[1], h[2], h[3] = 0x60, 0, 0, 0
	binary.BigEndian.PutUint16(h[4:6], uint16(plen))
	h[6], h[7] = 58, 64
	copy(h[8:24], pkt[24:40]) // from the packet's destination
	copy(h[24:40], pkt[8:24]) // to its source
	m := out[40:n]
	m[0], m[1], m[2], m[3] = 2, 0, 0, 0
	binary.BigEndian.PutUint32(m[4:8], uint32(mtu))
	copy(m[8:], pkt[:q])
	// Pseudo-header: source, destination, upper-layer length, next header.
	sum := uint32(checksum(h[8:40], 0)) + uint32(plen) + 58
	binary.BigEndian.PutUint16(m[2:4], ^checksum(m, sum))
	return n
}

// checksum folds the Internet checksum of b onto sum (RFC 1071); callers complement it.
func checksum(b []byte, sum uint32) uint16 {
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return uint16(sum)
}

// ipv4DF reports whether pkt (IPv4, at least 20 bytes) has Don't Fragment set.
func ipv4DF(pkt []byte) bool { return pkt[6]&0x40 != 0 }

// ipv4Fragments is how many fragments of at most mtu bytes fragmentIPv4 cuts pkt into;
// 0 when it cannot (malformed, DF, options, or mtu below 28).
func ipv4Fragments(pkt []byte, mtu int) int {
	if len(pkt) < 20 || pkt[0] != 0x45 || ipv4DF(pkt) || mtu < 28 {
		return 0
	}
	total := int(binary.BigEndian.Uint16(pkt[2:4]))
	if total < 20 || total > len(pkt) {
		return 0
	}
	per := (mtu - 20) &^ 7
	return max(1, (total-20+per-1)/per)
}

// fragmentIPv4 cuts pkt, an IPv4 packet without DF and without options, into
// ipv4Fragments(pkt, mtu) fragments of at most mtu bytes (RFC 791): each is written into
// a buffer from next at offset headroom and handed to emit with its length; pkt itself
// is not modified. It returns false, having emitted nothing, when pkt cannot be
// fragmented; next must not fail.
func fragmentIPv4(pkt []byte, mtu int, next func() []byte, emit func(b []byte, n int)) bool {
	if ipv4Fragments(pkt, mtu) == 0 {
		return false
	}
	total := int(binary.BigEndian.Uint16(pkt[2:4]))
	payload := pkt[20:total]
	per := (mtu - 20) &^ 7
	flags := binary.BigEndian.Uint16(pkt[6:8])
	baseOff := int(flags & 0x1fff) // in 8-byte units: pkt may be a fragment already
	lastMF := flags & 0x2000
	for off := 0; off < len(payload); off += per {
		chunk := min(per, len(payload)-off)
		b := next()
		f := b[headroom : headroom+20+chunk]
		copy(f[:20], pkt[:20])
		copy(f[20:], payload[off:off+chunk])
		binary.BigEndian.PutUint16(f[2:4], uint16(20+chunk))
		fo := uint16(baseOff + off/8)
		if off+chunk < len(payload) {
			fo |= 0x2000
		} else {
			fo |= lastMF
		}
		binary.BigEndian.PutUint16(f[6:8], fo)
		f[10], f[11] = 0, 0
		binary.BigEndian.PutUint16(f[10:12], ^checksum(f[:20], 0))
		emit(b, 20+chunk)
	}
	return true
}
