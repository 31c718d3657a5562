package tunnel

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/tun"

	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/internal/testkit"
	"github.com/weftnet/weft/tap"
	"github.com/weftnet/weft/vxlan"
)

// partialFake is a fake device that takes partial checksums (as tap.Device with offload):
// it records the marks of what is written to it.
type partialFake struct {
	*testkit.Device
	marks []tap.Partial // WritePartial's marks, in order
}

func (d *partialFake) PartialChecksums() bool { return true }

func (d *partialFake) ReadPartial(bufs [][]byte, sizes []int, partial []tap.Partial, offset int) (int, error) {
	n, err := d.Device.Read(bufs, sizes, offset)
	clear(partial[:max(n, 0)])
	return n, err
}

func (d *partialFake) WritePartial(bufs [][]byte, offset int, partial []tap.Partial) (int, error) {
	d.marks = append(d.marks, partial[:len(bufs)]...)
	return d.Device.Write(bufs, offset)
}

// tcpPartial returns a TCP packet from 10.0.1.1 to 10.0.2.2 with its checksum complete,
// the same packet with the checksum left partial (the pseudo-header sum in the field, as
// the kernel hands it over), and where it is.
func tcpPartial(n int) (full, partial []byte, at tap.Partial) {
	src, dst := netip.MustParseAddr("10.0.1.1"), netip.MustParseAddr("10.0.2.2")
	full = testkit.TCP(netip.AddrPortFrom(src, 40000), netip.AddrPortFrom(dst, 80), 0x18, testkit.Pattern(n, 7))
	partial = bytes.Clone(full)
	pseudo := append(append(src.AsSlice(), dst.AsSlice()...), 0, 6)
	pseudo = binary.BigEndian.AppendUint16(pseudo, uint16(len(full)-20))
	binary.BigEndian.PutUint16(partial[36:], ^testkit.Checksum(pseudo))
	return full, partial, tap.Partial{Start: 20, Field: 16}
}

// newPartialDirect is a direct pair whose devices take partial checksums on the sides
// asked for.
func newPartialDirect(t *testing.T, partialA, partialB bool) (*direct, *partialFake, *partialFake) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.MTU = 1500
	return newPartialDirectWith(t, cfg, nil, partialA, partialB)
}

// newPartialDirectWith is newPartialDirect with cfg for both sides and, unless clk is nil,
// both identities on the test clock clk.
func newPartialDirectWith(t testing.TB, cfg Config, clk *testClock, partialA, partialB bool) (*direct, *partialFake, *partialFake) {
	t.Helper()
	fa := &partialFake{Device: testkit.NewDevice(testkit.DeviceConfig{BatchSize: 64, Keep: 256})}
	fb := &partialFake{Device: testkit.NewDevice(testkit.DeviceConfig{BatchSize: 64, Keep: 256})}
	var tunA, tunB tun.Device = fa, fb
	if !partialA {
		tunA = fa.Device
	}
	if !partialB {
		tunB = fb.Device
	}
	d := newDirectOver(t, 64, nil, cfg, cfg, clk, fa.Device, fb.Device, tunA, tunB)
	return d, fa, fb
}

// sendPartial sends pkts from A as the device read them, each with its checksum left
// partial at at, and hands what A sent to B.
func (d *direct) sendPartial(pkts [][]byte, at tap.Partial) {
	partial := make([]tap.Partial, len(pkts))
	for i, p := range pkts {
		d.sizes[i] = copy(d.bufs[i][headroom:], p)
		partial[i] = at
	}
	d.sc.partial = partial
	d.bindA.N = 0
	d.a.sendBatch(d.sc, d.bufs[:len(pkts)], d.sizes[:len(pkts)])
	for i := range d.bindA.N {
		d.rs.sizes[i] = copy(d.rs.bufs[i], d.bindA.Slots[i])
		d.rs.eps[i] = d.fromA
	}
	d.b.receiveBatch(d.rs, d.bindA.N)
}

// hearFromB has B's loop take a data packet from A's side's view: B sends one packet to A
// (so A learns what B's device takes).
func (d *direct) hearFromB(t *testing.T) {
	t.Helper()
	bindB := d.b.bind.(*testkit.CaptureBind)
	bindB.N = 0
	sc := d.b.newSendScratch()
	buf := make([]byte, bufSize)
	pkt := ipv4Packet("10.0.2.2", "10.0.1.1", 60)
	n := copy(buf[headroom:], pkt)
	d.b.sendBatch(sc, [][]byte{buf}, []int{n})
	if bindB.N != 1 {
		t.Fatalf("B sent %d", bindB.N)
	}
	rs := d.a.newRecvScratch()
	rs.sizes[0] = copy(rs.bufs[0], bindB.Slots[0])
	rs.eps[0] = &testkit.Endpoint{AddrPort: netip.MustParseAddrPort("192.0.2.2:51820")}
	d.a.receiveBatch(rs, 1)
}

// TestPartial_BetweenWeftPeers: A leaves a checksum partial only for a B that said (in an
// authenticated data packet) that its device takes them; B delivers such a packet marked
// where it finds the checksum itself, so its kernel completes it. Before B has said so,
// and to a B whose device cannot, A completes every checksum.
func TestPartial_BetweenWeftPeers(t *testing.T) {
	full, partial, at := tcpPartial(1000)
	d, _, fb := newPartialDirect(t, true, true)
	d.sendPartial([][]byte{partial}, at) // B has not spoken yet
	if got := <-d.devB.Out; !bytes.Equal(got, full) {
		t.Fatal("before B spoke, A sent the checksum partial")
	}
	if d.a.Stats().PartialSent != 0 || fb.marks[0] != (tap.Partial{}) {
		t.Fatalf("sent %d partial, B marked %+v", d.a.Stats().PartialSent, fb.marks[0])
	}
	d.hearFromB(t)
	if !d.peerB.AcceptsPartial() {
		t.Fatal("A did not learn that B takes partial checksums")
	}
	if !d.peerA.AcceptsPartial() {
		t.Fatal("B did not learn from A's first data packet that A takes partial checksums")
	}
	d.sendPartial([][]byte{partial, partial}, at)
	for i := range 2 {
		if got := <-d.devB.Out; !bytes.Equal(got, partial) {
			t.Fatalf("packet %d: not delivered as it was read", i)
		}
		if fb.marks[1+i] != at {
			t.Fatalf("packet %d marked %+v, want %+v", i, fb.marks[1+i], at)
		}
	}
	if a, b := d.a.Stats().PartialSent, d.b.Stats().PartialReceived; a != 2 || b != 2 {
		t.Fatalf("partial sent %d, received %d", a, b)
	}
	// A UDP packet and an IPv6 TCP packet are found as well; an ICMP one has nothing to find.
	for _, tc := range []struct {
		pkt  []byte
		want tap.Partial
	}{
		{testkit.UDP(netip.MustParseAddrPort("10.0.1.1:5"), netip.MustParseAddrPort("10.0.2.2:6"), []byte("x")), tap.Partial{Start: 20, Field: 6}},
		{testkit.TCP(netip.MustParseAddrPort("[fd00:1::1]:5"), netip.MustParseAddrPort("[fd00:2::2]:6"), 0x10, []byte("x")), tap.Partial{Start: 40, Field: 16}},
		{testkit.ICMPEcho(netip.MustParseAddr("10.0.1.1"), netip.MustParseAddr("10.0.2.2"), 1, 1, false, nil), tap.Partial{}},
	} {
		if got, ok := partialAt(tc.pkt, false); got != tc.want || ok != (tc.want != tap.Partial{}) {
			t.Errorf("partialAt: %+v %v, want %+v", got, ok, tc.want)
		}
	}
}

// TestPartial_ReceiverCannot: a B whose device cannot take partial checksums never says
// it does, so A completes them; and a flag B never asked for is dropped (malformed).
func TestPartial_ReceiverCannot(t *testing.T) {
	full, partial, at := tcpPartial(700)
	d, _, _ := newPartialDirect(t, true, false)
	d.hearFromB(t)
	if d.peerB.AcceptsPartial() {
		t.Fatal("A believes a B without the device for it")
	}
	d.sendPartial([][]byte{partial}, at)
	if got := <-d.devB.Out; !bytes.Equal(got, full) {
		t.Fatal("A left the checksum partial for a B that cannot take it")
	}
	// A hostile A sets the flag anyway: B drops it.
	before := d.b.Stats().Drops["malformed"]
	d.deliverForged(t, partial, vxlan.CsumAccepted|vxlan.CsumPartial)
	if got := d.b.Stats().Drops["malformed"] - before; got != 1 {
		t.Fatalf("forged flag: %d dropped as malformed, want 1", got)
	}
	select {
	case <-d.devB.Out:
		t.Fatal("a packet with a flag B never asked for was delivered")
	default:
	}
}

// TestPartial_ForgedFlag: to a B that takes partial checksums, a flag on a packet where B
// finds no transport checksum (ICMP, a fragment, a truncated TCP header) is dropped as
// malformed, never delivered with a mark B did not find itself.
func TestPartial_ForgedFlag(t *testing.T) {
	d, _, fb := newPartialDirect(t, true, true)
	icmp := testkit.ICMPEcho(netip.MustParseAddr("10.0.1.1"), netip.MustParseAddr("10.0.2.2"), 1, 1, false, []byte("hi"))
	frag := ipv4Packet("10.0.1.1", "10.0.2.2", 200)
	frag[6] |= 0x20 // more fragments
	frag[9] = 6     // "TCP"
	frag[10], frag[11] = 0, 0
	binary.BigEndian.PutUint16(frag[10:], testkit.Checksum(frag[:20]))
	short := ipv4Packet("10.0.1.1", "10.0.2.2", 30)
	short[9] = 6 // TCP with 10 bytes of header
	short[10], short[11] = 0, 0
	binary.BigEndian.PutUint16(short[10:], testkit.Checksum(short[:20]))
	before := d.b.Stats().Drops["malformed"]
	for _, p := range [][]byte{icmp, frag, short} {
		d.deliverForged(t, p, vxlan.CsumPartial)
	}
	if got := d.b.Stats().Drops["malformed"] - before; got != 3 {
		t.Fatalf("%d forged flags dropped, want 3", got)
	}
	if len(d.devB.Out) != 0 || len(fb.marks) != 0 {
		t.Fatalf("delivered %d, marked %v", len(d.devB.Out), fb.marks)
	}
	// The same packets without the flag are delivered unmarked (the fragment and the
	// short one are odd, not forged: routing and policy judge them as ever).
	d.deliverForged(t, icmp, 0)
	if got := <-d.devB.Out; !bytes.Equal(got, icmp) || fb.marks[0] != (tap.Partial{}) {
		t.Fatal("the ICMP packet without the flag was not delivered as it was")
	}
}

// deliverForged seals inner under A's session as a hostile A would, with the given
// inner-checksum bits, and hands it to B.
func (d *direct) deliverForged(t *testing.T, inner []byte, csum byte) {
	t.Helper()
	kp := d.peerB.Keypairs().Current()
	b := make([]byte, bufSize)
	plain := b[crypto.MessageTransportHeaderSize:]
	vxlan.Encode(plain, d.a.cfg.VNI, vxlan.ProtoIPv4)
	plain[1] = csum
	copy(plain[vxlan.HeaderSize:], inner)
	m, err := kp.SealAt(b, vxlan.HeaderSize+len(inner), d.idA.Present(time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	d.rs.sizes[0] = copy(d.rs.bufs[0], b[:m])
	d.rs.eps[0] = d.fromA
	d.b.receiveBatch(d.rs, 1)
}
