package l2

import (
	"bytes"
	"net"
	"net/netip"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/weftnet/weft/internal/testkit"
)

// plainDev is the fake TAP of these tests: frames sent on In are read one at a time
// (TryRead takes the queued ones); written frames are copied to Out, and Write waits for
// the test to take them.
var plainDev = testkit.DeviceConfig{MTU: 1450, Queue: 256, Keep: 256, Backpressure: true}

// signalDev is plainDev without copies: Write signals each frame on Written (room for
// signals; none when 0), allocation free, for the zero-allocation tests and benchmarks.
func signalDev(signals int) *testkit.Device {
	return testkit.NewDevice(testkit.DeviceConfig{MTU: 1450, Queue: 256, Signal: signals, Backpressure: true})
}

// verifyNoLeak checks for leaked goroutines after every cleanup of t (the VTEPs' Close).
func verifyNoLeak(t *testing.T) {
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
}

func newTestVTEP(t *testing.T, listen string, cfg PlainConfig) (*PlainVTEP, *testkit.Device) {
	t.Helper()
	return newTestVTEPDev(t, listen, cfg, testkit.NewDevice(plainDev))
}

func newTestVTEPDev(t *testing.T, listen string, cfg PlainConfig, dev *testkit.Device) (*PlainVTEP, *testkit.Device) {
	t.Helper()
	if cfg.VNI == 0 {
		cfg.VNI = 42
	}
	cfg.ListenAddr = netip.MustParseAddrPort(listen)
	v, err := NewPlainVTEP(cfg, dev)
	if err != nil {
		t.Fatal(err)
	}
	v.Start()
	t.Cleanup(func() { v.Close() })
	return v, dev
}

// TestPlainVTEP_Switching runs two VTEPs on loopback: the first frame floods, the answer is
// unicast to the learned VTEP, and the FDB lists both.
func TestPlainVTEP_Switching(t *testing.T) {
	verifyNoLeak(t)
	a, devA := newTestVTEP(t, "127.0.0.1:0", PlainConfig{})
	b, devB := newTestVTEP(t, "127.0.0.2:0", PlainConfig{})
	a.AddRemote(b.LocalAddr())
	b.AddRemote(a.LocalAddr())

	bcast := testkit.Ethernet(BroadcastMAC, testMACA, nil, EtherTypeARP, testARPRequest(testMACA, "10.0.0.1", "10.0.0.2"))
	devA.In <- bcast
	if got := devB.Recv(t); !bytes.Equal(got, bcast) {
		t.Fatalf("B got %x", got)
	}
	if r, ok := b.ForwardingDB().Lookup(testMACA); !ok || r != a.LocalAddr() {
		t.Fatalf("B learned %v %v, want %v", r, ok, a.LocalAddr())
	}
	uni := testkit.Ethernet(testMACA, testMACB, nil, EtherTypeIPv4, bytes.Repeat([]byte{0x45}, 1400))
	devB.In <- uni
	if got := devA.Recv(t); !bytes.Equal(got, uni) {
		t.Fatalf("A got %d bytes", len(got))
	}
	// Counted after the I/O returns: Tx after the send, Rx after the device write (the
	// test may see the frame on devB before B has counted it).
	testkit.Eventually(t, testkit.Timeout, func() bool { s := b.Stats(); return s.TxPackets == 1 && s.RxPackets == 1 }, "B's counters")
	if sb := b.Stats(); sb.FDB.Flooded != 0 || sb.RxPackets != 1 {
		t.Fatalf("B stats %+v", sb)
	}
	if es := a.FDB(); len(es) != 1 || es[0].MAC != testMACB || es[0].Remote != b.LocalAddr() {
		t.Fatalf("A fdb %+v", es)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestPlainVTEP_Burst: a burst read in one go leaves as UDP_SEGMENT runs (equal sizes, a
// shorter last one, floods and other destinations in between) and arrives complete and in
// order, with offloads on and off.
func TestPlainVTEP_Burst(t *testing.T) {
	for _, off := range []bool{false, true} {
		t.Run("DisableOffload="+strconv.FormatBool(off), func(t *testing.T) {
			devA := testkit.NewDevice(plainDev)
			var burst [][]byte
			// 64 frames fit a default socket receive buffer: loopback UDP has no flow control.
			for i := range 60 {
				size := 1000
				switch {
				case i%23 == 22:
					size = 300 // closes a run
				case i%25 == 24:
					burst = append(burst, testkit.Ethernet(BroadcastMAC, testMACA, nil, EtherTypeARP, make([]byte, 28)))
				}
				p := bytes.Repeat([]byte{byte(i)}, size)
				burst = append(burst, testkit.Ethernet(testMACB, testMACA, nil, EtherTypeIPv4, p))
			}
			for _, f := range burst {
				devA.In <- f // queued before the VTEP starts: read as one burst
			}
			b, devB := newTestVTEP(t, "127.0.0.2:0", PlainConfig{DisableOffload: off})
			a, err := NewPlainVTEP(PlainConfig{VNI: 42, ListenAddr: netip.MustParseAddrPort("127.0.0.1:0"), DisableOffload: off,
				Remotes: []netip.AddrPort{b.LocalAddr()}}, devA)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { a.Close() })
			b.AddRemote(a.LocalAddr()) // B accepts VXLAN from known remotes only
			// A learns nothing (B never speaks): unicast to B's MAC via a static entry.
			a.ForwardingDB().SetStatic(testMACB, b.LocalAddr())
			a.Start()
			for i, want := range burst {
				if got := devB.Recv(t); !bytes.Equal(got, want) {
					t.Fatalf("frame %d: got %d bytes %x..., want %d bytes %x...", i, len(got), got[:16], len(want), want[:16])
				}
			}
			testkit.Eventually(t, testkit.Timeout, func() bool { return a.Stats().TxPackets == uint64(len(burst)) }, "A's counters")
			sa := a.Stats()
			if sa.Drops["send_failed"] != 0 {
				t.Fatalf("A stats %+v", sa)
			}
			t.Logf("A gso=%v: %d packets in %d sends; B gro=%v", a.gso.Load(), sa.TxPackets, sa.TxSends, b.gro)
			if !off && a.gso.Load() && sa.TxSends >= sa.TxPackets {
				t.Errorf("no send was coalesced: %d packets, %d sends", sa.TxPackets, sa.TxSends)
			}
			if off && sa.TxSends != sa.TxPackets {
				t.Errorf("offload off: %d packets, %d sends", sa.TxPackets, sa.TxSends)
			}
		})
	}
}

// TestPlainVTEP_Wire checks the bytes on the wire against RFC 7348 and the receive-side
// checks (wrong VNI, bad header, reserved bits ignored).
func TestPlainVTEP_Wire(t *testing.T) {
	verifyNoLeak(t)
	peer, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 3)})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	peerAddr := peer.LocalAddr().(*net.UDPAddr).AddrPort()
	v, dev := newTestVTEP(t, "127.0.0.1:0", PlainConfig{VNI: 0x123456, Remotes: []netip.AddrPort{peerAddr}})

	frame := testkit.Ethernet(BroadcastMAC, testMACA, nil, EtherTypeIPv4, []byte{1, 2, 3})
	dev.In <- frame
	buf := make([]byte, 2048)
	peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _, err := peer.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatal(err)
	}
	want := append([]byte{0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0}, frame...)
	if !bytes.Equal(buf[:n], want) {
		t.Fatalf("wire\n got %x\nwant %x", buf[:n], want)
	}

	inner := testkit.Ethernet(testMACB, testMACC, nil, EtherTypeIPv4, []byte{9, 9})
	send := func(hdr []byte, f []byte) {
		if _, err := peer.WriteToUDPAddrPort(append(append([]byte{}, hdr...), f...), v.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	// Drops count under the encrypted modes' names: a bad VXLAN header and a short frame
	// are both malformed, so they are sent in two steps to tell them apart.
	send([]byte{0x08, 0, 0, 0, 0x12, 0x34, 0x57, 0}, inner) // wrong VNI
	send([]byte{0x00, 0, 0, 0, 0x12, 0x34, 0x56, 0}, inner) // I flag clear
	send([]byte{0x08, 0, 0}, nil)                           // short
	testkit.Eventually(t, testkit.Timeout, func() bool {
		d := v.Stats().Drops
		return d["wrong_vni"] == 1 && d["malformed"] == 2 && len(d) == 2
	}, "bad-header drop counters")
	send([]byte{0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0}, inner[:10])
	send([]byte{0x0c, 0xff, 0, 3, 0x12, 0x34, 0x56, 0xff}, inner) // reserved bits set: accepted
	if got := dev.Recv(t); !bytes.Equal(got, inner) {
		t.Fatalf("got %x", got)
	}
	testkit.Eventually(t, testkit.Timeout, func() bool {
		s := v.Stats()
		return s.Drops["wrong_vni"] == 1 && s.Drops["malformed"] == 3 && len(s.Drops) == 2 && s.RxPackets == 1
	}, "drop counters")
	// Learned at the remote's configured address, not its source port.
	if r, ok := v.ForwardingDB().Lookup(testMACC); !ok || r != peerAddr {
		t.Fatalf("learned %v %v", r, ok)
	}
	v.Close()
}

// TestPlainVTEP_ARPSuppression: a request for a gossiped IP is answered on the device and
// not sent.
func TestPlainVTEP_ARPSuppression(t *testing.T) {
	verifyNoLeak(t)
	v, dev := newTestVTEP(t, "127.0.0.1:0", PlainConfig{
		Remotes: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.9:4789")},
		FDB:     FDBConfig{ARPSuppression: true},
	})
	v.ForwardingDB().SetNeighbor(netip.MustParseAddr("10.0.0.2"), testMACB)
	req := testkit.Ethernet(BroadcastMAC, testMACA, nil, EtherTypeARP, testARPRequest(testMACA, "10.0.0.1", "10.0.0.2"))
	dev.In <- req
	got := dev.Recv(t)
	want := make([]byte, 64)
	want = want[:BuildARPReply(want, req, testMACB)]
	if len(want) != 42 || !bytes.Equal(got, want) {
		t.Fatalf("reply %x, want %x", got, want)
	}
	testkit.Eventually(t, testkit.Timeout, func() bool { return v.Stats().ARPSuppressed == 1 }, "the ARP counter") // counted after the write
	if s := v.Stats(); s.TxPackets != 0 {
		t.Fatalf("stats %+v", s)
	}
	v.Close()
}

func TestNewPlainVTEP_Errors(t *testing.T) {
	for _, cfg := range []PlainConfig{
		{VNI: 0},
		{VNI: 1 << 24},
		{VNI: 1, ListenAddr: netip.MustParseAddrPort("127.0.0.1:0"), Remotes: []netip.AddrPort{netip.MustParseAddrPort("[::1]:4789")}},
	} {
		if v, err := NewPlainVTEP(cfg, testkit.NewDevice(plainDev)); err == nil {
			v.Close()
			t.Errorf("%+v accepted", cfg)
		}
	}
}

// TestPlainVTEP_Allocs: no allocation per frame in steady state, both directions.
func TestPlainVTEP_Allocs(t *testing.T) {
	devA, devB := signalDev(1), signalDev(16)
	a, _ := newTestVTEPDev(t, "127.0.0.1:0", PlainConfig{}, devA)
	b, _ := newTestVTEPDev(t, "127.0.0.2:0", PlainConfig{}, devB)
	a.AddRemote(b.LocalAddr())
	b.AddRemote(a.LocalAddr())
	ab := testkit.Ethernet(testMACB, testMACA, nil, EtherTypeIPv4, make([]byte, 1400))
	ba := testkit.Ethernet(testMACA, testMACB, nil, EtherTypeIPv4, make([]byte, 1400))
	timer := time.NewTimer(time.Hour) // reused: time.After would allocate per call
	defer timer.Stop()
	wait := func(ch chan struct{}) {
		timer.Reset(5 * time.Second)
		select {
		case <-ch:
		case <-timer.C:
			t.Fatal("frame lost")
		}
	}
	round := func() {
		devA.In <- ab
		wait(devB.Written)
		devB.In <- ba
		wait(devA.Written)
	}
	for range 10 { // learn both MACs, warm up
		round()
	}
	if allocs := testing.AllocsPerRun(200, round); allocs > 0 {
		t.Fatalf("%v allocations per round trip", allocs)
	}
	if s := a.Stats(); s.FDB.Flooded > 1 {
		t.Fatalf("A flooded %d frames after learning", s.FDB.Flooded)
	}
	// Bursts: GSO sends and GRO reads allocate nothing either.
	burst := func() {
		for range 8 {
			devA.In <- ab
		}
		for range 8 {
			wait(devB.Written)
		}
	}
	before := a.Stats().TxSends
	if allocs := testing.AllocsPerRun(100, burst); allocs > 0 {
		t.Fatalf("%v allocations per burst", allocs)
	}
	t.Logf("bursts: %d frames in %d sends", 8*101, a.Stats().TxSends-before)
}

func BenchmarkPlainVTEP_RoundTrip(b *testing.B) {
	for _, size := range []int{64, 1420} {
		b.Run(strconv.Itoa(size), func(b *testing.B) {
			cfgA := PlainConfig{VNI: 42, ListenAddr: netip.MustParseAddrPort("127.0.0.1:0")}
			cfgB := PlainConfig{VNI: 42, ListenAddr: netip.MustParseAddrPort("127.0.0.2:0")}
			devA, devB := signalDev(0), signalDev(1) // A keeps and signals nothing
			va, err := NewPlainVTEP(cfgA, devA)
			if err != nil {
				b.Fatal(err)
			}
			vb, err := NewPlainVTEP(cfgB, devB)
			if err != nil {
				b.Fatal(err)
			}
			defer va.Close()
			defer vb.Close()
			va.AddRemote(vb.LocalAddr())
			vb.AddRemote(va.LocalAddr())
			va.ForwardingDB().SetStatic(testMACB, vb.LocalAddr()) // unicast: no flood budget
			va.Start()
			vb.Start()
			frame := testkit.Ethernet(testMACB, testMACA, nil, EtherTypeIPv4, make([]byte, size-EthernetHeaderLen))
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				devA.In <- frame
				<-devB.Written
			}
		})
	}
}

// TestPlainVTEP_HostileSenders: a host that can reach the VXLAN port but is no remote of the
// flood list cannot inject frames (unknown_vtep, unless LearnUnknownVTEPs); a known remote
// cannot speak for a MAC that gossip pins to another VTEP (not_allowed_source: not delivered,
// where it used to be delivered although Learn refused it), nor from a multicast MAC.
func TestPlainVTEP_HostileSenders(t *testing.T) {
	verifyNoLeak(t)
	listen := func(ip string) (*net.UDPConn, netip.AddrPort) {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(ip)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c, c.LocalAddr().(*net.UDPAddr).AddrPort()
	}
	known, knownAddr := listen("127.0.0.3")
	stranger, _ := listen("127.0.0.4")
	owner := netip.MustParseAddrPort("127.0.0.5:4789")
	hdr := []byte{0x08, 0, 0, 0, 0, 0, 42, 0}
	send := func(c *net.UDPConn, to netip.AddrPort, f []byte) {
		t.Helper()
		if _, err := c.WriteToUDPAddrPort(append(append([]byte{}, hdr...), f...), to); err != nil {
			t.Fatal(err)
		}
	}
	v, dev := newTestVTEP(t, "127.0.0.1:0", PlainConfig{Remotes: []netip.AddrPort{knownAddr, owner}})
	v.ForwardingDB().SetStatic(testMACC, owner) // gossip: C's MAC is behind owner

	spoofed := testkit.Ethernet(testMACB, testMACC, nil, EtherTypeIPv4, []byte{1})
	mcast := testkit.Ethernet(testMACB, BroadcastMAC, nil, EtherTypeIPv4, []byte{2})
	fromStranger := testkit.Ethernet(testMACB, testMACA, nil, EtherTypeIPv4, []byte{3})
	legit := testkit.Ethernet(testMACB, testMACA, nil, EtherTypeIPv4, []byte{4})
	send(known, v.LocalAddr(), spoofed)
	send(known, v.LocalAddr(), mcast)
	send(stranger, v.LocalAddr(), fromStranger)
	send(stranger, v.LocalAddr(), fromStranger)
	send(known, v.LocalAddr(), legit) // the path works: only this one is delivered
	if got := dev.Recv(t); !bytes.Equal(got, legit) {
		t.Fatalf("delivered %x, want only the known remote's legitimate frame", got)
	}
	testkit.Eventually(t, testkit.Timeout, func() bool {
		d := v.Stats().Drops
		return d["not_allowed_source"] == 1 && d["malformed"] == 1 && d["unknown_vtep"] == 2
	}, "drop counters")
	select {
	case f := <-dev.Out:
		t.Fatalf("also delivered %x", f)
	default:
	}
	if r, _ := v.ForwardingDB().Lookup(testMACC); r != owner {
		t.Fatalf("C's MAC moved to %v", r)
	}
	if r, ok := v.ForwardingDB().Lookup(testMACA); !ok || r != knownAddr {
		t.Fatalf("A's MAC behind %v %v, want the known remote (not the stranger)", r, ok)
	}

	// Learning from unknown VTEPs, when configured, takes the stranger's frames.
	w, devW := newTestVTEP(t, "127.0.0.1:0", PlainConfig{LearnUnknownVTEPs: true})
	send(stranger, w.LocalAddr(), fromStranger)
	if got := devW.Recv(t); !bytes.Equal(got, fromStranger) {
		t.Fatalf("learn_unknown_vteps: got %x", got)
	}
	if _, ok := w.ForwardingDB().Lookup(testMACA); !ok {
		t.Fatal("learn_unknown_vteps: the stranger's MAC was not learned")
	}
}

// plainOffloadDev is the fake TAP with segmentation offload, as tap.Device has: Read
// returns batches, and the device records whether the VTEP turned offload on and whether it
// (wrongly, for plaintext) vouched for the checksums of what it writes.
type plainOffloadDev struct {
	*testkit.Device
	offload, trusted atomic.Bool
}

func (d *plainOffloadDev) EnableOffload() error   { d.offload.Store(true); return nil }
func (d *plainOffloadDev) TrustWrittenChecksums() { d.trusted.Store(true) }

// TestPlainVTEP_OffloadDevice: with a device that has offloads the VTEP reads batches
// (a TSO super-frame's segments) and sends them, in order, in few GSO sends; it turns the
// offload on but never tells the device to trust checksums: plaintext has no AEAD, so the
// device's GRO must verify every segment it merges.
func TestPlainVTEP_OffloadDevice(t *testing.T) {
	verifyNoLeak(t)
	offDev := plainDev
	offDev.BatchSize = 128
	devA := &plainOffloadDev{Device: testkit.NewDevice(offDev)}
	// newTestVTEPDev takes a *testkit.Device; this one is built by hand.
	cfg := PlainConfig{VNI: 42, ListenAddr: netip.MustParseAddrPort("127.0.0.1:0")}
	va, err := NewPlainVTEP(cfg, devA)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { va.Close() })
	b, devB := newTestVTEP(t, "127.0.0.2:0", PlainConfig{})
	va.AddRemote(b.LocalAddr())
	b.AddRemote(va.LocalAddr())
	va.ForwardingDB().SetStatic(testMACB, b.LocalAddr())
	if !devA.offload.Load() || !va.tapOffload {
		t.Fatal("offload not enabled on a device that has it")
	}
	const n = 40
	frames := make([][]byte, n)
	for i := range frames {
		payload := make([]byte, 1400)
		payload[0] = byte(i)
		frames[i] = testkit.Ethernet(testMACB, testMACA, nil, EtherTypeIPv4, payload)
		devA.In <- frames[i] // queued before Start: one batch
	}
	va.Start()
	for i := range frames {
		if got := devB.Recv(t); !bytes.Equal(got, frames[i]) {
			t.Fatalf("frame %d: got %d bytes starting %x, want frame %d", i, len(got), got[:min(len(got), 16)], i)
		}
	}
	testkit.Eventually(t, testkit.Timeout, func() bool { return va.Stats().TxPackets == n }, "A's counters") // counted after send returns
	if s := va.Stats(); s.TxPackets != n || s.TxSends >= n {
		t.Errorf("%d packets in %d sends, want %d in fewer (GSO)", s.TxPackets, s.TxSends, n)
	}
	if devA.trusted.Load() {
		t.Error("the plain VTEP told the device to trust the checksums of plaintext frames")
	}
}
