package testkit

import (
	"encoding/binary"
	"net/netip"
)

// IP protocol numbers the builders use.
const (
	ProtoICMP   = 1
	ProtoTCP    = 6
	ProtoUDP    = 17
	ProtoICMPv6 = 58
)

// EtherType values and the 802.1Q tag type for Ethernet.
const (
	EtherTypeIPv4 = 0x0800
	EtherTypeARP  = 0x0806
	EtherTypeVLAN = 0x8100
	EtherTypeIPv6 = 0x86dd
)

// DefaultTTL is the TTL (IPv4) or hop limit (IPv6) of the packets built here.
const DefaultTTL = 64

// IPv4 wraps payload in a 20-byte IPv4 header from src to dst with protocol proto, TTL
// DefaultTTL, ID 0, no fragmentation and a valid header checksum. The payload is copied
// as is: its own checksum, if any, is the caller's (UDP, TCP and ICMPEcho set theirs).
func IPv4(src, dst netip.Addr, proto uint8, payload []byte) []byte {
	p := make([]byte, 20+len(payload))
	p[0] = 0x45
	binary.BigEndian.PutUint16(p[2:4], uint16(len(p)))
	p[8] = DefaultTTL
	p[9] = proto
	s, d := src.As4(), dst.As4()
	copy(p[12:16], s[:])
	copy(p[16:20], d[:])
	binary.BigEndian.PutUint16(p[10:12], Checksum(p[:20]))
	copy(p[20:], payload)
	return p
}

// IPv6 wraps payload in a 40-byte IPv6 header from src to dst with next header next and
// hop limit DefaultTTL.
func IPv6(src, dst netip.Addr, next uint8, payload []byte) []byte {
	p := make([]byte, 40+len(payload))
	p[0] = 0x60
	binary.BigEndian.PutUint16(p[4:6], uint16(len(payload)))
	p[6] = next
	p[7] = DefaultTTL
	s, d := src.As16(), dst.As16()
	copy(p[8:24], s[:])
	copy(p[24:40], d[:])
	copy(p[40:], payload)
	return p
}

// IP is IPv4 or IPv6 by the family of src (an IPv4-mapped IPv6 source makes IPv6).
func IP(src, dst netip.Addr, proto uint8, payload []byte) []byte {
	if src.Is4() {
		return IPv4(src, dst, proto, payload)
	}
	return IPv6(src, dst, proto, payload)
}

// SetTTL sets the TTL (IPv4, recomputing the header checksum) or hop limit (IPv6) of the
// packet p in place and returns p.
func SetTTL(p []byte, ttl uint8) []byte {
	if p[0]>>4 == 4 {
		p[8] = ttl
		binary.BigEndian.PutUint16(p[10:12], 0)
		binary.BigEndian.PutUint16(p[10:12], Checksum(p[:int(p[0]&0xf)*4]))
		return p
	}
	p[7] = ttl
	return p
}

// UDP returns an IP packet (family of src) carrying a UDP datagram from src to dst with
// payload, its length and checksum set.
func UDP(src, dst netip.AddrPort, payload []byte) []byte {
	l4 := make([]byte, 8+len(payload))
	binary.BigEndian.PutUint16(l4[0:2], src.Port())
	binary.BigEndian.PutUint16(l4[2:4], dst.Port())
	binary.BigEndian.PutUint16(l4[4:6], uint16(len(l4)))
	copy(l4[8:], payload)
	sum := transportChecksum(src.Addr(), dst.Addr(), ProtoUDP, l4)
	if sum == 0 {
		sum = 0xffff // RFC 768: a computed 0 is sent as all ones
	}
	binary.BigEndian.PutUint16(l4[6:8], sum)
	return IP(src.Addr(), dst.Addr(), ProtoUDP, l4)
}

// TCP returns an IP packet (family of src) carrying a 20-byte TCP header from src to dst
// with flags (sequence and acknowledgement numbers and window 0) followed by payload,
// its checksum set.
func TCP(src, dst netip.AddrPort, flags uint8, payload []byte) []byte {
	l4 := make([]byte, 20+len(payload))
	binary.BigEndian.PutUint16(l4[0:2], src.Port())
	binary.BigEndian.PutUint16(l4[2:4], dst.Port())
	l4[12] = 5 << 4
	l4[13] = flags
	copy(l4[20:], payload)
	binary.BigEndian.PutUint16(l4[16:18], transportChecksum(src.Addr(), dst.Addr(), ProtoTCP, l4))
	return IP(src.Addr(), dst.Addr(), ProtoTCP, l4)
}

// ICMPEcho returns an echo request (reply false) or reply from src to dst with identifier
// id, sequence number seq and payload: ICMP over IPv4, ICMPv6 over IPv6 (by the family of
// src), its checksum set.
func ICMPEcho(src, dst netip.Addr, id, seq uint16, reply bool, payload []byte) []byte {
	l4 := make([]byte, 8+len(payload))
	proto, typ := uint8(ProtoICMP), uint8(8)
	if reply {
		typ = 0
	}
	if !src.Is4() {
		proto, typ = ProtoICMPv6, 128
		if reply {
			typ = 129
		}
	}
	l4[0] = typ
	binary.BigEndian.PutUint16(l4[4:6], id)
	binary.BigEndian.PutUint16(l4[6:8], seq)
	copy(l4[8:], payload)
	if proto == ProtoICMP {
		binary.BigEndian.PutUint16(l4[2:4], Checksum(l4))
	} else {
		binary.BigEndian.PutUint16(l4[2:4], transportChecksum(src, dst, proto, l4))
	}
	return IP(src, dst, proto, l4)
}

// Pattern returns n bytes where byte i is byte(start+i), so a packet's payload says
// where it was cut.
func Pattern(n, start int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(start + i)
	}
	return b
}

// Ethernet returns the frame dst|src|802.1Q tags (one per VLAN TCI in vlans)|etherType|payload.
func Ethernet(dst, src [6]byte, vlans []uint16, etherType uint16, payload []byte) []byte {
	b := make([]byte, 0, 14+4*len(vlans)+len(payload))
	b = append(append(b, dst[:]...), src[:]...)
	for _, v := range vlans {
		b = binary.BigEndian.AppendUint16(b, EtherTypeVLAN)
		b = binary.BigEndian.AppendUint16(b, v)
	}
	b = binary.BigEndian.AppendUint16(b, etherType)
	return append(b, payload...)
}

// ARPRequest returns the 28-byte ARP request "who has tip? tell sip (smac)".
func ARPRequest(smac [6]byte, sip, tip netip.Addr) []byte {
	p := []byte{0, 1, 8, 0, 6, 4, 0, 1}
	p = append(p, smac[:]...)
	s, t := sip.As4(), tip.As4()
	p = append(p, s[:]...)
	p = append(p, make([]byte, 6)...)
	return append(p, t[:]...)
}

// Checksum is the Internet checksum of RFC 1071 over b; it is 0 over data that carries a
// valid one.
func Checksum(b []byte) uint16 { return ^fold(sum(0, b)) }

// transportChecksum is the UDP/TCP/ICMPv6 checksum of l4 (checksum field zero) with the
// pseudo-header of src, dst and proto.
func transportChecksum(src, dst netip.Addr, proto uint8, l4 []byte) uint16 {
	var s uint32
	if src.Is4() {
		a, b := src.As4(), dst.As4()
		s = sum(sum(0, a[:]), b[:])
	} else {
		a, b := src.As16(), dst.As16()
		s = sum(sum(0, a[:]), b[:])
	}
	s += uint32(proto) + uint32(len(l4))
	return ^fold(sum(s, l4))
}

func sum(s uint32, b []byte) uint32 {
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	return s
}

func fold(s uint32) uint16 {
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}
