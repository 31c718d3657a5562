package l2

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/netip"
	"testing"

	"github.com/weftnet/weft/internal/testkit"
	"github.com/weftnet/weft/vxlan"
)

var (
	testMACA = MAC{0x02, 0, 0, 0, 0, 0x0a}
	testMACB = MAC{0x02, 0, 0, 0, 0, 0x0b}
	testMACC = MAC{0x02, 0, 0, 0, 0, 0x0c}
)

// testARPRequest is the 28-byte ARP request "who has tip? tell sip (smac)".
func testARPRequest(smac MAC, sip, tip string) []byte {
	return testkit.ARPRequest(smac, netip.MustParseAddr(sip), netip.MustParseAddr(tip))
}

func TestParseEthernet(t *testing.T) {
	tests := []struct {
		name    string
		frame   []byte
		want    EthernetFrame
		wantErr error
	}{
		{"untagged ipv4", testkit.Ethernet(testMACB, testMACA, nil, EtherTypeIPv4, []byte{0x45}),
			EthernetFrame{Dst: testMACB, Src: testMACA, EtherType: EtherTypeIPv4, PayloadOffset: 14}, nil},
		{"one vlan", testkit.Ethernet(BroadcastMAC, testMACA, []uint16{0x2064}, EtherTypeARP, nil),
			EthernetFrame{Dst: BroadcastMAC, Src: testMACA, VLANs: 1, VLAN: 0x064, EtherType: EtherTypeARP, PayloadOffset: 18}, nil},
		{"qinq", testkit.Ethernet(testMACB, testMACA, []uint16{10, 20}, EtherTypeIPv6, nil),
			EthernetFrame{Dst: testMACB, Src: testMACA, VLANs: 2, VLAN: 20, EtherType: EtherTypeIPv6, PayloadOffset: 22}, nil},
		{"three tags", testkit.Ethernet(testMACB, testMACA, []uint16{1, 2, 3}, EtherTypeIPv4, nil), EthernetFrame{}, ErrTooManyVLANTags},
		{"short", make([]byte, 13), EthernetFrame{}, ErrShortFrame},
		{"truncated tag", testkit.Ethernet(testMACB, testMACA, []uint16{1}, EtherTypeIPv4, nil)[:16], EthernetFrame{}, ErrShortFrame},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseEthernet(tt.frame)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err == nil && got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestMAC_StringParse(t *testing.T) {
	m := MAC{0xde, 0xad, 0xbe, 0xef, 0x00, 0x01}
	if s := m.String(); s != "de:ad:be:ef:00:01" {
		t.Fatalf("String = %q", s)
	}
	for _, s := range []string{"de:ad:be:ef:00:01", "DE-AD-BE-EF-00-01"} {
		got, err := ParseMAC(s)
		if err != nil || got != m {
			t.Fatalf("ParseMAC(%q) = %v, %v", s, got, err)
		}
	}
	for _, s := range []string{"", "de:ad:be:ef:00:0g", "de:ad:be:ef:00.01", "de:ad:be:ef:00:011"} {
		if _, err := ParseMAC(s); !errors.Is(err, ErrInvalidMAC) {
			t.Fatalf("ParseMAC(%q) err = %v", s, err)
		}
	}
	js, err := json.Marshal(struct{ M MAC }{m})
	if err != nil || string(js) != `{"M":"de:ad:be:ef:00:01"}` {
		t.Fatalf("json %s %v", js, err)
	}
	var back struct{ M MAC }
	if err := json.Unmarshal(js, &back); err != nil || back.M != m {
		t.Fatalf("json back %v %v", back.M, err)
	}
	if !BroadcastMAC.IsMulticast() || testMACA.IsMulticast() || !(MAC{}).IsZero() {
		t.Fatal("IsMulticast/IsZero wrong")
	}
}

func TestParseARP(t *testing.T) {
	a, err := ParseARP(testARPRequest(testMACA, "10.0.0.1", "10.0.0.2"))
	if err != nil {
		t.Fatal(err)
	}
	want := ARPPacket{Op: ARPRequest, SenderMAC: testMACA, SenderIP: netip.MustParseAddr("10.0.0.1"), TargetIP: netip.MustParseAddr("10.0.0.2")}
	if a != want {
		t.Fatalf("got %+v want %+v", a, want)
	}
	if _, err := ParseARP(make([]byte, 27)); !errors.Is(err, ErrShortARP) {
		t.Fatalf("short: %v", err)
	}
	bad := testARPRequest(testMACA, "10.0.0.1", "10.0.0.2")
	bad[3] = 0xdd // protocol IPv6
	if _, err := ParseARP(bad); !errors.Is(err, ErrUnsupportedARP) {
		t.Fatalf("unsupported: %v", err)
	}
}

func TestBuildARPReply(t *testing.T) {
	req := testkit.Ethernet(BroadcastMAC, testMACA, nil, EtherTypeARP, testARPRequest(testMACA, "10.0.0.1", "10.0.0.2"))
	var dst [64]byte
	n := BuildARPReply(dst[:], req, testMACB)
	// The exact bytes a host at 02:00:00:00:00:0b owning 10.0.0.2 answers with.
	want := []byte{
		0x02, 0, 0, 0, 0, 0x0a, // to the asker
		0x02, 0, 0, 0, 0, 0x0b, // from the owner
		0x08, 0x06, // ARP
		0, 1, 8, 0, 6, 4, 0, 2, // Ethernet/IPv4, reply
		0x02, 0, 0, 0, 0, 0x0b, 10, 0, 0, 2, // sender: owner
		0x02, 0, 0, 0, 0, 0x0a, 10, 0, 0, 1, // target: asker
	}
	if !bytes.Equal(dst[:n], want) {
		t.Fatalf("reply\n got %x\nwant %x", dst[:n], want)
	}
	// VLAN tags are kept.
	tagged := testkit.Ethernet(BroadcastMAC, testMACA, []uint16{7}, EtherTypeARP, testARPRequest(testMACA, "10.0.0.1", "10.0.0.2"))
	n = BuildARPReply(dst[:], tagged, testMACB)
	if n != 46 || !bytes.Equal(dst[12:18], []byte{0x81, 0, 0, 7, 8, 6}) || !bytes.Equal(dst[18:n], want[14:]) {
		t.Fatalf("tagged reply %x", dst[:n])
	}
	if n := BuildARPReply(dst[:40], req, testMACB); n != 0 {
		t.Fatal("reply into a short buffer")
	}
	ipv4 := testkit.Ethernet(testMACB, testMACA, nil, EtherTypeIPv4, make([]byte, 28))
	if n := BuildARPReply(dst[:], ipv4, testMACB); n != 0 {
		t.Fatal("reply to a non-ARP frame")
	}
}

func FuzzParseEthernet(f *testing.F) {
	f.Add(testkit.Ethernet(BroadcastMAC, testMACA, nil, EtherTypeARP, testARPRequest(testMACA, "10.0.0.1", "10.0.0.2")))
	f.Add(testkit.Ethernet(testMACB, testMACA, []uint16{5, 6}, EtherTypeIPv4, []byte{0x45, 0}))
	f.Add(loadL2Vector(f, "kernel_vxlan_arp_request.hex")[vxlan.HeaderSize:])
	f.Add(testkit.Ethernet(testMACB, testMACA, []uint16{1}, EtherTypeARP, testARPRequest(testMACA, "10.0.0.1", "10.0.0.2")))
	f.Fuzz(func(t *testing.T, b []byte) {
		fuzzEthernet(t, b)
	})
}

// fuzzEthernet checks the invariants of one parsed frame: offsets inside the buffer, ARP
// parsing and reply building stable (reply → parse → the swapped request).
func fuzzEthernet(t *testing.T, b []byte) {
	eth, err := ParseEthernet(b)
	if err != nil {
		return
	}
	if eth.PayloadOffset != 14+4*eth.VLANs || eth.PayloadOffset > len(b) {
		t.Fatalf("payload offset %d of %d bytes, %d tags", eth.PayloadOffset, len(b), eth.VLANs)
	}
	if eth.EtherType != EtherTypeARP {
		return
	}
	req, err := ParseARP(b[eth.PayloadOffset:])
	if err != nil {
		return
	}
	var dst [64]byte
	n := BuildARPReply(dst[:], b, testMACC)
	if req.Op != ARPRequest {
		if n != 0 {
			t.Fatal("replied to a non-request")
		}
		return
	}
	if n == 0 {
		t.Fatal("no reply to a request")
	}
	reth, err := ParseEthernet(dst[:n])
	if err != nil || reth.PayloadOffset != eth.PayloadOffset || reth.Dst != req.SenderMAC || reth.Src != testMACC {
		t.Fatalf("reply header %+v, %v", reth, err)
	}
	rep, err := ParseARP(dst[reth.PayloadOffset:n])
	if err != nil || rep.Op != ARPReply || rep.SenderIP != req.TargetIP || rep.TargetIP != req.SenderIP ||
		rep.TargetMAC != req.SenderMAC || rep.SenderMAC != testMACC {
		t.Fatalf("reply %+v for request %+v, %v", rep, req, err)
	}
}

func FuzzPlainVXLANFrame(f *testing.F) {
	frame := testkit.Ethernet(BroadcastMAC, testMACA, nil, EtherTypeARP, testARPRequest(testMACA, "10.0.0.1", "10.0.0.2"))
	pkt := make([]byte, vxlan.HeaderSize, vxlan.HeaderSize+len(frame))
	vxlan.Encode(pkt, 42, vxlan.ProtoNone)
	f.Add(append(pkt, frame...))
	f.Add(loadL2Vector(f, "kernel_vxlan_arp_request.hex"))
	f.Add(loadL2Vector(f, "kernel_vxlan_ipv6_ns.hex"))
	f.Add([]byte{0x08, 0, 0, 0, 0, 0, 0x2a, 0})
	f.Add([]byte{0x0c, 0, 0, 3, 0, 0, 0x2a, 0xff}) // GPE-style bits: reserved, ignored
	f.Fuzz(func(t *testing.T, b []byte) {
		// As the plaintext VTEP receives: RFC 7348 header, then an Ethernet frame.
		h, err := vxlan.Parse(b)
		if err != nil {
			return
		}
		if h.VNI > vxlan.MaxVNI {
			t.Fatalf("vni %d", h.VNI)
		}
		// What the VTEP sends back is pure RFC 7348, and parses to the same VNI.
		var hb [vxlan.HeaderSize]byte
		vxlan.Encode(hb[:], h.VNI, vxlan.ProtoNone)
		if h2, err := vxlan.Parse(hb[:]); err != nil || h2.VNI != h.VNI || h2.NextProto != vxlan.ProtoNone ||
			hb[0] != 0x08 || hb[1] != 0 || hb[2] != 0 || hb[3] != 0 || hb[7] != 0 {
			t.Fatalf("re-encode: %x %+v %v", hb, h2, err)
		}
		fuzzEthernet(t, b[vxlan.HeaderSize:])
	})
}
