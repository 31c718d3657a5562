package l2

import (
	"bytes"
	"encoding/hex"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weftnet/weft/internal/testkit"
	"github.com/weftnet/weft/vxlan"
)

// loadL2Vector reads a hex packet from testdata/l2 (see its README for how it was captured).
func loadL2Vector(tb testing.TB, name string) []byte {
	tb.Helper()
	s, err := os.ReadFile(filepath.Join("..", "testdata", "l2", name))
	if err != nil {
		tb.Fatal(err)
	}
	b, err := hex.DecodeString(strings.TrimSpace(string(s)))
	if err != nil {
		tb.Fatalf("%s: %v", name, err)
	}
	return b
}

// TestPlainVTEP_KernelVectors: packets the Linux vxlan driver sent parse as expected, weft's
// header for the same VNI is byte-identical to the kernel's, and a PlainVTEP delivers them
// and learns the kernel's MAC.
func TestPlainVTEP_KernelVectors(t *testing.T) {
	kernelMAC := MAC{0x02, 0x42, 0x42, 0, 0, 0x02}
	arp := loadL2Vector(t, "kernel_vxlan_arp_request.hex")
	ns := loadL2Vector(t, "kernel_vxlan_ipv6_ns.hex")
	for _, pkt := range [][]byte{arp, ns} {
		h, err := vxlan.Parse(pkt)
		if err != nil || h.VNI != 42 || h.NextProto != vxlan.ProtoNone {
			t.Fatalf("kernel header %x: %+v %v", pkt[:8], h, err)
		}
		var ours [vxlan.HeaderSize]byte
		vxlan.Encode(ours[:], 42, vxlan.ProtoNone)
		if !bytes.Equal(ours[:], pkt[:8]) {
			t.Fatalf("weft header %x, kernel header %x", ours, pkt[:8])
		}
	}
	eth, err := ParseEthernet(arp[8:])
	if err != nil || eth.Dst != BroadcastMAC || eth.Src != kernelMAC || eth.EtherType != EtherTypeARP {
		t.Fatalf("ARP frame %+v %v", eth, err)
	}
	req, err := ParseARP(arp[8+eth.PayloadOffset:])
	want := ARPPacket{Op: ARPRequest, SenderMAC: kernelMAC, SenderIP: netip.MustParseAddr("10.99.0.2"), TargetIP: netip.MustParseAddr("10.99.0.1")}
	if err != nil || req != want {
		t.Fatalf("ARP %+v %v", req, err)
	}
	eth, err = ParseEthernet(ns[8:])
	if err != nil || eth.Dst != (MAC{0x33, 0x33, 0xff, 0, 0, 2}) || eth.EtherType != EtherTypeIPv6 {
		t.Fatalf("NS frame %+v %v", eth, err)
	}

	// Delivered through a VTEP, as if from the kernel at 127.0.0.4 (a configured remote:
	// VXLAN from unknown sources is dropped).
	v, dev := newTestVTEP(t, "127.0.0.1:0", PlainConfig{Remotes: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.4:4789")}})
	kernel, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 4)})
	if err != nil {
		t.Fatal(err)
	}
	defer kernel.Close()
	for _, pkt := range [][]byte{ns, arp} {
		if _, err := kernel.WriteToUDPAddrPort(pkt, v.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		if got := dev.Recv(t); !bytes.Equal(got, pkt[8:]) {
			t.Fatalf("device got %x", got)
		}
	}
	r, ok := v.ForwardingDB().Lookup(kernelMAC)
	if want := netip.MustParseAddrPort("127.0.0.4:4789"); !ok || r != want {
		t.Fatalf("learned %v %v, want %v (the VXLAN port, not the source port)", r, ok, want)
	}
	testkit.Eventually(t, testkit.Timeout, func() bool { return v.Stats().RxPackets == 2 }, "stats")
}
