package crypto

import (
	"strconv"
	"testing"
	"time"
)

var benchSizes = []int{64, 1420, 65535}

// BenchmarkHandshake measures one complete handshake: initiation, its
// consumption, the response and its consumption (both sides' work).
func BenchmarkHandshake(b *testing.B) {
	p := newPair(b, PresharedKey{})
	p.clock.step = time.Second
	init := make([]byte, MessageInitiationSize)
	resp := make([]byte, MessageResponseSize)
	b.ReportAllocs()
	start := time.Now()
	for i := 0; b.Loop(); i++ {
		if _, err := p.ha.CreateInitiation(init, uint32(i)); err != nil {
			b.Fatal(err)
		}
		h, err := p.b.ConsumeInitiation(init, p.lookupB)
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := h.CreateResponse(resp, uint32(i)); err != nil {
			b.Fatal(err)
		}
		if _, err := p.ha.ConsumeResponse(resp); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "handshakes/s")
}

// benchKeypairs returns a session's two keypairs on the real clock.
func benchKeypairs(b *testing.B) (*Keypair, *Keypair) {
	p := newPair(b, PresharedKey{})
	kpA, kpB := p.handshake(b)
	kpA.now, kpB.now = nil, nil // the real clock, as in production
	kpA.created, kpB.created = time.Now(), time.Now()
	return kpA, kpB
}

func BenchmarkSeal(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(strconv.Itoa(size), func(b *testing.B) {
			kpA, _ := benchKeypairs(b)
			buf := make([]byte, MessageTransportHeaderSize+size, MessageTransportOverhead+size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := kpA.Seal(buf, size); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkOpen opens the same message again and again: each iteration
// restores the ciphertext (Open decrypts in place) with a copy and rewinds
// the replay window, so the figure includes one memcpy of the message.
func BenchmarkOpen(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(strconv.Itoa(size), func(b *testing.B) {
			kpA, kpB := benchKeypairs(b)
			buf := make([]byte, MessageTransportHeaderSize+size, MessageTransportOverhead+size)
			n, err := kpA.Seal(buf, size)
			if err != nil {
				b.Fatal(err)
			}
			orig := buf[:n]
			msg := make([]byte, n)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				copy(msg, orig)
				kpB.replay.Reset()
				if _, err := kpB.Open(msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSealAt is BenchmarkSeal with the clock read once outside the loop, as the
// datapath does once per batch: the difference is the per-packet clock read saved.
func BenchmarkSealAt(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(strconv.Itoa(size), func(b *testing.B) {
			kpA, _ := benchKeypairs(b)
			buf := make([]byte, MessageTransportHeaderSize+size, MessageTransportOverhead+size)
			now := time.Now()
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := kpA.SealAt(buf, size, now); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
