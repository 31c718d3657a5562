package crypto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
	"time"
)

func TestHandshake_Complete(t *testing.T) {
	for _, tc := range []struct {
		name string
		psk  PresharedKey
	}{
		{"no psk", PresharedKey{}},
		{"psk", PresharedKey{1, 2, 3, 4, 5, 6, 7, 8}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPair(t, tc.psk)
			kpA, kpB := p.handshake(t)
			if !kpA.IsInitiator() || kpB.IsInitiator() {
				t.Fatalf("IsInitiator: a %v b %v", kpA.IsInitiator(), kpB.IsInitiator())
			}
			if kpA.LocalIndex() != 0x11111111 || kpA.RemoteIndex() != 0x22222222 ||
				kpB.LocalIndex() != 0x22222222 || kpB.RemoteIndex() != 0x11111111 {
				t.Fatalf("indexes: a %x/%x b %x/%x", kpA.LocalIndex(), kpA.RemoteIndex(), kpB.LocalIndex(), kpB.RemoteIndex())
			}
			for i, dir := range []struct{ from, to *Keypair }{{kpA, kpB}, {kpB, kpA}, {kpA, kpB}} {
				want := []byte("hello from the other side")
				msg := sealed(t, dir.from, want)
				rcv, _, err := ParseTransportHeader(msg)
				if err != nil || rcv != dir.to.LocalIndex() {
					t.Fatalf("%d: header receiver %x err %v, want %x", i, rcv, err, dir.to.LocalIndex())
				}
				got, err := dir.to.Open(msg)
				if err != nil {
					t.Fatalf("%d: Open: %v", i, err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("%d: got %q want %q", i, got, want)
				}
			}
		})
	}
}

func TestHandshake_PSKMismatch(t *testing.T) {
	p := newPair(t, PresharedKey{1})
	p.hb = NewHandshake(p.b, p.a.PublicKey(), PresharedKey{2})
	init := make([]byte, MessageInitiationSize)
	resp := make([]byte, MessageResponseSize)
	if _, err := p.ha.CreateInitiation(init, 1); err != nil {
		t.Fatal(err)
	}
	h, err := p.b.ConsumeInitiation(init, p.lookupB)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.CreateResponse(resp, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := p.ha.ConsumeResponse(resp); !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("ConsumeResponse with other psk: %v, want ErrAuthFailed", err)
	}
}

func TestHandshake_EphemeralZeroed(t *testing.T) {
	p := newPair(t, PresharedKey{})
	p.handshake(t)
	for name, h := range map[string]*Handshake{"initiator": p.ha, "responder": p.hb} {
		if !isZero(h.localEphemeral[:]) || !isZero(h.chainKey[:]) || !isZero(h.hash[:]) || h.state != stateZeroed {
			t.Errorf("%s: handshake secrets not zeroed after completion", name)
		}
	}
}

// remac recomputes mac1 (and clears mac2) of a handshake message sent to
// dst, so that a tampered message reaches the AEAD checks.
func remac(msg []byte, dst PublicKey) {
	mac1, mac2, ok := handshakeMACOffsets(msg)
	if !ok {
		panic("not a handshake message")
	}
	k := labelKey(labelMAC1, dst)
	mac16(msg[mac1:mac2], k[:], msg[:mac1])
	clear(msg[mac2:])
}

func flip(msg []byte, i int) []byte {
	out := append([]byte(nil), msg...)
	out[i] ^= 0x40
	return out
}

// TestHandshake_Reject is the negative table: each case must fail with its
// named error, and nothing may panic.
func TestHandshake_Reject(t *testing.T) {
	src := netip.MustParseAddrPort("192.0.2.1:51820")
	tests := []struct {
		name string
		run  func(t *testing.T, p *pair) error
		want error
	}{
		{"initiation tampered ephemeral", func(t *testing.T, p *pair) error {
			init, _, _, _ := p.messages(t)
			_, err := p.b.ConsumeInitiation(flip(init, initEphemeral+3), p.lookupB)
			return err
		}, ErrInvalidMAC1},
		{"initiation tampered static, mac1 redone", func(t *testing.T, p *pair) error {
			init, _, _, _ := p.messages(t)
			m := flip(init, initStatic+5)
			remac(m, p.b.PublicKey())
			_, err := p.b.ConsumeInitiation(m, p.lookupB)
			return err
		}, ErrAuthFailed},
		{"initiation tampered timestamp, mac1 redone", func(t *testing.T, p *pair) error {
			p.clock.advance(time.Second)
			init := make([]byte, MessageInitiationSize)
			p.ha.CreateInitiation(init, 1)
			m := flip(init, initTimestamp+2)
			remac(m, p.b.PublicKey())
			_, err := p.b.ConsumeInitiation(m, p.lookupB)
			return err
		}, ErrAuthFailed},
		{"initiation tampered mac1", func(t *testing.T, p *pair) error {
			init := make([]byte, MessageInitiationSize)
			p.ha.CreateInitiation(init, 1)
			_, err := p.b.ConsumeInitiation(flip(init, initMAC1), p.lookupB)
			return err
		}, ErrInvalidMAC1},
		{"initiation wrong type", func(t *testing.T, p *pair) error {
			init := make([]byte, MessageInitiationSize)
			p.ha.CreateInitiation(init, 1)
			init[1] = 1
			_, err := p.b.ConsumeInitiation(init, p.lookupB)
			return err
		}, ErrWrongType},
		{"initiation short", func(t *testing.T, p *pair) error {
			init := make([]byte, MessageInitiationSize)
			p.ha.CreateInitiation(init, 1)
			_, err := p.b.ConsumeInitiation(init[:100], p.lookupB)
			return err
		}, ErrShortMessage},
		{"initiation unknown peer", func(t *testing.T, p *pair) error {
			init := make([]byte, MessageInitiationSize)
			p.ha.CreateInitiation(init, 1)
			_, err := p.b.ConsumeInitiation(init, func(PublicKey) *Handshake { return nil })
			return err
		}, ErrUnknownPeer},
		{"initiation replayed", func(t *testing.T, p *pair) error {
			init, _, _, _ := p.messages(t)
			p.clock.advance(time.Second) // not a flood: only the timestamp is old
			_, err := p.b.ConsumeInitiation(init, p.lookupB)
			return err
		}, ErrReplayedInitiation},
		{"initiation flood", func(t *testing.T, p *pair) error {
			p.messages(t)
			p.clock.advance(HandshakeInitiationRate / 2)
			// A newer timestamp from a later initiator clock, but too soon.
			init := make([]byte, MessageInitiationSize)
			p.a.now = func() time.Time { return p.clock.now().Add(time.Second) }
			p.ha.CreateInitiation(init, 1)
			_, err := p.b.ConsumeInitiation(init, p.lookupB)
			return err
		}, ErrInitiationFlood},
		{"wrong responder static key", func(t *testing.T, p *pair) error {
			// a believes it is talking to X but the message reaches b.
			x := NewIdentity(mustKey(t))
			x.Close()
			hx := NewHandshake(p.a, x.PublicKey(), PresharedKey{})
			init := make([]byte, MessageInitiationSize)
			hx.CreateInitiation(init, 1)
			_, err := p.b.ConsumeInitiation(init, p.lookupB)
			return err
		}, ErrInvalidMAC1},
		{"wrong responder static key, mac1 redone", func(t *testing.T, p *pair) error {
			x := NewIdentity(mustKey(t))
			x.Close()
			hx := NewHandshake(p.a, x.PublicKey(), PresharedKey{})
			init := make([]byte, MessageInitiationSize)
			hx.CreateInitiation(init, 1)
			remac(init, p.b.PublicKey())
			_, err := p.b.ConsumeInitiation(init, p.lookupB)
			return err
		}, ErrAuthFailed},
		{"response tampered ephemeral", func(t *testing.T, p *pair) error {
			resp := pendingResponse(t, p)
			_, err := p.ha.ConsumeResponse(flip(resp, respEphemeral+1))
			return err
		}, ErrInvalidMAC1},
		{"response tampered empty, mac1 redone", func(t *testing.T, p *pair) error {
			resp := flip(pendingResponse(t, p), respEmpty)
			remac(resp, p.a.PublicKey())
			_, err := p.ha.ConsumeResponse(resp)
			return err
		}, ErrAuthFailed},
		{"response tampered ephemeral, mac1 redone", func(t *testing.T, p *pair) error {
			resp := flip(pendingResponse(t, p), respEphemeral+7)
			remac(resp, p.a.PublicKey())
			_, err := p.ha.ConsumeResponse(resp)
			return err
		}, ErrAuthFailed},
		{"response wrong receiver", func(t *testing.T, p *pair) error {
			resp := pendingResponse(t, p)
			binary.LittleEndian.PutUint32(resp[respReceiver:], 0xdead)
			remac(resp, p.a.PublicKey())
			_, err := p.ha.ConsumeResponse(resp)
			return err
		}, ErrNoPendingHandshake},
		{"response replayed", func(t *testing.T, p *pair) error {
			_, resp, _, _ := p.messages(t)
			_, err := p.ha.ConsumeResponse(resp)
			return err
		}, ErrNoPendingHandshake},
		{"response without consumed initiation", func(t *testing.T, p *pair) error {
			_, _, err := p.hb.CreateResponse(make([]byte, MessageResponseSize), 1)
			return err
		}, ErrNoPendingHandshake},
		{"cookie reply tampered", func(t *testing.T, p *pair) error {
			init := make([]byte, MessageInitiationSize)
			p.ha.CreateInitiation(init, 1)
			reply := make([]byte, MessageCookieReplySize)
			p.b.CreateCookieReply(reply, init, src)
			return p.ha.ConsumeCookieReply(flip(reply, cookieSealed+3))
		}, ErrAuthFailed},
		{"cookie reply tampered nonce", func(t *testing.T, p *pair) error {
			init := make([]byte, MessageInitiationSize)
			p.ha.CreateInitiation(init, 1)
			reply := make([]byte, MessageCookieReplySize)
			p.b.CreateCookieReply(reply, init, src)
			return p.ha.ConsumeCookieReply(flip(reply, cookieNonce))
		}, ErrAuthFailed},
		{"cookie reply for another message", func(t *testing.T, p *pair) error {
			init := make([]byte, MessageInitiationSize)
			p.ha.CreateInitiation(init, 1)
			reply := make([]byte, MessageCookieReplySize)
			p.b.CreateCookieReply(reply, init, src)
			p.clock.advance(time.Second)
			p.ha.CreateInitiation(init, 2) // new mac1: the old reply is stale
			return p.ha.ConsumeCookieReply(reply)
		}, ErrAuthFailed},
		{"cookie reply before any message", func(t *testing.T, p *pair) error {
			return p.ha.ConsumeCookieReply(make([]byte, MessageCookieReplySize))
		}, ErrWrongType},
		{"cookie reply, nothing sent", func(t *testing.T, p *pair) error {
			reply := make([]byte, MessageCookieReplySize)
			reply[0] = MessageCookieReplyType
			return p.ha.ConsumeCookieReply(reply)
		}, ErrNoPendingHandshake},
		{"transport tampered payload", func(t *testing.T, p *pair) error {
			kpA, kpB := p.handshake(t)
			_, err := kpB.Open(flip(sealed(t, kpA, []byte("payload")), MessageTransportHeaderSize+2))
			return err
		}, ErrAuthFailed},
		{"transport tampered tag", func(t *testing.T, p *pair) error {
			kpA, kpB := p.handshake(t)
			m := sealed(t, kpA, []byte("payload"))
			_, err := kpB.Open(flip(m, len(m)-1))
			return err
		}, ErrAuthFailed},
		{"transport tampered counter", func(t *testing.T, p *pair) error {
			kpA, kpB := p.handshake(t)
			_, err := kpB.Open(flip(sealed(t, kpA, []byte("payload")), 8))
			return err
		}, ErrAuthFailed},
		{"transport wrong type", func(t *testing.T, p *pair) error {
			kpA, kpB := p.handshake(t)
			_, err := kpB.Open(flip(sealed(t, kpA, []byte("payload")), 0))
			return err
		}, ErrWrongType},
		{"transport short", func(t *testing.T, p *pair) error {
			_, kpB := p.handshake(t)
			_, err := kpB.Open(make([]byte, MessageTransportOverhead-1))
			return err
		}, ErrShortMessage},
		{"transport replayed", func(t *testing.T, p *pair) error {
			kpA, kpB := p.handshake(t)
			m := sealed(t, kpA, []byte("payload"))
			if _, err := kpB.Open(append([]byte(nil), m...)); err != nil {
				t.Fatalf("first Open: %v", err)
			}
			_, err := kpB.Open(m)
			return err
		}, ErrReplayed},
		{"transport counter behind the window", func(t *testing.T, p *pair) error {
			kpA, kpB := p.handshake(t)
			old := sealed(t, kpA, []byte("counter 0"))
			kpA.sendCounter.Store(10000)
			if _, err := kpB.Open(sealed(t, kpA, []byte("counter 10000"))); err != nil {
				t.Fatalf("Open: %v", err)
			}
			_, err := kpB.Open(old)
			return err
		}, ErrReplayed},
		{"keypair expired by age, seal", func(t *testing.T, p *pair) error {
			kpA, _ := p.handshake(t)
			p.clock.advance(RejectAfterTime)
			_, err := kpA.Seal(make([]byte, 16, 64), 0)
			return err
		}, ErrKeypairExpired},
		{"keypair expired by age, open", func(t *testing.T, p *pair) error {
			kpA, kpB := p.handshake(t)
			m := sealed(t, kpA, []byte("late"))
			p.clock.advance(RejectAfterTime)
			_, err := kpB.Open(m)
			return err
		}, ErrKeypairExpired},
		{"keypair expired by counter", func(t *testing.T, p *pair) error {
			kpA, _ := p.handshake(t)
			kpA.sendCounter.Store(RejectAfterMessages)
			_, err := kpA.Seal(make([]byte, 16, 64), 0)
			return err
		}, ErrKeypairExpired},
		{"seal buffer too small", func(t *testing.T, p *pair) error {
			kpA, _ := p.handshake(t)
			_, err := kpA.Seal(make([]byte, 20, 35), 4)
			return err
		}, ErrShortMessage},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newPair(t, PresharedKey{})
			err := tc.run(t, p)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

// pendingResponse has b answer a fresh initiation of a, leaving a waiting.
func pendingResponse(t testing.TB, p *pair) []byte {
	t.Helper()
	p.clock.advance(time.Second)
	init := make([]byte, MessageInitiationSize)
	if _, err := p.ha.CreateInitiation(init, 7); err != nil {
		t.Fatal(err)
	}
	h, err := p.b.ConsumeInitiation(init, p.lookupB)
	if err != nil {
		t.Fatal(err)
	}
	resp := make([]byte, MessageResponseSize)
	if _, _, err := h.CreateResponse(resp, 8); err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestHandshake_ResponseRetry(t *testing.T) {
	// A rejected (tampered) response does not spoil the pending handshake.
	p := newPair(t, PresharedKey{})
	resp := pendingResponse(t, p)
	bad := flip(resp, respEmpty)
	remac(bad, p.a.PublicKey())
	if _, err := p.ha.ConsumeResponse(bad); !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("tampered: %v", err)
	}
	if _, err := p.ha.ConsumeResponse(resp); err != nil {
		t.Fatalf("genuine after tampered: %v", err)
	}
}

// TestHandshake_Concurrent races both sides initiating at once; every call
// either succeeds or fails with a named error, and -race stays quiet.
func TestHandshake_Concurrent(t *testing.T) {
	p := newPair(t, PresharedKey{})
	p.clock.step = 30 * time.Millisecond
	lookupA := func(k PublicKey) *Handshake {
		if k == p.b.PublicKey() {
			return p.ha
		}
		return nil
	}
	done := make(chan error, 2)
	run := func(from, to *Identity, hf *Handshake, lookup func(PublicKey) *Handshake) {
		init := make([]byte, MessageInitiationSize)
		resp := make([]byte, MessageResponseSize)
		for i := range 50 {
			if _, err := hf.CreateInitiation(init, uint32(i)); err != nil {
				done <- err
				return
			}
			h, err := to.ConsumeInitiation(init, lookup)
			if err != nil {
				if !isNamed(err) {
					done <- err
					return
				}
				continue
			}
			if _, _, err := h.CreateResponse(resp, uint32(i)); err != nil && !errors.Is(err, ErrNoPendingHandshake) {
				done <- err
				return
			}
			if _, err := hf.ConsumeResponse(resp); err != nil && !errors.Is(err, ErrNoPendingHandshake) && !errors.Is(err, ErrAuthFailed) {
				done <- err
				return
			}
		}
		done <- nil
	}
	go run(p.a, p.b, p.ha, p.lookupB)
	go run(p.b, p.a, p.hb, lookupA)
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}
