package tunnel

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/weftnet/weft/crypto/cryptotest"
	"github.com/weftnet/weft/internal/testkit"
	"github.com/weftnet/weft/l2"
	"github.com/weftnet/weft/peers"
)

// pathSim carries messages between a direct pair's capture binds through an IPv4 path of
// MTU mtu that silently loses every larger datagram (a PMTU black hole: no ICMP), and
// runs each side's worker requests. Endpoints: A 192.0.2.1, B 192.0.2.2.
type pathSim struct {
	d          *direct
	bindB      *testkit.CaptureBind
	rsA        *recvScratch
	hsA, hsB   *hsScratch
	fromB      *testkit.Endpoint
	mtu        int
	lost, sent int
}

func newPathSim(t testing.TB, mtu int) *pathSim {
	cfg := DefaultLocalConfig()
	cfg.PathMTUInterval = time.Hour // searches run when the test ticks
	cfg.PathMTUProbeTimeout = time.Millisecond
	d := newDirectWith(t, 8, nil, cfg, cfg, nil)
	s := &pathSim{d: d, bindB: d.b.bind.(*testkit.CaptureBind), rsA: d.a.newRecvScratch(),
		hsA: d.a.newHSScratch(), hsB: d.b.newHSScratch(), fromB: &testkit.Endpoint{AddrPort: mustAP("192.0.2.2:51820")}, mtu: mtu}
	return s
}

// pump moves messages both ways until nothing moves.
func (s *pathSim) pump() {
	for moved := true; moved; {
		moved = s.move(s.d.bindA, s.d.b, s.d.rs, s.d.fromA) || s.move(s.bindB, s.d.a, s.rsA, s.fromB)
		moved = drainRequests(s.d.a, s.hsA) || moved
		moved = drainRequests(s.d.b, s.hsB) || moved
	}
}

func (s *pathSim) move(from *testkit.CaptureBind, to *Tunnel, rs *recvScratch, ep *testkit.Endpoint) bool {
	n := from.N
	from.N = 0
	k := 0
	for i := range n {
		s.sent++
		if len(from.Slots[i])+IPv4Header+UDPHeader > s.mtu {
			s.lost++
			continue
		}
		rs.sizes[k] = copy(rs.bufs[k], from.Slots[i])
		rs.eps[k] = ep
		if k++; k == len(rs.bufs) {
			to.receiveBatch(rs, k)
			k = 0
		}
	}
	if k > 0 {
		to.receiveBatch(rs, k)
	}
	return n > 0
}

func drainRequests(t *Tunnel, hs *hsScratch) bool {
	did := false
	for {
		select {
		case r := <-t.hsReqs:
			t.handleRequest(hs, r)
			did = true
		default:
			return did
		}
	}
}

// TestPathMTU_ProbeSearchFindsBlackHole: no ICMP error ever comes back, yet the probes
// find the path's MTU (within the search step): the ceiling is lost, a control probe
// shows the peer alive, and the bisection converges. Sizes above the path never pass.
func TestPathMTU_ProbeSearchFindsBlackHole(t *testing.T) {
	for _, mtu := range []int{1400, 1280, 1000} {
		t.Run(itoa(mtu), func(t *testing.T) {
			s := newPathSim(t, mtu)
			p := s.d.peerB
			for i := 0; i < 200; i++ {
				s.d.a.tickPMTU(s.hsA, p, time.Now())
				s.pump()
				if st := s.d.a.pmtu[p]; st != nil && !st.next.IsZero() {
					break
				}
				time.Sleep(2 * time.Millisecond)
			}
			st := s.d.a.pmtu[p]
			if st == nil || st.next.IsZero() {
				t.Fatalf("search did not end: %+v", st)
			}
			got := p.PathMTU()
			if got > mtu || got < mtu-probeSearchStep {
				t.Fatalf("path MTU %d, want (%d, %d]", got, mtu-probeSearchStep, mtu)
			}
			if s.d.a.Stats().PathMTUProbes == 0 || s.lost == 0 {
				t.Fatalf("probes %d, lost %d", s.d.a.Stats().PathMTUProbes, s.lost)
			}
			// Data now fits: a packet of the largest inner size the path allows gets through.
			inner := got - IPv4Header - UDPHeader - 32 - 8
			s.d.packets = [][]byte{dfPacket("10.0.1.1", "10.0.2.2", inner)}
			before := s.d.devB.PacketsWritten()
			lost := s.lost
			s.d.sizes[0] = copy(s.d.bufs[0][headroom:], s.d.packets[0])
			s.d.a.sendBatch(s.d.sc, s.d.bufs[:1], s.d.sizes[:1])
			s.pump()
			if s.d.devB.PacketsWritten() != before+1 || s.lost != lost {
				t.Fatalf("a %d-byte packet at path MTU %d: delivered %d, lost %d", inner, got, s.d.devB.PacketsWritten()-before, s.lost-lost)
			}
		})
	}
}

// TestPathMTU_RaisedAfterWidening: a search after the path widened raises the path MTU
// back to the ceiling.
func TestPathMTU_RaisedAfterWidening(t *testing.T) {
	s := newPathSim(t, 1400)
	p := s.d.peerB
	search := func() {
		for i := 0; i < 200; i++ {
			s.d.a.tickPMTU(s.hsA, p, time.Now())
			s.pump()
			if st := s.d.a.pmtu[p]; st != nil && !st.next.IsZero() {
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
		t.Fatal("search did not end")
	}
	search()
	if got := p.PathMTU(); got > 1400 {
		t.Fatalf("narrow path: %d", got)
	}
	s.mtu = 1500
	s.d.a.pmtu[p].next = time.Now() // the interval passed
	search()
	ceiling := s.d.a.cfg.MTU + Overhead(FramingL3, false)
	if got := p.PathMTU(); got != ceiling {
		t.Fatalf("after widening: %d, want the ceiling %d", got, ceiling)
	}
}

// TestPathMTU_TooBigAnsweredWithICMP: with the peer's path at 1200, a DF packet that does
// not fit is dropped as too_big and answered in A's device by "fragmentation needed"
// naming the inner MTU the path leaves (1200 − 68); a packet without DF is fragmented
// and both fragments reach B; a burst beyond the rate limit is counted, not answered.
func TestPathMTU_TooBigAnsweredWithICMP(t *testing.T) {
	d := newDirect(t, 64, nil)
	d.devA.KeepWritten(64)
	d.peerB.SetPathMTU(1200)
	send := func(pkts ...[]byte) {
		for i, p := range pkts {
			d.sizes[i] = copy(d.bufs[i][headroom:], p)
		}
		d.bindA.N = 0
		d.a.sendBatch(d.sc, d.bufs[:len(pkts)], d.sizes[:len(pkts)])
	}
	send(dfPacket("10.0.1.1", "10.0.2.2", 1300))
	if d.bindA.N != 0 || d.peerB.Drops(peers.DropTooBig) != 1 {
		t.Fatalf("sent %d, too_big %d", d.bindA.N, d.peerB.Drops(peers.DropTooBig))
	}
	icmp := d.devA.Recv(t)
	if len(icmp) < 28 || icmp[9] != 1 || icmp[20] != 3 || icmp[21] != 4 {
		t.Fatalf("device got %x", icmp[:min(len(icmp), 28)])
	}
	if mtu := binary.BigEndian.Uint16(icmp[26:28]); mtu != 1200-68 {
		t.Fatalf("ICMP says MTU %d, want %d", mtu, 1200-68)
	}
	// The largest packet that fits goes out, padded no further than the path allows.
	send(dfPacket("10.0.1.1", "10.0.2.2", 1200-68))
	if d.bindA.N != 1 || len(d.bindA.Slots[0])+28 > 1200 {
		t.Fatalf("fitting packet: %d sent, %d bytes", d.bindA.N, len(d.bindA.Slots[0]))
	}
	// Without DF: fragments.
	before := d.devB.PacketsWritten()
	d.round2(ipv4Packet("10.0.1.1", "10.0.2.2", 2000))
	if got := d.devB.PacketsWritten() - before; got != 2 {
		t.Fatalf("non-DF 2000 bytes over a 1132-byte inner MTU: %d packets delivered, want 2 fragments", got)
	}
	// A burst: at most the bucket's worth of errors.
	burst := make([][]byte, 60)
	for i := range burst {
		burst[i] = dfPacket("10.0.1.1", "10.0.2.2", 1300)
	}
	st0 := d.a.Stats()
	send(burst...)
	st := d.a.Stats()
	if sent, held := st.ICMPTooBig-st0.ICMPTooBig, st.ICMPLimited-st0.ICMPLimited; sent+held != 60 || sent > icmpBurst {
		t.Fatalf("burst of 60: %d errors written, %d held back (bucket %d)", sent, held, icmpBurst)
	}
}

// round2 sends pkt A→B as round does, for one packet.
func (d *direct) round2(pkt []byte) {
	d.packets = [][]byte{pkt}
	d.round()
}

// TestPathMTU_ICMPTrust: an ICMP error lowers a path MTU at once only when it quotes one
// of our messages to that peer (its receiver index); a forged one (wrong index, or too
// short a quote to tell) only starts a probe, and the probe's ack keeps the path MTU
// where it was. Larger MTUs than the current one, unknown destinations and the queue
// overflow change nothing.
func TestPathMTU_ICMPTrust(t *testing.T) {
	s := newPathSim(t, 1500)
	p := s.d.peerB
	s.d.a.tickPMTU(s.hsA, p, time.Now())
	s.pump()
	full := p.PathMTU()
	if full != s.d.a.cfg.MTU+Overhead(FramingL3, false) {
		t.Fatalf("start: %d", full)
	}
	quote := make([]byte, 16)
	binary.LittleEndian.PutUint32(quote[0:4], 4)
	binary.LittleEndian.PutUint32(quote[4:8], p.Keypairs().Current().RemoteIndex()+1) // not ours
	for name, q := range map[string][]byte{"wrong index": quote, "no quote": nil, "udp header only": quote[:4]} {
		s.d.a.PathError(mustAP("192.0.2.2:51820"), 600, false, q)
		drainRequests(s.d.a, s.hsA)
		if got := p.PathMTU(); got != full {
			t.Fatalf("%s: path MTU moved to %d", name, got)
		}
		s.pump() // the probe of the current size is acknowledged: nothing moves
		if got := p.PathMTU(); got != full {
			t.Fatalf("%s after the probe: %d", name, got)
		}
	}
	s.d.a.PathError(mustAP("198.51.100.9:51820"), 600, true, nil) // nobody's endpoint
	if s.d.a.Stats().PathErrorsIgnored != 1 {
		t.Fatalf("ignored %d", s.d.a.Stats().PathErrorsIgnored)
	}
	binary.LittleEndian.PutUint32(quote[4:8], p.Keypairs().Current().RemoteIndex())
	s.d.a.PathError(mustAP("192.0.2.2:51820"), full+100, false, quote) // larger: nothing to do
	drainRequests(s.d.a, s.hsA)
	if p.PathMTU() != full {
		t.Fatal("a larger MTU raised the path MTU")
	}
	s.mtu = 1400
	s.d.a.PathError(mustAP("192.0.2.2:51820"), 1400, false, quote)
	drainRequests(s.d.a, s.hsA)
	if got := p.PathMTU(); got != 1400 {
		t.Fatalf("a quoted ICMP error: path MTU %d, want 1400", got)
	}
	s.pump() // its confirming probe passes
	if got := p.PathMTU(); got != 1400 {
		t.Fatalf("after confirming: %d", got)
	}
	// Below the IPv4 floor: clamped.
	s.d.a.PathError(mustAP("192.0.2.2:51820"), 100, true, nil)
	drainRequests(s.d.a, s.hsA)
	if got := p.PathMTU(); got != minIPv4MTU {
		t.Fatalf("local EMSGSIZE of 100: %d, want the floor %d", got, minIPv4MTU)
	}
}

// TestPathMTU_TooBigAlloc: answering packets too big for the path (ICMP into the device)
// and fragmenting those without DF allocate nothing per packet either.
func TestPathMTU_TooBigAlloc(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under -race")
	}
	for name, pkt := range map[string][]byte{
		"icmp":     dfPacket("10.0.1.1", "10.0.2.2", 1300),
		"fragment": ipv4Packet("10.0.1.1", "10.0.2.2", 2000),
	} {
		t.Run(name, func(t *testing.T) {
			d := newDirect(t, 64, [][]byte{pkt})
			d.peerB.SetPathMTU(1200)
			d.round()
			allocs := testing.AllocsPerRun(100, func() {
				d.sizes[0] = copy(d.bufs[0][headroom:], pkt)
				d.bindA.N = 0
				d.sc.icmpTokens = icmpBurst // keep the bucket full: measure the answer itself
				d.a.sendBatch(d.sc, d.bufs[:1], d.sizes[:1])
			})
			if allocs != 0 {
				t.Fatalf("%s: %v allocations per packet", name, allocs)
			}
			if st := d.a.Stats(); (name == "icmp") != (st.ICMPTooBig > 100) || (name == "fragment") != (d.bindA.N == 2) {
				t.Fatalf("%s: the path not taken: %d errors written, %d messages sent", name, st.ICMPTooBig, d.bindA.N)
			}
		})
	}
}

// FuzzPathError: whatever an error from the socket's error queue says (any MTU, any
// quote), the path MTU never rises, never drops below the floor, and drops at all only
// for a local error or a quote of one of our messages to that peer.
func FuzzPathError(f *testing.F) {
	f.Add([]byte{4, 0, 0, 0, 1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 0}, 1400, false, true)
	f.Add([]byte{}, 600, false, false)
	f.Add([]byte{4, 0, 0, 0}, -1, true, false)
	s := newPathSim(f, 1500)
	p := s.d.peerB
	s.d.a.tickPMTU(s.hsA, p, time.Now())
	s.pump()
	full := p.PathMTU()
	f.Fuzz(func(t *testing.T, quote []byte, mtu int, local, ours bool) {
		p.SetPathMTU(full)
		if ours && len(quote) >= 8 { // make it quote our current index
			binary.LittleEndian.PutUint32(quote[4:8], p.Keypairs().Current().RemoteIndex())
		}
		s.d.a.PathError(mustAP("192.0.2.2:51820"), mtu, local, quote)
		drainRequests(s.d.a, s.hsA)
		s.pump()
		got := p.PathMTU()
		switch {
		case got > full:
			t.Fatalf("raised to %d", got)
		case got < minIPv4MTU:
			t.Fatalf("below the floor: %d", got)
		case got < full && !local && !quotesOurMessage(p, quote):
			t.Fatalf("an unproven error lowered the path MTU to %d", got)
		}
	})
}

// TestPathMTU_TooBigFrameL2: in L2 an IP frame too big for the path is answered by a
// frame to its sender's MAC, from the MAC it was sent to, carrying the ICMP error for the
// IP MTU the path leaves (the frame's limit less its 14-byte header); ARP is not answered.
func TestPathMTU_TooBigFrameL2(t *testing.T) {
	cfg := DefaultLocalConfig()
	cfg.NextProtoL2 = true
	cfg.Identity = cryptotest.NewIdentity(t)
	dev := testkit.NewDevice(testkit.DeviceConfig{})
	dev.KeepWritten(4)
	tn, err := New(cfg, dev, testkit.NewCaptureBind(1, 64), peers.NewTable(cfg.Identity))
	if err != nil {
		t.Fatal(err)
	}
	defer tn.Close()
	sc := tn.newSendScratch()
	src, dst := l2.MAC{2, 0, 0, 0, 0, 1}, l2.MAC{2, 0, 0, 0, 0, 2}
	frame := testkit.Ethernet(dst, src, nil, l2.EtherTypeIPv4, dfPacket("10.0.1.1", "10.0.2.2", 1400))
	tn.tooBigFrame(sc, nil, frame, 1214, time.Now())
	got := dev.Recv(t)
	if !bytes.Equal(got[0:6], src[:]) || !bytes.Equal(got[6:12], dst[:]) || got[12] != 0x08 || got[13] != 0 {
		t.Fatalf("Ethernet header %x", got[:14])
	}
	ip := got[14:]
	if ip[9] != 1 || ip[20] != 3 || ip[21] != 4 || binary.BigEndian.Uint16(ip[26:28]) != 1200 {
		t.Fatalf("ICMP %x", ip[:28])
	}
	arp := testkit.Ethernet(l2.BroadcastMAC, src, nil, l2.EtherTypeARP, make([]byte, 1400))
	tn.tooBigFrame(sc, nil, arp, 1214, time.Now())
	if n := tn.Stats().ICMPTooBig; n != 1 {
		t.Fatalf("errors written %d, want 1 (none for ARP)", n)
	}
}

// TestPathMTU_WireGuardPeerExpires: a stock WireGuard peer cannot answer probes, so a
// quoted ICMP error lowers its path MTU and PathMTUInterval later it goes back to the
// ceiling (the next error would lower it again), as the kernel forgets a learned PMTU.
func TestPathMTU_WireGuardPeerExpires(t *testing.T) {
	s := newPathSim(t, 1500)
	p := s.d.peerB
	cfg := p.Stats()
	if _, err := s.d.a.table.Upsert(peers.PeerConfig{PublicKey: cfg.PublicKey, Endpoint: cfg.Endpoint, AllowedIPs: cfg.AllowedIPs, WireGuardFraming: true}); err != nil {
		t.Fatal(err)
	}
	if !p.WireGuardFraming() {
		t.Fatal("not a WireGuard peer")
	}
	now := time.Now()
	s.d.a.tickPMTU(s.hsA, p, now)
	ceiling := p.PathMTU()
	if ceiling != s.d.a.cfg.MTU+Overhead(FramingWireGuard, false) || s.d.a.Stats().PathMTUProbes != 0 {
		t.Fatalf("ceiling %d, probes %d: a WireGuard peer is not probed", ceiling, s.d.a.Stats().PathMTUProbes)
	}
	quote := make([]byte, 16)
	binary.LittleEndian.PutUint32(quote[0:4], 4)
	binary.LittleEndian.PutUint32(quote[4:8], p.Keypairs().Current().RemoteIndex())
	s.d.a.PathError(mustAP("192.0.2.2:51820"), 1300, false, quote)
	drainRequests(s.d.a, s.hsA)
	if got := p.PathMTU(); got != 1300 {
		t.Fatalf("after the error: %d", got)
	}
	s.d.a.tickPMTU(s.hsA, p, time.Now())
	if got := p.PathMTU(); got != 1300 {
		t.Fatalf("before the interval: %d", got)
	}
	s.d.a.tickPMTU(s.hsA, p, time.Now().Add(time.Hour+time.Second))
	if got := p.PathMTU(); got != ceiling {
		t.Fatalf("after the interval: %d, want %d", got, ceiling)
	}
}

// TestPathMTU_PeerWithoutProbes: a peer that never answers probes (an older weft) but
// answers everything else keeps its path MTU at the ceiling (no answer is no loss), and
// the search stops after a few silent rounds instead of probing forever.
func TestPathMTU_PeerWithoutProbes(t *testing.T) {
	s := newPathSim(t, 1500)
	p := s.d.peerB
	silentB := func() {
		for moved := true; moved; {
			moved = s.move(s.d.bindA, s.d.b, s.d.rs, s.d.fromA) || s.move(s.bindB, s.d.a, s.rsA, s.fromB)
			for len(s.d.b.hsReqs) > 0 { // B's worker ignores probes
				<-s.d.b.hsReqs
				moved = true
			}
			moved = drainRequests(s.d.a, s.hsA) || moved
		}
	}
	for i := 0; i < 20; i++ {
		s.d.a.tickPMTU(s.hsA, p, time.Now())
		silentB()
		s.d.a.sendKeepalive(s.hsA, p) // the peer answers data: A hears from it all along
		s.d.b.sendKeepalive(s.hsB, s.d.peerA)
		silentB()
		time.Sleep(2 * time.Millisecond)
	}
	ceiling := s.d.a.cfg.MTU + Overhead(FramingL3, false)
	if got := p.PathMTU(); got != ceiling {
		t.Fatalf("path MTU %d, want the ceiling %d", got, ceiling)
	}
	st := s.d.a.pmtu[p]
	if st.next.IsZero() {
		t.Fatalf("still searching: %+v", st)
	}
	if n := s.d.a.Stats().PathMTUProbes; n > probeTries+1 {
		t.Fatalf("%d probes sent to a peer that answers none", n)
	}
}
