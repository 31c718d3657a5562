package agent

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/tun"

	"github.com/weftnet/weft/agent/config"
	"github.com/weftnet/weft/agent/datapath"
	"github.com/weftnet/weft/internal/testkit"
	"github.com/weftnet/weft/tap"
)

// TestPlainPath_DropsMetric: plain L2 drops are counted under the encrypted modes' reason
// names and exported as weft_drops_total, like theirs. A datagram of another VNI arrives on
// the VTEP's socket; status and the metric both show it as wrong_vni.
func TestPlainPath_DropsMetric(t *testing.T) {
	cfg := config.DefaultConfig()
	cfg.Mode, cfg.Encryption, cfg.VNI = "l2", "none", 42
	cfg.ListenPort = freeUDPPort(t)
	cfg.Peers = []config.PeerConfig{{Endpoint: config.AddrPort{AddrPort: netip.MustParseAddrPort("127.0.0.1:4789")}}} // the sender below: a known VTEP
	a := &Agent{cfg: cfg, log: NewLogger(testWriter{t}, "debug"), priv: newKey(t)}
	deps := datapathDeps(a)
	deps.OpenTAP = func(tap.Config, bool) (tun.Device, tap.Mode, error) {
		return testkit.NewDevice(testkit.DeviceConfig{MTU: 1450}), tap.Mode{Offload: true}, nil
	}
	deps.ConfigureLink = func(string, netip.Addr, int, int) error { return nil }
	a.dp = datapath.New(datapath.ConfigOf(cfg), deps)
	if err := a.startDatapath(); err != nil {
		t.Fatal(err)
	}
	defer a.stopDatapath()
	v := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), a.port)

	c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(v))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	frame := make([]byte, 60)
	if _, err := c.Write(append([]byte{0x08, 0, 0, 0, 0, 0, 43, 0}, frame...)); err != nil { // VNI 43
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for a.Status().Drops["wrong_vni"] != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("status drops %v, want wrong_vni: 1", a.Status().Drops)
		}
		time.Sleep(5 * time.Millisecond)
	}
	got, ok := gatherCounters(t, newMetricsCollector(a), "weft_drops_total", "reason")["wrong_vni"]
	if !ok || got != 1 {
		t.Fatalf(`weft_drops_total{reason="wrong_vni"} = %v, want 1`, got)
	}
}

// addStaticNoRoute applies a static peer as a's datapath does, without kernel routes (no
// device in unit tests).
func addStaticNoRoute(a *Agent, p config.PeerConfig) error {
	deps := datapathDeps(a)
	deps.AddRoute = func(string, netip.Prefix) error { return nil }
	return datapath.New(datapath.ConfigOf(a.cfg), deps).AddStatic(p)
}
