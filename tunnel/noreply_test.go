package tunnel

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/conn"

	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/crypto/cryptotest"
	"github.com/weftnet/weft/internal/testkit"
	"github.com/weftnet/weft/peers"
)

// The no-reply timer (WireGuard's new-handshake timer, timers.go): data sent with no
// authenticated packet back for NewHandshakeTimeout starts one new handshake.

// noReplyRig is a direct pair (DefaultConfig: 15 s) that also carries B→A: B's sends land
// in bindB and go to A's receive path from fromB; A's timers run by tickA. The identities
// run on clk (handshake timestamps: a new initiation must be later than the last).
type noReplyRig struct {
	*direct
	clk   *testClock
	bindB *testkit.CaptureBind
	scB   *sendScratch
	rsA   *recvScratch
	hsA   *hsScratch
	fromB *testkit.Endpoint
}

func newNoReplyRig(t *testing.T) *noReplyRig {
	t.Helper()
	clk := newTestClock()
	d := newDirectWith(t, 8, nil, DefaultConfig(), DefaultConfig(), clk)
	return &noReplyRig{direct: d, clk: clk, bindB: d.b.bind.(*testkit.CaptureBind), scB: d.b.newSendScratch(),
		rsA: d.a.newRecvScratch(), hsA: newHSScratch(), fromB: &testkit.Endpoint{AddrPort: mustAP("192.0.2.2:51820")}}
}

// dataFromA sends one data packet A→B (the send path arms the timer).
func (r *noReplyRig) dataFromA() { r.sendA(ipv4Packet("10.0.1.1", "10.0.2.2", 100)) }

// sealedByB runs pkt (nil: a keepalive) through B's send path and returns copies of what B
// sent to A.
func (r *noReplyRig) sealedByB(pkt []byte) [][]byte {
	r.bindB.N = 0
	if pkt == nil {
		r.b.sendKeepalive(newHSScratch(), r.peerA)
	} else {
		buf := make([]byte, bufSize)
		r.b.sendBatch(r.scB, [][]byte{buf}, []int{copy(buf[headroom:], pkt)})
	}
	var out [][]byte
	for _, m := range r.bindB.Slots[:r.bindB.N] {
		out = append(out, bytes.Clone(m))
	}
	return out
}

// toA hands datagrams to A's receive path as if from B.
func (r *noReplyRig) toA(msgs ...[]byte) {
	for i, m := range msgs {
		r.rsA.sizes[i] = copy(r.rsA.bufs[i], m)
		r.rsA.eps[i] = r.fromB
	}
	r.a.receiveBatch(r.rsA, len(msgs))
}

// tickA runs A's timers for B at now and returns how many initiations A sent. The
// identities' clock moves on a second, so that an initiation sent is newer than the last.
func (r *noReplyRig) tickA(now time.Time) int {
	r.clk.advance(time.Second)
	r.bindA.N = 0
	r.a.tickPeer(r.hsA, r.peerB, now)
	n := 0
	for _, m := range r.bindA.Slots[:r.bindA.N] {
		if binary.LittleEndian.Uint32(m) == crypto.MessageInitiationType {
			n++
		}
	}
	return n
}

// armedAt returns when A's timer for B was armed (fails when it is not).
func (r *noReplyRig) armedAt(t *testing.T) time.Time {
	t.Helper()
	since := r.peerB.Unanswered()
	if since == 0 {
		t.Fatal("data sent, but the no-reply timer is not armed")
	}
	return time.Unix(0, since)
}

// due is the latest moment the timer armed at t0 fires (jitter included).
func due(t0 time.Time) time.Time {
	return t0.Add(DefaultConfig().NewHandshakeTimeout + crypto.RekeyTimeoutJitterMax)
}

// (a) Data sent and nothing back for NewHandshakeTimeout: exactly one new initiation, a
// new attempt (not a retransmit), counted; no second one until more data goes unanswered.
func TestTunnel_NoReplyNewHandshake(t *testing.T) {
	r := newNoReplyRig(t)
	if DefaultConfig().NewHandshakeTimeout != 15*time.Second {
		t.Fatalf("default NewHandshakeTimeout %v, want WireGuard's 15 s", DefaultConfig().NewHandshakeTimeout)
	}
	r.dataFromA()
	t0 := r.armedAt(t)
	r.dataFromA() // more data does not move the arming time
	if got := r.armedAt(t); !got.Equal(t0) {
		t.Fatalf("second send re-armed the timer: %v, want %v", got, t0)
	}
	handle := r.peerB.LoadEndpoint().Handle
	if n := r.tickA(t0.Add(DefaultConfig().NewHandshakeTimeout - time.Millisecond)); n != 0 {
		t.Fatalf("%d initiations before the timeout", n)
	}
	if n := r.tickA(due(t0)); n != 1 {
		t.Fatalf("%d initiations at the timeout, want 1", n)
	}
	if v := r.peerB.Session().View(); !v.InFlight || v.Sent != 1 {
		t.Errorf("session %+v: want a new attempt with one initiation", v)
	}
	if a, p := r.a.Stats().NoReplyHandshakes, r.peerB.Stats().NoReplyHandshakes; a != 1 || p != 1 {
		t.Errorf("counted %d (tunnel), %d (peer), want 1", a, p)
	}
	if r.peerB.Unanswered() != 0 {
		t.Error("the timer is still armed after firing")
	}
	if e := r.peerB.LoadEndpoint(); e.Addr != mustAP("192.0.2.2:51820") || e.Handle == handle {
		t.Errorf("endpoint %v: want the same address with a fresh handle (cached source dropped)", e.Addr)
	}
	init := bytes.Clone(r.bindA.Slots[0])

	// B answers; the handshake completes. Later ticks start nothing: no data since.
	r.bindB.N = 0
	deliver(r.b, newHSScratch(), init, r.fromA)
	if _, typ := lastSent(r.bindB); typ != crypto.MessageResponseType {
		t.Fatalf("B answered type %d", typ)
	}
	deliver(r.a, r.hsA, r.bindB.Slots[r.bindB.N-1], r.fromB)
	if r.peerB.Session().InFlight() || r.peerB.Stats().Handshakes != 1 {
		t.Fatal("the new handshake did not complete")
	}
	for _, at := range []time.Duration{time.Second, 15 * time.Second, time.Minute} {
		if n := r.tickA(due(t0).Add(at)); n != 0 {
			t.Fatalf("%d initiations %v after firing with no new data", n, at)
		}
	}
	// New data that goes unanswered arms it again: one more.
	r.dataFromA()
	t1 := r.armedAt(t)
	if n := r.tickA(due(t1)); n != 1 || r.a.Stats().NoReplyHandshakes != 2 {
		t.Fatalf("after new unanswered data: %d initiations, %d counted; want 1 and 2", n, r.a.Stats().NoReplyHandshakes)
	}
}

// The timer is not fired while an attempt is in flight: the retransmits of that attempt
// go on, and its response will answer.
func TestTunnel_NoReplyWaitsForAttemptInFlight(t *testing.T) {
	r := newNoReplyRig(t)
	r.dataFromA()
	t0 := r.armedAt(t)
	r.a.sendInitiation(r.hsA, r.peerB, false) // a rekey, say
	r.tickA(due(t0))
	if r.a.Stats().NoReplyHandshakes != 0 || r.peerB.Unanswered() == 0 {
		t.Fatalf("fired during an attempt (counted %d)", r.a.Stats().NoReplyHandshakes)
	}
}

// (b) Any authenticated packet from B before the timeout (data, a keepalive, a handshake
// initiation) disarms it: no initiation.
func TestTunnel_NoReplyAnswered(t *testing.T) {
	for name, answer := range map[string]func(r *noReplyRig){
		"data":      func(r *noReplyRig) { r.toA(r.sealedByB(ipv4Packet("10.0.2.2", "10.0.1.1", 80))...) },
		"keepalive": func(r *noReplyRig) { r.toA(r.sealedByB(nil)...) },
		"initiation": func(r *noReplyRig) {
			r.bindB.N = 0
			r.b.sendInitiation(newHSScratch(), r.peerA, false)
			deliver(r.a, r.hsA, r.bindB.Slots[0], r.fromB)
		},
	} {
		t.Run(name, func(t *testing.T) {
			r := newNoReplyRig(t)
			r.dataFromA()
			t0 := r.armedAt(t)
			answer(r)
			if r.peerB.Unanswered() != 0 {
				t.Fatal("B's answer did not disarm the timer")
			}
			if n := r.tickA(due(t0).Add(time.Second)); n != 0 || r.a.Stats().NoReplyHandshakes != 0 {
				t.Errorf("%d initiations after an answer", n)
			}
		})
	}
}

// (c) Keepalives from A are not data: they do not arm it (as WireGuard).
func TestTunnel_NoReplyNotArmedByKeepalive(t *testing.T) {
	r := newNoReplyRig(t)
	r.bindA.N = 0
	r.a.sendKeepalive(r.hsA, r.peerB)
	if r.a.Stats().KeepalivesSent != 1 || r.bindA.N != 1 {
		t.Fatal("no keepalive sent")
	}
	if r.peerB.Unanswered() != 0 {
		t.Fatal("a keepalive armed the timer")
	}
	if n := r.tickA(time.Now().Add(time.Minute)); n != 0 {
		t.Errorf("%d initiations after keepalives only", n)
	}
}

// (d) Nothing unauthenticated disarms it: a hostile party that replays B's old packets or
// initiation, forges or garbles them, cannot keep A on a session B has lost. Each is
// dropped under its reason, the timer stays armed, and it fires once.
func TestTunnel_NoReplyHostileDoesNotDisarm(t *testing.T) {
	r := newNoReplyRig(t)
	// Genuine traffic from B before A's data: a data packet and an initiation, recorded.
	oldData := r.sealedByB(ipv4Packet("10.0.2.2", "10.0.1.1", 80))[0]
	r.toA(oldData)
	r.bindB.N = 0
	r.b.sendInitiation(newHSScratch(), r.peerA, false)
	oldInit := bytes.Clone(r.bindB.Slots[0])
	deliver(r.a, r.hsA, oldInit, r.fromB) // A responds (its session with B stays current)
	if r.peerB.Stats().Handshakes != 1 {
		t.Fatal("A did not take B's initiation")
	}

	r.dataFromA()
	t0 := r.armedAt(t)
	garbled := bytes.Clone(r.sealedByB(ipv4Packet("10.0.2.2", "10.0.1.1", 80))[0])
	garbled[len(garbled)-1] ^= 1
	unknownIdx := bytes.Clone(garbled)
	binary.LittleEndian.PutUint32(unknownIdx[4:8], 0xdeadbeef)
	badMAC := bytes.Clone(oldInit)
	badMAC[len(badMAC)-32] ^= 1
	stranger := cryptotest.NewIdentity(t)
	var forged [crypto.MessageInitiationSize]byte
	n, _ := crypto.NewHandshake(stranger, r.idA.PublicKey(), crypto.PresharedKey{}).CreateInitiation(forged[:], 9)
	fromB := r.fromB
	for _, c := range []struct {
		name string
		drop peers.DropReason
		send func()
	}{
		{"replayed data", peers.DropReplayed, func() { r.toA(oldData) }},
		{"garbled data", peers.DropAuthFailed, func() { r.toA(garbled) }},
		{"unknown index", peers.DropUnknownIndex, func() { r.toA(unknownIdx) }},
		{"short", peers.DropShortMessage, func() { r.toA([]byte{4, 0, 0, 0, 1, 2}) }},
		{"unknown type", peers.DropUnknownType, func() { r.toA([]byte{9, 0, 0, 0, 1, 2, 3, 4}) }},
		{"replayed initiation", peers.DropHandshakeInvalid, func() { r.a.handleHandshake(r.hsA, hsFrom(oldInit, fromB)) }},
		{"initiation with a bad mac1", peers.DropInvalidMAC1, func() { r.a.handleHandshake(r.hsA, hsFrom(badMAC, fromB)) }},
		{"initiation from a stranger", peers.DropHandshakeInvalid, func() { r.a.handleHandshake(r.hsA, hsFrom(forged[:n], fromB)) }},
	} {
		expectOnly(t, r.a, c.drop, 1, c.send)
		if got := r.peerB.Unanswered(); got != t0.UnixNano() {
			t.Fatalf("%s: timer %d, want still armed at %d", c.name, got, t0.UnixNano())
		}
	}
	if got := r.tickA(due(t0)); got != 1 || r.a.Stats().NoReplyHandshakes != 1 {
		t.Fatalf("%d initiations, %d counted; want 1 and 1", got, r.a.Stats().NoReplyHandshakes)
	}
}

// restartable is a tunnel on a real loopback socket that can be stopped and started again
// on the same port from the same private key, with fresh state (a new identity, table and
// device: an agent restart).
type restartable struct {
	t    *testing.T
	cfg  Config
	priv crypto.PrivateKey
	port uint16
	tn   *Tunnel
	id   *crypto.Identity
	dev  *testkit.Device
	peer *peers.Peer // the other side in this side's table
}

func (s *restartable) start(other crypto.PublicKey, otherEP netip.AddrPort, allowed string) {
	s.t.Helper()
	s.id = crypto.NewIdentity(s.priv)
	s.cfg.Identity = s.id
	s.dev = testkit.NewDevice(testkit.DeviceConfig{BatchSize: 128, Keep: 4096})
	table := peers.NewTable(s.id)
	var err error
	if s.tn, err = New(s.cfg, s.dev, conn.NewStdNetBind(), table); err != nil {
		s.t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		port, err := s.tn.Up(s.port)
		if err == nil {
			s.port = port
			break
		}
		if time.Now().After(deadline) { // the old socket of a restart is closed: this is rare
			s.t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if otherEP.IsValid() {
		s.link(other, otherEP, allowed)
	}
}

func (s *restartable) link(other crypto.PublicKey, ep netip.AddrPort, allowed string) {
	s.t.Helper()
	var err error
	if s.peer, err = s.tn.table.Upsert(peers.PeerConfig{PublicKey: other, Endpoint: ep,
		AllowedIPs: []netip.Prefix{netip.MustParsePrefix(allowed)}}); err != nil {
		s.t.Fatal(err)
	}
}

func (s *restartable) stop() {
	if s.tn != nil {
		s.tn.Close()
	}
	if s.id != nil {
		s.id.Close()
	}
}

func newRestartable(t *testing.T, cfg Config) *restartable {
	priv, err := crypto.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	s := &restartable{t: t, cfg: cfg, priv: priv}
	t.Cleanup(func() { s.stop() })
	return s
}

// fastNoReply is DefaultLocalConfig with the no-reply timer at 500 ms.
func fastNoReply() Config {
	cfg := DefaultLocalConfig()
	cfg.KeepaliveTimeout = 250 * time.Millisecond
	cfg.RekeyTimeout = 250 * time.Millisecond
	cfg.NewHandshakeTimeout = cfg.KeepaliveTimeout + cfg.RekeyTimeout
	return cfg
}

// The bug the timer fixes, on real sockets: B restarts (same key, same port, no session)
// while A goes on sending on the session B forgot. B drops all of it (unknown index) and,
// having nothing to send, never initiates; without the timer A would only notice at its
// rekey, two minutes later. With it, A re-handshakes after NewHandshakeTimeout and the
// traffic flows again.
func TestTunnel_NoReplyRecoversFromRestartedPeer(t *testing.T) {
	cfg := fastNoReply()
	lo := netip.MustParseAddr("127.0.0.1")
	a, b := newRestartable(t, cfg), newRestartable(t, cfg)
	a.start(crypto.PublicKey{}, netip.AddrPort{}, "")
	b.start(a.id.PublicKey(), netip.AddrPortFrom(lo, a.port), "10.0.1.0/24")
	a.link(b.id.PublicKey(), netip.AddrPortFrom(lo, b.port), "10.0.2.0/24")
	ping, pong := ipv4Packet("10.0.1.1", "10.0.2.2", 100), ipv4Packet("10.0.2.2", "10.0.1.1", 100)
	a.dev.Inject(ping)
	b.dev.Recv(t)
	b.dev.Inject(pong)
	a.dev.Recv(t)

	b.stop()
	b.start(a.id.PublicKey(), netip.AddrPortFrom(lo, a.port), "10.0.1.0/24")
	restarted := time.Now()
	limit := cfg.NewHandshakeTimeout + 2*time.Second // the timeout, a handshake, slack for -race
	for b.dev.PacketsWritten() == 0 {
		if time.Since(restarted) > limit {
			t.Fatalf("B got nothing %v after its restart (A's no-reply handshakes: %d; B dropped %v)",
				limit, a.tn.Stats().NoReplyHandshakes, b.tn.Stats().Drops)
		}
		a.dev.Inject(ping)
		time.Sleep(20 * time.Millisecond)
	}
	took := time.Since(restarted)
	if n := b.tn.Stats().Drops[peers.DropUnknownIndex.String()]; n == 0 {
		t.Error("B dropped nothing: A was not sending on the forgotten session")
	}
	if n := a.tn.Stats().NoReplyHandshakes; n != 1 {
		t.Errorf("A started %d no-reply handshakes, want 1", n)
	}
	if took < cfg.NewHandshakeTimeout {
		t.Errorf("recovered after %v, before the timeout: something else re-handshook", took)
	}
	t.Logf("traffic flowed again %v after B's restart", took.Round(time.Millisecond))
	// And back.
	b.dev.Inject(pong)
	a.dev.Recv(t)
}

// A receiver that only receives sends a keepalive KeepaliveTimeout after the first data
// since its last send, also while data keeps coming (WireGuard's keepalive timer; it once
// waited for KeepaliveTimeout of silence, so a continuous one-way stream got no keepalive
// and set off the sender's no-reply timer).
func TestTunnel_KeepaliveDuringStream(t *testing.T) {
	d := newDirect(t, 1, batchOf(1, 100))
	hsB := newHSScratch()
	ka := d.b.cfg.KeepaliveTimeout
	d.round()
	t0 := time.Unix(0, d.peerA.LastReceivedData())
	d.b.tickPeer(hsB, d.peerA, t0) // arms
	for i := range 5 {
		d.round() // the stream goes on
		d.b.tickPeer(hsB, d.peerA, t0.Add(ka*time.Duration(i)/5))
	}
	if n := d.b.Stats().KeepalivesSent; n != 0 {
		t.Fatalf("%d keepalives before KeepaliveTimeout", n)
	}
	d.round()
	d.b.tickPeer(hsB, d.peerA, t0.Add(ka))
	if n := d.b.Stats().KeepalivesSent; n != 1 {
		t.Fatalf("%d keepalives KeepaliveTimeout into a stream, want 1", n)
	}
	// Sent: disarmed until data arrives again, then due KeepaliveTimeout later.
	sent := d.peerA.LastSent()
	d.b.tickPeer(hsB, d.peerA, time.Unix(0, sent).Add(2*ka))
	if n := d.b.Stats().KeepalivesSent; n != 1 {
		t.Fatalf("%d keepalives with no data since the last, want 1", n)
	}
	d.round()
	t1 := time.Unix(0, d.peerA.LastReceivedData())
	d.b.tickPeer(hsB, d.peerA, t1.Add(ka-time.Millisecond))
	d.b.tickPeer(hsB, d.peerA, t1.Add(ka))
	if n := d.b.Stats().KeepalivesSent; n != 2 {
		t.Fatalf("%d keepalives, want 2", n)
	}
}

// A one-way stream (A sends, B only receives) is answered by B's keepalives every
// KeepaliveTimeout, which disarm A's timer: no spurious handshakes while it lasts.
func TestTunnel_NoReplyQuietOnOneWayStream(t *testing.T) {
	cfg := fastNoReply()
	pr := upPair(t, cfg, cfg)
	pkt := ipv4Packet("10.0.1.1", "10.0.2.2", 100)
	pr.devA.Inject(pkt)
	pr.devB.Recv(t)
	start := time.Now()
	for time.Since(start) < 4*cfg.NewHandshakeTimeout {
		pr.devA.Inject(pkt)
		time.Sleep(10 * time.Millisecond)
	}
	if n := pr.a.Stats().NoReplyHandshakes; n != 0 {
		t.Errorf("A started %d no-reply handshakes during a one-way stream B received", n)
	}
	if n := pr.b.Stats().KeepalivesSent; n < 3 {
		t.Errorf("B sent %d keepalives during a %v stream, want one every %v", n, 4*cfg.NewHandshakeTimeout, cfg.KeepaliveTimeout)
	}
}
