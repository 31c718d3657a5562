package agent_test

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/weftnet/weft/agent/api"
	"github.com/weftnet/weft/internal/netlab"
	"github.com/weftnet/weft/peers"
)

func gossipKeyB64(t *testing.T) string {
	var k [32]byte
	if _, err := rand.Read(k[:]); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(k[:])
}

// gossipLab builds n hosts on one switch (underlay 192.168.62.0/24).
func gossipLab(t *testing.T, names ...string) []*node {
	t.Helper()
	lab := netlab.NewT(t)
	netlab.RequireTools(t, "ping")
	var hosts []*netlab.Host
	var addrs []string
	for i, n := range names {
		h, err := lab.AddHost(n)
		if err != nil {
			t.Fatal(err)
		}
		hosts = append(hosts, h)
		addrs = append(addrs, fmt.Sprintf("192.168.62.%d/24", i+1))
	}
	if _, err := lab.Switch("eth0", hosts, addrs); err != nil {
		t.Fatal(err)
	}
	nodes := make([]*node, len(hosts))
	for i, h := range hosts {
		nodes[i] = newNode(t, h, strings.TrimSuffix(addrs[i], "/24"))
	}
	return nodes
}

func gossipConfig(n *node, key string, join ...string) string {
	return gossipSection(n, key, join) + `dns:
  listen: ["127.0.0.1:53"]
`
}

// gossipSection is the gossip block of n's config: fast gossip at n's underlay address,
// with keyring key, joining join.
func gossipSection(n *node, key string, join []string) string {
	return fmt.Sprintf(`gossip:
  bind: %s:7946
  key: %s
  fast: true
  join: [%s]
`, n.underlay, key, strings.Join(join, ", "))
}

func (n *node) members() map[string]api.Member {
	n.t.Helper()
	out, err := n.cli("members", "--json")
	if err != nil {
		n.t.Fatal(err)
	}
	var ms []api.Member
	if err := json.Unmarshal([]byte(out), &ms); err != nil {
		n.t.Fatalf("members --json: %v: %s", err, out)
	}
	m := map[string]api.Member{}
	for _, x := range ms {
		m[x.Name] = x
	}
	return m
}

func (n *node) status() api.Status {
	n.t.Helper()
	out, err := n.cli("status", "--json")
	if err != nil {
		n.t.Fatal(err)
	}
	var st api.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		n.t.Fatalf("status --json: %v: %s", err, out)
	}
	return st
}

func (n *node) hasPeer(key string) bool {
	for _, p := range n.peers() {
		if p.PublicKey == key {
			return true
		}
	}
	return false
}

// allPairsPing checks that every node reaches every other node's overlay address.
func allPairsPing(nodes []*node) error {
	for _, a := range nodes {
		for _, b := range nodes {
			if a == b {
				continue
			}
			addr := b.status().Address
			if err := a.ping(addr, 1); err != nil {
				return fmt.Errorf("%s → %s (%s): %w", a.name, b.name, addr, err)
			}
		}
	}
	return nil
}

func TestNetns_GossipMembership(t *testing.T) {
	nodes := gossipLab(t, "a", "b", "c", "x")
	a, b, c, x := nodes[0], nodes[1], nodes[2], nodes[3]
	key := gossipKeyB64(t)
	for _, n := range []*node{a, b, c} {
		n.start(gossipConfig(n, key))
	}

	// Join b and c through the single seed a.
	start := time.Now()
	for _, n := range []*node{b, c} {
		if out, err := n.cli("join", a.underlay); err != nil {
			t.Fatalf("join: %v %s", err, out)
		}
	}
	eventually(t, 30*time.Second, "all members alive everywhere", func() error {
		for _, n := range []*node{a, b, c} {
			ms := n.members()
			for _, name := range []string{"a", "b", "c"} {
				if ms[name].Status != "alive" || ms[name].Subnet == "" {
					return fmt.Errorf("%s sees %s as %+v", n.name, name, ms[name])
				}
			}
		}
		return nil
	})
	eventually(t, 30*time.Second, "all pairs ping", func() error { return allPairsPing([]*node{a, b, c}) })
	t.Logf("join through one seed → all pairs ping: %.1fs", time.Since(start).Seconds())
	subnets := map[string]string{}
	for _, n := range []*node{a, b, c} {
		sn := n.status().Subnet
		if prev, dup := subnets[sn]; dup {
			t.Fatalf("%s and %s share subnet %s", prev, n.name, sn)
		}
		subnets[sn] = n.name
	}

	// Graceful leave of c: its routes go on a and b.
	cKey, cAddr := c.pub(), c.status().Address
	start = time.Now()
	if out, err := c.cli("leave"); err != nil {
		t.Fatalf("leave: %v %s", err, out)
	}
	if err := c.wait(15 * time.Second); err != nil {
		t.Fatalf("agent after leave: %v\n%s", err, c.logs())
	}
	eventually(t, 20*time.Second, "c left and its routes gone on a and b", func() error {
		for _, n := range []*node{a, b} {
			// Fast timers reap a left member within seconds: left or gone are both right.
			if m, ok := n.members()["c"]; ok && m.Status != "left" {
				return fmt.Errorf("%s sees c as %q", n.name, m.Status)
			}
			if n.hasPeer(cKey) {
				return fmt.Errorf("%s still has c as a peer", n.name)
			}
		}
		return nil
	})
	t.Logf("weft leave → left on the others, routes withdrawn: %.1fs", time.Since(start).Seconds())
	// c's process is gone, so a ping to it fails whatever a's routes say: what shows that the
	// route went is where a's datapath put the packet. The cluster CIDR still leads into a's
	// device, and with c's prefix withdrawn no peer holds the address: a no_route drop (with
	// c still routed, the packet would be sealed and sent to c's old endpoint instead).
	noRoute := a.status().Drops[peers.DropNoRoute.String()]
	eventually(t, 10*time.Second, "a counts a packet to c's address as no_route", func() error {
		_ = a.ping(cAddr, 1) // fails: nobody answers
		if n := a.status().Drops[peers.DropNoRoute.String()]; n <= noRoute {
			return fmt.Errorf("no_route stayed at %d", n)
		}
		return nil
	})

	// c comes back; then b crashes (kill -9): failed on the others, its routes go.
	c.start(gossipConfig(c, key, a.underlay))
	eventually(t, 30*time.Second, "c back", func() error { return allPairsPing([]*node{a, b, c}) })
	bKey, bSubnet := b.pub(), b.status().Subnet
	start = time.Now()
	b.kill()
	eventually(t, 30*time.Second, "b failed and its routes gone on a and c", func() error {
		for _, n := range []*node{a, c} {
			if st := n.members()["b"].Status; st != "failed" {
				return fmt.Errorf("%s sees b as %q", n.name, st)
			}
			if n.hasPeer(bKey) {
				return fmt.Errorf("%s still has b as a peer", n.name)
			}
		}
		return nil
	})
	t.Logf("kill -9 → failed on the others, routes withdrawn: %.1fs", time.Since(start).Seconds())

	// b restarts with its state directory: same subnet, traffic resumes.
	start = time.Now()
	b.start(gossipConfig(b, key, a.underlay))
	if got := b.status().Subnet; got != bSubnet {
		t.Fatalf("b restarted with subnet %s, had %s", got, bSubnet)
	}
	eventually(t, 30*time.Second, "traffic resumes with b", func() error { return allPairsPing([]*node{a, b, c}) })
	t.Logf("restart of b → same subnet %s, all pairs ping again: %.1fs", bSubnet, time.Since(start).Seconds())

	// An unreachable address is named in the error.
	if out, err := a.cli("join", "192.168.62.99"); err == nil || !strings.Contains(out, "192.168.62.99:7946") {
		t.Fatalf("join of an unreachable address: %v\n%s", err, out)
	} else {
		t.Logf("join of an unreachable address: %s", strings.TrimSpace(out))
	}

	// x has another gossip key: it cannot join, and says so.
	x.start(gossipConfig(x, gossipKeyB64(t)))
	out, err := x.cli("join", a.underlay)
	if err == nil {
		t.Fatalf("a node with the wrong gossip key joined: %s", out)
	}
	t.Logf("join with the wrong key: %s", strings.TrimSpace(out))
	if !strings.Contains(x.logs(), "join failed") {
		t.Fatalf("x's log has no clear join error:\n%s", x.logs())
	}
	time.Sleep(time.Second)
	if _, ok := a.members()["x"]; ok {
		t.Fatal("a lists x as a member")
	}
}
