package udp

import (
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/conn"
)

// benchRoundTrip sends batches of batch datagrams of size bytes from one bind to another
// over IPv4 loopback and receives each batch before the next (lockstep, so no datagram is
// dropped for a full socket buffer). One op is one batch.
func benchRoundTrip(b *testing.B, newBind func() conn.Bind, batch, size int) {
	tx, rx := newBind(), newBind()
	openT(b, tx)
	fns, port := openT(b, rx)
	dst, err := tx.ParseEndpoint(netip.AddrPortFrom(loopback(false), port).String())
	if err != nil {
		b.Fatal(err)
	}
	// Whole 64 KiB buffers, as wireguard-go's and weft's pools give: StdNetBind coalesces a
	// GSO run by copying into the first buffer's spare capacity (weft's bind does not copy).
	msgs := make([][]byte, batch)
	for i := range msgs {
		msgs[i] = make([]byte, size, 1<<16)
		msgs[i][0] = byte(i)
	}
	r := newReceiver(fns[0], rx.BatchSize())

	// A watchdog instead of per-read deadlines: no progress for 10 s closes the receiver.
	var progress atomic.Uint64
	done := make(chan struct{})
	defer close(done)
	go func() {
		last := progress.Load()
		for {
			select {
			case <-done:
				return
			case <-time.After(10 * time.Second):
			}
			if p := progress.Load(); p == last {
				rx.Close()
				return
			} else {
				last = p
			}
		}
	}()

	b.ReportAllocs()
	b.SetBytes(int64(batch * size))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := tx.Send(msgs, dst); err != nil {
			b.Fatal(err)
		}
		for got := 0; got < batch; {
			n, err := r.fn(r.bufs, r.sizes, r.eps)
			if err != nil {
				b.Fatalf("receive (a datagram lost?): %v", err)
			}
			for j := 0; j < n; j++ {
				if r.sizes[j] > 0 {
					got++
				}
			}
		}
		progress.Add(1)
	}
}

func BenchmarkBind(b *testing.B) {
	for _, batch := range []int{1, 16, 64, 128} {
		b.Run("weft/batch="+itoa(batch), func(b *testing.B) {
			benchRoundTrip(b, func() conn.Bind { return NewBind() }, batch, 1400)
		})
		b.Run("std/batch="+itoa(batch), func(b *testing.B) {
			benchRoundTrip(b, conn.NewStdNetBind, batch, 1400)
		})
	}
}

func itoa(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}
