package agent

import (
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.zx2c4.com/wireguard/tun"

	"github.com/weftnet/weft/agent/config"
	"github.com/weftnet/weft/agent/datapath"
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
		return newIdleDev(), tap.Mode{Offload: true}, nil
	}
	deps.ConfigureLink = func(string, netip.Addr, int, int) error { return nil }
	a.dp = dpGlue{datapath.New(datapath.ConfigOf(cfg), deps)}
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
	reg := prometheus.NewRegistry()
	reg.MustRegister(newMetricsCollector(a))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got float64 = -1
	for _, mf := range mfs {
		if mf.GetName() != "weft_drops_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == "wrong_vni" {
					got = m.GetCounter().GetValue()
				}
			}
		}
	}
	if got != 1 {
		t.Fatalf(`weft_drops_total{reason="wrong_vni"} = %v, want 1`, got)
	}
}

// idleDev is a tun.Device that never yields a frame and swallows writes.
type idleDev struct {
	closed chan struct{}
	once   sync.Once
	events chan tun.Event
}

var _ tun.Device = (*idleDev)(nil)

func newIdleDev() *idleDev {
	return &idleDev{closed: make(chan struct{}), events: make(chan tun.Event)}
}

func (d *idleDev) File() *os.File { return nil }
func (d *idleDev) Read([][]byte, []int, int) (int, error) {
	<-d.closed
	return 0, os.ErrClosed
}
func (d *idleDev) Write(bufs [][]byte, _ int) (int, error) { return len(bufs), nil }
func (d *idleDev) MTU() (int, error)                       { return 1450, nil }
func (d *idleDev) Name() (string, error)                   { return "idle0", nil }
func (d *idleDev) Events() <-chan tun.Event                { return d.events }
func (d *idleDev) BatchSize() int                          { return 1 }
func (d *idleDev) Close() error                            { d.once.Do(func() { close(d.closed) }); return nil }

// addStaticNoRoute applies a static peer as a's datapath does, without kernel routes (no
// device in unit tests).
func addStaticNoRoute(a *Agent, p config.PeerConfig) error {
	deps := datapathDeps(a)
	deps.AddRoute = func(string, netip.Prefix) error { return nil }
	return datapath.New(datapath.ConfigOf(a.cfg), deps).AddStatic(p)
}
