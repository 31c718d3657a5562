package tunnel

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun/tuntest"

	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/crypto/cryptotest"
	"github.com/weftnet/weft/internal/testkit"
	"github.com/weftnet/weft/peers"
)

// stockWG is a wireguard-go device (the reference implementation) on a channel TUN and
// a real loopback UDP socket: a stock WireGuard client as a phone or wg-quick runs it.
type stockWG struct {
	dev  *device.Device
	tun  *tuntest.ChannelTUN
	priv crypto.PrivateKey
}

func newStockWG(t *testing.T, hostPub crypto.PublicKey, hostPort uint16, allowed string) *stockWG {
	t.Helper()
	priv, err := crypto.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	w := &stockWG{tun: tuntest.NewChannelTUN(), priv: priv}
	w.dev = device.NewDevice(w.tun.TUN(), conn.NewStdNetBind(), device.NewLogger(device.LogLevelSilent, ""))
	cfg := fmt.Sprintf("private_key=%s\nlisten_port=0\npublic_key=%s\nendpoint=127.0.0.1:%d\nallowed_ip=%s\n",
		hex.EncodeToString(priv[:]), hex.EncodeToString(hostPub[:]), hostPort, allowed)
	if err := w.dev.IpcSet(cfg); err != nil {
		t.Fatal(err)
	}
	if err := w.dev.Up(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.dev.Close)
	return w
}

func (w *stockWG) recv(t *testing.T) []byte {
	t.Helper()
	select {
	case p := <-w.tun.Inbound:
		return p
	case <-time.After(10 * time.Second):
		t.Fatal("wireguard-go delivered no packet within 10s")
		return nil
	}
}

// upWithStockWG starts a weft tunnel on loopback with a stock WireGuard peer
// (WireGuardFraming) at 10.0.1.200/32.
func upWithStockWG(t *testing.T) (*Tunnel, *testkit.Device, *stockWG, *peers.Peer) {
	t.Helper()
	id := cryptotest.NewIdentity(t)
	cfg := DefaultLocalConfig()
	cfg.Identity = id
	dev := testkit.NewDevice(testkit.DeviceConfig{BatchSize: 128, Keep: 4096})
	tn, err := New(cfg, dev, conn.NewStdNetBind(), peers.NewTable(id))
	if err != nil {
		t.Fatal(err)
	}
	port, err := tn.Up(0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tn.Close() })
	w := newStockWG(t, id.PublicKey(), port, "10.0.0.0/16")
	p, err := tn.table.Upsert(peers.PeerConfig{PublicKey: w.priv.Public(), WireGuardFraming: true,
		AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.0.1.200/32")}})
	if err != nil {
		t.Fatal(err)
	}
	return tn, dev, w, p
}

// A stock WireGuard peer hands weft bare IP packets and takes them back: handshake,
// traffic both ways at sizes that need padding and one at the MTU, nothing dropped.
func TestWireGuardFraming_StockPeerBothWays(t *testing.T) {
	_, dev, w, p := upWithStockWG(t)

	// The client initiates (it knows our endpoint, we do not know its).
	for i, size := range []int{61, 100, 1000, 1412} {
		pkt := ipv4Packet("10.0.1.200", "10.0.2.2", size)
		w.tun.Outbound <- pkt
		if got := dev.Recv(t); !bytes.Equal(got, pkt) {
			t.Fatalf("packet %d: weft got %d bytes, want %d (% x...)", i, len(got), len(pkt), got[:min(len(got), 24)])
		}
		back := ipv4Packet("10.0.2.2", "10.0.1.200", size)
		dev.Inject(back)
		if got := w.recv(t); !bytes.Equal(got, back) {
			t.Fatalf("packet %d: wireguard-go got %d bytes, want %d", i, len(got), len(back))
		}
	}
	if s := p.Stats(); len(s.Drops) != 0 || s.Handshakes == 0 {
		t.Errorf("drops %v handshakes %d", s.Drops, s.Handshakes)
	}
}

// Cryptokey routing holds for a WireGuard-framed peer: a source outside its allowed
// prefixes is dropped, not delivered; so is plaintext that is not an IP packet.
func TestWireGuardFraming_SpoofedSourceDropped(t *testing.T) {
	_, dev, w, p := upWithStockWG(t)
	good := ipv4Packet("10.0.1.200", "10.0.2.2", 80)
	w.tun.Outbound <- good
	dev.Recv(t)
	w.tun.Outbound <- ipv4Packet("10.0.1.7", "10.0.2.2", 80) // another host's address
	testkit.Eventually(t, testkit.Timeout, func() bool { return p.Drops(peers.DropNotAllowedSource) == 1 }, "the spoofed packet to be dropped")
	select {
	case got := <-dev.Out:
		t.Fatalf("spoofed packet delivered: % x", got[:20])
	default:
	}
}

// Roaming as WireGuard: the client moves to a new source port; weft answers it there.
func TestWireGuardFraming_Roams(t *testing.T) {
	_, dev, w, p := upWithStockWG(t)
	w.tun.Outbound <- ipv4Packet("10.0.1.200", "10.0.2.2", 80)
	dev.Recv(t)
	before := p.Endpoint()
	if err := w.dev.IpcSet("listen_port=0\n"); err != nil { // rebinds on a new port
		t.Fatal(err)
	}
	var after netip.AddrPort
	testkit.Eventually(t, testkit.Timeout, func() bool {
		select {
		case w.tun.Outbound <- ipv4Packet("10.0.1.200", "10.0.2.2", 80):
		default:
		}
		select {
		case <-dev.Out:
		default:
		}
		after = p.Endpoint()
		return after.IsValid() && after != before
	}, "the endpoint to roam")
	back := ipv4Packet("10.0.2.2", "10.0.1.200", 300)
	dev.Inject(back)
	for {
		got := w.recv(t)
		if bytes.Equal(got, back) {
			break
		}
	}
	t.Logf("roamed %s → %s", before, after)
}
