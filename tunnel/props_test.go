package tunnel

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/internal/testkit"
	"github.com/weftnet/weft/l2"
	"github.com/weftnet/weft/peers"
	"github.com/weftnet/weft/vxlan"
)

// Property checks of the receive path: every received datagram has exactly one fate, and
// whatever reaches the device passed every trust rule. The fuzzers and the drop-reason
// table below share these helpers.

// testClock is a settable clock for the identities (and so the keypairs), so that no test
// or fuzz input depends on how long the run has lasted (a keypair on wall time would
// expire after crypto.RejectAfterTime and every later input would learn nothing).
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newTestClock() *testClock { return &testClock{t: time.Unix(1_800_000_000, 0)} }

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// tally is what B's receive path did, read from its counters.
type tally struct {
	written uint64
	drops   [peers.NumDropReasons]uint64
	hs      int    // handshake messages queued for the worker
	reqs    int    // requests queued for the worker (path-MTU probes and acks)
	rx      uint64 // authenticated datagrams counted for peer A
}

func (d *direct) tallyB() tally {
	var s tally
	s.written = d.devB.PacketsWritten()
	for r := range s.drops {
		s.drops[r] = d.b.drops.Get(peers.DropReason(r))
	}
	s.hs = len(d.b.hsMsgs)
	s.reqs = len(d.b.hsReqs)
	s.rx = d.peerA.Stats().RxPackets
	return s
}

// fate names what happened to one input between two tallies.
type fate struct {
	delivered bool
	keepalive bool
	handshake bool
	probe     bool             // a path-MTU probe or ack, handed to the worker
	drop      peers.DropReason // DropNone unless dropped
}

func (f fate) String() string {
	switch {
	case f.delivered:
		return "delivered"
	case f.keepalive:
		return "keepalive"
	case f.handshake:
		return "queued for the handshake worker"
	case f.probe:
		return "a path-MTU probe or ack for the worker"
	}
	return "dropped as " + f.drop.String()
}

// fateOf fails unless exactly one thing happened to the one input received between
// before and after: written to the device once, counted under exactly one drop reason
// once, queued once for the handshake worker, handed once to the worker as a path-MTU
// probe or ack, or (nothing else happening) counted as an authenticated keepalive.
func fateOf(t testing.TB, before, after tally) fate {
	t.Helper()
	var f fate
	outcomes := 0
	switch w := after.written - before.written; w {
	case 0:
	case 1:
		f.delivered = true
		outcomes++
	default:
		t.Fatalf("one input written %d times", w)
	}
	for r := range after.drops {
		switch n := after.drops[r] - before.drops[r]; n {
		case 0:
		case 1:
			f.drop = peers.DropReason(r)
			outcomes++
		default:
			t.Fatalf("one input counted %d times as %v", n, peers.DropReason(r))
		}
	}
	if after.hs-before.hs == 1 {
		f.handshake = true
		outcomes++
	}
	if after.reqs-before.reqs == 1 {
		f.probe = true
		outcomes++
	}
	if outcomes == 0 && after.rx-before.rx == 1 {
		f.keepalive = true
		outcomes++
	}
	if outcomes != 1 {
		t.Fatalf("one input had %d fates (written %d, drops %v→%v, handshake queue %d→%d, rx %d→%d)",
			outcomes, after.written-before.written, before.drops, after.drops, before.hs, after.hs, before.rx, after.rx)
	}
	return f
}

// receiveOne hands msg to B's receive path as one datagram from A and returns its fate.
func (d *direct) receiveOne(t testing.TB, msg []byte) fate {
	t.Helper()
	before := d.tallyB()
	d.rs.sizes[0] = copy(d.rs.bufs[0], msg)
	d.rs.eps[0] = d.fromA
	d.b.receiveBatch(d.rs, 1)
	f := fateOf(t, before, d.tallyB())
	for len(d.b.hsMsgs) > 0 {
		<-d.b.hsMsgs
	}
	for len(d.b.hsReqs) > 0 {
		<-d.b.hsReqs
	}
	return f
}

// receiveSealedFuzz has B receive plain sealed by A and checks what every plaintext must
// give: an empty one is a keepalive, a non-empty one is neither a keepalive nor a
// handshake. It returns what B's device got, or false if nothing was delivered (or plain
// is too large to seal).
func (d *direct) receiveSealedFuzz(t *testing.T, plain []byte) ([]byte, bool) {
	t.Helper()
	if len(plain) > bufSize-64 {
		return nil, false
	}
	fate := d.receiveOne(t, d.sealFromA(t, plain))
	if len(plain) == 0 {
		if !fate.keepalive {
			t.Fatalf("empty plaintext: %v, want a keepalive", fate)
		}
		return nil, false
	}
	if !fate.delivered {
		if fate.keepalive || fate.handshake {
			t.Fatalf("non-empty plaintext: %v", fate)
		}
		return nil, false
	}
	return <-d.devB.Out, true
}

// sealFromA seals plain (VXLAN header and inner packet, as sent) with A's current keypair
// for B, as A's send path would after its own checks.
func (d *direct) sealFromA(t testing.TB, plain []byte) []byte {
	t.Helper()
	kp := d.peerB.Keypairs().Current()
	if kp == nil {
		t.Fatal("A has no keypair for B")
	}
	msg := make([]byte, crypto.MessageTransportOverhead+len(plain))
	copy(msg[crypto.MessageTransportHeaderSize:], plain)
	n, err := kp.Seal(msg, len(plain))
	if err != nil {
		t.Fatalf("seal: %v (the test clock must keep the keypair alive)", err)
	}
	return msg[:n]
}

// sealedByA is one packet through A's real send path, as the datagram it put on the wire.
func (d *direct) sealedByA(t testing.TB, pkt []byte) []byte {
	t.Helper()
	d.sizes[0] = copy(d.bufs[0][headroom:], pkt)
	d.bindA.N = 0
	d.a.sendBatch(d.sc, d.bufs[:1], d.sizes[:1])
	if d.bindA.N != 1 {
		t.Fatalf("A sent %d datagrams for one packet (drops %v)", d.bindA.N, d.a.Stats().Drops)
	}
	return append([]byte(nil), d.bindA.Slots[0]...)
}

func vxlanHeader(vni uint32, proto vxlan.NextProto) []byte {
	var vx [vxlan.HeaderSize]byte
	vxlan.Encode(vx[:], vni, proto)
	return vx[:]
}

// nextProtoOf reads a VXLAN-GPE header's next protocol (RFC 7348 §5 with the P flag of
// draft-ietf-nvo3-vxlan-gpe): byte 3 when the P flag is set, else none.
func nextProtoOf(h []byte) vxlan.NextProto {
	if h[0]&0x04 == 0 {
		return vxlan.ProtoNone
	}
	return vxlan.NextProto(h[3])
}

// aPrefixes are A's allowed prefixes in B's table (pair.link), restated here so that the
// property does not trust the table it checks.
var aPrefixes = []netip.Prefix{netip.MustParsePrefix("10.0.1.0/24"), netip.MustParsePrefix("fd00:1::/64")}

// innerSource returns the source address of an IP packet.
func innerSource(pkt []byte) (netip.Addr, bool) {
	switch {
	case len(pkt) >= 20 && pkt[0]>>4 == 4:
		return netip.AddrFrom4([4]byte(pkt[12:16])), true
	case len(pkt) >= 40 && pkt[0]>>4 == 6:
		return netip.AddrFrom16([16]byte(pkt[8:24])), true
	}
	return netip.Addr{}, false
}

func fromA(src netip.Addr) bool {
	for _, p := range aPrefixes {
		if p.Contains(src) {
			return true
		}
	}
	return false
}

// FuzzTunnel_Receive fuzzes B's receive path with whole datagrams from A's endpoint: each
// has exactly one fate; a delivered one carries a source inside A's prefixes and a counter
// never delivered before (replays are not written twice).
func FuzzTunnel_Receive(f *testing.F) {
	clk := newTestClock()
	d := newDirectWith(f, 4, nil, DefaultConfig(), DefaultConfig(), clk)
	d.devB.KeepWritten(4096)
	// Seeds: valid messages of each kind, as A sealed them.
	f.Add(d.sealedByA(f, ipv4Packet("10.0.1.1", "10.0.2.2", 100)))
	f.Add(d.sealedByA(f, ipv6Packet("fd00:1::1", "fd00:2::2", 80)))
	var init [crypto.MessageInitiationSize]byte
	n, _ := d.peerB.Handshake().CreateInitiation(init[:], 7)
	f.Add(init[:n])
	f.Add([]byte{4, 0, 0, 0})
	f.Add([]byte{9, 0, 0, 0, 1, 2, 3, 4})
	delivered := map[uint64]bool{} // counters B wrote to its device
	f.Fuzz(func(t *testing.T, msg []byte) {
		if len(msg) > bufSize {
			return
		}
		fate := d.receiveOne(t, msg)
		if !fate.delivered {
			return
		}
		got := <-d.devB.Out
		src, ok := innerSource(got)
		if !ok || !fromA(src) {
			t.Fatalf("delivered a packet from %v, outside A's prefixes %v", src, aPrefixes)
		}
		counter := binary.LittleEndian.Uint64(msg[8:16])
		if delivered[counter] {
			t.Fatalf("counter %d delivered twice (a replay reached the device)", counter)
		}
		delivered[counter] = true
	})
}

// FuzzTunnel_ReceiveSealed fuzzes what lies behind the AEAD: the input is a plaintext (VXLAN
// header, then the inner packet) that A seals with its real keypair, so every input reaches
// B's VNI, next-protocol, padding and cryptokey-routing checks. Each input has exactly one
// fate; what is delivered carries B's VNI, the next protocol of its IP version, a source
// inside A's prefixes, and exactly the inner packet cut to its IP length.
func FuzzTunnel_ReceiveSealed(f *testing.F) {
	clk := newTestClock()
	d := newDirectWith(f, 4, nil, DefaultConfig(), DefaultConfig(), clk)
	d.devB.KeepWritten(4096)
	vni := d.b.cfg.VNI
	f.Add(append(vxlanHeader(vni, vxlan.ProtoIPv4), ipv4Packet("10.0.1.1", "10.0.2.2", 100)...))
	f.Add(append(vxlanHeader(vni, vxlan.ProtoIPv6), ipv6Packet("fd00:1::1", "fd00:2::2", 64)...))
	f.Add(append(vxlanHeader(vni, vxlan.ProtoIPv4), ipv4Packet("10.9.9.9", "10.0.2.2", 60)...))   // outside A's prefixes
	f.Add(append(vxlanHeader(vni+1, vxlan.ProtoIPv4), ipv4Packet("10.0.1.1", "10.0.2.2", 60)...)) // another VNI
	f.Add(append(vxlanHeader(vni, vxlan.ProtoIPv6), ipv4Packet("10.0.1.1", "10.0.2.2", 60)...))   // wrong next protocol
	f.Add(append(vxlanHeader(vni, vxlan.ProtoIPv4), 0x45))
	f.Add(vxlanHeader(vni, vxlan.ProtoIPv4))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, plain []byte) {
		got, ok := d.receiveSealedFuzz(t, plain)
		if !ok {
			return
		}
		if len(plain) < vxlan.HeaderSize {
			t.Fatalf("delivered %d bytes from a %d-byte plaintext", len(got), len(plain))
		}
		if v := binary.BigEndian.Uint32(plain[4:8]) >> 8; v != vni {
			t.Fatalf("delivered a packet of VNI %d, ours is %d", v, vni)
		}
		src, ok := innerSource(got)
		if !ok || !fromA(src) {
			t.Fatalf("delivered a packet from %v, outside A's prefixes %v", src, aPrefixes)
		}
		want := map[byte]vxlan.NextProto{4: vxlan.ProtoIPv4, 6: vxlan.ProtoIPv6}[got[0]>>4]
		if p := nextProtoOf(plain); p != want {
			t.Fatalf("delivered IPv%d with next protocol %d", got[0]>>4, p)
		}
		if !bytes.HasPrefix(plain[vxlan.HeaderSize:], got) {
			t.Fatal("delivered bytes differ from the sealed inner packet")
		}
	})
}

// FuzzL2Tunnel_ReceiveSealed is FuzzTunnel_ReceiveSealed for encrypted L2 mode (the
// l2.Router in the loop): what B's TAP gets carries B's VNI, the Ethernet next protocol,
// and never a source MAC that B's FDB pins elsewhere (B's own MAC, or MAC C of peer C).
func FuzzL2Tunnel_ReceiveSealed(f *testing.F) {
	clk := newTestClock()
	const vni = 7
	var ta, tb atomic.Pointer[Tunnel]
	ra, rb := l2.NewRouter(vni, l2.FDBConfig{}, lateTable{&ta}), l2.NewRouter(vni, l2.FDBConfig{}, lateTable{&tb})
	cfgA, cfgB := DefaultConfig(), DefaultConfig()
	for _, c := range []*Config{&cfgA, &cfgB} {
		c.VNI, c.NextProtoL2 = vni, true
	}
	cfgA.Router, cfgB.Router = ra, rb
	d := newDirectWith(f, 4, nil, cfgA, cfgB, clk)
	ta.Store(d.a)
	tb.Store(d.b)
	d.devB.KeepWritten(4096)
	testMACC := l2.MAC{0x02, 0, 0, 0, 0, 0x0c}
	peerC, err := d.b.table.Upsert(peers.PeerConfig{PublicKey: crypto.PublicKey{0xc}})
	if err != nil {
		f.Fatal(err)
	}
	rb.FDB().AddRemote(d.peerA)
	rb.FDB().AddRemote(peerC)
	rb.FDB().SetStatic(testMACB, nil)   // B's own TAP MAC
	rb.FDB().SetStatic(testMACC, peerC) // gossip says MAC C is behind peer C
	pinned := map[l2.MAC]bool{testMACB: true, testMACC: true}
	eth := vxlanHeader(vni, vxlan.ProtoEthernet)
	f.Add(append(eth, testkit.Ethernet(testMACB, testMACA, nil, l2.EtherTypeIPv4, make([]byte, 46))...))
	f.Add(append(eth, testkit.Ethernet(l2.BroadcastMAC, testMACA, nil, l2.EtherTypeARP, make([]byte, 28))...))
	f.Add(append(eth, testkit.Ethernet(testMACB, testMACB, nil, l2.EtherTypeIPv4, make([]byte, 46))...)) // claims B's MAC
	f.Add(append(eth, testkit.Ethernet(testMACB, testMACC, nil, l2.EtherTypeIPv4, make([]byte, 46))...)) // claims C's MAC
	f.Add(append(vxlanHeader(vni+1, vxlan.ProtoEthernet), testkit.Ethernet(testMACB, testMACA, nil, l2.EtherTypeIPv4, make([]byte, 46))...))
	f.Add(append(vxlanHeader(vni, vxlan.ProtoIPv4), ipv4Packet("10.0.1.1", "10.0.2.2", 60)...))
	f.Add(append(vxlanHeader(vni, vxlan.ProtoNone), testkit.Ethernet(testMACB, testMACA, nil, l2.EtherTypeIPv4, make([]byte, 46))...))
	f.Add(eth)
	seed := func(frame []byte) { f.Add(append(append([]byte{}, eth...), frame...)) }
	seed(testkit.Ethernet(testMACB, testMACA, nil, l2.EtherTypeIPv4, ipv4Packet("10.0.1.1", "10.0.2.2", 60)))
	seed(testkit.Ethernet(testMACB, testMACA, nil, l2.EtherTypeIPv4, ipv4Packet("10.0.2.9", "10.0.2.2", 60))) // B's own prefix
	seed(arpFrame(testMACA, "10.0.1.1", "10.0.2.1"))
	seed(arpFrame(testMACA, "10.0.2.7", "10.0.2.1")) // gratuitous ARP for an address of B's
	seed(testkit.Ethernet(testMACB, testMACA, nil, l2.EtherTypeIPv6, ipv6Packet("fd00:1::1", "fd00:2::1", 60)))
	f.Fuzz(func(t *testing.T, plain []byte) {
		got, ok := d.receiveSealedFuzz(t, plain)
		if !ok {
			return
		}
		if v := binary.BigEndian.Uint32(plain[4:8]) >> 8; v != vni {
			t.Fatalf("delivered a frame of VNI %d, ours is %d", v, vni)
		}
		if p := nextProtoOf(plain); p != vxlan.ProtoEthernet && p != vxlan.ProtoNone {
			t.Fatalf("delivered a frame with next protocol %d", p)
		}
		if !bytes.Equal(got, plain[vxlan.HeaderSize:]) {
			t.Fatal("delivered bytes differ from the sealed frame")
		}
		if len(got) < l2.EthernetHeaderLen {
			t.Fatalf("delivered a %d-byte frame", len(got))
		}
		if src := l2.MAC(got[6:12]); pinned[src] {
			t.Fatalf("delivered a frame from %v, a MAC pinned to another owner", src)
		}
		if p, ok := rb.FDB().Lookup(testMACC); !ok || p != peerC {
			t.Fatal("peer A moved MAC C away from peer C")
		}
		if src, ok := l2InnerSource(got); ok && src.IsValid() && !src.IsUnspecified() && !src.IsLinkLocalUnicast() && !fromA(src) {
			t.Fatalf("delivered a frame whose inner source %v lies outside A's prefixes", src)
		}
	})
}

// l2InnerSource is the IPv4/IPv6 source or the ARP sender address of an untagged frame.
func l2InnerSource(frame []byte) (netip.Addr, bool) {
	if len(frame) < l2.EthernetHeaderLen {
		return netip.Addr{}, false
	}
	body := frame[l2.EthernetHeaderLen:]
	switch binary.BigEndian.Uint16(frame[12:14]) {
	case l2.EtherTypeARP:
		if len(body) >= 18 {
			return netip.AddrFrom4([4]byte(body[14:18])), true
		}
	case l2.EtherTypeIPv4, l2.EtherTypeIPv6:
		return innerSource(body)
	}
	return netip.Addr{}, false
}
