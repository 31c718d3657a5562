package tunnel

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/conn"

	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/crypto/cryptotest"
	"github.com/weftnet/weft/internal/testkit"
	"github.com/weftnet/weft/l2"
	"github.com/weftnet/weft/peers"
)

// Every drop reason the send, receive and handshake paths count, each produced by a hostile
// or unlucky input and counted under its own name, exactly once, with no other reason
// moving. TestTunnel_DropReasons walks all of peers' reasons and fails for one that no case
// here produces: a new reason needs a test before it can land.

func dropCounts(tn *Tunnel) (c [peers.NumDropReasons]uint64) {
	for r := range c {
		c[r] = tn.drops.Get(peers.DropReason(r))
	}
	return c
}

// expectOnly runs action and fails unless tn counted exactly want drops as r and none as
// any other reason.
func expectOnly(t *testing.T, tn *Tunnel, r peers.DropReason, want uint64, action func()) {
	t.Helper()
	before := dropCounts(tn)
	action()
	after := dropCounts(tn)
	for i := range after {
		got := after[i] - before[i]
		switch {
		case peers.DropReason(i) == r && got != want:
			t.Errorf("%v counted %d times, want %d", r, got, want)
		case peers.DropReason(i) != r && got != 0:
			t.Errorf("%v counted %d times, want only %v", peers.DropReason(i), got, r)
		}
	}
}

// hsFrom wraps a handshake message as the inbound loop queues it.
func hsFrom(msg []byte, src conn.Endpoint) *hsMessage {
	m := &hsMessage{n: len(msg), src: src}
	copy(m.buf[:], msg)
	return m
}

// addPeerC gives A a third peer C (10.0.3.0/24) at ep (invalid: no endpoint) with no session.
func (d *direct) addPeerC(t *testing.T, ep netip.AddrPort) *peers.Peer {
	t.Helper()
	priv, _ := crypto.GeneratePrivateKey()
	p, err := d.a.table.Upsert(peers.PeerConfig{PublicKey: priv.Public(), Endpoint: ep,
		AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.0.3.0/24")}})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// failBind is a testkit.CaptureBind whose Send fails.
type failBind struct{ *testkit.CaptureBind }

func (failBind) Send([][]byte, conn.Endpoint) error { return errors.New("sendmmsg: no buffer space") }

// A datagram replayed is written to the device once and counted once, as replayed.
func TestTunnel_ReplayedWrittenOnce(t *testing.T) {
	d := newDirectWith(t, 4, nil, DefaultConfig(), DefaultConfig(), newTestClock())
	msg := d.sealedByA(t, ipv4Packet("10.0.1.1", "10.0.2.2", 100))
	if f := d.receiveOne(t, msg); !f.delivered {
		t.Fatalf("first copy: %v", f)
	}
	for range 3 {
		if f := d.receiveOne(t, msg); f.drop != peers.DropReplayed {
			t.Fatalf("replayed copy: %v, want dropped as replayed", f)
		}
	}
	if w, n := d.devB.PacketsWritten(), d.peerA.Drops(peers.DropReplayed); w != 1 || n != 3 {
		t.Fatalf("written %d, replayed %d; want 1 and 3", w, n)
	}
}

// dropCases produce each reason. Receive-side cases feed B datagrams "from A"; send-side
// cases drive A's sendBatch, handshake worker functions and timers directly.
var dropCases = map[peers.DropReason]func(t *testing.T, d *direct, clk *testClock){
	peers.DropNoRoute: func(t *testing.T, d *direct, _ *testClock) {
		expectOnly(t, d.a, peers.DropNoRoute, 1, func() { d.sendA(ipv4Packet("10.0.1.1", "10.9.0.1", 60)) })
	},
	peers.DropNotAllowedSource: func(t *testing.T, d *direct, _ *testClock) {
		msg := d.sealFromA(t, append(vxlanHeader(d.b.cfg.VNI, 1), ipv4Packet("10.0.2.9", "10.0.2.2", 60)...))
		expectOnly(t, d.b, peers.DropNotAllowedSource, 1, func() { d.receiveOne(t, msg) })
	},
	peers.DropWrongVNI: func(t *testing.T, d *direct, _ *testClock) {
		msg := d.sealFromA(t, append(vxlanHeader(d.b.cfg.VNI+1, 1), ipv4Packet("10.0.1.1", "10.0.2.2", 60)...))
		expectOnly(t, d.b, peers.DropWrongVNI, 1, func() { d.receiveOne(t, msg) })
	},
	peers.DropWrongProto: func(t *testing.T, d *direct, _ *testClock) {
		msg := d.sealFromA(t, append(vxlanHeader(d.b.cfg.VNI, 2), ipv4Packet("10.0.1.1", "10.0.2.2", 60)...))
		expectOnly(t, d.b, peers.DropWrongProto, 1, func() { d.receiveOne(t, msg) })
	},
	peers.DropMalformed: func(t *testing.T, d *direct, _ *testClock) {
		truncated := d.sealFromA(t, append(vxlanHeader(d.b.cfg.VNI, 1), 0x45, 0))
		noIFlag := d.sealFromA(t, make([]byte, 40))
		expectOnly(t, d.b, peers.DropMalformed, 2, func() { d.receiveOne(t, truncated); d.receiveOne(t, noIFlag) })
		expectOnly(t, d.a, peers.DropMalformed, 1, func() { d.sendA(make([]byte, 60)) }) // not IP
	},
	peers.DropShortMessage: func(t *testing.T, d *direct, _ *testClock) {
		expectOnly(t, d.b, peers.DropShortMessage, 2, func() {
			d.receiveOne(t, []byte{4, 0, 0})
			d.receiveOne(t, append([]byte{4, 0, 0, 0}, make([]byte, crypto.MessageTransportOverhead-5)...)) // type 4, no room for a tag
		})
	},
	peers.DropUnknownType: func(t *testing.T, d *direct, _ *testClock) {
		expectOnly(t, d.b, peers.DropUnknownType, 1, func() { d.receiveOne(t, []byte{5, 0, 0, 0, 1, 2, 3, 4}) })
	},
	peers.DropUnknownIndex: func(t *testing.T, d *direct, _ *testClock) {
		msg := d.sealedByA(t, ipv4Packet("10.0.1.1", "10.0.2.2", 60))
		binary.LittleEndian.PutUint32(msg[4:8], binary.LittleEndian.Uint32(msg[4:8])+1000)
		expectOnly(t, d.b, peers.DropUnknownIndex, 1, func() { d.receiveOne(t, msg) })
	},
	peers.DropAuthFailed: func(t *testing.T, d *direct, _ *testClock) {
		tag := d.sealedByA(t, ipv4Packet("10.0.1.1", "10.0.2.2", 60))
		tag[len(tag)-1] ^= 1
		body := d.sealedByA(t, ipv4Packet("10.0.1.1", "10.0.2.2", 60))
		body[crypto.MessageTransportHeaderSize+3] ^= 0x80
		counter := d.sealedByA(t, ipv4Packet("10.0.1.1", "10.0.2.2", 60))
		counter[8] ^= 1 // the counter is the nonce
		expectOnly(t, d.b, peers.DropAuthFailed, 3, func() { d.receiveOne(t, tag); d.receiveOne(t, body); d.receiveOne(t, counter) })
		if w := d.devB.PacketsWritten(); w != 0 {
			t.Errorf("%d tampered datagrams written", w)
		}
	},
	peers.DropReplayed: func(t *testing.T, d *direct, _ *testClock) {
		msg := d.sealedByA(t, ipv4Packet("10.0.1.1", "10.0.2.2", 60))
		d.receiveOne(t, msg)
		expectOnly(t, d.b, peers.DropReplayed, 1, func() { d.receiveOne(t, msg) })
	},
	peers.DropKeypairExpired: func(t *testing.T, d *direct, clk *testClock) {
		msg := d.sealedByA(t, ipv4Packet("10.0.1.1", "10.0.2.2", 60))
		clk.advance(crypto.RejectAfterTime)
		expectOnly(t, d.b, peers.DropKeypairExpired, 1, func() { d.receiveOne(t, msg) })
		// A's send path does not seal on the expired keypair either: the packet waits for a
		// new handshake instead of being sent or dropped.
		expectOnly(t, d.a, peers.DropKeypairExpired, 0, func() { d.sendA(ipv4Packet("10.0.1.1", "10.0.2.2", 60)) })
		if d.bindA.N != 0 || d.peerB.Session().PendingLen() != 1 {
			t.Errorf("after expiry A sent %d, queued %d", d.bindA.N, d.peerB.Session().PendingLen())
		}
		// And queued packets flushed on a spent keypair are counted, not sent.
		hs := newHSScratch()
		expectOnly(t, d.a, peers.DropKeypairExpired, 1, func() { d.a.flushPending(hs, d.peerB) })
	},
	peers.DropQueueFull: func(t *testing.T, d *direct, _ *testClock) {
		d.addPeerC(t, mustAP("192.0.2.3:51820"))
		expectOnly(t, d.a, peers.DropQueueFull, 1, func() {
			for range d.a.cfg.QueueLen + 1 {
				d.sendA(ipv4Packet("10.0.1.1", "10.0.3.3", 60))
			}
		})
	},
	peers.DropHandshakeTimeout: func(t *testing.T, d *direct, _ *testClock) {
		c := d.addPeerC(t, mustAP("192.0.2.3:51820"))
		d.sendA(ipv4Packet("10.0.1.1", "10.0.3.3", 60))
		d.sendA(ipv4Packet("10.0.1.1", "10.0.3.3", 60))
		hs := newHSScratch()
		d.a.initiate(hs, c, false)
		expectOnly(t, d.a, peers.DropHandshakeTimeout, 2, func() {
			d.a.tickPeer(hs, c, time.Now().Add(d.a.cfg.RekeyAttemptTime+time.Second))
		})
	},
	peers.DropHandshakeQueueFull: func(t *testing.T, d *direct, _ *testClock) {
		var init [crypto.MessageInitiationSize]byte
		n, _ := d.peerB.Handshake().CreateInitiation(init[:], 7)
		for range cap(d.b.hsMsgs) {
			d.b.enqueueHandshake(init[:n], d.fromA)
		}
		expectOnly(t, d.b, peers.DropHandshakeQueueFull, 1, func() { d.b.enqueueHandshake(init[:n], d.fromA) })
		for len(d.b.hsMsgs) > 0 {
			<-d.b.hsMsgs
		}
	},
	peers.DropHandshakeInvalid: func(t *testing.T, d *direct, _ *testClock) {
		// An initiation from a key B does not know, with a valid mac1 for B.
		stranger := cryptotest.NewIdentity(t)
		var init [crypto.MessageInitiationSize]byte
		n, _ := crypto.NewHandshake(stranger, d.idB.PublicKey(), crypto.PresharedKey{}).CreateInitiation(init[:], 9)
		hs := newHSScratch()
		expectOnly(t, d.b, peers.DropHandshakeInvalid, 1, func() { d.b.handleHandshake(hs, hsFrom(init[:n], d.fromA)) })
	},
	peers.DropRateLimited: func(t *testing.T, d *direct, _ *testClock) {
		// Under load (an eighth of the queue waiting), an initiation without a cookie is
		// answered with a cookie reply and not processed.
		var init [crypto.MessageInitiationSize]byte
		n, _ := d.peerB.Handshake().CreateInitiation(init[:], 7)
		for range cap(d.b.hsMsgs) / 8 {
			d.b.hsMsgs <- *hsFrom(init[:n], d.fromA)
		}
		hs := newHSScratch()
		expectOnly(t, d.b, peers.DropRateLimited, 1, func() { d.b.handleHandshake(hs, hsFrom(init[:n], d.fromA)) })
		for len(d.b.hsMsgs) > 0 {
			<-d.b.hsMsgs
		}
	},
	peers.DropNoEndpoint: func(t *testing.T, d *direct, _ *testClock) {
		c := d.addPeerC(t, netip.AddrPort{})
		expectOnly(t, d.a, peers.DropNoEndpoint, 1, func() { d.a.initiate(newHSScratch(), c, false) })
	},
	peers.DropSendFailed: func(t *testing.T, d *direct, _ *testClock) {
		d.a.bind = failBind{d.bindA}
		expectOnly(t, d.a, peers.DropSendFailed, 1, func() { d.sendA(ipv4Packet("10.0.1.1", "10.0.2.2", 60)) })
	},
	peers.DropTooBig: func(t *testing.T, d *direct, _ *testClock) {
		expectOnly(t, d.a, peers.DropTooBig, 1, func() {
			d.sizes[0] = maxInner + 1
			d.a.sendBatch(d.sc, d.bufs[:1], d.sizes[:1])
		})
	},
	peers.DropFloodCapped: func(t *testing.T, d *direct, _ *testClock) {
		d.a.cfg.MaxFloodCopies = 0
		d.a.router = floodRouter{to: []*peers.Peer{d.peerB, d.peerB}}
		expectOnly(t, d.a, peers.DropFloodCapped, 1, func() { d.sendA(ipv4Packet("10.0.1.1", "10.0.2.2", 60)) })
	},
	peers.DropToSelf: func(t *testing.T, d *direct, _ *testClock) {
		// Encrypted L2: a frame that leaves the TAP for the host's own MAC (a static entry
		// without peer) is refused by the L2 router, not handed to a nil peer.
		d.a.cfg.NextProtoL2 = true
		r := l2.NewRouter(d.a.cfg.VNI, l2.FDBConfig{}, d.a.table)
		r.FDB().SetStatic(testMACA, nil)
		d.a.router = r
		expectOnly(t, d.a, peers.DropToSelf, 1, func() {
			d.sendA(testkit.Ethernet(testMACA, testMACB, nil, l2.EtherTypeIPv4, ipv4Packet("10.0.1.1", "10.0.2.2", 60)))
		})
	},
	peers.DropPolicyDenied: func(t *testing.T, d *direct, _ *testClock) {
		// A policy with default deny refuses the outbound packet before it is sealed.
		d.a.pol = newEnginePolicy(t, "default: deny\n")
		expectOnly(t, d.a, peers.DropPolicyDenied, 1, func() { d.sendA(ipv4Packet("10.0.1.1", "10.0.2.2", 60)) })
	},
	peers.DropPolicyFlowQuota: func(t *testing.T, d *direct, _ *testClock) {
		// B lets peer A hold one inbound flow: A's second new flow is refused, the first
		// keeps passing.
		d.b.pol = newEnginePolicyQuota(t, fiftyRules(true), 1)
		first, second := ipv4Packet("10.0.1.1", "10.0.2.2", 60), ipv4Packet("10.0.1.1", "10.0.2.2", 60)
		binary.BigEndian.PutUint16(second[20:22], 40001) // another source port: another flow
		d.receiveOne(t, d.sealFromA(t, append(vxlanHeader(d.b.cfg.VNI, 1), first...)))
		expectOnly(t, d.b, peers.DropPolicyFlowQuota, 1, func() {
			d.receiveOne(t, d.sealFromA(t, append(vxlanHeader(d.b.cfg.VNI, 1), second...)))
		})
		expectOnly(t, d.b, peers.DropNone, 0, func() {
			d.receiveOne(t, d.sealFromA(t, append(vxlanHeader(d.b.cfg.VNI, 1), first...)))
		})
	},
	peers.DropInvalidMAC1: func(t *testing.T, d *direct, _ *testClock) {
		var init [crypto.MessageInitiationSize]byte
		n, _ := d.peerB.Handshake().CreateInitiation(init[:], 7)
		init[n-32] ^= 1 // mac1: the 16 bytes before mac2, the last 16
		hs := newHSScratch()
		expectOnly(t, d.b, peers.DropInvalidMAC1, 1, func() { d.b.handleHandshake(hs, hsFrom(init[:n], d.fromA)) })
	},
}

// sendA runs one packet through A's send path.
func (d *direct) sendA(pkt []byte) {
	d.sizes[0] = copy(d.bufs[0][headroom:], pkt)
	d.bindA.N = 0
	d.a.sendBatch(d.sc, d.bufs[:1], d.sizes[:1])
}

// droppedElsewhere are the reasons only another datapath counts, each with the file and the
// test there that produces it (checked to exist, and to name the reason).
var droppedElsewhere = map[peers.DropReason][2]string{
	peers.DropUnknownVTEP: {"../l2/plain_test.go", "TestPlainVTEP_HostileSenders"},
}

func TestTunnel_DropReasons(t *testing.T) {
	for r := peers.DropReason(1); int(r) < peers.NumDropReasons; r++ {
		t.Run(r.String(), func(t *testing.T) {
			if where, ok := droppedElsewhere[r]; ok {
				src, err := os.ReadFile(where[0])
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Contains(src, []byte("func "+where[1]+"(")) || !bytes.Contains(src, []byte(`"`+r.String()+`"`)) {
					t.Fatalf("%s no longer has %s producing %q", where[0], where[1], r)
				}
				return
			}
			produce, ok := dropCases[r]
			if !ok {
				t.Fatalf("no test produces drop reason %v: add a case to dropCases", r)
			}
			clk := newTestClock()
			produce(t, newDirectWith(t, 4, nil, DefaultConfig(), DefaultConfig(), clk), clk)
		})
	}
}
