package policy

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/weftnet/weft/internal/testkit"
)

// withExt inserts IPv6 extension headers (each given as next-header-less bodies of
// their kind) between the fixed header and the transport header of p.
func withExt(p []byte, kinds ...uint8) []byte {
	l4proto := p[6]
	l4 := p[40:]
	var ext []byte
	for i, k := range kinds {
		next := l4proto
		if i+1 < len(kinds) {
			next = kinds[i+1]
		}
		var h []byte
		switch k {
		case 44:
			h = make([]byte, 8) // offset 0, M 0: an atomic fragment
		case 51:
			h = make([]byte, 12)
			h[1] = 1 // (1+2)*4 = 12
		default:
			h = make([]byte, 8)
		}
		h[0] = next
		ext = append(ext, h...)
	}
	out := make([]byte, 0, len(p)+len(ext))
	out = append(out, p[:40]...)
	out = append(out, ext...)
	out = append(out, l4...)
	if len(kinds) > 0 {
		out[6] = kinds[0]
	}
	binary.BigEndian.PutUint16(out[4:6], uint16(len(out)-40))
	return out
}

func TestClassify(t *testing.T) {
	v6frag := func(p []byte, offset int, more bool, id uint32) []byte {
		q := withExt(p, 44)
		fo := uint16(offset/8) << 3
		if more {
			fo |= 1
		}
		binary.BigEndian.PutUint16(q[42:44], fo)
		binary.BigEndian.PutUint32(q[44:48], id)
		if offset > 0 {
			q = q[:48+8] // a later fragment: some payload, no transport header
			binary.BigEndian.PutUint16(q[4:6], uint16(len(q)-40))
		}
		return q
	}
	mapped := tcpPkt(web6, db6, 1, 2, syn)
	copy(mapped[8:24], netip.MustParseAddr("::ffff:10.0.0.1").AsSlice())
	longIHL := tcpPkt(web1, db1, 1, 2, syn)
	longIHL[0] = 0x4f // IHL 60 > total length of headers present
	badTotal := udpPkt(web1, db1, 1, 2)
	binary.BigEndian.PutUint16(badTotal[2:4], 9999)
	icmpInV4 := testkit.IP(web1, db1, ipProtoICMPv6, make([]byte, 8))
	tooMany := withExt(udpPkt(web6, db6, 1, 2), 0, 60, 60, 60, 60, 60, 60, 60, 60)
	gre := testkit.IP(web1, db1, 47, make([]byte, 4))
	icmpErr := testkit.IP(web1, db1, ipProtoICMP, []byte{3, 1, 0, 0, 0, 0, 0, 0})

	tests := []struct {
		name string
		pkt  []byte
		ok   bool
		want Flow
	}{
		{"tcp4", tcpPkt(web1, db1, 40000, 5432, syn), true, Flow{Src: web1, Dst: db1, SrcPort: 40000, DstPort: 5432, Proto: 6, Class: ProtoTCP, TCPFlags: syn}},
		{"udp4", udpPkt(web1, db1, 33, 53), true, Flow{Src: web1, Dst: db1, SrcPort: 33, DstPort: 53, Proto: 17, Class: ProtoUDP}},
		{"icmp4 echo", icmpEcho(web1, db1, 99, false), true, Flow{Src: web1, Dst: db1, SrcPort: 99, DstPort: 99, Proto: 1, Class: ProtoICMP, ICMPType: 8}},
		{"icmp4 unreachable", icmpErr, true, Flow{Src: web1, Dst: db1, Proto: 1, Class: ProtoICMP, ICMPType: 3}},
		{"gre", gre, true, Flow{Src: web1, Dst: db1, Proto: 47, Class: ProtoOther}},
		{"tcp6", tcpPkt(web6, db6, 1, 2, ack), true, Flow{Src: web6, Dst: db6, SrcPort: 1, DstPort: 2, Proto: 6, Class: ProtoTCP, TCPFlags: ack}},
		{"icmp6 echo reply", icmpEcho(web6, db6, 5, true), true, Flow{Src: web6, Dst: db6, SrcPort: 5, DstPort: 5, Proto: 58, Class: ProtoICMP, ICMPType: 129}},
		{"udp6 behind hop-by-hop, dstopts, AH", withExt(udpPkt(web6, db6, 7, 8), 0, 60, 51), true, Flow{Src: web6, Dst: db6, SrcPort: 7, DstPort: 8, Proto: 17, Class: ProtoUDP}},
		{"udp6 atomic fragment", withExt(udpPkt(web6, db6, 7, 8), 44), true, Flow{Src: web6, Dst: db6, SrcPort: 7, DstPort: 8, Proto: 17, Class: ProtoUDP}},
		{"udp6 first fragment", v6frag(udpPkt(web6, db6, 7, 8), 0, true, 0xabcdef), true, Flow{Src: web6, Dst: db6, SrcPort: 7, DstPort: 8, Proto: 17, Class: ProtoUDP, Frag: FragFirst, FragID: 0xabcdef}},
		{"udp6 later fragment", v6frag(udpPkt(web6, db6, 7, 8), 1280, false, 0xabcdef), true, Flow{Src: web6, Dst: db6, Proto: 17, Class: ProtoUDP, Frag: FragLater, FragID: 0xabcdef}},
		{"udp4 first fragment", fragment4(udpPkt(web1, db1, 7, 8), 5, 0, true), true, Flow{Src: web1, Dst: db1, SrcPort: 7, DstPort: 8, Proto: 17, Class: ProtoUDP, Frag: FragFirst, FragID: 5}},
		{"udp4 later fragment", fragment4(testkit.IP(web1, db1, 17, make([]byte, 3)), 5, 1480, false), true, Flow{Src: web1, Dst: db1, Proto: 17, Class: ProtoUDP, Frag: FragLater, FragID: 5}},
		{"trailing bytes beyond total length", append(udpPkt(web1, db1, 1, 2), 0, 0, 0), true, Flow{Src: web1, Dst: db1, SrcPort: 1, DstPort: 2, Proto: 17, Class: ProtoUDP}},

		{"empty", nil, false, Flow{}},
		{"not ip", []byte{0x10, 0, 0, 0}, false, Flow{}},
		{"short ipv4", tcpPkt(web1, db1, 1, 2, syn)[:19], false, Flow{}},
		{"truncated tcp", tcpPkt(web1, db1, 1, 2, syn)[:39], false, Flow{}},
		{"ihl beyond packet", longIHL, false, Flow{}},
		{"total length beyond buffer", badTotal, false, Flow{}},
		{"ihl below 5", append([]byte{0x44}, tcpPkt(web1, db1, 1, 2, syn)[1:]...), false, Flow{}},
		{"short ipv6", tcpPkt(web6, db6, 1, 2, syn)[:39], false, Flow{}},
		{"ipv6 payload beyond buffer", tcpPkt(web6, db6, 1, 2, syn)[:50], false, Flow{}},
		{"v4-mapped source in ipv6", mapped, false, Flow{}},
		{"icmpv6 in ipv4", icmpInV4, false, Flow{}},
		{"too many extension headers", tooMany, false, Flow{}},
		{"tcp first fragment too short", fragment4(testkit.IP(web1, db1, 6, make([]byte, 8)), 1, 0, true), false, Flow{}},
		{"tcp fragment at offset 8", fragment4(testkit.IP(web1, db1, 6, make([]byte, 8)), 1, 8, false), false, Flow{}},
		{"two fragment headers", func() []byte {
			q := withExt(udpPkt(web6, db6, 1, 2), 44, 44)
			return q
		}(), false, Flow{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, ok := Classify(tt.pkt)
			if ok != tt.ok {
				t.Fatalf("ok = %v, want %v (%+v)", ok, tt.ok, f)
			}
			if ok && f != tt.want {
				t.Fatalf("flow %+v\nwant %+v", f, tt.want)
			}
		})
	}
}

func TestClassify_ExtensionHeaderBound(t *testing.T) {
	// maxExtHeaders headers pass, one more is refused.
	kinds := make([]uint8, maxExtHeaders)
	for i := range kinds {
		kinds[i] = 60
	}
	if _, ok := Classify(withExt(udpPkt(web6, db6, 1, 2), kinds...)); !ok {
		t.Fatalf("%d extension headers refused", maxExtHeaders)
	}
	if _, ok := Classify(withExt(udpPkt(web6, db6, 1, 2), append(kinds, 60)...)); ok {
		t.Fatalf("%d extension headers accepted", maxExtHeaders+1)
	}
}
