package crypto

import (
	"sync"
	"testing"
	"time"
)

// fakeClock is an injectable clock; step, when set, advances it on every
// read so repeated handshakes are neither floods nor replays.
type fakeClock struct {
	mu   sync.Mutex
	t    time.Time
	step time.Duration
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(c.step)
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// pair is two identities that know each other: ha is a's handshake with b,
// hb is b's handshake with a.
type pair struct {
	clock  *fakeClock
	a, b   *Identity
	ha, hb *Handshake
}

func mustKey(tb testing.TB) PrivateKey {
	tb.Helper()
	k, err := GeneratePrivateKey()
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func newPair(tb testing.TB, psk PresharedKey) *pair {
	tb.Helper()
	p := &pair{clock: newFakeClock()}
	p.a = NewIdentity(mustKey(tb))
	p.b = NewIdentity(mustKey(tb))
	p.a.now, p.b.now = p.clock.now, p.clock.now
	tb.Cleanup(p.a.Close)
	tb.Cleanup(p.b.Close)
	p.ha = NewHandshake(p.a, p.b.PublicKey(), psk)
	p.hb = NewHandshake(p.b, p.a.PublicKey(), psk)
	return p
}

// lookupB is b's peer lookup: it only knows a.
func (p *pair) lookupB(k PublicKey) *Handshake {
	if k == p.a.PublicKey() {
		return p.hb
	}
	return nil
}

// messages runs one handshake a→b and returns its wire messages and keypairs.
func (p *pair) messages(tb testing.TB) (init, resp []byte, kpA, kpB *Keypair) {
	tb.Helper()
	init = make([]byte, MessageInitiationSize)
	resp = make([]byte, MessageResponseSize)
	if _, err := p.ha.CreateInitiation(init, 0x11111111); err != nil {
		tb.Fatalf("CreateInitiation: %v", err)
	}
	h, err := p.b.ConsumeInitiation(append([]byte(nil), init...), p.lookupB)
	if err != nil {
		tb.Fatalf("ConsumeInitiation: %v", err)
	}
	_, kpB, err = h.CreateResponse(resp, 0x22222222)
	if err != nil {
		tb.Fatalf("CreateResponse: %v", err)
	}
	kpA, err = p.ha.ConsumeResponse(append([]byte(nil), resp...))
	if err != nil {
		tb.Fatalf("ConsumeResponse: %v", err)
	}
	return init, resp, kpA, kpB
}

func (p *pair) handshake(tb testing.TB) (kpA, kpB *Keypair) {
	tb.Helper()
	p.clock.advance(time.Second) // past the flood limit and timestamp granularity
	_, _, kpA, kpB = p.messages(tb)
	return kpA, kpB
}

// sealed returns a transport message carrying payload sealed by kp.
func sealed(tb testing.TB, kp *Keypair, payload []byte) []byte {
	tb.Helper()
	buf := make([]byte, MessageTransportHeaderSize+len(payload), MessageTransportOverhead+len(payload))
	copy(buf[MessageTransportHeaderSize:], payload)
	n, err := kp.Seal(buf, len(payload))
	if err != nil {
		tb.Fatalf("Seal: %v", err)
	}
	return buf[:n]
}
