package agent_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/weftnet/weft/internal/netlab"
)

// TestNetns_PathMTUPerPeer: a reaches b over a 1500-byte link and c through a router r
// whose hop to c is 1400 bytes (which a's own links do not show). a's overlay MTU follows
// its 1500-byte links; toward c, weft learns the narrower path from r's ICMP errors and
// probes, never sends a datagram r would have to refuse, and answers an inner DF packet
// too big for that path with "fragmentation needed" from the TUN, so TCP to both peers
// works. Widening the hop raises c's path MTU again (probes every 2 s here).
func TestNetns_PathMTUPerPeer(t *testing.T) {
	netlab.Require(t)
	netlab.RequireTools(t, "ping")
	lab := netlab.NewT(t)
	host := func(name string) *netlab.Host {
		h, err := lab.AddHost(name)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	ha, hb, hc, hr := host("a"), host("b"), host("c"), host("r")
	must := func(h *netlab.Host, args ...string) {
		t.Helper()
		if out, err := h.Run(args[0], args[1:]...); err != nil {
			t.Fatalf("%s: %v: %v %s", h.Name, args, err, out)
		}
	}
	for _, l := range []struct {
		x       *netlab.Host
		ifx, ax string
		y       *netlab.Host
		ify, ay string
	}{
		{ha, "eth0", "192.168.81.1/24", hb, "eth0", "192.168.81.2/24"},
		{ha, "eth1", "192.168.82.1/24", hr, "eth0", "192.168.82.254/24"},
		{hr, "eth1", "192.168.83.254/24", hc, "eth0", "192.168.83.3/24"},
	} {
		if err := lab.Link(l.x, l.ifx, l.ax, l.y, l.ify, l.ay); err != nil {
			t.Fatal(err)
		}
	}
	must(hr, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	must(hr, "ip", "link", "set", "eth1", "mtu", "1400")
	must(hc, "ip", "link", "set", "eth0", "mtu", "1400")
	must(ha, "ip", "route", "add", "192.168.83.0/24", "via", "192.168.82.254")
	must(hc, "ip", "route", "add", "192.168.82.0/24", "via", "192.168.83.254")

	a, b, c := newNode(t, ha, "192.168.81.1"), newNode(t, hb, "192.168.81.2"), newNode(t, hc, "192.168.83.3")
	peer := func(n *node, endpoint, allowed string) string {
		return fmt.Sprintf("  - public_key: %s\n    endpoint: %s:51820\n    allowed_ips: [%s]\n", n.pub(), endpoint, allowed)
	}
	base := "gossip: {disabled: true}\ndns: {disabled: true}\npath_mtu_probe_interval: 2s\n"
	a.start(base + "subnet: 10.42.1.0/24\npeers:\n" + peer(b, "192.168.81.2", "10.42.2.0/24") + peer(c, "192.168.83.3", "10.42.3.0/24"))
	b.start(base + "subnet: 10.42.2.0/24\npeers:\n" + peer(a, "192.168.81.1", "10.42.1.0/24"))
	c.start(base + "subnet: 10.42.3.0/24\npeers:\n" + peer(a, "192.168.82.1", "10.42.1.0/24"))

	aMTU := a.status().MTU
	if want := 1500 - 68; aMTU != want {
		t.Fatalf("a's overlay MTU %d, want %d (its links are 1500)", aMTU, want)
	}
	eventually(t, 15*time.Second, "a pings b and c", func() error {
		if err := a.ping("10.42.2.1", 1); err != nil {
			return err
		}
		return a.ping("10.42.3.1", 1)
	})
	pathMTU := func(n *node, endpoint string) int {
		for _, p := range n.peers() {
			if strings.HasPrefix(p.Endpoint, endpoint+":") {
				return p.PathMTU
			}
		}
		return -1
	}
	took := eventually(t, 10*time.Second, "a finds the 1400-byte path to c", func() error {
		if got := pathMTU(a, "192.168.83.3"); got != 1400 {
			return fmt.Errorf("a's path MTU toward c: %d", got)
		}
		return nil
	})
	t.Logf("path MTU toward c found after %s; toward b: %d", took, pathMTU(a, "192.168.81.2"))
	if got := pathMTU(a, "192.168.81.2"); got != 1500 {
		t.Fatalf("a's path MTU toward b: %d, want 1500", got)
	}

	t.Run("TCP to both peers", func(t *testing.T) {
		for _, dst := range []struct {
			n    *node
			addr string
		}{{b, "10.42.2.1"}, {c, "10.42.3.1"}} {
			bps := transfer(t, a, dst.n, dst.addr, 5301, 16<<20)
			t.Logf("16 MiB a→%s: %.2f Gbit/s (sha256 matched)", dst.n.name, bps/1e9)
			bps = transfer(t, dst.n, a, "10.42.1.1", 5302, 16<<20)
			t.Logf("16 MiB %s→a: %.2f Gbit/s (sha256 matched)", dst.n.name, bps/1e9)
		}
	})

	t.Run("DF packet too big for c's path gets ICMP from the TUN", func(t *testing.T) {
		innerMTU := 1400 - 68
		before := counter(a, "icmp_too_big")
		// A full-size ping to b passes; the same size to c cannot, and the error says why.
		if err := a.ping("10.42.2.1", 1); err != nil {
			t.Fatal(err)
		}
		if out, err := a.host.Run("ping", "-c", "1", "-W", "2", "-M", "do", "-s", fmt.Sprint(aMTU-28), "10.42.2.1"); err != nil {
			t.Fatalf("full-size DF ping to b: %v\n%s", err, out)
		}
		out, err := a.host.Run("ping", "-c", "2", "-i", "0.3", "-W", "2", "-M", "do", "-s", fmt.Sprint(aMTU-28), "10.42.3.1")
		if err == nil {
			t.Fatalf("a full-size DF ping through the 1400-byte path was answered:\n%s", out)
		}
		if !strings.Contains(out, fmt.Sprintf("mtu = %d", innerMTU)) && !strings.Contains(out, fmt.Sprintf("mtu=%d", innerMTU)) {
			t.Fatalf("ping did not learn MTU %d:\n%s", innerMTU, out)
		}
		if n := counter(a, "icmp_too_big"); n <= before {
			t.Fatalf("icmp_too_big %d, was %d", n, before)
		}
		// And the largest packet that fits c's path passes with DF.
		if out, err := a.host.Run("ping", "-c", "1", "-W", "2", "-M", "do", "-s", fmt.Sprint(innerMTU-28), "10.42.3.1"); err != nil {
			t.Fatalf("DF ping of %d bytes to c: %v\n%s", innerMTU, err, out)
		}
	})

	t.Run("path MTU rises when the hop widens", func(t *testing.T) {
		must(hc, "ip", "link", "set", "eth0", "mtu", "1500")
		must(hr, "ip", "link", "set", "eth1", "mtu", "1500")
		took := eventually(t, 15*time.Second, "a's path MTU toward c rises", func() error {
			if got := pathMTU(a, "192.168.83.3"); got != 1500 {
				return fmt.Errorf("a's path MTU toward c: %d", got)
			}
			return nil
		})
		t.Logf("risen after %s", took)
		if out, err := a.host.Run("ping", "-c", "1", "-W", "2", "-M", "do", "-s", fmt.Sprint(aMTU-28), "10.42.3.1"); err != nil {
			// The inner route may still hold the PMTU TCP/ping learned (the kernel keeps it
			// 10 minutes); flush it as an operator would, then the full size passes.
			must(ha, "ip", "route", "flush", "cache")
			if out2, err := a.host.Run("ping", "-c", "1", "-W", "2", "-M", "do", "-s", fmt.Sprint(aMTU-28), "10.42.3.1"); err != nil {
				t.Fatalf("full-size DF ping to c after widening: %v\n%s\n%s", err, out, out2)
			}
		}
	})
	if t.Failed() {
		t.Logf("a's log:\n%s", a.logs())
	}
}

// counter is one of the node's datapath counters (weft status).
func counter(n *node, name string) uint64 { return n.status().Counters[name] }
