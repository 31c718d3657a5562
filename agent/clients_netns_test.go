package agent_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftnet/weft/internal/netlab"
)

// wireGuardGoBin is weft-bench (its hidden __wireguard-go command runs wireguard-go's
// device on a TUN): $WEFT_BENCH_BIN, else next to $WEFT_BIN, else built.
func wireGuardGoBin(t *testing.T) string {
	t.Helper()
	if b := os.Getenv("WEFT_BENCH_BIN"); b != "" {
		return b
	}
	if b := os.Getenv("WEFT_BIN"); b != "" {
		if p := filepath.Join(filepath.Dir(b), "weft-bench"); fileExists(p) {
			return p
		}
	}
	p := filepath.Join(t.TempDir(), "weft-bench")
	if out, err := exec.Command("go", "build", "-o", p, "github.com/weftnet/weft/cmd/weft-bench").CombinedOutput(); err != nil {
		t.Fatalf("go build weft-bench: %v: %s", err, out)
	}
	return p
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// parseWGQuick reads a wg-quick config into "Section.Key" → value.
func parseWGQuick(t *testing.T, text string) map[string]string {
	t.Helper()
	m := map[string]string{}
	section := ""
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			section = strings.Trim(line, "[]")
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("config line %q", line)
			}
			m[section+"."+strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return m
}

// TestNetns_StockWireGuardClient: three weft hosts and a stock WireGuard client
// (wireguard-go on its own TUN in its own namespace) configured from the config that
// `weft client add` printed on host a. The client pings and moves a sha256-checked file to
// host b (not a), resolves a service on b through the DNS server of its config, and after
// `weft client remove` its traffic stops.
func TestNetns_StockWireGuardClient(t *testing.T) {
	netlab.RequireTools(t, "dig", "nft")
	nodes := gossipLab(t, "a", "b", "c", "w", "x")
	a, b, c, w, x := nodes[0], nodes[1], nodes[2], nodes[3], nodes[4] // x: a plain machine on the underlay
	key := gossipKeyB64(t)
	conf := func(n *node, join ...string) string {
		return strings.Replace(gossipConfig(n, key, join...), `listen: ["127.0.0.1:53"]`, `listen: ["127.0.0.1:53", "overlay:53"]`, 1)
	}
	a.start(conf(a))
	b.start(conf(b, a.underlay))
	c.start(conf(c, a.underlay))
	eventually(t, 30*time.Second, "all pairs ping", func() error { return allPairsPing(nodes[:3]) })
	aAddr, bAddr := a.status().Address, b.status().Address
	if out, err := b.cli("register", "web", "--port", "8080"); err != nil {
		t.Fatalf("register: %v %s", err, out)
	}

	out, err := a.cli("client", "add", "phone", "--keepalive", "25s")
	if err != nil {
		t.Fatal(err)
	}
	cfgText := out[:strings.LastIndex(out, "PersistentKeepalive")]
	cfgText = out[:strings.Index(out[len(cfgText):], "\n")+len(cfgText)+1]
	t.Logf("generated on a:\n%s", cfgText)
	cfg := parseWGQuick(t, cfgText)
	if cfg["Interface.DNS"] == "" || !strings.HasPrefix(cfg["Interface.DNS"], aAddr) {
		t.Fatalf("DNS %q, want a's overlay address %s", cfg["Interface.DNS"], aAddr)
	}
	if want := a.underlay + ":51820"; cfg["Peer.Endpoint"] != want {
		t.Fatalf("Endpoint %q, want %s", cfg["Peer.Endpoint"], want)
	}

	// The stock client: wireguard-go on wgc0 in w's namespace, set up as wg-quick would.
	// x's underlay address too: a hostile client tries to use a as a router (below).
	startStockClient(t, w, cfg, x.underlay+"/32")

	took := eventually(t, 15*time.Second, "the client pings b (not its host)", func() error { return w.ping(bAddr, 1) })
	t.Logf("first ping client→b after %s", took)
	if err := w.ping(bAddr, 3); err != nil {
		t.Fatal(err)
	}
	if err := w.ping(c.status().Address, 2); err != nil {
		t.Fatal(err)
	}
	const size = 20 << 20
	bps := transfer(t, w, b, bAddr, 5201, size)
	t.Logf("20 MiB client→b through a: %.2f Gbit/s (sha256 matched)", bps/1e9)
	bps = transfer(t, b, w, strings.Split(cfg["Interface.Address"], "/")[0], 5202, size)
	t.Logf("20 MiB b→client through a: %.2f Gbit/s (sha256 matched)", bps/1e9)

	dnsServer := strings.TrimSpace(strings.Split(cfg["Interface.DNS"], ",")[0])
	eventually(t, 15*time.Second, "the client resolves web.service.weft through its DNS", func() error {
		out, err := w.host.Run("dig", "@"+dnsServer, "+short", "+time=2", "+tries=1", "web.service.weft", "A")
		if err != nil || strings.TrimSpace(out) != bAddr {
			return fmt.Errorf("dig: %q %v", out, err)
		}
		return nil
	})
	if out, err := b.host.Run("dig", "@"+aAddr, "+short", "+time=2", "+tries=1", "phone.client.weft", "A"); err != nil || strings.TrimSpace(out) != strings.Split(cfg["Interface.Address"], "/")[0] {
		t.Errorf("phone.client.weft from b through a's DNS: %q %v", out, err)
	}
	if out, err := a.cli("client", "list"); err != nil || !strings.Contains(out, "phone") {
		t.Fatalf("client list: %v %s", err, out)
	}

	// Hostile: the client routes x's underlay address into the tunnel. a forwards from the
	// TUN only to the overlay: the client guard drops it (x counts what reaches it).
	if out, err := x.host.Run("nft", "add table ip wgtest; add chain ip wgtest in { type filter hook prerouting priority 0; }; add rule ip wgtest in ip saddr 10.42.0.0/16 counter"); err != nil {
		t.Fatalf("nft: %v %s", err, out)
	}
	fromOverlay := func() string {
		out, _ := x.host.Run("nft", "list chain ip wgtest in")
		if i := strings.Index(out, "counter packets "); i >= 0 {
			return strings.Fields(out[i+len("counter packets "):])[0]
		}
		return "?"
	}
	if out, err := w.host.Run("ip", "route", "add", x.underlay+"/32", "dev", "wgc0"); err != nil {
		t.Fatalf("route: %v %s", err, out)
	}
	_, _ = w.host.Run("ping", "-c", "3", "-i", "0.2", "-W", "1", x.underlay)
	if n := fromOverlay(); n != "0" {
		t.Fatalf("x received %s packets from the client through a", n)
	}
	if out, err := a.host.Run("ip", "rule", "del", "priority", "32692"); err != nil {
		t.Fatalf("ip rule del: %v %s", err, out)
	}
	_, _ = w.host.Run("ping", "-c", "3", "-i", "0.2", "-W", "1", x.underlay)
	if n := fromOverlay(); n == "0" || n == "?" {
		t.Fatalf("without the guard's drop rule x received %s packets: the check above cannot fail", n)
	}
	if out, err := a.host.Run("ip", "rule", "add", "priority", "32692", "iif", "weft0", "blackhole"); err != nil {
		t.Fatalf("ip rule add: %v %s", err, out)
	}

	if out, err := a.cli("client", "remove", "phone"); err != nil {
		t.Fatalf("remove: %v %s", err, out)
	}
	if _, err := w.host.Run("ping", "-c", "3", "-i", "0.2", "-W", "1", bAddr); err == nil {
		t.Fatal("the removed client still pings b")
	}
	if out, err := a.cli("client", "list", "--json"); err != nil || strings.Contains(out, "phone") {
		t.Fatalf("client list after remove: %v %s", err, out)
	}
}

// startStockClient runs wireguard-go as a stock WireGuard client on w, configured from cfg (a
// wg-quick config weft generated, parsed by parseWGQuick) as wg-quick would set it up: wgc0
// with the client's address, up, and a route to the peer's allowed IPs. extra, when not
// empty, is added to the peer's allowed IPs. The client stops when the test ends.
func startStockClient(t *testing.T, w *node, cfg map[string]string, extra string) {
	t.Helper()
	allowed := cfg["Peer.AllowedIPs"]
	if extra != "" {
		allowed += "," + extra
	}
	ctx, cancel := context.WithCancel(context.Background())
	wg := w.host.Command(ctx, wireGuardGoBin(t), "__wireguard-go", "--interface", "wgc0",
		"--private-key", cfg["Interface.PrivateKey"], "--listen-port", "51900",
		"--peer-public-key", cfg["Peer.PublicKey"], "--endpoint", cfg["Peer.Endpoint"],
		"--allowed-ips", allowed, "--mtu", cfg["Interface.MTU"])
	wgLog, _ := os.Create(filepath.Join(w.dir, "wireguard-go.log"))
	wg.Stdout, wg.Stderr = wgLog, wgLog
	if err := wg.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = wg.Wait(); wgLog.Close() })
	eventually(t, 10*time.Second, "wgc0 appears", func() error { _, err := w.host.Run("ip", "link", "show", "wgc0"); return err })
	for _, args := range [][]string{
		{"ip", "addr", "add", cfg["Interface.Address"], "dev", "wgc0"},
		{"ip", "link", "set", "wgc0", "up"},
		{"ip", "route", "add", cfg["Peer.AllowedIPs"], "dev", "wgc0"},
	} {
		if out, err := w.host.Run(args[0], args[1:]...); err != nil {
			t.Fatalf("%v: %v %s", args, err, out)
		}
	}
}
