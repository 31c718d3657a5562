package agent

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftnet/weft/agent/api"
	"github.com/weftnet/weft/agent/config"
	"github.com/weftnet/weft/agent/datapath"
	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/internal/testkit"
	"github.com/weftnet/weft/netproxy"
)

// TestNetstack_TwoAgents runs two netstack agents in this process, static peers over
// loopback and no privileges needed: A's SOCKS5 proxy reaches B's exposed port, whose
// relay reaches a local echo server; a UDP datagram goes the same way by UDP ASSOCIATE and
// a UDP expose; A's TCP and UDP forwards reach B too.
func TestNetstack_TwoAgents(t *testing.T) {
	echo := testkit.TCPEcho(t)
	uecho := testkit.UDPEcho(t)
	socks, fwd, ufwd := freePort(t), freePort(t), freeUDPPort(t)
	ka, kb := mustKey(t), mustKey(t)
	pa, pb := freeUDPPort(t), freeUDPPort(t)
	mk := func(name string, priv crypto.PrivateKey, port int, addr string, peer crypto.PrivateKey, peerPort int, peerAddr string) config.Config {
		dir := t.TempDir()
		if err := crypto.SavePrivateKeyFile(filepath.Join(dir, "private.key"), priv); err != nil {
			t.Fatal(err)
		}
		c := config.DefaultConfig()
		c.Name, c.Netstack, c.StateDir = name, true, dir
		c.ControlSocket = filepath.Join(dir, "weft.sock")
		c.Gossip.Disabled = true
		c.ListenPort = port
		c.Address = config.Addr{Addr: netip.MustParseAddr(addr)}
		c.DNS.Disabled = true
		c.NetstackProxy = config.NetstackProxyConfig{}
		c.Peers = []config.PeerConfig{{PublicKey: peer.Public().String(), Endpoint: config.AddrPort{AddrPort: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(peerPort))},
			AllowedIPs: []config.Prefix{{Prefix: netip.PrefixFrom(netip.MustParseAddr(peerAddr), 32)}}}}
		return c
	}
	ca := mk("a", ka, pa, "10.42.1.1", kb, pb, "10.42.2.1")
	ca.NetstackProxy.SOCKS5 = fmt.Sprintf("127.0.0.1:%d", socks)
	ca.Forward = []config.ForwardConfig{{Listen: fmt.Sprintf("127.0.0.1:%d", fwd), To: "10.42.2.1:9000"},
		{Listen: fmt.Sprintf("127.0.0.1:%d", ufwd), To: "10.42.2.1:9001", Proto: "udp"}}
	cb := mk("b", kb, pb, "10.42.2.1", ka, pa, "10.42.1.1")
	cb.Expose = []config.ExposeConfig{{Port: 9000, To: echo.String()}, {Port: 9001, To: uecho.String(), Proto: "udp"}}
	ctx, cancel := context.WithCancel(context.Background())
	var dones []chan error
	for _, c := range []config.Config{ca, cb} {
		ag, err := New(c, nil)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- ag.Run(ctx) }()
		dones = append(dones, done)
		cl := api.NewClient(c.ControlSocket)
		if _, err := cl.WaitReady(ctx, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		st, err := cl.Status(ctx)
		if err != nil || st.Interface != "netstack" {
			t.Fatalf("status %+v %v", st, err)
		}
	}
	defer func() {
		stopping := time.Now()
		defer func() { t.Logf("both agents stopped in %s", time.Since(stopping)) }()
		cancel()
		for _, d := range dones {
			if err := <-d; err != nil {
				t.Error(err)
			}
		}
	}()

	// SOCKS5 CONNECT to B's exposed port (the first handshake may take a moment).
	began := time.Now()
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := socksEcho(fmt.Sprintf("127.0.0.1:%d", socks), "10.42.2.1", 9000)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("socks5 to the exposed port: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("first SOCKS5 CONNECT through the overlay after %s", time.Since(began))
	// The forward.
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", fwd), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	_, _ = c.Write([]byte("forward"))
	got := make([]byte, 7)
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "forward" {
		t.Fatalf("forward: %q %v", got, err)
	}
	c.Close()
	// The UDP forward to B's exposed UDP port.
	uc, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", ufwd))
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	_ = uc.SetDeadline(time.Now().Add(10 * time.Second))
	_, _ = uc.Write([]byte("fwd"))
	ub := make([]byte, 64)
	if n, err := uc.Read(ub); err != nil || string(ub[:n]) != "echo:fwd" {
		t.Fatalf("udp forward: %q %v", ub[:n], err)
	}
	// UDP ASSOCIATE to B's exposed UDP port.
	if err := socksUDP(fmt.Sprintf("127.0.0.1:%d", socks), "10.42.2.1", 9001); err != nil {
		t.Fatal(err)
	}
	// Outside the overlay: refused by the proxy (reply 2).
	if err := socksEcho(fmt.Sprintf("127.0.0.1:%d", socks), "192.0.2.1", 80); err == nil || !strings.Contains(err.Error(), "reply 2") {
		t.Fatalf("outside the overlay: %v", err)
	}
	st, err := api.NewClient(ca.ControlSocket).Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Counters["not_allowed"] != 1 || st.Counters["socks5_udp_associate"] != 1 || st.Counters["relay_tcp"] != 1 {
		t.Fatalf("status counters %v", st.Counters)
	}
}

func mustKey(t *testing.T) crypto.PrivateKey {
	k, err := crypto.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func freeUDPPort(t *testing.T) int {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	return pc.LocalAddr().(*net.UDPAddr).Port
}

// ServeUDPEcho is testkit.ServeUDPEcho, exported for the netns tests of package agent_test.
func ServeUDPEcho(t testing.TB, pc net.PacketConn) { testkit.ServeUDPEcho(t, pc) }

// socksHello opens a SOCKS5 connection and sends cmd for ip:port; it returns the connection
// and the bound address of the reply.
func socksHello(proxy string, cmd byte, ip string, port int) (net.Conn, netip.AddrPort, error) {
	c, err := net.DialTimeout("tcp", proxy, 5*time.Second)
	if err != nil {
		return nil, netip.AddrPort{}, err
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	req := []byte{5, 1, 0, 5, cmd, 0, 1}
	req = append(req, netip.MustParseAddr(ip).AsSlice()...)
	req = binary.BigEndian.AppendUint16(req, uint16(port))
	if _, err := c.Write(req); err != nil {
		c.Close()
		return nil, netip.AddrPort{}, err
	}
	rep := make([]byte, 2+10)
	if _, err := io.ReadFull(c, rep); err != nil {
		c.Close()
		return nil, netip.AddrPort{}, err
	}
	if rep[3] != 0 {
		c.Close()
		return nil, netip.AddrPort{}, fmt.Errorf("socks5 reply %d", rep[3])
	}
	bnd := netip.AddrPortFrom(netip.AddrFrom4([4]byte(rep[6:10])), binary.BigEndian.Uint16(rep[10:]))
	return c, bnd, nil
}

func socksEcho(proxy, ip string, port int) error {
	c, _, err := socksHello(proxy, 1, ip, port)
	if err != nil {
		return err
	}
	defer c.Close()
	_, _ = c.Write([]byte("ping"))
	got := make([]byte, 4)
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "ping" {
		return fmt.Errorf("echo %q %v", got, err)
	}
	return nil
}

func socksUDP(proxy, ip string, port int) error {
	c, relay, err := socksHello(proxy, 3, "0.0.0.0", 0)
	if err != nil {
		return err
	}
	defer c.Close()
	uc, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(relay))
	if err != nil {
		return err
	}
	defer uc.Close()
	dst := netproxy.Addr{IP: netip.MustParseAddr(ip), Port: uint16(port)}
	buf := make([]byte, 2048)
	for i := 0; i < 20; i++ {
		_, _ = uc.Write(append(netproxy.AppendUDPHeader(nil, dst), "dgram"...))
		_ = uc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		n, err := uc.Read(buf)
		if err != nil {
			continue
		}
		h, p, err := netproxy.ParseUDPHeader(buf[:n])
		if err != nil || h.Addr != dst || !bytes.Equal(p, []byte("echo:dgram")) {
			return fmt.Errorf("udp reply %+v %q %v", h, p, err)
		}
		return nil
	}
	return fmt.Errorf("no UDP reply through the association")
}

// TestNetstack_ProxyEventsMetric: what the rootless proxies count reaches Prometheus as
// weft_proxy_events_total{event}, read from the same counters `weft status` shows.
func TestNetstack_ProxyEventsMetric(t *testing.T) {
	cfg := config.DefaultConfig()
	cfg.Netstack = true
	a := &Agent{cfg: cfg}
	a.dp = newDatapath(a)
	ns := a.dp.(datapath.Stack)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refuse := func(context.Context) (net.Conn, error) { return nil, netproxy.ErrNotAllowed }
	r := netproxy.RelayTCP(ln, refuse, netproxy.Limits{}, slog.New(slog.DiscardHandler), ns.Proxied())
	defer r.Close()
	for range 2 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		_, _ = c.Read(make([]byte, 1)) // the relay closes it after the refused dial
		c.Close()
	}
	deadline := time.Now().Add(10 * time.Second)
	for ns.Proxied().Snapshot()["not_allowed"] != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("proxy counters %v, want not_allowed: 2", ns.Proxied().Snapshot())
		}
		time.Sleep(5 * time.Millisecond)
	}
	got := gatherCounters(t, newMetricsCollector(a), "weft_proxy_events_total", "event")
	if len(got) != 1 || got["not_allowed"] != 2 {
		t.Fatalf("weft_proxy_events_total = %v, want exactly not_allowed: 2", got)
	}
}
