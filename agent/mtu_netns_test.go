package agent_test

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/weftnet/weft/agent/api"
	"github.com/weftnet/weft/internal/netlab"
	"github.com/weftnet/weft/tunnel"
)

// TestNetns_MTUUnderlay: two agents with default settings (no mtu key) on two namespaces
// joined by one veth pair of a given MTU: each device takes the underlay's MTU less weft's
// overhead (l3 over IPv4), `weft status` says so, a full-size ping with DF crosses both
// ways, and 16 MiB of TCP cross each way intact. With the MTU fixed at 1412 whatever the
// underlay (issue 24), the 1460 and 1400 cases stalled TCP: the overlay's full-size
// packets did not fit the link.
func TestNetns_MTUUnderlay(t *testing.T) {
	netlab.Require(t)
	netlab.RequireTools(t, "ping")
	for i, u := range []int{1280, 1400, 1460, 1500, 9001} {
		t.Run(strconv.Itoa(u), func(t *testing.T) { testMTUUnderlay(t, u, 5401+2*i) })
	}
}

func testMTUUnderlay(t *testing.T, underlayMTU, port int) {
	ha, hb := netlab.PairT(t, "eth0", "192.168.62.1/24", "192.168.62.2/24")
	for _, h := range []*netlab.Host{ha, hb} {
		if _, err := h.Run("ip", "link", "set", "eth0", "mtu", strconv.Itoa(underlayMTU)); err != nil {
			t.Fatal(err)
		}
	}
	a, b := newNode(t, ha, "192.168.62.1"), newNode(t, hb, "192.168.62.2")
	a.start(staticPeerConf("10.42.1.0/24", b, "10.42.2.0/24"))
	b.start(staticPeerConf("10.42.2.0/24", a, "10.42.1.0/24"))
	want := tunnel.InnerMTU(underlayMTU, tunnel.FramingL3, false)
	source := fmt.Sprintf("underlay eth0 %d − %d (l3, IPv4)", underlayMTU, tunnel.Overhead(tunnel.FramingL3, false))

	for _, n := range []*node{a, b} {
		out, err := n.host.Run("ip", "link", "show", "weft0")
		if err != nil {
			t.Fatal(err)
		}
		if m := regexp.MustCompile(`mtu (\d+)`).FindStringSubmatch(out); m == nil || m[1] != strconv.Itoa(want) {
			t.Errorf("%s: weft0 %q, want mtu %d", n.name, out, want)
		}
		var st api.Status
		if out, err := n.cli("status", "--json"); err != nil || json.Unmarshal([]byte(out), &st) != nil {
			t.Fatalf("%s: status: %v %s", n.name, err, out)
		}
		if st.MTU != want || st.MTUSource != source {
			t.Errorf("%s: status mtu %d %q, want %d %q", n.name, st.MTU, st.MTUSource, want, source)
		}
		if out, err := n.cli("status"); err != nil || !regexp.MustCompile(fmt.Sprintf(`(?m)^mtu:\s+%d: %s$`, want, regexp.QuoteMeta(source))).MatchString(out) {
			t.Errorf("%s: weft status does not show the mtu: %v\n%s", n.name, err, out)
		}
	}

	eventually(t, 10*time.Second, "a pings b", func() error { return a.ping("10.42.2.1", 1) })
	for _, p := range []struct {
		from *node
		to   string
	}{{a, "10.42.2.1"}, {b, "10.42.1.1"}} {
		// ICMP echo of want bytes in all: 20 IP + 8 ICMP + payload; DF set, so nothing is fragmented.
		out, err := p.from.host.Run("ping", "-M", "do", "-s", strconv.Itoa(want-28), "-c", "3", "-i", "0.2", "-W", "2", p.to)
		if err != nil || !regexp.MustCompile(`\b3 received`).MatchString(out) {
			t.Errorf("%s: full-size DF ping of %d bytes to %s: %v\n%s", p.from.name, want, p.to, err, out)
		}
	}

	const size = 16 << 20
	bps := transferWithin(t, a, b, "10.42.2.1", port, size, 20*time.Second)
	t.Logf("underlay %d, overlay %d: 16 MiB a→b %.2f Gbit/s (sha256 matched)", underlayMTU, want, bps/1e9)
	bps = transferWithin(t, b, a, "10.42.1.1", port+1, size, 20*time.Second)
	t.Logf("underlay %d, overlay %d: 16 MiB b→a %.2f Gbit/s (sha256 matched)", underlayMTU, want, bps/1e9)
}
