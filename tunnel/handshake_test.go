package tunnel

import (
	"encoding/binary"
	"testing"

	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/peers"
)

func newHSScratch() *hsScratch {
	return &hsScratch{out: make([]byte, 256), single: make([][]byte, 1)}
}

// lastSent returns the last message B's capture bind sent, and its type.
func lastSent(b *captureBind) ([]byte, uint32) {
	m := b.slots[b.n-1]
	return m, binary.LittleEndian.Uint32(m)
}

func TestTunnel_HandshakeCookieUnderLoad(t *testing.T) {
	bindA, bindB := newCaptureBind(8), newCaptureBind(8)
	cfgB := DefaultConfig()
	cfgB.HandshakeQueueLen = 8 // under load from 1 queued message
	pr := newPair(t, DefaultConfig(), cfgB, newFakeDev(8, false), newFakeDev(8, false), bindA, bindB)
	pr.link(t, mustAP("192.0.2.1:51820"), mustAP("192.0.2.2:51820"))
	hsA, hsB := newHSScratch(), newHSScratch()
	fromA, fromB := &fakeEP{mustAP("192.0.2.1:51820")}, &fakeEP{mustAP("192.0.2.2:51820")}
	pr.b.hsMsgs <- hsMessage{} // one message waiting: B is under load

	deliver := func(to *Tunnel, hs *hsScratch, msg []byte, from *fakeEP) {
		m := hsMessage{n: len(msg), src: from}
		copy(m.buf[:], msg)
		to.handleHandshake(hs, &m)
	}

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
	bindA, bindB := newCaptureBind(8), newCaptureBind(8)
	pr := newPair(t, DefaultConfig(), DefaultConfig(), newFakeDev(8, false), newFakeDev(8, false), bindA, bindB)
	pr.link(t, mustAP("192.0.2.1:51820"), mustAP("192.0.2.2:51820"))
	pr.b.table.Remove(pr.idA.PublicKey()) // B no longer knows A
	hsA, hsB := newHSScratch(), newHSScratch()
	pr.a.initiate(hsA, pr.peerB, false)
	init, _ := lastSent(bindA)
	m := hsMessage{n: len(init), src: &fakeEP{mustAP("192.0.2.1:51820")}}
	copy(m.buf[:], init)
	pr.b.handleHandshake(hsB, &m)
	if bindB.n != 0 || pr.b.Stats().Drops["handshake_invalid"] != 1 {
		t.Errorf("B answered an unknown peer (sent %d), drops %v", bindB.n, pr.b.Stats().Drops)
	}
}
