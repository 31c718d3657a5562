package policy

import (
	"encoding/binary"
	"net/netip"
)

// Fragment says where a packet sits in a fragmented datagram.
type Fragment uint8

// Fragment kinds. Only FragLater packets lack transport headers.
const (
	FragNone  Fragment = iota // not fragmented
	FragFirst                 // offset 0 with more fragments: carries the ports
	FragLater                 // offset > 0: no transport header, judged by its datagram's first fragment
)

// Flow is what the policy needs to know of a packet: its 5-tuple and, for fragments, the
// datagram it belongs to.
type Flow struct {
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16 // TCP/UDP ports; for ICMP echo both carry the identifier; 0 otherwise
	Proto            uint8  // IP protocol number after IPv6 extension headers
	Class            Proto  // ProtoTCP, ProtoUDP, ProtoICMP or ProtoOther
	TCPFlags         uint8
	ICMPType         uint8
	Frag             Fragment
	FragID           uint32 // IPv4 identification or IPv6 fragment identification
}

// TCP flags.
const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpACK = 0x10
)

// maxExtHeaders bounds the IPv6 extension header walk: a chain longer than this is
// refused as malformed rather than walked (RFC 8200 expects at most one of each of
// about six kinds).
const maxExtHeaders = 8

// Classify parses an IPv4 or IPv6 packet's network and transport headers. It reports
// false for anything it does not accept: not IPv4/IPv6, truncated headers, a length field
// beyond the buffer, IPv4-mapped addresses in an IPv6 header, an IPv6 extension chain
// longer than maxExtHeaders, a first fragment too short to hold its transport header, or a
// TCP fragment at offset 8 (which could rewrite the flags, RFC 1858). Non-first fragments
// are accepted with Frag set to FragLater and no ports. Classify does not allocate and
// does not retain pkt.
func Classify(pkt []byte) (Flow, bool) {
	var f Flow
	ok := classify(pkt, &f)
	return f, ok
}

func classify(pkt []byte, f *Flow) bool {
	if len(pkt) < 1 {
		return false
	}
	var l4 []byte
	var fragOff int
	switch pkt[0] >> 4 {
	case 4:
		if len(pkt) < 20 {
			return false
		}
		ihl := int(pkt[0]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(pkt[2:4]))
		if ihl < 20 || total < ihl || total > len(pkt) {
			return false
		}
		f.Src = netip.AddrFrom4([4]byte(pkt[12:16]))
		f.Dst = netip.AddrFrom4([4]byte(pkt[16:20]))
		f.Proto = pkt[9]
		frag := binary.BigEndian.Uint16(pkt[6:8])
		fragOff = int(frag&0x1fff) * 8
		if fragOff > 0 {
			f.Frag = FragLater
		} else if frag&0x2000 != 0 {
			f.Frag = FragFirst
		}
		f.FragID = uint32(binary.BigEndian.Uint16(pkt[4:6]))
		l4 = pkt[ihl:total]
	case 6:
		if len(pkt) < 40 {
			return false
		}
		end := 40 + int(binary.BigEndian.Uint16(pkt[4:6]))
		if end > len(pkt) {
			return false
		}
		f.Src = netip.AddrFrom16([16]byte(pkt[8:24]))
		f.Dst = netip.AddrFrom16([16]byte(pkt[24:40]))
		if f.Src.Is4In6() || f.Dst.Is4In6() {
			return false
		}
		next := pkt[6]
		off := 40
		seenFrag := false
		for n, done := 0, false; !done; n++ {
			if n > maxExtHeaders {
				return false
			}
			var hlen int
			switch next {
			case 0, 43, 60: // hop-by-hop, routing, destination options
				if off+8 > end {
					return false
				}
				hlen = (int(pkt[off+1]) + 1) * 8
			case 51: // authentication header
				if off+8 > end {
					return false
				}
				hlen = (int(pkt[off+1]) + 2) * 4
			case 44: // fragment
				if off+8 > end || seenFrag {
					return false
				}
				seenFrag = true
				fo := binary.BigEndian.Uint16(pkt[off+2 : off+4])
				fragOff = int(fo>>3) * 8
				if fragOff > 0 {
					f.Frag = FragLater
				} else if fo&1 != 0 {
					f.Frag = FragFirst
				}
				f.FragID = binary.BigEndian.Uint32(pkt[off+4 : off+8])
				hlen = 8
			default: // a transport (or an unknown) header ends the chain
				f.Proto = next
				l4 = pkt[off:end]
				done = true
				continue
			}
			if off+hlen > end {
				return false
			}
			next = pkt[off]
			off += hlen
			if f.Frag == FragLater {
				// The rest of the chain is in the first fragment.
				f.Proto = next
				done = true
			}
		}
	default:
		return false
	}
	f.Class = protoClass(f.Proto)
	if f.Frag == FragLater {
		if f.Proto == ipProtoTCP && fragOff == 8 {
			return false
		}
		return true
	}
	switch f.Class {
	case ProtoTCP:
		if len(l4) < 20 {
			return false
		}
		f.SrcPort = binary.BigEndian.Uint16(l4[0:2])
		f.DstPort = binary.BigEndian.Uint16(l4[2:4])
		f.TCPFlags = l4[13]
	case ProtoUDP:
		if len(l4) < 8 {
			return false
		}
		f.SrcPort = binary.BigEndian.Uint16(l4[0:2])
		f.DstPort = binary.BigEndian.Uint16(l4[2:4])
	case ProtoICMP:
		if len(l4) < 8 {
			return false
		}
		f.ICMPType = l4[0]
		if (f.Proto == ipProtoICMP) != f.Src.Is4() {
			return false // ICMPv4 in IPv6 or ICMPv6 in IPv4
		}
		if isEcho(f.Proto, f.ICMPType) {
			id := binary.BigEndian.Uint16(l4[4:6])
			f.SrcPort, f.DstPort = id, id
		}
	}
	return true
}

// isEcho reports an echo request or reply, the ICMP messages that form flows of their own.
func isEcho(proto, typ uint8) bool {
	if proto == ipProtoICMP {
		return typ == 8 || typ == 0
	}
	return typ == 128 || typ == 129
}
