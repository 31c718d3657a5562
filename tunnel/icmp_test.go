package tunnel

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"github.com/weftnet/weft/internal/testkit"
)

// dfPacket is an IPv4/TCP packet of size bytes with DF set (as TCP sends), header
// checksum fixed.
func dfPacket(src, dst string, size int) []byte {
	p := testkit.IPv4(netip.MustParseAddr(src), netip.MustParseAddr(dst), testkit.ProtoTCP, testkit.Pattern(size-20, 20))
	p[6] |= 0x40
	p[10], p[11] = 0, 0
	binary.BigEndian.PutUint16(p[10:12], ^checksum(p[:20], 0))
	return p
}

// TestICMPTooBig_IPv4: the error matches what golang.org/x/net/icmp marshals for the same
// message (type 3 code 4, the MTU in the second half of the unused word, the packet's
// first 548 bytes quoted), comes from the packet's destination to its source, and the IP
// header's checksum holds.
func TestICMPTooBig_IPv4(t *testing.T) {
	pkt := dfPacket("10.0.1.1", "10.0.2.2", 1400)
	out := make([]byte, icmpBufSize)
	n := icmpTooBig(out, pkt, 1332)
	if n != 576 {
		t.Fatalf("length %d, want 576 (the RFC 1812 bound)", n)
	}
	h, err := ipv4.ParseHeader(out[:20])
	if err != nil {
		t.Fatal(err)
	}
	if h.Src.String() != "10.0.2.2" || h.Dst.String() != "10.0.1.1" || h.Protocol != 1 || h.TotalLen != n {
		t.Fatalf("header %+v", h)
	}
	if checksum(out[:20], 0) != 0xffff {
		t.Fatal("IPv4 header checksum does not hold")
	}
	want, err := (&icmp.Message{Type: ipv4.ICMPTypeDestinationUnreachable, Code: 4,
		Body: &icmp.RawBody{Data: append([]byte{0, 0, 1332 >> 8, 1332 & 0xff}, pkt[:548]...)}}).Marshal(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out[20:n], want) {
		t.Fatalf("ICMP differs from x/net's:\n got %x\nwant %x", out[20:48], want[:28])
	}
}

// TestICMPTooBig_IPv6: "packet too big" as x/net/icmp marshals it with the pseudo-header
// checksum, quoting as much as fits in 1280 bytes.
func TestICMPTooBig_IPv6(t *testing.T) {
	pkt := ipv6Packet("fd00:1::1", "fd00:2::2", 1400)
	out := make([]byte, icmpBufSize)
	n := icmpTooBig(out, pkt, 1300)
	if n != 1280 {
		t.Fatalf("length %d, want 1280", n)
	}
	src, dst := netip.MustParseAddr("fd00:2::2"), netip.MustParseAddr("fd00:1::1")
	if !bytes.Equal(out[8:24], src.AsSlice()) || !bytes.Equal(out[24:40], dst.AsSlice()) || out[6] != 58 {
		t.Fatalf("header %x", out[:40])
	}
	psh := icmp.IPv6PseudoHeader(src.AsSlice(), dst.AsSlice())
	want, err := (&icmp.Message{Type: ipv6.ICMPTypePacketTooBig, Body: &icmp.PacketTooBig{MTU: 1300, Data: pkt[:1232]}}).Marshal(psh)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out[40:n], want) {
		t.Fatalf("ICMPv6 differs from x/net's:\n got %x\nwant %x", out[40:56], want[:16])
	}
	// Below IPv6's minimum the error says 1280, the least an IPv6 host must take.
	icmpTooBig(out, pkt, 1200)
	if got := binary.BigEndian.Uint32(out[44:48]); got != 1280 {
		t.Fatalf("MTU %d, want 1280", got)
	}
}

// TestICMPTooBig_NotAnswered: the packets RFC 1122 and RFC 4443 say an error must not
// answer, and malformed ones.
func TestICMPTooBig_NotAnswered(t *testing.T) {
	out := make([]byte, icmpBufSize)
	icmpErr := dfPacket("10.0.1.1", "10.0.2.2", 100)
	icmpErr[9] = 1
	icmpErr[20] = 3 // an ICMP error itself
	frag := dfPacket("10.0.1.1", "10.0.2.2", 1400)
	frag[7] = 10 // offset 80: not the first fragment
	v6err := ipv6Packet("fd00:1::1", "fd00:2::2", 1400)
	v6err[6], v6err[40] = 58, 1
	for name, pkt := range map[string][]byte{
		"empty": {}, "short v4": dfPacket("10.0.1.1", "10.0.2.2", 100)[:19], "short v6": ipv6Packet("fd00:1::1", "fd00:2::2", 100)[:39],
		"bad ihl":         append([]byte{0x4f}, make([]byte, 30)...),
		"zero source":     dfPacket("0.0.0.0", "10.0.2.2", 1400),
		"multicast dst":   dfPacket("10.0.1.1", "224.0.0.1", 1400),
		"broadcast dst":   dfPacket("10.0.1.1", "255.255.255.255", 1400),
		"loopback source": dfPacket("127.0.0.1", "10.0.2.2", 1400),
		"icmp error":      icmpErr, "later fragment": frag, "icmpv6 error": v6err,
		"v6 multicast source": ipv6Packet("ff02::1", "fd00:2::2", 1400),
		"version 5":           append([]byte{0x50}, make([]byte, 60)...),
	} {
		if n := icmpTooBig(out, pkt, 1300); n != 0 {
			t.Errorf("%s: answered (%d bytes)", name, n)
		}
	}
}

// TestFragmentIPv4: fragments fit the MTU, carry offsets in 8-byte units and MF on all
// but the last (or on the last too when the packet was itself a non-final fragment), keep
// valid header checksums, and reassemble into the original payload.
func TestFragmentIPv4(t *testing.T) {
	for _, c := range []struct {
		size, mtu int
		already   uint16 // the packet's own offset/MF
	}{{3000, 1400, 0}, {1401, 1400, 0}, {9000, 576, 0}, {2000, 1000, 0x2000 | 100}} {
		pkt := ipv4Packet("10.0.1.1", "10.0.2.2", c.size)
		binary.BigEndian.PutUint16(pkt[6:8], c.already)
		pkt[10], pkt[11] = 0, 0
		binary.BigEndian.PutUint16(pkt[10:12], ^checksum(pkt[:20], 0))
		want := ipv4Fragments(pkt, c.mtu)
		var frags [][]byte
		ok := fragmentIPv4(pkt, c.mtu, func() []byte { return make([]byte, bufSize) },
			func(b []byte, n int) { frags = append(frags, b[headroom:headroom+n]) })
		if !ok || len(frags) != want || want < 2 {
			t.Fatalf("%+v: ok=%v, %d fragments, ipv4Fragments said %d", c, ok, len(frags), want)
		}
		var payload []byte
		for i, f := range frags {
			h, err := ipv4.ParseHeader(f)
			if err != nil {
				t.Fatal(err)
			}
			if len(f) > c.mtu || h.TotalLen != len(f) || checksum(f[:20], 0) != 0xffff {
				t.Fatalf("%+v fragment %d: %d bytes, header %+v", c, i, len(f), h)
			}
			mf := h.Flags&ipv4.MoreFragments != 0
			if last := i == len(frags)-1; mf == last && !(last && c.already&0x2000 != 0) {
				t.Fatalf("%+v fragment %d: MF=%v", c, i, mf)
			}
			if h.FragOff*8 != int(c.already&0x1fff)*8+len(payload) { // x/net: in 8-byte units
				t.Fatalf("%+v fragment %d: offset %d, want %d", c, i, h.FragOff*8, int(c.already&0x1fff)*8+len(payload))
			}
			payload = append(payload, f[20:]...)
		}
		if !bytes.Equal(payload, pkt[20:]) {
			t.Fatalf("%+v: reassembled payload differs", c)
		}
	}
	// DF, options and tiny MTUs are refused.
	df := dfPacket("10.0.1.1", "10.0.2.2", 3000)
	opts := ipv4Packet("10.0.1.1", "10.0.2.2", 3000)
	opts[0] = 0x46
	for name, p := range map[string][]byte{"df": df, "options": opts} {
		if ipv4Fragments(p, 1400) != 0 || fragmentIPv4(p, 1400, nil, nil) {
			t.Errorf("%s: fragmented", name)
		}
	}
	if ipv4Fragments(ipv4Packet("10.0.1.1", "10.0.2.2", 3000), 27) != 0 {
		t.Error("MTU 27 accepted")
	}
}

// FuzzICMPTooBig: any packet, any MTU: no panic, and an error, when written, is a
// well-formed IP packet whose checksums hold and which quotes the packet's start.
func FuzzICMPTooBig(f *testing.F) {
	f.Add(dfPacket("10.0.1.1", "10.0.2.2", 100), 1300)
	f.Add(ipv6Packet("fd00:1::1", "fd00:2::2", 100), 1280)
	f.Add([]byte{0x45}, 0)
	f.Fuzz(func(t *testing.T, pkt []byte, mtu int) {
		out := make([]byte, icmpBufSize)
		n := icmpTooBig(out, pkt, mtu)
		if n == 0 {
			return
		}
		switch out[0] >> 4 {
		case 4:
			if checksum(out[:20], 0) != 0xffff || checksum(out[20:n], 0) != 0xffff {
				t.Fatal("IPv4 checksum")
			}
			if !bytes.Equal(out[28:n], pkt[:n-28]) {
				t.Fatal("quote")
			}
		case 6:
			if int(binary.BigEndian.Uint16(out[4:6]))+40 != n || !bytes.Equal(out[48:n], pkt[:n-48]) {
				t.Fatal("length or quote")
			}
		default:
			t.Fatalf("version %d", out[0]>>4)
		}
	})
}
