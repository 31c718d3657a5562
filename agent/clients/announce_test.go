package clients

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun/tuntest"

	"github.com/weftnet/weft/agent/api"
	"github.com/weftnet/weft/agent/config"
	"github.com/weftnet/weft/agent/internal/clienttag"
	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/peers"
)

// TestClients_Announced: the host announces its clients' addresses in the clients tag
// before their peers exist, follows adds, removes and a move of its subnet, and refuses a
// client whose announcement gossip does not take (its peer is never added: other hosts
// would judge its traffic as this host).
func TestClients_Announced(t *testing.T) {
	cfg := config.DefaultConfig()
	cfg.StateDir = t.TempDir()
	cfg.ClusterCIDR = config.Prefix{Prefix: netip.MustParsePrefix("10.42.0.0/16")}
	h := &testHost{cfg: cfg, log: slog.New(slog.NewTextHandler(testWriter{t}, nil)), priv: newKey(t),
		address: netip.MustParseAddr("10.42.3.1"), subnet: netip.MustParsePrefix("10.42.3.0/24")}
	id := crypto.NewIdentity(h.priv)
	t.Cleanup(id.Close)
	h.table = peers.NewTable(id)
	tags := map[string]string{}
	var tagErr error
	d := h.deps()
	d.EnableForwarding = func() error { return nil }
	d.SetTag = func(k, v string) error {
		if tagErr != nil {
			return tagErr
		}
		tags[k] = v
		return nil
	}
	inTable := 0
	add := d.AddPeer
	d.AddPeer = func(key crypto.PublicKey, addr netip.Addr, ka time.Duration) error {
		if tags[clienttag.Key] == "" {
			t.Errorf("client %s added as a peer before it was announced", addr)
		}
		inTable++
		return add(key, addr, ka)
	}
	h.cl = New(d)
	if err := h.cl.Start(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"phone", "laptop", "tablet"} {
		if _, _, err := h.cl.add(api.ClientAdd{Name: name}); err != nil {
			t.Fatal(err)
		}
	}
	if got := tags[clienttag.Key]; got != "10.42.3:200-202" {
		t.Fatalf("tag %q after three adds", got)
	}
	if err := h.cl.remove("laptop"); err != nil {
		t.Fatal(err)
	}
	if got := tags[clienttag.Key]; got != "10.42.3:200,202" {
		t.Fatalf("tag %q after a remove", got)
	}
	// Gossip refuses the tag (the metadata is full): the client is refused, no peer added.
	tagErr = errors.New("tag budget exceeded")
	if _, _, err := h.cl.add(api.ClientAdd{Name: "watch"}); err == nil {
		t.Fatal("a client whose announcement failed was added")
	} else {
		t.Logf("refused: %v", err)
	}
	if inTable != 3 || len(h.cl.List()) != 2 {
		t.Fatalf("%d peers added, %d clients", inTable, len(h.cl.List()))
	}
	tagErr = nil
	// A restart announces the stored clients again.
	delete(tags, clienttag.Key)
	again := New(d)
	if err := again.Start(); err != nil {
		t.Fatal(err)
	}
	if got := tags[clienttag.Key]; got != "10.42.3:200,202" {
		t.Fatalf("tag %q after a restart", got)
	}
	// The subnet moves: its old clients are no longer this host's to announce.
	h.subnet = netip.MustParsePrefix("10.42.9.0/24")
	again.Moved(h.subnet)
	if got, ok := tags[clienttag.Key]; !ok || got != "" {
		t.Fatalf("tag %q after the subnet moved", got)
	}
}

// TestClients_SourceBoundToAddress: a host never lets a client's traffic out with another
// source than the client's own address. Cryptokey routing binds it: a stock WireGuard
// client (wireguard-go, configured from the generated config, its AllowedIPs widened to
// the whole overlay so that it sends anything) that forges the host's own address, another
// client's, or another host's as its source is dropped as not_allowed_source; its own
// address passes. (Other hosts then judge the packets the host forwards by that source.)
func TestClients_SourceBoundToAddress(t *testing.T) {
	a, hostTUN, srv := clientsAgent(t)
	added, code, body := postClient(t, srv, api.ClientAdd{Name: "phone", Endpoint: fmt.Sprintf("127.0.0.1:%d", a.port)})
	if code != http.StatusOK {
		t.Fatalf("add: %d %s", code, body)
	}
	if _, code, body := postClient(t, srv, api.ClientAdd{Name: "laptop", PublicKey: newKey(t).Public().String(), Endpoint: "192.0.2.1:1"}); code != http.StatusOK {
		t.Fatalf("second client: %d %s", code, body)
	}
	uapi, _, _ := wgQuickToUAPI(t, added.Config)
	cTUN := tuntest.NewChannelTUN()
	dev := device.NewDevice(cTUN.TUN(), conn.NewStdNetBind(), device.NewLogger(device.LogLevelSilent, ""))
	t.Cleanup(dev.Close)
	if err := dev.IpcSet(uapi); err != nil {
		t.Fatal(err)
	}
	if err := dev.Up(); err != nil {
		t.Fatal(err)
	}
	own := added.Client.Address
	ping := icmpEcho(own, a.address, 84)
	cTUN.Outbound <- ping
	if got := recvPacket(t, hostTUN.Inbound, "host"); string(got) != string(ping) {
		t.Fatal("the client's own packet changed on the way")
	}
	key, _ := crypto.ParsePublicKey(added.Client.PublicKey)
	peer := a.table.ByKey(key)
	for i, src := range []string{"10.42.3.1", "10.42.3.201", "10.42.7.9", "10.42.3.199"} {
		cTUN.Outbound <- icmpEcho(netip.MustParseAddr(src), a.address, 84)
		deadline := time.Now().Add(5 * time.Second)
		for peer.Drops(peers.DropNotAllowedSource) != uint64(i+1) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := peer.Drops(peers.DropNotAllowedSource); n != uint64(i+1) {
			t.Fatalf("source %s forged by the client: not_allowed_source drops %d, want %d", src, n, i+1)
		}
	}
	select {
	case p := <-hostTUN.Inbound:
		t.Fatalf("a forged source reached the host: % x", p[:20])
	case <-time.After(200 * time.Millisecond):
	}
}
