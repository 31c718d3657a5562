package tunnel

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.zx2c4.com/wireguard/conn"

	"github.com/weftnet/weft/crypto/cryptotest"
	"github.com/weftnet/weft/internal/testkit"
	"github.com/weftnet/weft/peers"
)

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		os.Exit(helperMain()) // a tunnel inside a network namespace, see l3_netns_test.go
	}
	goleak.VerifyTestMain(m)
}

// upPair starts two tunnels over real loopback UDP (StdNetBind) with fake TUNs.
func upPair(t *testing.T, cfgA, cfgB Config) *pair {
	t.Helper()
	dev := testkit.DeviceConfig{BatchSize: 128, Keep: 4096}
	pr := newPair(t, cfgA, cfgB, testkit.NewDevice(dev), testkit.NewDevice(dev), conn.NewStdNetBind(), conn.NewStdNetBind())
	pa, err := pr.a.Up(0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pr.a.Close() })
	pb, err := pr.b.Up(0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pr.b.Close() })
	lo := netip.MustParseAddr("127.0.0.1")
	pr.link(t, netip.AddrPortFrom(lo, pa), netip.AddrPortFrom(lo, pb))
	return pr
}

// TestTunnel_EndToEnd runs the loops over real UDP, each loop sealing and opening its own
// batches and with 4 workers sharing them (parallel.go; forced on any machine).
func TestTunnel_EndToEnd(t *testing.T) {
	for _, workers := range []int{1, 4} {
		t.Run(fmt.Sprintf("workers=%d", workers), func(t *testing.T) {
			cfg := DefaultLocalConfig()
			cfg.CryptoWorkers = workers
			testEndToEnd(t, cfg)
		})
	}
}

func testEndToEnd(t *testing.T, cfg Config) {
	pr := upPair(t, cfg, cfg)

	// First packet starts the handshake, waits in the queue, then arrives.
	p1 := ipv4Packet("10.0.1.1", "10.0.2.2", 100)
	pr.devA.Inject(p1)
	if got := pr.devB.Recv(t); !bytes.Equal(got, p1) {
		t.Fatalf("B got % x, want % x", got[:20], p1[:20])
	}
	// And back, IPv4 and IPv6.
	p2 := ipv4Packet("10.0.2.2", "10.0.1.1", 1400)
	pr.devB.Inject(p2)
	if got := pr.devA.Recv(t); !bytes.Equal(got, p2) {
		t.Fatal("A got a different packet")
	}
	p3 := ipv6Packet("fd00:1::1", "fd00:2::2", 61) // odd length: padding must be cut
	pr.devA.Inject(p3)
	if got := pr.devB.Recv(t); !bytes.Equal(got, p3) {
		t.Fatalf("B got %d bytes, want %d", len(got), len(p3))
	}
	// A burst, both directions at once.
	const burst = 500
	for i := range burst {
		pr.devA.Inject(ipv4Packet("10.0.1.1", "10.0.2.2", 64+i))
		pr.devB.Inject(ipv4Packet("10.0.2.2", "10.0.1.1", 64+i))
	}
	for range burst {
		pr.devB.Recv(t)
		pr.devA.Recv(t)
	}
	// Counters: what one side sent, the other received (keepalives included in packets).
	testkit.Eventually(t, testkit.Timeout, func() bool {
		sa, sb := pr.peerB.Stats(), pr.peerA.Stats()
		return sa.TxPackets == sb.RxPackets && sb.TxPackets == sa.RxPackets
	}, "counters to settle")
	sa, sb := pr.peerB.Stats(), pr.peerA.Stats()
	if sa.TxBytes != sb.RxBytes || sb.TxBytes != sa.RxBytes {
		t.Errorf("bytes: A→B tx %d rx %d; B→A tx %d rx %d", sa.TxBytes, sb.RxBytes, sb.TxBytes, sa.RxBytes)
	}
	if wantMin := uint64(burst + 2); sa.TxPackets < wantMin || sb.TxPackets < burst+1 {
		t.Errorf("tx packets A %d B %d", sa.TxPackets, sb.TxPackets)
	}
	if sa.Handshakes != 1 || sb.Handshakes != 1 || sa.LastHandshake.IsZero() {
		t.Errorf("handshakes A %d B %d", sa.Handshakes, sb.Handshakes)
	}
	if len(sa.Drops) != 0 || len(sb.Drops) != 0 {
		t.Errorf("unexpected drops: A %v B %v", sa.Drops, sb.Drops)
	}
	if got := pr.devB.PacketsWritten(); got != burst+2 {
		t.Errorf("B device got %d packets, want %d", got, burst+2)
	}
}

func TestTunnel_DropNotAllowedSource(t *testing.T) {
	pr := upPair(t, DefaultLocalConfig(), DefaultLocalConfig())
	pr.devA.Inject(ipv4Packet("10.0.1.1", "10.0.2.2", 80))
	pr.devB.Recv(t)
	// Source outside A's allowed prefixes at B (spoofing B's own subnet).
	for range 3 {
		pr.devA.Inject(ipv4Packet("10.0.9.9", "10.0.2.2", 80))
	}
	testkit.Eventually(t, testkit.Timeout, func() bool {
		return pr.peerA.Drops(peers.DropNotAllowedSource) == 3
	}, "not-allowed-source drops")
	if got := pr.b.Stats().Drops["not_allowed_source"]; got != 3 {
		t.Errorf("global not_allowed_source = %d", got)
	}
	if got := pr.devB.PacketsWritten(); got != 1 {
		t.Errorf("B device got %d packets, want 1", got)
	}
	// No route on A's side.
	pr.devA.Inject(ipv4Packet("10.0.1.1", "10.9.9.9", 80))
	testkit.Eventually(t, testkit.Timeout, func() bool { return pr.a.Stats().Drops["no_route"] == 1 }, "no-route drop")
}

func TestTunnel_DropWrongVNI(t *testing.T) {
	cfgB := DefaultLocalConfig()
	cfgB.VNI = 2
	pr := upPair(t, DefaultLocalConfig(), cfgB)
	for range 4 {
		pr.devA.Inject(ipv4Packet("10.0.1.1", "10.0.2.2", 80))
	}
	testkit.Eventually(t, testkit.Timeout, func() bool { return pr.peerA.Drops(peers.DropWrongVNI) == 4 }, "wrong-VNI drops")
	if got := pr.b.Stats().Drops["wrong_vni"]; got != 4 {
		t.Errorf("global wrong_vni = %d", got)
	}
	if pr.devB.PacketsWritten() != 0 {
		t.Error("a wrong-VNI packet reached the device")
	}
}

func TestTunnel_RekeyWithoutLoss(t *testing.T) {
	cfg := DefaultLocalConfig()
	cfg.RekeyAfterTime = 150 * time.Millisecond
	pr := upPair(t, cfg, DefaultLocalConfig())
	// The first handshake, before the stream (its queue is bounded; rotation is the point).
	pr.devA.Inject(ipv4Packet("10.0.1.1", "10.0.2.2", 200))
	pr.devB.Recv(t)
	const total = 1500
	sent := 1
	deadline := time.Now().Add(20 * time.Second)
	for (sent < total || pr.peerB.Stats().Handshakes < 4) && time.Now().Before(deadline) {
		for range 10 {
			pr.devA.Inject(ipv4Packet("10.0.1.1", "10.0.2.2", 200))
			sent++
		}
		time.Sleep(2 * time.Millisecond)
		for len(pr.devB.Out) > 0 {
			<-pr.devB.Out
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("sent %d, delivered %d; A→B stats %+v; B's view of A %+v; A %+v; B %+v", sent, pr.devB.PacketsWritten(),
				pr.peerB.Stats(), pr.peerA.Stats(), pr.a.Stats(), pr.b.Stats())
		}
	})
	testkit.Eventually(t, testkit.Timeout, func() bool { return pr.devB.PacketsWritten() == uint64(sent) }, "all packets delivered")
	if hs := pr.peerB.Stats().Handshakes; hs < 4 {
		t.Errorf("only %d handshakes: rekey did not happen", hs)
	}
	if d := pr.peerA.Stats().Drops; len(d) != 0 {
		t.Errorf("B dropped: %v", d)
	}
	if d := pr.a.Stats().Drops; len(d) != 0 {
		t.Errorf("A dropped: %v", d)
	}
	t.Logf("%d packets over %d handshakes, %d indexes held by A", sent, pr.peerB.Stats().Handshakes, pr.a.table.NumIndexes())
	if n := pr.a.table.NumIndexes(); n > 4 {
		t.Errorf("A holds %d receiver indexes: evicted keypairs' indexes not freed", n)
	}
}

func TestTunnel_Remove(t *testing.T) {
	pr := upPair(t, DefaultLocalConfig(), DefaultLocalConfig())
	pr.devA.Inject(ipv4Packet("10.0.1.1", "10.0.2.2", 80))
	pr.devB.Recv(t)
	pr.a.table.Remove(pr.idB.PublicKey())
	if pr.a.table.NumIndexes() != 0 {
		t.Errorf("indexes left after Remove: %d", pr.a.table.NumIndexes())
	}
	pr.devA.Inject(ipv4Packet("10.0.1.1", "10.0.2.2", 80))
	testkit.Eventually(t, testkit.Timeout, func() bool { return pr.a.Stats().Drops["no_route"] == 1 }, "no-route after remove")
}

func TestTunnel_UpClose(t *testing.T) {
	pr := newPair(t, DefaultLocalConfig(), DefaultLocalConfig(), testkit.NewDevice(testkit.DeviceConfig{BatchSize: 1}), testkit.NewDevice(testkit.DeviceConfig{BatchSize: 1}),
		conn.NewStdNetBind(), conn.NewStdNetBind())
	if _, err := pr.a.Up(0); err != nil {
		t.Fatal(err)
	}
	if _, err := pr.a.Up(0); !errors.Is(err, ErrAlreadyUp) {
		t.Errorf("second Up: %v", err)
	}
	if err := pr.a.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := pr.a.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := pr.a.Up(0); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Up after Close: %v", err)
	}
	pr.b.Close() // never up
}

// TestTunnel_UpPortTaken: a port in use fails Up with one message naming the port, and the
// cause stays testable with errors.Is.
func TestTunnel_UpPortTaken(t *testing.T) {
	pr := newPair(t, DefaultLocalConfig(), DefaultLocalConfig(), testkit.NewDevice(testkit.DeviceConfig{BatchSize: 1}), testkit.NewDevice(testkit.DeviceConfig{BatchSize: 1}),
		conn.NewStdNetBind(), conn.NewStdNetBind())
	defer pr.b.Close()
	defer pr.a.Close()
	port, err := pr.a.Up(0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = pr.b.Up(port)
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("Up on a taken port: %v, want EADDRINUSE", err)
	}
	want := "tunnel: listen on UDP port " + itoa(int(port)) + ": "
	if msg := err.Error(); !strings.HasPrefix(msg, want) || strings.Count(msg, "listen on UDP port") != 1 {
		t.Errorf("error %q: want it to start with %q and name the step once", msg, want)
	}
}

func TestNew_InvalidConfig(t *testing.T) {
	id := cryptotest.NewIdentity(t)
	tests := []struct {
		name string
		mod  func(*Config)
	}{
		{"no identity", func(c *Config) { c.Identity = nil }},
		{"vni", func(c *Config) { c.VNI = 1 << 24 }},
		{"mtu", func(c *Config) { c.MTU = 100 }},
		{"queue", func(c *Config) { c.QueueLen = 0 }},
		{"timer", func(c *Config) { c.TimerInterval = 0 }},
		{"new handshake timeout", func(c *Config) { c.NewHandshakeTimeout = 0 }},
		{"new handshake before keepalive", func(c *Config) { c.NewHandshakeTimeout = c.KeepaliveTimeout }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			c.Identity = id
			tc.mod(&c)
			if _, err := New(c, testkit.NewDevice(testkit.DeviceConfig{BatchSize: 1}), testkit.NewCaptureBind(1, bufSize), peers.NewTable(id)); !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("err = %v", err)
			}
		})
	}
}

func TestTunnel_IPv6Underlay(t *testing.T) {
	pr := upPair(t, DefaultLocalConfig(), DefaultLocalConfig())
	lo6 := netip.MustParseAddr("::1")
	pr.link(t, netip.AddrPortFrom(lo6, pr.peerA.Endpoint().Port()), netip.AddrPortFrom(lo6, pr.peerB.Endpoint().Port()))
	p := ipv6Packet("fd00:1::1", "fd00:2::2", 1280)
	pr.devA.Inject(p)
	if got := pr.devB.Recv(t); !bytes.Equal(got, p) {
		t.Fatal("B got a different packet")
	}
	if ep := pr.peerA.Endpoint(); !ep.Addr().Is6() {
		t.Errorf("B sees A at %v, want an IPv6 endpoint", ep)
	}
}

func TestTunnel_SimultaneousHandshakes(t *testing.T) {
	pr := upPair(t, DefaultLocalConfig(), DefaultLocalConfig())
	// Both sides start at once: each initiates, each answers the other.
	pr.devA.Inject(ipv4Packet("10.0.1.1", "10.0.2.2", 100))
	pr.devB.Inject(ipv4Packet("10.0.2.2", "10.0.1.1", 100))
	pr.devB.Recv(t)
	pr.devA.Recv(t)
	// Whatever keypairs won, traffic keeps flowing both ways.
	for i := range 50 {
		pr.devA.Inject(ipv4Packet("10.0.1.1", "10.0.2.2", 100+i))
		pr.devB.Inject(ipv4Packet("10.0.2.2", "10.0.1.1", 100+i))
	}
	for range 50 {
		pr.devB.Recv(t)
		pr.devA.Recv(t)
	}
}
