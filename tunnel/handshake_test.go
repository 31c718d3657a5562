package tunnel

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/crypto/cryptotest"
	"github.com/weftnet/weft/internal/testkit"
	"github.com/weftnet/weft/peers"
)

func newHSScratch() *hsScratch {
	return &hsScratch{out: make([]byte, 256), single: make([][]byte, 1)}
}

// lastSent returns the last message B's capture bind sent, and its type.
func lastSent(b *testkit.CaptureBind) ([]byte, uint32) {
	m := b.Last()
	return m, binary.LittleEndian.Uint32(m)
}

// deliver hands the handshake message msg, from the endpoint from, to to's handshake path.
func deliver(to *Tunnel, hs *hsScratch, msg []byte, from *testkit.Endpoint) {
	m := hsMessage{n: len(msg), src: from}
	copy(m.buf[:], msg)
	to.handleHandshake(hs, &m)
}

// newLinkedPair is a pair of tunnels with configs cfgA and cfgB, linked at 192.0.2.1 and
// 192.0.2.2, with the capture binds that record what each one sends.
func newLinkedPair(t *testing.T, cfgA, cfgB Config) (pr *pair, bindA, bindB *testkit.CaptureBind) {
	t.Helper()
	bindA, bindB = testkit.NewCaptureBind(8, bufSize), testkit.NewCaptureBind(8, bufSize)
	pr = newPair(t, cfgA, cfgB, testkit.NewDevice(testkit.DeviceConfig{BatchSize: 8}), testkit.NewDevice(testkit.DeviceConfig{BatchSize: 8}), bindA, bindB)
	pr.link(t, mustAP("192.0.2.1:51820"), mustAP("192.0.2.2:51820"))
	return pr, bindA, bindB
}

func TestTunnel_HandshakeCookieUnderLoad(t *testing.T) {
	cfgB := DefaultConfig()
	cfgB.HandshakeQueueLen = 8 // under load from 1 queued message
	pr, bindA, bindB := newLinkedPair(t, DefaultConfig(), cfgB)
	hsA, hsB := newHSScratch(), newHSScratch()
	fromA, fromB := &testkit.Endpoint{AddrPort: mustAP("192.0.2.1:51820")}, &testkit.Endpoint{AddrPort: mustAP("192.0.2.2:51820")}
	pr.b.hsMsgs <- hsMessage{} // one message waiting: B is under load

	// 1. A initiates; B, under load, answers with a cookie reply instead of a response.
	pr.a.initiate(hsA, pr.peerB, false)
	init, typ := lastSent(bindA)
	if typ != crypto.MessageInitiationType {
		t.Fatalf("A sent type %d", typ)
	}
	deliver(pr.b, hsB, init, fromA)
	cookie, typ := lastSent(bindB)
	if typ != crypto.MessageCookieReplyType {
		t.Fatalf("B under load answered type %d, want a cookie reply", typ)
	}
	if pr.b.Stats().Drops["rate_limited"] != 1 {
		t.Errorf("drops %v", pr.b.Stats().Drops)
	}
	// 2. A takes the cookie; its retransmit carries mac2 and B accepts it under load.
	deliver(pr.a, hsA, cookie, fromB)
	if d := pr.a.Stats().Drops; len(d) != 0 {
		t.Fatalf("A rejected the cookie reply: %v", d)
	}
	pr.a.initiate(hsA, pr.peerB, true)
	init, _ = lastSent(bindA)
	deliver(pr.b, hsB, init, fromA)
	resp, typ := lastSent(bindB)
	if typ != crypto.MessageResponseType {
		t.Fatalf("B answered type %d, want a response", typ)
	}
	// 3. A completes the handshake and, with nothing queued, sends a keepalive.
	deliver(pr.a, hsA, resp, fromB)
	if pr.peerB.Keypairs().Current() == nil || pr.peerB.Stats().Handshakes != 1 {
		t.Fatal("A has no session")
	}
	if _, typ := lastSent(bindA); typ != crypto.MessageTransportType || pr.a.Stats().KeepalivesSent != 1 {
		t.Errorf("A's last message type %d, keepalives %d", typ, pr.a.Stats().KeepalivesSent)
	}
	// Replaying the response is rejected and counted.
	deliver(pr.a, hsA, resp, fromB)
	if got := pr.a.Stats().Drops; got[peers.DropUnknownIndex.String()]+got[peers.DropHandshakeInvalid.String()] != 1 {
		t.Errorf("replayed response drops: %v", got)
	}
}

func TestTunnel_HandshakeUnknownPeer(t *testing.T) {
	pr, bindA, bindB := newLinkedPair(t, DefaultConfig(), DefaultConfig())
	pr.b.table.Remove(pr.idA.PublicKey()) // B no longer knows A
	hsA, hsB := newHSScratch(), newHSScratch()
	pr.a.initiate(hsA, pr.peerB, false)
	init, _ := lastSent(bindA)
	deliver(pr.b, hsB, init, &testkit.Endpoint{AddrPort: mustAP("192.0.2.1:51820")})
	if bindB.N != 0 || pr.b.Stats().Drops["handshake_invalid"] != 1 {
		t.Errorf("B answered an unknown peer (sent %d), drops %v", bindB.N, pr.b.Stats().Drops)
	}
}

func TestTunnel_CrossedHandshakes(t *testing.T) {
	cfg := DefaultConfig()
	pr, bindA, bindB := newLinkedPair(t, cfg, cfg)
	hsA, hsB := newHSScratch(), newHSScratch()
	fromA, fromB := &testkit.Endpoint{AddrPort: mustAP("192.0.2.1:51820")}, &testkit.Endpoint{AddrPort: mustAP("192.0.2.2:51820")}
	// Both initiate; each consumes the other's initiation and answers; both responses
	// are refused (each side's own initiation state was replaced).
	pr.a.initiate(hsA, pr.peerB, false)
	initA, _ := lastSent(bindA)
	pr.b.initiate(hsB, pr.peerA, false)
	initB, _ := lastSent(bindB)
	deliver(pr.b, hsB, initA, fromA)
	respB, _ := lastSent(bindB)
	deliver(pr.a, hsA, initB, fromB)
	respA, _ := lastSent(bindA)
	deliver(pr.a, hsA, respB, fromB)
	deliver(pr.b, hsB, respA, fromA)

	// The side with the lower key retries once the peer's flood guard allows.
	low, high, hsLow, hsHigh, bindLow, fromLow, fromHigh := pr.a, pr.b, hsA, hsB, bindA, fromA, fromB
	lowPeer, highPeer := pr.peerB, pr.peerA // the other side as each sees it
	ka, kb := pr.idA.PublicKey(), pr.idB.PublicKey()
	if bytes.Compare(ka[:], kb[:]) > 0 {
		low, high, hsLow, hsHigh, bindLow, fromLow, fromHigh = pr.b, pr.a, hsB, hsA, bindB, fromB, fromA
		lowPeer, highPeer = pr.peerA, pr.peerB
	}
	sent := bindLow.N
	deadline := time.Now().Add(2 * time.Second)
	for bindLow.N == sent && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		low.tick(hsLow, time.Now())
	}
	if bindLow.N == sent {
		t.Fatal("the lower key did not retry within 2s (RekeyTimeout is 5s)")
	}
	retry, _ := lastSent(bindLow)
	deliver(high, hsHigh, retry, fromLow)
	resp, _ := lastSent(map[bool]*testkit.CaptureBind{true: bindA, false: bindB}[high == pr.a])
	deliver(low, hsLow, resp, fromHigh)
	if lowPeer.Keypairs().Current() == nil {
		t.Fatal("no session on the lower side")
	}
	// Its keepalive confirms the session on the higher side, which ends that side's own
	// outstanding initiation instead of retransmitting it.
	ka2, typ := lastSent(bindLow)
	if typ != crypto.MessageTransportType {
		t.Fatalf("lower side sent type %d after the handshake, want a keepalive", typ)
	}
	rs := high.newRecvScratch()
	rs.sizes[0] = copy(rs.bufs[0], ka2)
	rs.eps[0] = fromLow
	high.receiveBatch(rs, 1)
	select {
	case r := <-high.hsReqs:
		if r.kind != reqFlush {
			t.Fatalf("request kind %d", r.kind)
		}
		high.sessionUp(r.peer)
	default:
		t.Fatal("confirmation did not ask for a flush")
	}
	inFlight := highPeer.Session().InFlight()
	if highPeer.Keypairs().Current() == nil || inFlight {
		t.Errorf("higher side: session %v, initiation still in flight %v", highPeer.Keypairs().Current() != nil, inFlight)
	}
}

// TestTunnel_HandshakeWrongKey: a peer configured with the wrong public key for us sends
// initiations whose mac1 is not ours. They are dropped before any Diffie-Hellman and counted
// as invalid_mac1, never as rate limiting (which would point the operator at load), and
// under load they get no cookie reply either.
func TestTunnel_HandshakeWrongKey(t *testing.T) {
	for _, underLoad := range []bool{false, true} {
		bindA, bindB := testkit.NewCaptureBind(8, bufSize), testkit.NewCaptureBind(8, bufSize)
		cfgB := DefaultConfig()
		cfgB.HandshakeQueueLen = 8
		pr := newPair(t, DefaultConfig(), cfgB, testkit.NewDevice(testkit.DeviceConfig{BatchSize: 8}), testkit.NewDevice(testkit.DeviceConfig{BatchSize: 8}), bindA, bindB)
		// A knows B's endpoint but holds another host's key for it.
		wrong := cryptotest.NewIdentity(t).PublicKey()
		peerWrong, err := pr.a.table.Upsert(peers.PeerConfig{PublicKey: wrong, Endpoint: mustAP("192.0.2.2:51820")})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pr.b.table.Upsert(peers.PeerConfig{PublicKey: pr.idA.PublicKey(), Endpoint: mustAP("192.0.2.1:51820")}); err != nil {
			t.Fatal(err)
		}
		if underLoad {
			pr.b.hsMsgs <- hsMessage{}
		}
		hsA, hsB := newHSScratch(), newHSScratch()
		pr.a.initiate(hsA, peerWrong, false)
		init, typ := lastSent(bindA)
		if typ != crypto.MessageInitiationType {
			t.Fatalf("A sent type %d", typ)
		}
		m := hsMessage{n: len(init), src: &testkit.Endpoint{AddrPort: mustAP("192.0.2.1:51820")}}
		copy(m.buf[:], init)
		pr.b.handleHandshake(hsB, &m)
		d := pr.b.Stats().Drops
		if d[peers.DropInvalidMAC1.String()] != 1 || d[peers.DropRateLimited.String()] != 0 || len(d) != 1 {
			t.Errorf("under load %v: drops %v, want only invalid_mac1: 1", underLoad, d)
		}
		if bindB.N != 0 {
			t.Errorf("under load %v: B answered a wrong-key initiation (%d messages)", underLoad, bindB.N)
		}
	}
}

// TestTunnel_UnderLoadHysteresis: once the handshake queue reaches an eighth of its capacity,
// the tunnel stays under load (cookie mode) for UnderLoadAfterTime after the queue drains, as
// wireguard-go does. A flooder that pauses for the worker to drain the queue gets a cookie
// reply for its next initiation, not a Diffie-Hellman; after the hold time load is off again.
func TestTunnel_UnderLoadHysteresis(t *testing.T) {
	cfgB := DefaultConfig()
	cfgB.HandshakeQueueLen = 8 // under load from 1 queued message
	pr, bindA, bindB := newLinkedPair(t, DefaultConfig(), cfgB)
	now := time.Unix(1_000_000, 0)
	pr.b.now = func() time.Time { return now }

	if pr.b.underLoad() {
		t.Fatal("under load with an empty queue, never loaded")
	}
	pr.b.hsMsgs <- hsMessage{}
	if !pr.b.underLoad() {
		t.Fatal("not under load with an eighth of the queue full")
	}
	<-pr.b.hsMsgs // the worker drained the queue
	now = now.Add(UnderLoadAfterTime - time.Millisecond)
	if !pr.b.underLoad() {
		t.Fatal("load dropped out the moment the queue drained")
	}

	// The flooder's next initiation, within the hold time, gets a cookie reply.
	hsA, hsB := newHSScratch(), newHSScratch()
	pr.a.initiate(hsA, pr.peerB, false)
	init, _ := lastSent(bindA)
	deliver(pr.b, hsB, init, &testkit.Endpoint{AddrPort: mustAP("192.0.2.1:51820")})
	if _, typ := lastSent(bindB); typ != crypto.MessageCookieReplyType {
		t.Fatalf("B answered type %d within the hold time, want a cookie reply", typ)
	}

	now = now.Add(time.Millisecond)
	if pr.b.underLoad() {
		t.Fatal("still under load UnderLoadAfterTime after the queue drained")
	}
	// Loaded again: the hold time restarts from the last time the queue was full.
	pr.b.hsMsgs <- hsMessage{}
	pr.b.underLoad()
	<-pr.b.hsMsgs
	now = now.Add(UnderLoadAfterTime / 2)
	if !pr.b.underLoad() {
		t.Fatal("not under load half the hold time after the second burst")
	}
}
