package tunnel

import (
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/tun"

	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/crypto/cryptotest"
	"github.com/weftnet/weft/internal/testkit"
	"github.com/weftnet/weft/peers"
)

// testLogger logs through t at debug level.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// ipv4Packet returns an IPv4/UDP packet of size bytes total from src to dst: after the
// header, byte i of the packet is byte(i) (so the UDP ports are 5141 → 5655).
func ipv4Packet(src, dst string, size int) []byte {
	return testkit.IPv4(netip.MustParseAddr(src), netip.MustParseAddr(dst), testkit.ProtoUDP, testkit.Pattern(size-20, 20))
}

// ipv6Packet returns an IPv6/UDP packet of size bytes total from src to dst, zeros after
// the header.
func ipv6Packet(src, dst string, size int) []byte {
	return testkit.IPv6(netip.MustParseAddr(src), netip.MustParseAddr(dst), testkit.ProtoUDP, make([]byte, size-40))
}

// pair is two tunnels A (10.0.1.0/24, fd00:1::/64) and B (10.0.2.0/24, fd00:2::/64)
// that know each other.
type pair struct {
	a, b       *Tunnel
	devA, devB *testkit.Device
	idA, idB   *crypto.Identity
	peerB      *peers.Peer // B as seen in A's table
	peerA      *peers.Peer // A as seen in B's table
}

func newPair(t testing.TB, cfgA, cfgB Config, devA, devB *testkit.Device, bindA, bindB conn.Bind) *pair {
	t.Helper()
	return newPairOver(t, cfgA, cfgB, devA, devB, devA, devB, bindA, bindB)
}

// newPairOver is newPair with the tunnels running over devices tunA and tunB that wrap the
// fakes devA and devB (which the pair keeps, for their packets).
func newPairOver(t testing.TB, cfgA, cfgB Config, devA, devB *testkit.Device, tunA, tunB tun.Device, bindA, bindB conn.Bind) *pair {
	t.Helper()
	pr := &pair{devA: devA, devB: devB, idA: cryptotest.NewIdentity(t), idB: cryptotest.NewIdentity(t)}
	cfgA.Identity, cfgB.Identity = pr.idA, pr.idB
	if _, ok := t.(*testing.T); ok && testing.Verbose() {
		cfgA.Logger, cfgB.Logger = testLogger(t).With("side", "A"), testLogger(t).With("side", "B")
	}
	var err error
	if pr.a, err = New(cfgA, tunA, bindA, peers.NewTable(pr.idA)); err != nil {
		t.Fatal(err)
	}
	if pr.b, err = New(cfgB, tunB, bindB, peers.NewTable(pr.idB)); err != nil {
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
