package tunnel

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/weftnet/weft/l2"
	"github.com/weftnet/weft/peers"
)

// Encrypted L2 between two weft tunnels in-process (loopback UDP, fake TAPs): the l2.Router in
// the common loop, frames carried as VXLAN-GPE next protocol Ethernet.

// l2.Router plugs into the loop's seam.
var _ Router = (*l2.Router)(nil)

var (
	testMACA = l2.MAC{0x02, 0, 0, 0, 0, 0x0a}
	testMACB = l2.MAC{0x02, 0, 0, 0, 0, 0x0b}
)

// testFrame builds dst|src|ethertype|payload.
func testFrame(dst, src l2.MAC, et uint16, payload []byte) []byte {
	b := append(append([]byte{}, dst[:]...), src[:]...)
	b = binary.BigEndian.AppendUint16(b, et)
	return append(b, payload...)
}

func l2Config(vni uint32, r *l2.Router) Config {
	cfg := DefaultLocalConfig()
	cfg.VNI = vni
	cfg.NextProtoL2 = true
	cfg.Router = r
	return cfg
}

func TestL2Router_TunnelEndToEnd(t *testing.T) {
	ra, rb := l2.NewRouter(7, l2.FDBConfig{}), l2.NewRouter(7, l2.FDBConfig{})
	pr := upPair(t, l2Config(7, ra), l2Config(7, rb))
	ra.FDB().AddRemote(pr.peerB)
	rb.FDB().AddRemote(pr.peerA)
	rb.FDB().SetStatic(testMACB, nil) // B's own TAP MAC: no peer may claim it

	// A broadcast floods (and starts the handshake); B learns MAC A behind peer A.
	arp := testFrame(l2.BroadcastMAC, testMACA, l2.EtherTypeARP, make([]byte, 28)) // the Router reads no further than the MACs
	pr.devA.inject(arp)
	if got := pr.devB.waitPacket(t); !bytes.Equal(got, arp) {
		t.Fatalf("B got %x", got)
	}
	if p, ok := rb.FDB().Lookup(testMACA); !ok || p != pr.peerA {
		t.Fatal("B did not learn MAC A behind peer A")
	}
	// The reply is unicast by the FDB; odd sizes come through unpadded.
	for _, size := range []int{60, 61, 1001, 1400} {
		f := testFrame(testMACA, testMACB, l2.EtherTypeIPv4, bytes.Repeat([]byte{byte(size)}, size-l2.EthernetHeaderLen))
		pr.devB.inject(f)
		if got := pr.devA.waitPacket(t); !bytes.Equal(got, f) {
			t.Fatalf("A got %d bytes, want %d", len(got), len(f))
		}
	}
	if s := rb.FDB().Stats(); s.Flooded != 0 {
		t.Fatalf("B flooded %d frames to a learned MAC", s.Flooded)
	}
	// A frame claiming B's own MAC is refused and counted.
	pr.devA.inject(testFrame(testMACB, testMACB, l2.EtherTypeIPv4, make([]byte, 50)))
	waitFor(t, "not-allowed-source drop", func() bool { return pr.peerA.Drops(peers.DropNotAllowedSource) == 1 })
	if es := ra.FDB().Entries(); len(es) != 1 || es[0].MAC != testMACB || es[0].Remote != pr.peerB {
		t.Fatalf("A's FDB %+v", es)
	}
}

func TestL2Router_TunnelWrongVNI(t *testing.T) {
	ra, rb := l2.NewRouter(7, l2.FDBConfig{}), l2.NewRouter(8, l2.FDBConfig{})
	pr := upPair(t, l2Config(7, ra), l2Config(8, rb))
	ra.FDB().AddRemote(pr.peerB)
	rb.FDB().AddRemote(pr.peerA)
	for range 3 {
		pr.devA.inject(testFrame(l2.BroadcastMAC, testMACA, l2.EtherTypeARP, make([]byte, 28)))
	}
	waitFor(t, "wrong-VNI drops", func() bool { return pr.peerA.Drops(peers.DropWrongVNI) == 3 })
	if n := pr.devB.written.Load(); n != 0 {
		t.Fatalf("%d frames of another VNI reached B's device", n)
	}
	if _, ok := rb.FDB().Lookup(testMACA); ok {
		t.Fatal("learned from a frame of another VNI")
	}
}
