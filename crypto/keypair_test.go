package crypto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"sync"
	"testing"
	"time"
)

func TestKeypair_SealOpenNoAlloc(t *testing.T) {
	p := newPair(t, PresharedKey{})
	kpA, kpB := p.handshake(t)
	for _, size := range []int{0, 64, 1420, 65535} {
		buf := make([]byte, MessageTransportHeaderSize+size, MessageTransportOverhead+size)
		msg := make([]byte, MessageTransportOverhead+size)
		seal := testing.AllocsPerRun(100, func() {
			if _, err := kpA.Seal(buf, size); err != nil {
				t.Fatal(err)
			}
		})
		if seal != 0 {
			t.Errorf("Seal(%d): %v allocs per call, want 0", size, seal)
		}
		open := testing.AllocsPerRun(100, func() {
			n, _ := kpA.Seal(buf, size)
			copy(msg, buf[:n])
			if _, err := kpB.Open(msg); err != nil {
				t.Fatal(err)
			}
		})
		if open != 0 {
			t.Errorf("Seal+Open(%d): %v allocs per call, want 0", size, open)
		}
	}
}

func TestKeypair_OpenOutOfOrder(t *testing.T) {
	p := newPair(t, PresharedKey{})
	kpA, kpB := p.handshake(t)
	var msgs [][]byte
	for i := range 100 {
		msgs = append(msgs, sealed(t, kpA, []byte{byte(i)}))
	}
	// Reverse order within the window is fine; each exactly once.
	for i := len(msgs) - 1; i >= 0; i-- {
		got, err := kpB.Open(bytes.Clone(msgs[i]))
		if err != nil || len(got) != 1 || got[0] != byte(i) {
			t.Fatalf("message %d: %x %v", i, got, err)
		}
	}
	for i := range msgs {
		if _, err := kpB.Open(msgs[i]); !errors.Is(err, ErrReplayed) {
			t.Fatalf("replay of %d: %v", i, err)
		}
	}
}

func TestKeypair_HeaderAndInPlace(t *testing.T) {
	p := newPair(t, PresharedKey{})
	kpA, kpB := p.handshake(t)
	payload := []byte("in place")
	buf := make([]byte, 64)
	copy(buf[16:], payload)
	n, err := kpA.Seal(buf, len(payload))
	if err != nil || n != MessageTransportOverhead+len(payload) {
		t.Fatalf("Seal: %d %v", n, err)
	}
	rcv, counter, err := ParseTransportHeader(buf[:n])
	if err != nil || rcv != kpB.LocalIndex() || counter != 0 {
		t.Fatalf("header: %x %d %v", rcv, counter, err)
	}
	pt, err := kpB.Open(buf[:n])
	if err != nil {
		t.Fatal(err)
	}
	if &pt[0] != &buf[16] || !bytes.Equal(pt, payload) {
		t.Fatal("Open did not return the plaintext in place")
	}
	if rcv2, _, _ := ParseTransportHeader(buf[:n]); rcv2 != rcv {
		t.Fatal("Open did not restore the receiver field")
	}
}

func TestKeypair_NeedsRekey(t *testing.T) {
	p := newPair(t, PresharedKey{})
	kpA, kpB := p.handshake(t)
	now := kpA.Created()
	tests := []struct {
		name    string
		kp      *Keypair
		counter uint64
		age     time.Duration
		want    bool
	}{
		{"fresh initiator", kpA, 0, 0, false},
		{"initiator at RekeyAfterTime", kpA, 0, RekeyAfterTime, false},
		{"initiator past RekeyAfterTime", kpA, 0, RekeyAfterTime + time.Second, true},
		{"responder past RekeyAfterTime", kpB, 0, RekeyAfterTime + time.Second, false},
		{"responder at RekeyAfterMessages", kpB, RekeyAfterMessages, 0, false},
		{"responder past RekeyAfterMessages", kpB, RekeyAfterMessages + 1, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.kp.sendCounter.Store(tc.counter)
			if got := tc.kp.NeedsRekey(now.Add(tc.age)); got != tc.want {
				t.Fatalf("NeedsRekey = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestKeypair_ConcurrentSealOpen(t *testing.T) {
	p := newPair(t, PresharedKey{})
	kpA, kpB := p.handshake(t)
	const workers, per = 4, 200
	msgs := make(chan []byte, workers*per)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range per {
				msgs <- sealed(t, kpA, []byte("concurrent"))
			}
		})
	}
	wg.Wait()
	close(msgs)
	var opened sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for range workers {
		opened.Go(func() {
			for m := range msgs {
				if _, err := kpB.Open(m); err == nil {
					mu.Lock()
					ok++
					mu.Unlock()
				}
			}
		})
	}
	opened.Wait()
	if ok != workers*per {
		t.Fatalf("opened %d of %d", ok, workers*per)
	}
}

func TestKeypair_Zero(t *testing.T) {
	var kp Keypair
	if _, err := kp.Seal(make([]byte, 16, 64), 0); !errors.Is(err, ErrKeypairExpired) {
		t.Fatalf("zero Seal: %v", err)
	}
	if _, err := kp.Open(make([]byte, 32)); !errors.Is(err, ErrWrongType) {
		t.Fatalf("zero Open of type 0: %v", err)
	}
	msg := make([]byte, 32)
	msg[0] = MessageTransportType
	if _, err := kp.Open(msg); !errors.Is(err, ErrKeypairExpired) {
		t.Fatalf("zero Open: %v", err)
	}
	if kp.NeedsRekey(time.Now()) {
		t.Fatal("zero keypair needs rekey")
	}
}

// TestKeypair_ExpiryRealClock: with no test clock (as in production) Seal
// and Open take the monotonic time.Since path, and it still refuses a
// keypair RejectAfterTime old.
func TestKeypair_ExpiryRealClock(t *testing.T) {
	p := newPair(t, PresharedKey{})
	p.a.now, p.b.now = nil, nil
	_, _, kpA, kpB := p.messages(t)
	if kpA.now != nil || kpB.now != nil {
		t.Fatal("keypairs of a real-clock identity carry a test clock")
	}
	age := func(d time.Duration) { // Add keeps created's monotonic reading
		kpA.created, kpB.created = kpA.created.Add(-d), kpB.created.Add(-d)
	}
	age(RejectAfterTime - time.Minute)
	msg := sealed(t, kpA, []byte("just in time"))
	if _, err := kpB.Open(bytes.Clone(msg)); err != nil {
		t.Fatalf("Open a minute before RejectAfterTime: %v", err)
	}
	late := sealed(t, kpA, []byte("late"))
	age(time.Minute)
	if _, err := kpA.Seal(make([]byte, 16, 64), 0); !errors.Is(err, ErrKeypairExpired) {
		t.Fatalf("Seal at RejectAfterTime: %v, want ErrKeypairExpired", err)
	}
	if _, err := kpB.Open(late); !errors.Is(err, ErrKeypairExpired) {
		t.Fatalf("Open at RejectAfterTime: %v, want ErrKeypairExpired", err)
	}
}

// TestKeypair_SealAtOpenAt: the batch variants judge age at the given now, exactly at
// RejectAfterTime as Seal and Open do, keep the replay window and allocate nothing; and
// Identity.Present gives the test clock's reading when one is set, the wall reading if not.
func TestKeypair_SealAtOpenAt(t *testing.T) {
	p := newPair(t, PresharedKey{})
	kpA, kpB := p.handshake(t)
	now := p.a.Present(time.Time{})
	if !now.Equal(p.clock.now()) {
		t.Fatalf("Present on a test clock = %v, want the clock's %v", now, p.clock.now())
	}
	buf := make([]byte, MessageTransportHeaderSize+5, MessageTransportOverhead+5)
	copy(buf[MessageTransportHeaderSize:], "hello")
	n, err := kpA.SealAt(buf, 5, now)
	if err != nil {
		t.Fatal(err)
	}
	msg := bytes.Clone(buf[:n])
	if pt, err := kpB.OpenAt(bytes.Clone(msg), now); err != nil || string(pt) != "hello" {
		t.Fatalf("OpenAt: %q %v", pt, err)
	}
	if _, err := kpB.OpenAt(bytes.Clone(msg), now); !errors.Is(err, ErrReplayed) {
		t.Fatalf("OpenAt replay: %v, want ErrReplayed", err)
	}
	if _, err := kpB.Open(msg); !errors.Is(err, ErrReplayed) {
		t.Fatalf("Open after OpenAt of the same message: %v, want ErrReplayed", err)
	}
	late := sealed(t, kpA, []byte("late"))
	just := kpA.Created().Add(RejectAfterTime - time.Nanosecond)
	if _, err := kpA.SealAt(make([]byte, 16, 64), 0, just); err != nil {
		t.Fatalf("SealAt a nanosecond before RejectAfterTime: %v", err)
	}
	at := kpA.Created().Add(RejectAfterTime)
	if _, err := kpA.SealAt(make([]byte, 16, 64), 0, at); !errors.Is(err, ErrKeypairExpired) {
		t.Fatalf("SealAt at RejectAfterTime: %v, want ErrKeypairExpired", err)
	}
	if _, err := kpB.OpenAt(bytes.Clone(late), kpB.Created().Add(RejectAfterTime)); !errors.Is(err, ErrKeypairExpired) {
		t.Fatalf("OpenAt at RejectAfterTime: %v, want ErrKeypairExpired", err)
	}
	if _, err := kpB.OpenAt(late[:10], now); !errors.Is(err, ErrShortMessage) {
		t.Fatalf("OpenAt short: %v", err)
	}
	if _, err := kpA.SealAt(make([]byte, 20, 35), 4, now); !errors.Is(err, ErrShortMessage) {
		t.Fatalf("SealAt short: %v", err)
	}
	if allocs := testing.AllocsPerRun(100, func() {
		m, _ := kpA.SealAt(buf, 5, now)
		copy(msg, buf[:m])
		if _, err := kpB.OpenAt(msg, now); err != nil {
			t.Fatal(err)
		}
	}); allocs != 0 {
		t.Errorf("SealAt+OpenAt: %v allocs, want 0", allocs)
	}
	p.a.now = nil
	wall := time.Unix(1234, 0)
	if got := p.a.Present(wall); !got.Equal(wall) {
		t.Fatalf("Present on the real clock = %v, want the caller's reading %v", got, wall)
	}
}

// TestKeypair_ReserveFinishParallel: messages reserved in order and finished concurrently,
// in reverse order, carry the counters of their reservation and open as SealAt's would;
// Finish allocates nothing.
func TestKeypair_ReserveFinishParallel(t *testing.T) {
	p := newPair(t, PresharedKey{})
	kpA, kpB := p.handshake(t)
	now := p.a.Present(time.Time{})
	const n = 64
	msgs := make([][]byte, n)
	for i := range msgs {
		b := make([]byte, MessageTransportHeaderSize+100, MessageTransportOverhead+100)
		b[MessageTransportHeaderSize] = byte(i)
		m, err := kpA.ReserveAt(b, 100, now)
		if err != nil {
			t.Fatal(err)
		}
		msgs[i] = b[:m]
	}
	var wg sync.WaitGroup
	for i := n - 1; i >= 0; i-- {
		wg.Go(func() { kpA.Finish(msgs[i]) })
	}
	wg.Wait()
	for i, m := range msgs {
		if c := binary.LittleEndian.Uint64(m[8:]); c != uint64(i) {
			t.Fatalf("message %d has counter %d", i, c)
		}
		pt, err := kpB.Open(m)
		if err != nil || pt[0] != byte(i) {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	b := make([]byte, MessageTransportHeaderSize+1400, MessageTransportOverhead+1400)
	if allocs := testing.AllocsPerRun(100, func() {
		m, _ := kpA.ReserveAt(b, 1400, now)
		kpA.Finish(b[:m])
	}); allocs != 0 {
		t.Errorf("ReserveAt+Finish: %v allocs", allocs)
	}
	if _, err := kpA.ReserveAt(make([]byte, 20, 35), 4, now); !errors.Is(err, ErrShortMessage) {
		t.Fatalf("ReserveAt short: %v", err)
	}
	if _, err := kpA.ReserveAt(b, 0, kpA.Created().Add(RejectAfterTime)); !errors.Is(err, ErrKeypairExpired) {
		t.Fatalf("ReserveAt at RejectAfterTime: %v", err)
	}
}

// TestKeypair_DecryptAccept: DecryptAt authenticates without moving the replay window
// (a replay decrypts but Accept refuses it once the original was accepted); a forged
// message never authenticates, so its counter (even one past the limit) never reaches
// Accept; Accept refuses a counter past RejectAfterMessages.
func TestKeypair_DecryptAccept(t *testing.T) {
	p := newPair(t, PresharedKey{})
	kpA, kpB := p.handshake(t)
	now := p.a.Present(time.Time{})
	msg := sealed(t, kpA, []byte("hello"))
	for range 2 { // not accepted yet: the window has not moved
		pt, err := kpB.DecryptAt(bytes.Clone(msg), now)
		if err != nil || string(pt) != "hello" {
			t.Fatalf("DecryptAt: %q %v", pt, err)
		}
	}
	if err := kpB.Accept(msg); err != nil {
		t.Fatalf("Accept: %v", err)
	}
	if _, err := kpB.DecryptAt(bytes.Clone(msg), now); err != nil {
		t.Fatalf("DecryptAt of an accepted message: %v (authentication alone)", err)
	}
	if err := kpB.Accept(msg); !errors.Is(err, ErrReplayed) {
		t.Fatalf("Accept of a replay: %v", err)
	}
	forged := bytes.Clone(sealed(t, kpA, []byte("x")))
	binary.LittleEndian.PutUint64(forged[8:], RejectAfterMessages+5)
	if _, err := kpB.DecryptAt(forged, now); !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("DecryptAt of a forged counter: %v", err)
	}
	if err := kpB.Accept(forged); !errors.Is(err, ErrKeypairExpired) {
		t.Fatalf("Accept past the limit: %v", err)
	}
	if _, err := kpB.DecryptAt(msg[:20], now); !errors.Is(err, ErrShortMessage) {
		t.Fatalf("DecryptAt short: %v", err)
	}
	late := sealed(t, kpA, []byte("late"))
	if _, err := kpB.DecryptAt(late, kpB.Created().Add(RejectAfterTime)); !errors.Is(err, ErrKeypairExpired) {
		t.Fatalf("DecryptAt at RejectAfterTime: %v", err)
	}
}
