package tunnel

import (
	"net/netip"
	"testing"

	"golang.zx2c4.com/wireguard/tun"

	"github.com/weftnet/weft/internal/testkit"
)

// direct is a pair driven by calling sendBatch/receiveBatch, no goroutines.
type direct struct {
	*pair
	bindA   *testkit.CaptureBind
	sc      *sendScratch
	rs      *recvScratch
	bufs    [][]byte
	sizes   []int
	fromA   *testkit.Endpoint
	packets [][]byte
}

func newDirect(tb testing.TB, batch int, pkts [][]byte) *direct {
	tb.Helper()
	// The device MTU admits the largest packet: a bigger one would not fit the path.
	cfg := DefaultConfig()
	for _, p := range pkts {
		cfg.MTU = max(cfg.MTU, len(p))
	}
	return newDirectWith(tb, batch, pkts, cfg, cfg, nil)
}

// newDirectWith is newDirect with given configs and, unless clk is nil, both identities
// (and so the keypairs of the handshake) on the test clock clk instead of wall time.
func newDirectWith(tb testing.TB, batch int, pkts [][]byte, cfgA, cfgB Config, clk *testClock) *direct {
	tb.Helper()
	devA, devB := testkit.NewDevice(testkit.DeviceConfig{BatchSize: batch}), testkit.NewDevice(testkit.DeviceConfig{BatchSize: batch})
	return newDirectOver(tb, batch, pkts, cfgA, cfgB, clk, devA, devB, devA, devB)
}

// newDirectOver is newDirectWith with the tunnels over tunA and tunB, which wrap the fakes
// devA and devB.
func newDirectOver(tb testing.TB, batch int, pkts [][]byte, cfgA, cfgB Config, clk *testClock, devA, devB *testkit.Device, tunA, tunB tun.Device) *direct {
	tb.Helper()
	bindA, bindB := testkit.NewCaptureBind(batch, bufSize), testkit.NewCaptureBind(batch, bufSize)
	pr := newPairOver(tb, cfgA, cfgB, devA, devB, tunA, tunB, bindA, bindB)
	if clk != nil {
		pr.idA.SetClock(clk.now)
		pr.idB.SetClock(clk.now)
	}
	epA, epB := netip.MustParseAddrPort("192.0.2.1:51820"), netip.MustParseAddrPort("192.0.2.2:51820")
	pr.link(tb, epA, epB)
	pr.handshakeDirect(tb)
	d := &direct{pair: pr, bindA: bindA, sc: pr.a.newSendScratch(), rs: pr.b.newRecvScratch(),
		bufs: make([][]byte, batch), sizes: make([]int, batch), fromA: &testkit.Endpoint{AddrPort: epA}, packets: pkts}
	for i := range d.bufs {
		d.bufs[i] = make([]byte, bufSize)
	}
	return d
}

// round sends one batch A→B: A reads it (as from the device), seals and "sends" it into
// the capture bind; B receives those datagrams and writes them to its device.
func (d *direct) round() {
	for i, p := range d.packets {
		d.sizes[i] = copy(d.bufs[i][headroom:], p)
	}
	d.bindA.N = 0
	d.a.sendBatch(d.sc, d.bufs[:len(d.packets)], d.sizes[:len(d.packets)])
	for start := 0; start < d.bindA.N; start += len(d.rs.bufs) {
		k := min(d.bindA.N-start, len(d.rs.bufs))
		for i := range k {
			d.rs.sizes[i] = copy(d.rs.bufs[i], d.bindA.Slots[start+i])
			d.rs.eps[i] = d.fromA
		}
		d.b.receiveBatch(d.rs, k)
	}
}

func batchOf(n, size int) [][]byte {
	pkts := make([][]byte, n)
	for i := range pkts {
		pkts[i] = ipv4Packet("10.0.1.1", "10.0.2.2", size)
	}
	return pkts
}

func TestTunnel_LoopZeroAlloc(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under -race")
	}
	// 8933: a jumbo overlay (a 9001-byte IPv4 underlay less weft's 68 bytes).
	for _, size := range []int{64, 1420, 8933} {
		t.Run(itoa(size), func(t *testing.T) {
			d := newDirect(t, 64, batchOf(64, size))
			d.round() // warm up: endpoint handle cached, groups sized
			want := d.devB.PacketsWritten() + 64
			if d.devB.PacketsWritten() != 64 {
				t.Fatalf("warm-up delivered %d of 64 (drops A %v, B %v)", d.devB.PacketsWritten(), d.a.Stats().Drops, d.b.Stats().Drops)
			}
			out := testing.AllocsPerRun(50, func() {
				d.a.sendBatch(d.sc, d.bufs[:0], d.sizes[:0]) // no-op batch is fine too
			})
			if out != 0 {
				t.Errorf("empty batch allocates %v", out)
			}
			sendAllocs := testing.AllocsPerRun(50, func() {
				for i, p := range d.packets {
					d.sizes[i] = copy(d.bufs[i][headroom:], p)
				}
				d.bindA.N = 0
				d.a.sendBatch(d.sc, d.bufs[:len(d.packets)], d.sizes[:len(d.packets)])
			})
			if sendAllocs != 0 {
				t.Errorf("outbound batch allocates %v times", sendAllocs)
			}
			both := testing.AllocsPerRun(50, d.round)
			if both != 0 {
				t.Errorf("outbound+inbound round allocates %v times", both)
			}
			if got := d.devB.PacketsWritten(); got < want {
				t.Errorf("delivered %d, want >= %d", got, want)
			}
		})
	}
}

func BenchmarkTunnel_Loop(b *testing.B) {
	// maxInner: the largest inner packet one UDP datagram carries (a fake device does not
	// split GSO super-packets, so this measures per-byte cost without per-packet cost).
	for _, size := range []int{64, 1420, maxInner} {
		b.Run(itoa(size), func(b *testing.B) {
			const batch = 64
			d := newDirect(b, batch, batchOf(batch, size))
			d.round()
			benchRounds(b, d, size, batch)
		})
	}
}

// benchRounds times d.round, batch packets of size bytes each, and reports packets a second.
func benchRounds(b *testing.B, d *direct, size, batch int) {
	b.SetBytes(int64(size * batch))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		d.round()
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "pps")
}

func BenchmarkTunnel_Send(b *testing.B) {
	for _, size := range []int{64, 1420} {
		b.Run(itoa(size), func(b *testing.B) {
			const batch = 64
			d := newDirect(b, batch, batchOf(batch, size))
			d.round()
			b.SetBytes(int64(size * batch))
			b.ReportAllocs()
			for b.Loop() {
				for i, p := range d.packets {
					d.sizes[i] = copy(d.bufs[i][headroom:], p)
				}
				d.bindA.N = 0
				d.a.sendBatch(d.sc, d.bufs[:batch], d.sizes[:batch])
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "pps")
		})
	}
}
