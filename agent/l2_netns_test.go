package agent_test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/weftnet/weft/internal/netlab"
)

// tapModes are the two ways the agent opens its TAP (tap_offload): the L2 tests run in both.
// Frame by frame moves fewer bytes: it is slower, and what it proves is the same.
var tapModes = []struct {
	name string
	conf string // added to each agent's config
	size int64  // bytes of each TCP transfer
	want string // what `weft status` says after the device name
}{
	{"offload", "", 50 << 20, "TAP, offload"},
	{"frame_by_frame", "tap_offload: false\n", 8 << 20, "TAP, frame by frame: tap_offload false"},
}

// checkTAPMode checks that n's status (text and --json) shows the TAP mode want, and that the
// agent logged no refusal by the kernel (this kernel accepts the offloads).
func checkTAPMode(t *testing.T, n *node, want string) {
	t.Helper()
	st := n.status()
	if st.TAP == nil || st.TAP.Offload != (want == "TAP, offload") ||
		!st.TAP.Offload && "TAP, frame by frame: "+st.TAP.Reason != want {
		t.Fatalf("%s: status --json tap = %+v, want %q", n.name, st.TAP, want)
	}
	out, err := n.cli("status")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^device:\s+weft0 \(` + regexp.QuoteMeta(want) + `\)$`).MatchString(out) {
		t.Fatalf("%s: weft status lacks the line device: weft0 (%s):\n%s", n.name, want, out)
	}
	if logs := n.logs(); strings.Contains(logs, "refused by the kernel") || strings.Contains(logs, "offload unavailable") {
		t.Fatalf("%s: the agent logged an offload refusal:\n%s", n.name, logs)
	}
}

// TestNetns_L2PlainKernelInterop: host a runs `weft agent` in L2 with encryption: none;
// host b has a Linux kernel vxlan device on the same VNI. ARP resolves, ping works both
// ways, and TCP transfers match their sha256 whichever side connects; with and without the
// TAP's offloads (tapModes).
func TestNetns_L2PlainKernelInterop(t *testing.T) {
	for _, tm := range tapModes {
		t.Run(tm.name, func(t *testing.T) {
			testL2PlainKernelInterop(t, tm.conf, tm.size, tm.want)
		})
	}
}

func testL2PlainKernelInterop(t *testing.T, tapConf string, size int64, wantMode string) {
	netlab.Require(t)
	netlab.RequireTools(t, "ping", "ethtool")
	ha, hb := netlab.PairT(t, "eth0", "192.168.63.1/24", "192.168.63.2/24")
	a := newNode(t, ha, "192.168.63.1")
	b := newNode(t, hb, "192.168.63.2")
	// A veth never fills in checksums it was handed as offloaded (CHECKSUM_PARTIAL): the inner
	// TCP checksum of b's vxlan packets would reach a's userspace socket unfinished, where a
	// physical NIC would have computed it. So b's underlay computes checksums in software.
	for _, cmd := range [][]string{
		{"ethtool", "-K", "eth0", "tx", "off"},
		{"ip", "link", "add", "vx0", "type", "vxlan", "id", "42", "dstport", "4789", "local", "192.168.63.2", "remote", "192.168.63.1", "dev", "eth0"},
		{"ip", "addr", "add", "10.42.0.2/16", "dev", "vx0"},
		{"ip", "link", "set", "vx0", "up"},
	} {
		if _, err := hb.Run(cmd[0], cmd[1:]...); err != nil {
			t.Fatalf("kernel vxlan setup: %v", err)
		}
	}
	a.start(`mode: l2
encryption: none
vni: 42
address: 10.42.0.1
gossip: {disabled: true}
dns: {disabled: true}
peers:
  - endpoint: 192.168.63.2:4789
` + tapConf)
	checkTAPMode(t, a, wantMode)
	eventually(t, 10*time.Second, "b (kernel) pings a (weft)", func() error { return b.ping("10.42.0.1", 1) })
	if err := a.ping("10.42.0.2", 3); err != nil {
		t.Fatal(err)
	}
	if err := b.ping("10.42.0.1", 3); err != nil {
		t.Fatal(err)
	}
	neigh, err := hb.Run("ip", "neigh", "show", "10.42.0.1", "dev", "vx0")
	if err != nil || !strings.Contains(neigh, "lladdr") {
		t.Fatalf("ARP did not resolve a's TAP MAC on b: %v %q", err, neigh)
	}
	fdb, err := a.cli("fdb")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("b's neighbour entry: %s\na's fdb:\n%s", strings.TrimSpace(neigh), fdb)
	bps := transfer(t, a, b, "10.42.0.2", 5301, size)
	t.Logf("%d MiB weft → kernel vxlan (%s): %.2f Gbit/s, sha256 matched", size>>20, wantMode, bps/1e9)
	bps = transfer(t, b, a, "10.42.0.1", 5302, size)
	t.Logf("%d MiB kernel vxlan → weft (%s): %.2f Gbit/s, sha256 matched", size>>20, wantMode, bps/1e9)
}

// TestNetns_L2Encrypted: two weft agents in encrypted L2 mode carry Ethernet; a third host on
// another VNI is dropped and counted. With and without the TAP's offloads (tapModes).
func TestNetns_L2Encrypted(t *testing.T) {
	for _, tm := range tapModes {
		t.Run(tm.name, func(t *testing.T) {
			testL2Encrypted(t, tm.conf, tm.size, tm.want)
		})
	}
}

func testL2Encrypted(t *testing.T, tapConf string, size int64, wantMode string) {
	nodes := gossipLab(t, "a", "b", "c")
	a, b, c := nodes[0], nodes[1], nodes[2]
	var overlay map[*node]string // each peer's overlay address: its allowed_ips
	conf := func(addr string, vni int, ps ...*node) string {
		s := fmt.Sprintf("mode: l2\nvni: %d\naddress: %s\ngossip: {disabled: true}\ndns: {disabled: true}\n%speers:\n", vni, addr, tapConf)
		for _, p := range ps {
			s += fmt.Sprintf("  - public_key: %s\n    endpoint: %s:51820\n    allowed_ips: [%s/32]\n", p.pub(), p.underlay, overlay[p])
		}
		return s
	}
	overlay = map[*node]string{a: "10.42.0.1", b: "10.42.0.2", c: "10.42.0.3"}
	a.start(conf("10.42.0.1", 7, b, c))
	b.start(conf("10.42.0.2", 7, a))
	c.start(conf("10.42.0.3", 8, a))
	checkTAPMode(t, a, wantMode)
	checkTAPMode(t, b, wantMode)

	eventually(t, 10*time.Second, "a pings b over encrypted L2", func() error { return a.ping("10.42.0.2", 1) })
	if err := b.ping("10.42.0.1", 3); err != nil {
		t.Fatal(err)
	}
	bps := transfer(t, a, b, "10.42.0.2", 5401, size)
	t.Logf("%d MiB a → b over encrypted L2 (%s): %.2f Gbit/s, sha256 matched", size>>20, wantMode, bps/1e9)
	bps = transfer(t, b, a, "10.42.0.1", 5402, size)
	t.Logf("%d MiB b → a over encrypted L2 (%s): %.2f Gbit/s, sha256 matched", size>>20, wantMode, bps/1e9)
	fdb, err := a.cli("fdb")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("a's fdb:\n%s", fdb)
	t.Logf("a's drops %v, b's drops %v", a.status().Drops, b.status().Drops)

	// c is on VNI 8: its frames reach a authenticated but are dropped as wrong_vni.
	if err := c.ping("10.42.0.1", 2); err == nil {
		t.Fatal("c on another VNI reached a")
	}
	eventually(t, 10*time.Second, "a counts c's frames as wrong_vni", func() error {
		if n := a.status().Drops["wrong_vni"]; n == 0 {
			return fmt.Errorf("a's drops: %v", a.status().Drops)
		}
		return nil
	})
	t.Logf("a's drops: %v", a.status().Drops)
}

// TestNetns_L2PlainGossip: plain L2 agents learn each other by gossip: flood remotes, static
// FDB entries for the published TAP MACs, and ARP answered locally (arp_suppression).
func TestNetns_L2PlainGossip(t *testing.T) {
	nodes := gossipLab(t, "a", "b")
	a, b := nodes[0], nodes[1]
	key := gossipKeyB64(t)
	conf := "mode: l2\nencryption: none\narp_suppression: true\n"
	a.start(conf + gossipConfig(a, key))
	b.start(conf + gossipConfig(b, key, a.underlay))
	bAddr := b.status().Address
	eventually(t, 20*time.Second, "a pings b over plain L2 found by gossip", func() error { return a.ping(bAddr, 1) })
	if err := b.ping(a.status().Address, 2); err != nil {
		t.Fatal(err)
	}
	fdb, err := a.cli("fdb")
	if err != nil || !strings.Contains(fdb, b.underlay+":4789") || !strings.Contains(fdb, "static") {
		t.Fatalf("a's fdb lacks b's static entry: %v\n%s", err, fdb)
	}
	if n := a.status().Counters["arp_suppressed"]; n == 0 {
		t.Fatalf("a answered no ARP request locally: %v", a.status().Counters)
	}
	t.Logf("a's fdb:\n%s\na's counters: %v", fdb, a.status().Counters)
}
