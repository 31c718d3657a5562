package agent_test

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestNetns_L2CryptokeyRouting: three agents in encrypted L2 found by gossip; b is hostile. It
// writes forged frames into its own TAP (its agent encrypts them to the others as any frame):
// an IPv4 packet from c's address, IPv6 packets from c's link-local and from an address
// nobody owns, a gratuitous ARP for c's address, and an ARP naming a's own MAC as sender.
// a drops each one as not_allowed_source (status and metrics), keeps c's and b's neighbour
// entries, and legitimate traffic flows. Then a's own kernel sends to a's TAP MAC (`ip neigh
// replace ... lladdr OWN_MAC` and a ping): dropped as to_self, and the agent lives on.
func TestNetns_L2CryptokeyRouting(t *testing.T) {
	nodes := gossipLab(t, "a", "b", "c")
	a, b, c := nodes[0], nodes[1], nodes[2]
	key := gossipKeyB64(t)
	conf := "mode: l2\n"
	a.start(conf + "metrics_listen: 127.0.0.1:9111\n" + gossipConfig(a, key))
	b.start(conf + gossipConfig(b, key, a.underlay))
	c.start(conf + gossipConfig(c, key, a.underlay))
	addrA, addrB, addrC := a.status().Address, b.status().Address, c.status().Address
	macA, macB, macC := tapMAC(t, a), tapMAC(t, b), tapMAC(t, c)

	eventually(t, 30*time.Second, "a pings b and c over encrypted L2", func() error {
		if err := a.ping(addrB, 1); err != nil {
			return err
		}
		return a.ping(addrC, 1)
	})
	if err := b.ping(addrC, 2); err != nil {
		t.Fatal(err)
	}
	// Legitimate traffic, with the kernels' own ARP, NDP and MLD, is never refused.
	for _, n := range nodes {
		if d := n.status().Drops["not_allowed_source"]; d != 0 {
			t.Fatalf("%s dropped %d legitimate frames as not_allowed_source: %v", n.name, d, n.status().Drops)
		}
	}
	neighBefore := neighMAC(t, a, addrC)
	if neighBefore != macC.String() {
		t.Fatalf("a's neighbour entry for c (%s) is %q, want c's MAC %s", addrC, neighBefore, macC)
	}

	ipC, ipA := netip.MustParseAddr(addrC), netip.MustParseAddr(addrA)
	attacks := []struct {
		name  string
		frame []byte
	}{
		{"ipv4 from c's address", ethFrame(macA, macB, 0x0800, udp4(ipC, ipA))},
		{"ipv6 from c's link-local", ethFrame(macA, macB, 0x86dd, udp6(linkLocal(macC), linkLocal(macA)))},
		{"ipv6 from an address nobody owns", ethFrame(macA, macB, 0x86dd, udp6(netip.MustParseAddr("fd00:42::3"), linkLocal(macA)))},
		{"gratuitous arp for c's address", ethFrame(net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, macB, 0x0806, arp(2, macB, ipC, ipC))},
		{"arp naming a's own MAC as sender", ethFrame(net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, macB, 0x0806, arp(1, macA, netip.MustParseAddr(addrB), ipA))},
	}
	for i, at := range attacks {
		inject(t, b, "weft0", at.frame)
		eventually(t, 10*time.Second, "a drops "+at.name, func() error {
			if d := a.status().Drops["not_allowed_source"]; d != uint64(i+1) {
				return fmt.Errorf("not_allowed_source = %d, want %d", d, i+1)
			}
			return nil
		})
	}
	if got := neighMAC(t, a, addrC); got != macC.String() {
		t.Errorf("a's neighbour entry for c is %q after b's gratuitous ARP, want %s", got, macC)
	}
	if got := neighMAC(t, a, addrB); got != macB.String() {
		t.Errorf("a's neighbour entry for b is %q after b's ARP naming a's MAC, want %s", got, macB)
	}
	metrics, err := a.httpGet("http://127.0.0.1:9111/metrics")
	if err != nil || !strings.Contains(metrics, fmt.Sprintf(`weft_drops_total{reason="not_allowed_source"} %d`, len(attacks))) {
		t.Errorf("a's metrics lack weft_drops_total{reason=\"not_allowed_source\"} %d: %v\n%s", len(attacks), err, grepLines(metrics, "weft_drops_total"))
	}

	// a's kernel addresses a frame to a's own TAP MAC: the agent drops it as to_self (it
	// used to dereference a nil peer and die).
	if _, err := a.host.Run("ip", "neigh", "replace", "10.42.255.254", "lladdr", macA.String(), "dev", "weft0"); err != nil {
		t.Fatal(err)
	}
	if err := a.ping("10.42.255.254", 2); err == nil {
		t.Fatal("a ping to its own MAC came back")
	}
	eventually(t, 10*time.Second, "a counts frames to its own MAC as to_self", func() error {
		if d := a.status().Drops["to_self"]; d == 0 {
			return fmt.Errorf("drops %v", a.status().Drops)
		}
		return nil
	})
	select {
	case err := <-a.done:
		t.Fatalf("a's agent exited: %v\n%s", err, a.logs())
	default:
	}

	// Legitimate traffic is unaffected.
	if err := a.ping(addrB, 2); err != nil {
		t.Fatal(err)
	}
	if err := c.ping(addrA, 2); err != nil {
		t.Fatal(err)
	}
	bps := transfer(t, c, a, addrA, 5411, 5<<20)
	t.Logf("5 MiB c → a after the attacks: %.2f Gbit/s, sha256 matched; a's drops %v", bps/1e9, a.status().Drops)
}

// tapMAC reads a node's TAP MAC from sysfs inside its namespace.
func tapMAC(t *testing.T, n *node) net.HardwareAddr {
	t.Helper()
	out, err := n.host.Run("cat", "/sys/class/net/weft0/address")
	if err != nil {
		t.Fatal(err)
	}
	mac, err := net.ParseMAC(strings.TrimSpace(out))
	if err != nil {
		t.Fatal(err)
	}
	return mac
}

// neighMAC returns the lladdr of n's neighbour entry for ip on weft0 ("" when none).
func neighMAC(t *testing.T, n *node, ip string) string {
	t.Helper()
	out, err := n.host.Run("ip", "neigh", "show", ip, "dev", "weft0")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(out)
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "lladdr" {
			return f[i+1]
		}
	}
	return ""
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func ethFrame(dst, src net.HardwareAddr, et uint16, payload []byte) []byte {
	b := append(append([]byte{}, dst...), src...)
	b = binary.BigEndian.AppendUint16(b, et)
	return append(b, payload...)
}

func linkLocal(mac net.HardwareAddr) netip.Addr {
	var a [16]byte
	a[0], a[1] = 0xfe, 0x80
	a[8], a[9], a[10], a[11], a[12] = mac[0]^0x02, mac[1], mac[2], 0xff, 0xfe
	a[13], a[14], a[15] = mac[3], mac[4], mac[5]
	return netip.AddrFrom16(a)
}

// udp4 is an IPv4/UDP datagram (port 9, discard) with a valid header checksum.
func udp4(src, dst netip.Addr) []byte {
	p := make([]byte, 20+8+4)
	p[0], p[8], p[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	s, d := src.As4(), dst.As4()
	copy(p[12:], s[:])
	copy(p[16:], d[:])
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(p[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(p[10:], ^uint16(sum))
	binary.BigEndian.PutUint16(p[20:], 9)
	binary.BigEndian.PutUint16(p[22:], 9)
	binary.BigEndian.PutUint16(p[24:], 12)
	return p
}

// udp6 is an IPv6/UDP datagram to port 9 (the UDP checksum is left zero: a receiver drops
// it, but only after the datapath, which is what is under test).
func udp6(src, dst netip.Addr) []byte {
	p := make([]byte, 40+8+4)
	p[0], p[6], p[7] = 0x60, 17, 64
	binary.BigEndian.PutUint16(p[4:], 12)
	s, d := src.As16(), dst.As16()
	copy(p[8:], s[:])
	copy(p[24:], d[:])
	binary.BigEndian.PutUint16(p[40:], 9)
	binary.BigEndian.PutUint16(p[42:], 9)
	binary.BigEndian.PutUint16(p[44:], 12)
	return p
}

// arp is an Ethernet/IPv4 ARP packet (op 1 request, 2 reply) from sha/spa about tpa.
func arp(op uint16, sha net.HardwareAddr, spa, tpa netip.Addr) []byte {
	p := []byte{0, 1, 8, 0, 6, 4, 0, byte(op)}
	p = append(p, sha...)
	s, d := spa.As4(), tpa.As4()
	p = append(p, s[:]...)
	p = append(p, make([]byte, 6)...)
	return append(p, d[:]...)
}

// inject writes raw Ethernet frames into dev inside n's namespace (the test binary as helper,
// mode "inject": an AF_PACKET socket bound to the device), as a hostile host's software could.
func inject(t *testing.T, n *node, dev string, frames ...[]byte) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"-test.run=^$", "inject", dev}
	for _, f := range frames {
		args = append(args, hex.EncodeToString(f))
	}
	cmd := n.host.Command(t.Context(), self, args...)
	cmd.Env = append(os.Environ(), helperEnv+"=inject")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("inject on %s: %v: %s", n.name, err, out)
	}
}

// injectFrames is the "inject DEV HEXFRAME..." helper: it sends each frame out of DEV.
func injectFrames(args []string) error {
	if len(args) < 2 {
		return fmt.Errorf("inject DEV HEXFRAME...")
	}
	ifi, err := net.InterfaceByName(args[0])
	if err != nil {
		return err
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
	if err != nil {
		return fmt.Errorf("AF_PACKET socket: %w", err)
	}
	defer unix.Close(fd)
	sa := &unix.SockaddrLinklayer{Ifindex: ifi.Index}
	for _, h := range args[1:] {
		f, err := hex.DecodeString(h)
		if err != nil {
			return err
		}
		if err := unix.Sendto(fd, f, 0, sa); err != nil {
			return fmt.Errorf("sendto %s: %w", args[0], err)
		}
	}
	return nil
}
