package testkit

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"golang.zx2c4.com/wireguard/tun/tuntest"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

var (
	v4a, v4b = netip.MustParseAddr("10.0.1.1"), netip.MustParseAddr("10.0.2.2")
	v6a, v6b = netip.MustParseAddr("fd00:1::1"), netip.MustParseAddr("fd00:2::2")
)

func addr(a netip.Addr) tcpip.Address { return tcpip.AddrFromSlice(a.AsSlice()) }

// l4 checks p's IP header (against gVisor's parsers) and returns its transport part.
func l4(t *testing.T, p []byte, src, dst netip.Addr, proto uint8) []byte {
	t.Helper()
	if src.Is4() {
		h := header.IPv4(p)
		if !h.IsValid(len(p)) || !h.IsChecksumValid() || h.TTL() != DefaultTTL {
			t.Fatalf("bad IPv4 header %x", p[:20])
		}
		if h.SourceAddress() != addr(src) || h.DestinationAddress() != addr(dst) || uint8(h.TransportProtocol()) != proto {
			t.Fatalf("IPv4 header %x: wrong addresses or protocol", p[:20])
		}
		return h.Payload()
	}
	h := header.IPv6(p)
	if !h.IsValid(len(p)) || h.HopLimit() != DefaultTTL {
		t.Fatalf("bad IPv6 header %x", p[:40])
	}
	if h.SourceAddress() != addr(src) || h.DestinationAddress() != addr(dst) || uint8(h.TransportProtocol()) != proto {
		t.Fatalf("IPv6 header %x: wrong addresses or protocol", p[:40])
	}
	return h.Payload()
}

func TestUDP_Checksums(t *testing.T) {
	for _, ab := range [][2]netip.Addr{{v4a, v4b}, {v6a, v6b}} {
		for _, n := range []int{0, 1, 4, 1379} {
			src, dst := netip.AddrPortFrom(ab[0], 5141), netip.AddrPortFrom(ab[1], 5655)
			payload := Pattern(n, 3)
			u := header.UDP(l4(t, UDP(src, dst, payload), ab[0], ab[1], ProtoUDP))
			if u.SourcePort() != 5141 || u.DestinationPort() != 5655 || int(u.Length()) != 8+n || !bytes.Equal(u.Payload(), payload) {
				t.Fatalf("%v %d: UDP header %x", ab[0], n, u[:8])
			}
			if !u.IsChecksumValid(addr(ab[0]), addr(ab[1]), checksum.Checksum(payload, 0)) {
				t.Errorf("%v %d: bad UDP checksum", ab[0], n)
			}
		}
	}
}

func TestTCP_Checksums(t *testing.T) {
	for _, ab := range [][2]netip.Addr{{v4a, v4b}, {v6a, v6b}} {
		for _, n := range []int{0, 7, 1400} {
			payload := Pattern(n, 0)
			seg := header.TCP(l4(t, TCP(netip.AddrPortFrom(ab[0], 1), netip.AddrPortFrom(ab[1], 80), uint8(header.TCPFlagSyn), payload), ab[0], ab[1], ProtoTCP))
			if seg.SourcePort() != 1 || seg.DestinationPort() != 80 || seg.Flags() != header.TCPFlagSyn || seg.DataOffset() != 20 {
				t.Fatalf("%v: TCP header %x", ab[0], seg[:20])
			}
			if !seg.IsChecksumValid(addr(ab[0]), addr(ab[1]), checksum.Checksum(payload, 0), uint16(n)) {
				t.Errorf("%v %d: bad TCP checksum", ab[0], n)
			}
		}
	}
}

func TestICMPEcho(t *testing.T) {
	// IPv4: tuntest.Ping's layout (its checksums are not complemented, so not compared).
	ping := tuntest.Ping(v4b, v4a)
	got := SetTTL(ICMPEcho(v4a, v4b, 0, 0, false, []byte{0x05, 0x39, 0, 0}), 65)
	got[10], got[11], got[22], got[23] = ping[10], ping[11], ping[22], ping[23]
	if !bytes.Equal(got, ping) {
		t.Fatalf("ICMPEcho\n%x, tuntest.Ping\n%x", got, ping)
	}
	req := header.ICMPv4(l4(t, ICMPEcho(v4a, v4b, 7, 9, false, nil), v4a, v4b, ProtoICMP))
	if req.Type() != header.ICMPv4Echo || req.Ident() != 7 || req.Sequence() != 9 || Checksum(req) != 0 {
		t.Fatalf("echo request %x", req)
	}
	m := header.ICMPv4(l4(t, ICMPEcho(v4a, v4b, 7, 9, true, Pattern(5, 0)), v4a, v4b, ProtoICMP))
	if m.Type() != header.ICMPv4EchoReply || m.Ident() != 7 || m.Sequence() != 9 || Checksum(m) != 0 {
		t.Fatalf("echo reply %x", m)
	}
	for _, reply := range []bool{false, true} {
		m6 := header.ICMPv6(l4(t, ICMPEcho(v6a, v6b, 7, 9, reply, Pattern(5, 0)), v6a, v6b, ProtoICMPv6))
		want := header.ICMPv6EchoRequest
		if reply {
			want = header.ICMPv6EchoReply
		}
		sum := header.ICMPv6Checksum(header.ICMPv6ChecksumParams{Header: m6, Src: addr(v6a), Dst: addr(v6b)})
		if m6.Type() != want || m6.Ident() != 7 || m6.Sequence() != 9 || m6.Checksum() != sum {
			t.Fatalf("ICMPv6 reply=%v: %x (checksum want %#x)", reply, m6, sum)
		}
	}
}

func TestIP_Family(t *testing.T) {
	if p := IP(v4a, v4b, 99, []byte{1}); len(p) != 21 || p[0] != 0x45 || p[9] != 99 {
		t.Fatalf("IPv4: %x", p)
	}
	p := IP(v6a, v6b, 99, []byte{1, 2})
	if len(p) != 42 || p[0] != 0x60 || p[6] != 99 || binary.BigEndian.Uint16(p[4:]) != 2 {
		t.Fatalf("IPv6: %x", p)
	}
	if SetTTL(p, 255)[7] != 255 {
		t.Fatal("SetTTL on IPv6")
	}
	q := SetTTL(IPv4(v4a, v4b, ProtoUDP, nil), 1)
	if q[8] != 1 || Checksum(q) != 0 {
		t.Fatalf("SetTTL on IPv4: %x", q)
	}
}

func TestEthernet(t *testing.T) {
	dst, src := [6]byte{2, 0, 0, 0, 0, 0xb}, [6]byte{2, 0, 0, 0, 0, 0xa}
	f := Ethernet(dst, src, []uint16{10, 20}, EtherTypeIPv6, []byte{0xee})
	want := []byte{2, 0, 0, 0, 0, 0xb, 2, 0, 0, 0, 0, 0xa, 0x81, 0, 0, 10, 0x81, 0, 0, 20, 0x86, 0xdd, 0xee}
	if !bytes.Equal(f, want) {
		t.Fatalf("got %x, want %x", f, want)
	}
	arp := ARPRequest(src, v4a, v4b)
	if len(arp) != 28 || !bytes.Equal(arp[8:14], src[:]) || !bytes.Equal(arp[14:18], v4a.AsSlice()) || !bytes.Equal(arp[24:28], v4b.AsSlice()) ||
		binary.BigEndian.Uint16(arp[6:8]) != 1 {
		t.Fatalf("ARP request %x", arp)
	}
}

func TestChecksum(t *testing.T) {
	// RFC 1071's example: 0001 f203 f4f5 f6f7 sums to ddf2, its complement 220d.
	if got := Checksum([]byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}); got != 0x220d {
		t.Fatalf("got %#x, want 0x220d", got)
	}
	if got, want := Checksum([]byte{1, 2, 3}), ^uint16(0x0102+0x0300); got != want {
		t.Fatalf("odd length: got %#x, want %#x", got, want)
	}
}
