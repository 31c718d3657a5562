package tunnel

import (
	"net/netip"
	"testing"
	"time"

	"github.com/weftnet/weft/internal/testkit"
	"github.com/weftnet/weft/peers"
)

func TestTunnel_HandshakeRetransmitAndGiveUp(t *testing.T) {
	cfg := DefaultLocalConfig()
	cfg.RekeyTimeout = 50 * time.Millisecond
	cfg.RekeyAttemptTime = 400 * time.Millisecond
	pr := upPair(t, cfg, DefaultLocalConfig())
	// Point A at a port nobody answers on.
	if _, err := pr.a.table.Upsert(peers.PeerConfig{PublicKey: pr.idB.PublicKey(),
		Endpoint:   netip.MustParseAddrPort("127.0.0.1:9"),
		AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.0.2.0/24")}}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		pr.devA.Inject(ipv4Packet("10.0.1.1", "10.0.2.2", 80))
	}
	testkit.Eventually(t, testkit.Timeout, func() bool {
		return pr.peerB.Drops(peers.DropHandshakeTimeout) == 3
	}, "queued packets dropped after RekeyAttemptTime")
	if n := pr.a.Stats().HandshakesSent; n < 3 {
		t.Errorf("%d initiations sent, want retransmits", n)
	}
	if n := pr.a.table.NumIndexes(); n != 0 {
		t.Errorf("%d indexes left after giving up", n)
	}
}

func TestTunnel_RetransmitReachesMovedPeer(t *testing.T) {
	cfg := DefaultLocalConfig()
	cfg.RekeyTimeout = 50 * time.Millisecond
	pr := upPair(t, cfg, DefaultLocalConfig())
	right := pr.peerB.Endpoint()
	pr.a.table.Upsert(peers.PeerConfig{PublicKey: pr.idB.PublicKey(), Endpoint: netip.MustParseAddrPort("127.0.0.1:9"),
		AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.0.2.0/24")}})
	p := ipv4Packet("10.0.1.1", "10.0.2.2", 80)
	pr.devA.Inject(p)
	testkit.Eventually(t, testkit.Timeout, func() bool { return pr.a.Stats().HandshakesSent >= 1 }, "an initiation")
	// The control plane learns the right endpoint; the next retransmit gets through and
	// the queued packet follows.
	pr.a.table.Upsert(peers.PeerConfig{PublicKey: pr.idB.PublicKey(), Endpoint: right,
		AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.0.2.0/24")}})
	pr.devB.Recv(t)
}

func TestTunnel_Keepalive(t *testing.T) {
	cfg := DefaultLocalConfig()
	cfg.KeepaliveTimeout = 100 * time.Millisecond
	pr := upPair(t, DefaultLocalConfig(), cfg)
	pr.devA.Inject(ipv4Packet("10.0.1.1", "10.0.2.2", 80))
	pr.devB.Recv(t)
	// B received data and has nothing to send: it answers with a keepalive.
	testkit.Eventually(t, testkit.Timeout, func() bool { return pr.b.Stats().KeepalivesSent >= 1 }, "B's keepalive")
	testkit.Eventually(t, testkit.Timeout, func() bool { return pr.peerB.Stats().RxPackets >= 1 }, "A receiving it")
	if pr.devA.PacketsWritten() != 0 {
		t.Error("a keepalive reached A's device")
	}
}

func TestTunnel_PersistentKeepalive(t *testing.T) {
	pr := upPair(t, DefaultLocalConfig(), DefaultLocalConfig())
	pr.a.table.Upsert(peers.PeerConfig{PublicKey: pr.idB.PublicKey(), Endpoint: pr.peerB.Endpoint(),
		AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.0.2.0/24")}, PersistentKeepalive: 50 * time.Millisecond})
	// No traffic at all: the persistent keepalive itself brings the session up.
	testkit.Eventually(t, testkit.Timeout, func() bool { return pr.peerA.Stats().RxPackets >= 4 }, "persistent keepalives")
	if pr.devB.PacketsWritten() != 0 {
		t.Error("a keepalive reached B's device")
	}
}

func TestTunnel_Roaming(t *testing.T) {
	pr := upPair(t, DefaultLocalConfig(), DefaultLocalConfig())
	wantA := pr.peerA.Endpoint()
	// B forgets A's endpoint (as if A's address were unknown or had changed).
	pr.b.table.Remove(pr.idA.PublicKey())
	var err error
	pr.peerA, err = pr.b.table.Upsert(peers.PeerConfig{PublicKey: pr.idA.PublicKey(),
		AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.0.1.0/24")}})
	if err != nil {
		t.Fatal(err)
	}
	if pr.peerA.Endpoint().IsValid() {
		t.Fatal("endpoint not cleared")
	}
	pr.devA.Inject(ipv4Packet("10.0.1.1", "10.0.2.2", 80))
	pr.devB.Recv(t)
	if got := pr.peerA.Endpoint(); got != wantA {
		t.Errorf("B learned endpoint %v, want %v", got, wantA)
	}
	back := ipv4Packet("10.0.2.2", "10.0.1.1", 90)
	pr.devB.Inject(back)
	pr.devA.Recv(t)
}
