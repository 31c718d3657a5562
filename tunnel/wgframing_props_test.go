package tunnel

import (
	"bytes"
	"testing"

	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/peers"
)

// bareLink turns both sides of d into WireGuard-framed peers of each other (sessions,
// endpoints and prefixes stay).
func bareLink(tb testing.TB, d *direct) {
	tb.Helper()
	for _, side := range []struct {
		t *Tunnel
		p *peers.Peer
	}{{d.a, d.peerB}, {d.b, d.peerA}} {
		if _, err := side.t.table.Upsert(peers.PeerConfig{PublicKey: side.p.Key(), Endpoint: side.p.Endpoint(),
			AllowedIPs: side.p.AllowedIPs(), WireGuardFraming: true}); err != nil {
			tb.Fatal(err)
		}
	}
}

// On the wire a WireGuard-framed message is the bare packet padded as WireGuard pads: 16
// header bytes, the packet rounded up to 16 (never past the MTU), the 16-byte tag.
func TestWireGuardFraming_WireLength(t *testing.T) {
	d := newDirect(t, 4, nil)
	bareLink(t, d)
	mtu := d.a.cfg.MTU
	for _, n := range []int{20, 61, 64, 1000, mtu - 1, mtu} {
		msg := d.sealedByA(t, ipv4Packet("10.0.1.1", "10.0.2.2", n))
		padded := (n + 15) &^ 15
		if padded > mtu {
			padded = mtu
		}
		if want := crypto.MessageTransportOverhead + padded; len(msg) != want {
			t.Errorf("inner %d: %d bytes on the wire, want %d", n, len(msg), want)
		}
	}
}

func TestWireGuardFraming_LoopZeroAlloc(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under -race")
	}
	d := newDirect(t, 64, batchOf(64, 1000))
	bareLink(t, d)
	d.round()
	if d.devB.PacketsWritten() != 64 {
		t.Fatalf("warm-up delivered %d of 64 (drops A %v, B %v)", d.devB.PacketsWritten(), d.a.Stats().Drops, d.b.Stats().Drops)
	}
	if n := testing.AllocsPerRun(50, d.round); n != 0 {
		t.Errorf("WireGuard-framed round allocates %v times", n)
	}
}

// FuzzTunnel_ReceiveSealedWireGuard: plaintexts from a WireGuard-framed peer, sealed with
// its real keypair; what is delivered is an IP packet from inside the peer's prefixes,
// exactly the plaintext cut to its IP length.
func FuzzTunnel_ReceiveSealedWireGuard(f *testing.F) {
	clk := newTestClock()
	d := newDirectWith(f, 4, nil, DefaultConfig(), DefaultConfig(), clk)
	bareLink(f, d)
	d.devB.KeepWritten(4096)
	f.Add(ipv4Packet("10.0.1.1", "10.0.2.2", 100))
	f.Add(append(ipv4Packet("10.0.1.1", "10.0.2.2", 61), make([]byte, 3)...)) // padded
	f.Add(ipv6Packet("fd00:1::1", "fd00:2::2", 64))
	f.Add(ipv4Packet("10.9.9.9", "10.0.2.2", 60)) // outside A's prefixes
	f.Add(append(vxlanHeader(d.b.cfg.VNI, 1), ipv4Packet("10.0.1.1", "10.0.2.2", 60)...))
	f.Add([]byte{0x45})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, plain []byte) {
		if len(plain) > bufSize-64 {
			return
		}
		fate := d.receiveOne(t, d.sealFromA(t, plain))
		if len(plain) == 0 {
			if !fate.keepalive {
				t.Fatalf("empty plaintext: %v, want a keepalive", fate)
			}
			return
		}
		if !fate.delivered {
			if fate.keepalive || fate.handshake {
				t.Fatalf("non-empty plaintext: %v", fate)
			}
			return
		}
		got := <-d.devB.Out
		n, _, ok := ipLen(plain)
		if !ok || !bytes.Equal(got, plain[:n]) {
			t.Fatalf("delivered %d bytes, not the plaintext's IP packet (%d, %v)", len(got), n, ok)
		}
		if src, ok := innerSource(got); !ok || !fromA(src) {
			t.Fatalf("delivered a packet from %v, outside A's prefixes %v", src, aPrefixes)
		}
	})
}

// A packet to a WireGuard-framed peer that meets an expired keypair waits for the next
// handshake byte for byte: the seal leaves it where it lies (it once moved the packet down
// 8 bytes and padded it before the keypair refused, and the queue kept the mangled bytes).
func TestWireGuardFraming_ExpiredKeypairQueuesIntact(t *testing.T) {
	clk := newTestClock()
	d := newDirectWith(t, 4, nil, DefaultConfig(), DefaultConfig(), clk)
	bareLink(t, d)
	clk.advance(crypto.RejectAfterTime)
	for _, n := range []int{61, 1000} {
		pkt := ipv4Packet("10.0.1.1", "10.0.2.2", n)
		d.sendA(pkt)
		if d.bindA.N != 0 {
			t.Fatalf("inner %d: sent on an expired keypair", n)
		}
		queued := d.peerB.Session().Drain(nil)
		if len(queued) != 1 || !bytes.Equal(queued[0][headroom:], pkt) {
			t.Fatalf("inner %d: queued %d packets, first intact: %v", n, len(queued), len(queued) == 1 && bytes.Equal(queued[0][headroom:], pkt))
		}
	}
}
