package tunnel

import (
	"encoding/binary"
	"log/slog"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/tun"

	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/peers"
)

// fakeDev is an in-memory tun.Device: tests inject packets for Read and observe Write.
type fakeDev struct {
	batch  int
	in     chan []byte
	out    chan []byte // copies of written packets (when keep)
	keep   bool
	events chan tun.Event
	closed chan struct{}
	once   sync.Once

	written      atomic.Uint64
	writtenBytes atomic.Uint64
}

var _ tun.Device = (*fakeDev)(nil)

func newFakeDev(batch int, keep bool) *fakeDev {
	return &fakeDev{
		batch:  batch,
		in:     make(chan []byte, 1024),
		out:    make(chan []byte, 4096),
		keep:   keep,
		events: make(chan tun.Event, 1),
		closed: make(chan struct{}),
	}
}

func (d *fakeDev) File() *os.File { return nil }

func (d *fakeDev) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	select {
	case <-d.closed:
		return 0, os.ErrClosed
	case p := <-d.in:
		sizes[0] = copy(bufs[0][offset:], p)
	}
	n := 1
	for n < len(bufs) {
		select {
		case p := <-d.in:
			sizes[n] = copy(bufs[n][offset:], p)
			n++
		default:
			return n, nil
		}
	}
	return n, nil
}

func (d *fakeDev) Write(bufs [][]byte, offset int) (int, error) {
	for _, b := range bufs {
		d.written.Add(1)
		d.writtenBytes.Add(uint64(len(b) - offset))
		if d.keep {
			select {
			case d.out <- append([]byte(nil), b[offset:]...):
			default:
			}
		}
	}
	return len(bufs), nil
}

func (d *fakeDev) MTU() (int, error)        { return 1420, nil }
func (d *fakeDev) Name() (string, error)    { return "fake0", nil }
func (d *fakeDev) Events() <-chan tun.Event { return d.events }
func (d *fakeDev) BatchSize() int           { return d.batch }
func (d *fakeDev) Close() error             { d.once.Do(func() { close(d.closed) }); return nil }
func (d *fakeDev) inject(p []byte)          { d.in <- p }
func (d *fakeDev) waitPacket(t *testing.T) []byte {
	t.Helper()
	select {
	case p := <-d.out:
		return p
	case <-time.After(5 * time.Second):
		t.Fatal("no packet written to the device within 5s")
		return nil
	}
}

// fakeEP is a conn.Endpoint with Port(), like StdNetEndpoint, so roaming does not allocate.
type fakeEP struct{ netip.AddrPort }

func (e *fakeEP) ClearSrc()           {}
func (e *fakeEP) SrcToString() string { return "" }
func (e *fakeEP) DstToString() string { return e.AddrPort.String() }
func (e *fakeEP) DstToBytes() []byte  { b, _ := e.AddrPort.MarshalBinary(); return b }
func (e *fakeEP) DstIP() netip.Addr   { return e.Addr() }
func (e *fakeEP) SrcIP() netip.Addr   { return netip.Addr{} }

// captureBind is a conn.Bind whose Send copies messages into preallocated slots, for
// driving sendBatch/receiveBatch directly (no goroutines, no sockets).
type captureBind struct {
	batch int
	slots [][]byte
	n     int
}

var _ conn.Bind = (*captureBind)(nil)

func newCaptureBind(batch int) *captureBind {
	b := &captureBind{batch: batch, slots: make([][]byte, 1024)}
	for i := range b.slots {
		b.slots[i] = make([]byte, bufSize)
	}
	return b
}

func (b *captureBind) Open(uint16) ([]conn.ReceiveFunc, uint16, error) { return nil, 1, nil }
func (b *captureBind) Close() error                                    { return nil }
func (b *captureBind) SetMark(uint32) error                            { return nil }
func (b *captureBind) BatchSize() int                                  { return b.batch }
func (b *captureBind) ParseEndpoint(s string) (conn.Endpoint, error) {
	a, err := netip.ParseAddrPort(s)
	return &fakeEP{a}, err
}
func (b *captureBind) Send(bufs [][]byte, _ conn.Endpoint) error {
	for _, m := range bufs {
		b.slots[b.n] = b.slots[b.n][:copy(b.slots[b.n][:cap(b.slots[b.n])], m)]
		b.n++
	}
	return nil
}

// testLogger logs through t at debug level.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// testIdentity returns a fresh identity closed at cleanup.
func testIdentity(tb testing.TB) *crypto.Identity {
	tb.Helper()
	priv, err := crypto.GeneratePrivateKey()
	if err != nil {
		tb.Fatal(err)
	}
	id := crypto.NewIdentity(priv)
	tb.Cleanup(id.Close)
	return id
}

// ipv4Packet returns an IPv4/UDP packet of size bytes total from src to dst.
func ipv4Packet(src, dst string, size int) []byte {
	p := make([]byte, size)
	p[0] = 0x45
	binary.BigEndian.PutUint16(p[2:4], uint16(size))
	p[8] = 64
	p[9] = 17
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(p[12:16], s[:])
	copy(p[16:20], d[:])
	for i := 20; i < size; i++ {
		p[i] = byte(i)
	}
	return p
}

// ipv6Packet returns an IPv6/UDP packet of size bytes total from src to dst.
func ipv6Packet(src, dst string, size int) []byte {
	p := make([]byte, size)
	p[0] = 0x60
	binary.BigEndian.PutUint16(p[4:6], uint16(size-40))
	p[6] = 17
	p[7] = 64
	s, d := netip.MustParseAddr(src).As16(), netip.MustParseAddr(dst).As16()
	copy(p[8:24], s[:])
	copy(p[24:40], d[:])
	return p
}

// pair is two tunnels A (10.0.1.0/24, fd00:1::/64) and B (10.0.2.0/24, fd00:2::/64)
// that know each other.
type pair struct {
	a, b       *Tunnel
	devA, devB *fakeDev
	idA, idB   *crypto.Identity
	peerB      *peers.Peer // B as seen in A's table
	peerA      *peers.Peer // A as seen in B's table
}

func newPair(t testing.TB, cfgA, cfgB Config, devA, devB *fakeDev, bindA, bindB conn.Bind) *pair {
	t.Helper()
	pr := &pair{devA: devA, devB: devB, idA: testIdentity(t), idB: testIdentity(t)}
	cfgA.Identity, cfgB.Identity = pr.idA, pr.idB
	if _, ok := t.(*testing.T); ok && testing.Verbose() {
		cfgA.Logger, cfgB.Logger = testLogger(t).With("side", "A"), testLogger(t).With("side", "B")
	}
	var err error
	if pr.a, err = New(cfgA, devA, bindA, peers.NewTable(pr.idA)); err != nil {
		t.Fatal(err)
	}
	if pr.b, err = New(cfgB, devB, bindB, peers.NewTable(pr.idB)); err != nil {
		t.Fatal(err)
	}
	return pr
}

// link configures each side's peer entry for the other, at the given endpoints.
func (pr *pair) link(t testing.TB, epA, epB netip.AddrPort) {
	t.Helper()
	var err error
	pr.peerB, err = pr.a.table.Upsert(peers.PeerConfig{PublicKey: pr.idB.PublicKey(), Endpoint: epB,
		AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.0.2.0/24"), netip.MustParsePrefix("fd00:2::/64")}})
	if err != nil {
		t.Fatal(err)
	}
	pr.peerA, err = pr.b.table.Upsert(peers.PeerConfig{PublicKey: pr.idA.PublicKey(), Endpoint: epA,
		AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.0.1.0/24"), netip.MustParsePrefix("fd00:1::/64")}})
	if err != nil {
		t.Fatal(err)
	}
}

// handshakeDirect runs a handshake A→B through the crypto API and installs the keypairs
// and indexes as the worker would, confirming B's side.
func (pr *pair) handshakeDirect(t testing.TB) {
	t.Helper()
	var msg [256]byte
	ia, _ := pr.a.table.NewIndex(pr.peerB)
	n, err := pr.peerB.Handshake().CreateInitiation(msg[:], ia)
	if err != nil {
		t.Fatal(err)
	}
	h, err := pr.idB.ConsumeInitiation(msg[:n], func(k crypto.PublicKey) *crypto.Handshake {
		return pr.b.table.ByKey(k).Handshake()
	})
	if err != nil {
		t.Fatal(err)
	}
	ib, _ := pr.b.table.NewIndex(pr.peerA)
	n, kpB, err := h.CreateResponse(msg[:], ib)
	if err != nil {
		t.Fatal(err)
	}
	pr.b.table.SetIndexKeypair(ib, kpB)
	pr.peerA.Keypairs().Install(kpB)
	pr.peerA.Keypairs().Confirm(kpB)
	kpA, err := pr.peerB.Handshake().ConsumeResponse(msg[:n])
	if err != nil {
		t.Fatal(err)
	}
	pr.a.table.SetIndexKeypair(ia, kpA)
	pr.peerB.Keypairs().Install(kpA)
}

func itoa(i int) string { return strconv.Itoa(i) }

func mustAP(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// waitFor polls cond until it holds, failing the test after 10 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
