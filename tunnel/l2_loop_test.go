package tunnel

import (
	"bytes"
	"net/netip"
	"sync/atomic"
	"testing"

	"github.com/weftnet/weft/internal/testkit"
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

// lateTable is the SourceLookup of a Router made before the tunnel whose table it asks.
// The tunnel is set after Up has started its goroutines, hence the atomic pointer.
type lateTable struct{ t *atomic.Pointer[Tunnel] }

func (l lateTable) Lookup(a netip.Addr) *peers.Peer {
	if t := l.t.Load(); t != nil {
		return t.table.Lookup(a)
	}
	return nil
}

// arpFrame is an ARP request from mac at sip for tip, broadcast.
func arpFrame(mac l2.MAC, sip, tip string) []byte {
	return testkit.Ethernet(l2.BroadcastMAC, mac, nil, l2.EtherTypeARP,
		testkit.ARPRequest(mac, netip.MustParseAddr(sip), netip.MustParseAddr(tip)))
}

// newL2Pair is a pair of L2 tunnels on VNIs va and vb whose Routers check inner sources
// against their tunnel's peer table.
func newL2Pair(t *testing.T, va, vb uint32) (*pair, *l2.Router, *l2.Router) {
	var ta, tb atomic.Pointer[Tunnel]
	ra, rb := l2.NewRouter(va, l2.FDBConfig{}, lateTable{&ta}), l2.NewRouter(vb, l2.FDBConfig{}, lateTable{&tb})
	pr := upPair(t, l2Config(va, ra), l2Config(vb, rb))
	ta.Store(pr.a)
	tb.Store(pr.b)
	return pr, ra, rb
}

func l2Config(vni uint32, r *l2.Router) Config {
	cfg := DefaultLocalConfig()
	cfg.VNI = vni
	cfg.NextProtoL2 = true
	cfg.Router = r
	return cfg
}

func TestL2Router_TunnelEndToEnd(t *testing.T) {
	pr, ra, rb := newL2Pair(t, 7, 7)
	ra.FDB().AddRemote(pr.peerB)
	rb.FDB().AddRemote(pr.peerA)
	rb.FDB().SetStatic(testMACB, nil) // B's own TAP MAC: no peer may claim it

	// A broadcast floods (and starts the handshake); B learns MAC A behind peer A.
	arp := arpFrame(testMACA, "10.0.1.1", "10.0.2.1")
	pr.devA.Inject(arp)
	if got := pr.devB.Recv(t); !bytes.Equal(got, arp) {
		t.Fatalf("B got %x", got)
	}
	if p, ok := rb.FDB().Lookup(testMACA); !ok || p != pr.peerA {
		t.Fatal("B did not learn MAC A behind peer A")
	}
	// The reply is unicast by the FDB; odd sizes come through unpadded.
	for _, size := range []int{60, 61, 1001, 1400} {
		f := testkit.Ethernet(testMACA, testMACB, nil, l2.EtherTypeIPv4, ipv4Packet("10.0.2.1", "10.0.1.1", size-l2.EthernetHeaderLen))
		pr.devB.Inject(f)
		if got := pr.devA.Recv(t); !bytes.Equal(got, f) {
			t.Fatalf("A got %d bytes, want %d", len(got), len(f))
		}
	}
	if s := rb.FDB().Stats(); s.Flooded != 0 {
		t.Fatalf("B flooded %d frames to a learned MAC", s.Flooded)
	}
	// A frame claiming B's own MAC is refused and counted; so is a frame from A's own MAC
	// whose inner source is B's, and a gratuitous ARP for B's address.
	pr.devA.Inject(testkit.Ethernet(testMACB, testMACB, nil, l2.EtherTypeIPv4, ipv4Packet("10.0.1.1", "10.0.2.1", 50)))
	pr.devA.Inject(testkit.Ethernet(testMACB, testMACA, nil, l2.EtherTypeIPv4, ipv4Packet("10.0.2.9", "10.0.2.1", 50)))
	pr.devA.Inject(arpFrame(testMACA, "10.0.2.1", "10.0.2.1"))
	testkit.Eventually(t, testkit.Timeout, func() bool { return pr.peerA.Drops(peers.DropNotAllowedSource) == 3 }, "not-allowed-source drops")
	// A frame to B's own MAC, sent by B itself, is dropped as to_self (it used to reach the
	// loop as a nil peer and crash it).
	pr.devB.Inject(testkit.Ethernet(testMACB, testMACB, nil, l2.EtherTypeIPv4, ipv4Packet("10.0.2.1", "10.0.2.1", 50)))
	testkit.Eventually(t, testkit.Timeout, func() bool { return pr.b.Stats().Drops["to_self"] == 1 }, "to_self drop")
	if es := ra.FDB().Entries(); len(es) != 1 || es[0].MAC != testMACB || es[0].Remote != pr.peerB {
		t.Fatalf("A's FDB %+v", es)
	}
}

func TestL2Router_TunnelWrongVNI(t *testing.T) {
	pr, ra, rb := newL2Pair(t, 7, 8)
	ra.FDB().AddRemote(pr.peerB)
	rb.FDB().AddRemote(pr.peerA)
	for range 3 {
		pr.devA.Inject(arpFrame(testMACA, "10.0.1.1", "10.0.2.1"))
	}
	testkit.Eventually(t, testkit.Timeout, func() bool { return pr.peerA.Drops(peers.DropWrongVNI) == 3 }, "wrong-VNI drops")
	if n := pr.devB.PacketsWritten(); n != 0 {
		t.Fatalf("%d frames of another VNI reached B's device", n)
	}
	if _, ok := rb.FDB().Lookup(testMACA); ok {
		t.Fatal("learned from a frame of another VNI")
	}
}
