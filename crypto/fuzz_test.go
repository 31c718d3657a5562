package crypto

import (
	"bytes"
	"net/netip"
	"testing"
	"time"
)

// Fuzz targets for every parser. Each is seeded with valid messages made in
// the test. With fixMAC set, a handshake input of the right size gets a
// correct mac1 first, so the fuzzer reaches the AEAD and state checks behind
// it. The property is: no panic, and an error is always one of ours.

func fuzzPair(f *testing.F) *pair {
	p := newPair(f, PresharedKey{})
	p.clock.step = time.Second // every handshake is new: no flood, no replay
	return p
}

func FuzzConsumeInitiation(f *testing.F) {
	p := fuzzPair(f)
	for i := range 3 {
		init := make([]byte, MessageInitiationSize)
		if _, err := p.ha.CreateInitiation(init, uint32(i)); err != nil {
			f.Fatal(err)
		}
		f.Add(init, false)
		f.Add(init, true)
	}
	f.Add([]byte{1, 0, 0, 0}, true)
	f.Fuzz(func(t *testing.T, msg []byte, fixMAC bool) {
		msg = bytes.Clone(msg)
		if _, _, ok := handshakeMACOffsets(msg); ok && fixMAC {
			remac(msg, p.b.PublicKey())
		}
		h, err := p.b.ConsumeInitiation(msg, p.lookupB)
		if (h == nil) == (err == nil) {
			t.Fatalf("handshake %v with error %v", h, err)
		}
		if err != nil {
			checkNamed(t, err)
			return
		}
		if _, _, err := h.CreateResponse(make([]byte, MessageResponseSize), 9); err != nil {
			t.Fatalf("CreateResponse after accepted initiation: %v", err)
		}
	})
}

func FuzzConsumeResponse(f *testing.F) {
	p := fuzzPair(f)
	resp := pendingResponse(f, p)
	// Snapshot a's pending state so every input meets the same initiation.
	p.ha.mu.Lock()
	snap := *pendingSnapshot(p.ha)
	p.ha.mu.Unlock()
	if _, err := p.ha.ConsumeResponse(bytes.Clone(resp)); err != nil {
		f.Fatalf("seed response rejected: %v", err)
	}
	f.Add(resp, false)
	f.Add(resp, true)
	f.Add(resp[:50], true)
	f.Fuzz(func(t *testing.T, msg []byte, fixMAC bool) {
		msg = bytes.Clone(msg)
		if _, _, ok := handshakeMACOffsets(msg); ok && fixMAC {
			remac(msg, p.a.PublicKey())
		}
		p.ha.mu.Lock()
		snap.restore(p.ha)
		p.ha.mu.Unlock()
		kp, err := p.ha.ConsumeResponse(msg)
		if (kp == nil) == (err == nil) {
			t.Fatalf("keypair %v with error %v", kp, err)
		}
		if err != nil {
			checkNamed(t, err)
		}
	})
}

func FuzzConsumeCookieReply(f *testing.F) {
	p := fuzzPair(f)
	src := netip.MustParseAddrPort("192.0.2.1:1")
	init := make([]byte, MessageInitiationSize)
	p.ha.CreateInitiation(init, 1)
	reply := make([]byte, MessageCookieReplySize)
	if _, err := p.b.CreateCookieReply(reply, init, src); err != nil {
		f.Fatal(err)
	}
	f.Add(reply)
	f.Add(reply[:10])
	f.Fuzz(func(t *testing.T, msg []byte) {
		if err := p.ha.ConsumeCookieReply(msg); err != nil {
			checkNamed(t, err)
		}
	})
}

func FuzzOpen(f *testing.F) {
	p := fuzzPair(f)
	kpA, kpB := p.handshake(f)
	for _, payload := range [][]byte{nil, []byte("x"), bytes.Repeat([]byte{0xab}, 200)} {
		f.Add(sealed(f, kpA, payload))
	}
	f.Add([]byte{4, 0, 0, 0})
	f.Fuzz(func(t *testing.T, msg []byte) {
		msg = bytes.Clone(msg)
		kpB.replayMu.Lock()
		kpB.replay.Reset()
		kpB.replayMu.Unlock()
		pt, err := kpB.Open(msg)
		if err != nil {
			checkNamed(t, err)
			return
		}
		if len(pt) != len(msg)-MessageTransportOverhead {
			t.Fatalf("plaintext %d bytes of a %d-byte message", len(pt), len(msg))
		}
	})
}

func FuzzParseTransportHeader(f *testing.F) {
	p := fuzzPair(f)
	kpA, _ := p.handshake(f)
	f.Add(sealed(f, kpA, []byte("seed")))
	f.Add(make([]byte, MessageTransportOverhead))
	f.Add([]byte{4})
	f.Fuzz(func(t *testing.T, msg []byte) {
		rcv, ctr, err := ParseTransportHeader(msg)
		if err != nil {
			checkNamed(t, err)
			return
		}
		// parse → marshal → parse is stable.
		out := bytes.Clone(msg)
		putTransportHeader(out, rcv, ctr)
		if !bytes.Equal(out, msg) {
			t.Fatalf("re-marshalled header differs: %x vs %x", out[:16], msg[:16])
		}
		rcv2, ctr2, err := ParseTransportHeader(out)
		if err != nil || rcv2 != rcv || ctr2 != ctr {
			t.Fatalf("second parse: %x %d %v", rcv2, ctr2, err)
		}
	})
}

var namedErrors = []error{
	ErrShortMessage, ErrWrongType, ErrInvalidMAC1, ErrInvalidMAC2, ErrAuthFailed,
	ErrUnknownPeer, ErrReplayedInitiation, ErrInitiationFlood, ErrReplayed,
	ErrKeypairExpired, ErrNoPendingHandshake, ErrInvalidKey,
}

func isNamed(err error) bool {
	for _, e := range namedErrors {
		if err == e {
			return true
		}
	}
	return false
}

func checkNamed(t *testing.T, err error) {
	t.Helper()
	if !isNamed(err) {
		t.Fatalf("error %v is not one of the named sentinels", err)
	}
}

// handshakeSnapshot is the pending-initiation state of a Handshake.
type handshakeSnapshot struct {
	state          handshakeState
	hash, chainKey [32]byte
	localEphemeral PrivateKey
	localIndex     uint32
}

func pendingSnapshot(h *Handshake) *handshakeSnapshot {
	return &handshakeSnapshot{h.state, h.hash, h.chainKey, h.localEphemeral, h.localIndex}
}

func (s *handshakeSnapshot) restore(h *Handshake) {
	h.state, h.hash, h.chainKey, h.localEphemeral, h.localIndex = s.state, s.hash, s.chainKey, s.localEphemeral, s.localIndex
}
