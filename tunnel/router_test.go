package tunnel

import (
	"net/netip"
	"testing"

	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/crypto/cryptotest"
	"github.com/weftnet/weft/peers"
)

func TestL3Router_RouteAccept(t *testing.T) {
	id := cryptotest.NewIdentity(t)
	tb := peers.NewTable(id)
	a, _ := tb.Upsert(peers.PeerConfig{PublicKey: crypto.PublicKey{1},
		AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.0.1.0/24"), netip.MustParsePrefix("fd00:1::/64")}})
	b, _ := tb.Upsert(peers.PeerConfig{PublicKey: crypto.PublicKey{2},
		AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.0.2.0/24")}})
	r := NewL3Router(tb)
	tests := []struct {
		name       string
		pkt        []byte
		route      *peers.Peer
		routeDrop  peers.DropReason
		from       *peers.Peer
		acceptDrop peers.DropReason
	}{
		{"v4", ipv4Packet("10.0.1.5", "10.0.2.5", 40), b, peers.DropNone, a, peers.DropNone},
		{"v4 spoofed source", ipv4Packet("10.0.2.5", "10.0.2.6", 40), b, peers.DropNone, a, peers.DropNotAllowedSource},
		{"v4 no route", ipv4Packet("10.0.1.5", "10.9.0.1", 40), nil, peers.DropNoRoute, b, peers.DropNotAllowedSource},
		{"v6", ipv6Packet("fd00:1::1", "fd00:1::2", 60), a, peers.DropNone, a, peers.DropNone},
		// A hostile peer allowed 10.0.1.0/24 sends IPv6 from the IPv4-mapped form of its own
		// IPv4 addresses; and IPv6 to a mapped address routes nowhere (wireguard-go).
		{"v4-mapped v6 source", ipv6Packet("::ffff:10.0.1.5", "fd00:1::2", 60), a, peers.DropNone, a, peers.DropNotAllowedSource},
		{"v4-mapped v6 destination", ipv6Packet("fd00:1::1", "::ffff:10.0.2.5", 60), nil, peers.DropNoRoute, a, peers.DropNone},
		{"short", []byte{0x45, 0}, nil, peers.DropMalformed, a, peers.DropMalformed},
		{"empty", nil, nil, peers.DropMalformed, a, peers.DropMalformed},
		{"not ip", make([]byte, 60), nil, peers.DropMalformed, a, peers.DropMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, reason := r.Route(tc.pkt, nil)
			if reason != tc.routeDrop || (tc.route == nil) != (len(got) == 0) || (tc.route != nil && got[0] != tc.route) {
				t.Errorf("Route = %v, %v; want %p, %v", got, reason, tc.route, tc.routeDrop)
			}
			if reason := r.Accept(tc.from, tc.pkt); reason != tc.acceptDrop {
				t.Errorf("Accept = %v, want %v", reason, tc.acceptDrop)
			}
		})
	}
}

// floodRouter sends every packet to each of its peers.
type floodRouter struct{ to []*peers.Peer }

func (f floodRouter) Route(_ []byte, dst []*peers.Peer) ([]*peers.Peer, peers.DropReason) {
	return append(dst, f.to...), peers.DropNone
}
func (f floodRouter) Accept(*peers.Peer, []byte) peers.DropReason { return peers.DropNone }

func TestTunnel_FloodCopiesBounded(t *testing.T) {
	d := newDirect(t, 16, batchOf(16, 200))
	d.a.cfg.MaxFloodCopies = 10
	d.a.router = floodRouter{to: []*peers.Peer{d.peerB, d.peerB}} // two copies to one peer is enough
	d.round()
	if got := d.bindA.N; got != 26 {
		t.Errorf("sent %d messages, want 16 + 10 copies", got)
	}
	if got := d.a.Stats().Drops["flood_capped"]; got != 6 {
		t.Errorf("flood_capped = %d, want 6", got)
	}
	if got := d.devB.PacketsWritten(); got != 26 {
		t.Errorf("B delivered %d, want 26", got)
	}
}

// TestTunnel_FloodZeroAlloc: a flooding round (copies from the pool, one capped) allocates
// nothing in steady state. Named for `make test-norace` (-run Alloc), since -race allocates.
func TestTunnel_FloodZeroAlloc(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under -race; make test-norace runs this")
	}
	d := newDirect(t, 16, batchOf(16, 200))
	d.a.cfg.MaxFloodCopies = 10
	d.a.router = floodRouter{to: []*peers.Peer{d.peerB, d.peerB}}
	d.round() // warm up
	if allocs := testing.AllocsPerRun(20, d.round); allocs != 0 {
		t.Errorf("flooding round allocates %v", allocs)
	}
	if got := d.a.Stats().Drops["flood_capped"]; got != 22*6 { // our warm-up, AllocsPerRun's, 20 runs
		t.Errorf("flood_capped = %d after 22 rounds, want %d", got, 22*6)
	}
}

// TestTunnel_NextProtoL2 runs Ethernet frames through the loop as L2 mode will: next
// protocol 0x03, no padding, the Router deciding both ways.
func TestTunnel_NextProtoL2(t *testing.T) {
	frame := make([]byte, 61) // odd length: must arrive exactly, with no padding
	for i := range frame {
		frame[i] = byte(i)
	}
	d := newDirect(t, 4, [][]byte{frame})
	for _, tn := range []*Tunnel{d.a, d.b} {
		tn.cfg.NextProtoL2 = true
	}
	d.a.router = floodRouter{to: []*peers.Peer{d.peerB}}
	d.b.router = floodRouter{}
	d.devB.KeepWritten(4096)
	d.round()
	got := <-d.devB.Out
	if string(got) != string(frame) {
		t.Fatalf("frame = % x, want % x", got, frame)
	}
	// An IP packet sent by an L3 peer is refused by an L2 receiver.
	d.a.cfg.NextProtoL2 = false
	d.packets = [][]byte{ipv4Packet("10.0.1.1", "10.0.2.2", 60)}
	d.round()
	if n := d.peerA.Drops(peers.DropWrongProto); n != 1 {
		t.Errorf("wrong_proto drops = %d", n)
	}
}

// TestTunnel_RouterNilPeer: a Router that hands the loop a nil peer (as l2.Router once did for
// a frame to the host's own MAC) costs a no_route drop, not the agent.
func TestTunnel_RouterNilPeer(t *testing.T) {
	d := newDirect(t, 4, batchOf(4, 200))
	d.a.router = floodRouter{to: []*peers.Peer{nil, d.peerB, nil}}
	d.round()
	if got := d.a.Stats().Drops["no_route"]; got != 8 {
		t.Errorf("no_route = %d, want 8 (two nil peers per packet)", got)
	}
	if got := d.devB.PacketsWritten(); got != 4 {
		t.Errorf("B delivered %d, want the 4 copies for the real peer", got)
	}
}
