package tunnel

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"runtime"
	"testing"

	"github.com/weftnet/weft/crypto/cryptotest"
	"github.com/weftnet/weft/internal/testkit"
	"github.com/weftnet/weft/peers"
)

// newParallelDirect is newDirect with both tunnels sharing their batches' AEAD among
// workers goroutines (the loop and workers-1 helpers, started as Up starts them), however
// few cores the machine has.
func newParallelDirect(tb testing.TB, batch, workers int, pkts [][]byte) *direct {
	tb.Helper()
	cfg := DefaultConfig()
	cfg.CryptoWorkers = workers
	for _, p := range pkts {
		cfg.MTU = max(cfg.MTU, len(p))
	}
	d := newDirectWith(tb, batch, pkts, cfg, cfg, nil)
	for _, t := range []*Tunnel{d.a, d.b} {
		t.startCryptoHelpers()
		tb.Cleanup(func() { t.Close() })
	}
	return d
}

// TestTunnel_ParallelCrypto: with helpers sharing every batch, what B's device receives
// is exactly what A read, in A's order, for small, full and jumbo packets and batches
// that do not fill a chunk; the wire carries A's counters in order; the batches were
// really shared.
func TestTunnel_ParallelCrypto(t *testing.T) {
	for _, workers := range []int{2, 4, 7} {
		for _, size := range []int{64, 1420, 8933} {
			for _, n := range []int{1, parallelMin - 1, parallelMin, 13, 64} {
				t.Run(fmt.Sprintf("w%d/%d/%d", workers, size, n), func(t *testing.T) {
					pkts := make([][]byte, n)
					for i := range pkts {
						pkts[i] = ipv4Packet("10.0.1.1", "10.0.2.2", size)
						pkts[i][len(pkts[i])-1] = byte(i) // tell them apart
						pkts[i][len(pkts[i])-2] = byte(i >> 8)
					}
					d := newParallelDirect(t, 64, workers, pkts)
					d.devB.KeepWritten(4 * n)
					for range 3 {
						d.round()
						var last uint64
						for k := range d.bindA.N {
							c := binary.LittleEndian.Uint64(d.bindA.Slots[k][8:])
							if k > 0 && c != last+1 {
								t.Fatalf("message %d has counter %d after %d", k, c, last)
							}
							last = c
						}
					}
					for r := range 3 {
						for i, want := range pkts {
							got := <-d.devB.Out
							if !bytes.Equal(got, want) {
								t.Fatalf("round %d: packet %d differs (got %d bytes, tag %d)", r, i, len(got), got[len(got)-1])
							}
						}
					}
					if drops := d.b.Stats().Drops; len(drops) != 0 {
						t.Fatalf("B dropped %v", drops)
					}
					shared := n >= parallelMin
					if got := d.a.Stats().ParallelBatches > 0; got != shared {
						t.Errorf("A shared batches: %v, want %v", got, shared)
					}
					if got := d.b.Stats().ParallelBatches > 0; got != shared {
						t.Errorf("B shared batches: %v, want %v", got, shared)
					}
				})
			}
		}
	}
}

// TestTunnel_ParallelCryptoHostile: in a shared receive batch, forged messages (a flipped
// ciphertext byte, a forged counter far ahead), replays of messages of the same batch and
// of an earlier one, and truncated ones are each dropped and counted for what they are,
// never move the replay window, and every genuine message around them is delivered, in
// order.
func TestTunnel_ParallelCryptoHostile(t *testing.T) {
	const n = 32
	d := newParallelDirect(t, 64, 4, batchOf(n, 1420))
	d.devB.KeepWritten(4 * n)
	d.round() // an earlier batch, delivered
	for range n {
		<-d.devB.Out
	}
	old := bytes.Clone(d.bindA.Slots[3])
	for i, p := range d.packets {
		d.sizes[i] = copy(d.bufs[i][headroom:], p)
		d.bufs[i][headroom+len(p)-1] = byte(i)
	}
	d.bindA.N = 0
	d.a.sendBatch(d.sc, d.bufs[:n], d.sizes[:n])
	if d.bindA.N != n {
		t.Fatalf("A sent %d of %d", d.bindA.N, n)
	}
	var msgs [][]byte
	for k := range n {
		msgs = append(msgs, bytes.Clone(d.bindA.Slots[k]))
	}
	forged := bytes.Clone(msgs[5])
	forged[40] ^= 1
	ahead := bytes.Clone(msgs[6])
	binary.LittleEndian.PutUint64(ahead[8:], 1<<40)
	batch := [][]byte{
		msgs[0], forged, msgs[1], msgs[2], ahead, msgs[3], msgs[0], // replay within the batch
		old,          // replay of the earlier batch's message 3
		msgs[4][:20], // shorter than a transport message
	}
	batch = append(batch, msgs[4:]...)
	for i, m := range batch {
		d.rs.sizes[i] = copy(d.rs.bufs[i], m)
		d.rs.eps[i] = d.fromA
	}
	before := d.b.Stats().ParallelBatches
	d.b.receiveBatch(d.rs, len(batch))
	if d.b.Stats().ParallelBatches == before {
		t.Fatal("the hostile batch was not shared")
	}
	for i := range n {
		got := <-d.devB.Out
		if got[len(got)-1] != byte(i) {
			t.Fatalf("delivered packet %d carries tag %d", i, got[len(got)-1])
		}
	}
	select {
	case extra := <-d.devB.Out:
		t.Fatalf("an extra packet was delivered (tag %d)", extra[len(extra)-1])
	default:
	}
	drops := d.b.Stats().Drops
	if drops["auth_failed"] != 2 || drops["replayed"] != 2 || drops["short_message"] != 1 {
		t.Fatalf("drops %v, want 2 auth_failed, 2 replayed, 1 short_message", drops)
	}
	// The forged counter far ahead moved nothing: the batch's messages after it (and a
	// next batch) were accepted.
	d.round()
	for range n {
		<-d.devB.Out
	}
	if drops := d.b.Stats().Drops; drops["replayed"] != 2 || drops["auth_failed"] != 2 {
		t.Fatalf("after a next batch: drops %v", drops)
	}
}

// TestTunnel_ParallelLoopZeroAlloc: sharing a batch allocates nothing, on either side.
func TestTunnel_ParallelLoopZeroAlloc(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under -race")
	}
	for _, size := range []int{64, 1420} {
		t.Run(itoa(size), func(t *testing.T) {
			d := newParallelDirect(t, 64, 4, batchOf(64, size))
			d.round()
			before := d.a.Stats().ParallelBatches
			if allocs := testing.AllocsPerRun(50, d.round); allocs != 0 {
				t.Errorf("a shared round allocates %v times", allocs)
			}
			if d.a.Stats().ParallelBatches == before {
				t.Error("no batch was shared")
			}
		})
	}
}

// TestCryptoWorkers: the default shares batches only from 4 cores up; the configured
// value wins; out-of-range values are refused by New.
func TestCryptoWorkers(t *testing.T) {
	prev := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(prev)
	for procs, want := range map[int]int{1: 1, 2: 1, 3: 1, 4: 4, 16: 16, 200: maxCryptoWorkers} {
		runtime.GOMAXPROCS(procs)
		if got := cryptoWorkers(0); got != want {
			t.Errorf("GOMAXPROCS %d: %d workers, want %d", procs, got, want)
		}
	}
	runtime.GOMAXPROCS(prev)
	if got := cryptoWorkers(3); got != 3 {
		t.Errorf("configured 3: %d", got)
	}
	for _, bad := range []int{-1, maxCryptoWorkers + 1} {
		cfg := DefaultConfig()
		cfg.CryptoWorkers = bad
		cfg.Identity = cryptotest.NewIdentity(t)
		if _, err := New(cfg, testkit.NewDevice(testkit.DeviceConfig{}), testkit.NewCaptureBind(1, 64), peers.NewTable(cfg.Identity)); err == nil {
			t.Errorf("CryptoWorkers %d accepted", bad)
		}
	}
}

// BenchmarkTunnel_LoopParallel is BenchmarkTunnel_Loop with the batches shared among as
// many workers as -cpu gives GOMAXPROCS (the default shares only from 4 up; this forces
// it, to measure the fork-join on any machine).
func BenchmarkTunnel_LoopParallel(b *testing.B) {
	for _, size := range []int{1420, 8933} {
		b.Run(itoa(size), func(b *testing.B) {
			const batch = 64
			d := newParallelDirect(b, batch, runtime.GOMAXPROCS(0), batchOf(batch, size))
			d.round()
			benchRounds(b, d, size, batch)
		})
	}
}
