package agent_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/weftnet/weft/internal/cnilab"
	"github.com/weftnet/weft/internal/netlab"
)

// cniHost is a weft host as a container runtime sees it: its agent, its CNI bin directory
// (plugins run in the host's namespace) and the network list `weft cni install` writes.
type cniHost struct {
	n    *node
	cni  *libcni.CNIConfig
	list *libcni.NetworkConfigList
}

func newCNIHost(t *testing.T, n *node) *cniHost {
	t.Helper()
	bin, err := cnilab.BinDir(filepath.Join(n.dir, "cni-bin"), n.host.NS)
	if err != nil {
		t.Fatal(err)
	}
	pluginDir, _ := cnilab.Plugins()
	confDir := filepath.Join(n.dir, "cni-conf")
	// The conflist is the one `weft cni install` writes, pointed at this node's socket; the
	// test adds only where the reservations live.
	if out, err := n.cli("cni", "install", "--conf-dir", confDir, "--bin-dir", filepath.Join(n.dir, "cni-installed"),
		"--plugin", filepath.Join(pluginDir, "weft-cni")); err != nil {
		t.Fatalf("weft cni install: %v\n%s", err, out)
	}
	raw, err := os.ReadFile(filepath.Join(confDir, "10-weft.conflist"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	plugins := m["plugins"].([]any)
	weft := plugins[0].(map[string]any)
	if weft["type"] != "weft-cni" || plugins[1].(map[string]any)["type"] != "portmap" {
		t.Fatalf("conflist does not chain weft-cni and portmap: %s", raw)
	}
	weft["dataDir"] = filepath.Join(n.dir, "cni-data")
	raw, _ = json.Marshal(m)
	list, err := libcni.ConfListFromBytes(raw)
	if err != nil {
		t.Fatalf("libcni rejects the conflist: %v\n%s", err, raw)
	}
	return &cniHost{n: n, cni: libcni.NewCNIConfigWithCacheDir([]string{bin}, filepath.Join(n.dir, "cni-cache"), nil), list: list}
}

// container is a namespace with its runtime parameters.
type container struct {
	h    *netlab.Host
	rt   *libcni.RuntimeConf
	addr netip.Addr
}

func (c *cniHost) add(t *testing.T, lab *netlab.Lab, name string, ports ...int) *container {
	t.Helper()
	h, err := lab.AddHost(name)
	if err != nil {
		t.Fatal(err)
	}
	rt := &libcni.RuntimeConf{ContainerID: "ctr-" + h.NS, NetNS: "/run/netns/" + h.NS, IfName: "eth0"}
	if len(ports) == 2 {
		rt.CapabilityArgs = map[string]any{"portMappings": []map[string]any{{"hostPort": ports[0], "containerPort": ports[1], "protocol": "tcp"}}}
	}
	ctr := &container{h: h, rt: rt}
	ctr.addr = c.addNS(t, ctr)
	return ctr
}

func (c *cniHost) addNS(t *testing.T, ctr *container) netip.Addr {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := c.cni.AddNetworkList(ctx, c.list, ctr.rt)
	if err != nil {
		t.Fatalf("ADD %s on %s: %v", ctr.h.Name, c.n.name, err)
	}
	res, err := current.NewResultFromResult(r)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.IPs) != 1 || res.IPs[0].Interface == nil || res.Interfaces[*res.IPs[0].Interface].Sandbox != ctr.rt.NetNS {
		t.Fatalf("ADD result: %+v", res)
	}
	a, _ := netip.AddrFromSlice(res.IPs[0].Address.IP.To4())
	return a
}

func (c *cniHost) del(t *testing.T, ctr *container) {
	t.Helper()
	if err := c.cni.DelNetworkList(context.Background(), c.list, ctr.rt); err != nil {
		t.Fatalf("DEL %s: %v", ctr.h.Name, err)
	}
}

func (c *cniHost) check(ctr *container) error {
	return c.cni.CheckNetworkList(context.Background(), c.list, ctr.rt)
}

func (ctr *container) ping(dst netip.Addr) error {
	out, err := ctr.h.Run("ping", "-c", "1", "-W", "2", dst.String())
	if err != nil {
		return err
	}
	if !strings.Contains(out, "1 received") {
		return fmt.Errorf("ping %s from %s: %s", dst, ctr.h.Name, out)
	}
	return nil
}

// TestNetns_CNI: two hosts with agents joined by gossip; two containers on a, one on b, all
// through libcni with the conflist `weft cni install` writes (weft-cni then portmap).
func TestNetns_CNI(t *testing.T) {
	netlab.Require(t)
	if _, err := exec.LookPath("iptables"); err != nil {
		netlab.RequireTools(t, "nft") // portmap's other backend
	}
	nodes := gossipLab(t, "a", "b")
	a, b := nodes[0], nodes[1]
	key := gossipKeyB64(t)
	cniConf := func(n *node) string {
		return fmt.Sprintf("cni:\n  enabled: true\n  subnet_env: %s\n", filepath.Join(n.dir, "subnet.env"))
	}
	a.start(gossipConfig(a, key) + cniConf(a))
	b.start(gossipConfig(b, key, a.underlay) + cniConf(b))
	eventually(t, 30*time.Second, "hosts reach each other", func() error { return allPairsPing(nodes) })
	sa, sb := a.status(), b.status()
	subA, subB := netip.MustParsePrefix(sa.Subnet), netip.MustParsePrefix(sb.Subnet)

	env, err := os.ReadFile(filepath.Join(a.dir, "subnet.env"))
	if err != nil {
		t.Fatal(err)
	}
	wantEnv := fmt.Sprintf("FLANNEL_NETWORK=10.42.0.0/16\nFLANNEL_SUBNET=%s/24\nFLANNEL_MTU=%d\nFLANNEL_IPMASQ=false\n", subA.Addr().Next(), sa.MTU)
	if string(env) != wantEnv {
		t.Fatalf("subnet.env:\n%s\nwant\n%s", env, wantEnv)
	}

	ca, cb := newCNIHost(t, a), newCNIHost(t, b)
	lab := netlab.NewT(t)
	a1 := ca.add(t, lab, "a1", 8080, 80)
	a2 := ca.add(t, lab, "a2")
	b1 := cb.add(t, lab, "b1")
	ctrs := []*container{a1, a2, b1}
	t.Logf("a %s: a1 %s a2 %s; b %s: b1 %s", subA, a1.addr, a2.addr, subB, b1.addr)
	if !subA.Contains(a1.addr) || !subA.Contains(a2.addr) || !subB.Contains(b1.addr) || a1.addr == a2.addr {
		t.Fatalf("addresses not distinct or not from their hosts' subnets")
	}
	for _, c := range []netip.Addr{a1.addr, a2.addr, b1.addr} {
		if c == subA.Addr().Next() || c == subB.Addr().Next() {
			t.Fatalf("a container got a gateway address %s", c)
		}
	}

	t.Run("interface: address, MTU, routes", func(t *testing.T) {
		out, err := a1.h.Run("ip", "-o", "-4", "addr", "show", "dev", "eth0")
		if err != nil || !strings.Contains(out, a1.addr.String()+"/24") {
			t.Fatalf("%v %s", err, out)
		}
		out, _ = a1.h.Run("ip", "-o", "link", "show", "dev", "eth0")
		if !strings.Contains(out, "mtu "+strconv.Itoa(sa.MTU)+" ") {
			t.Fatalf("container MTU is not the overlay's %d: %s", sa.MTU, out)
		}
		out, _ = a1.h.Run("ip", "-4", "route")
		gw := subA.Addr().Next().String()
		if !strings.Contains(out, "default via "+gw) || !strings.Contains(out, "10.42.0.0/16 via "+gw) {
			t.Fatalf("routes:\n%s", out)
		}
		// The host's own overlay address still works: the agent's TUN keeps the cluster route.
		if out, _ := a.host.Run("ip", "-4", "route"); !strings.Contains(out, "10.42.0.0/16 dev weft0") || !strings.Contains(out, subA.String()+" dev weft-br0") {
			t.Fatalf("host a's routes:\n%s", out)
		}
	})

	t.Run("every pair pings", func(t *testing.T) {
		for _, x := range ctrs {
			for _, y := range ctrs {
				if x != y {
					eventually(t, 10*time.Second, x.h.Name+" → "+y.h.Name, func() error { return x.ping(y.addr) })
				}
			}
			// and the hosts' overlay addresses, local and remote
			for _, st := range []string{sa.Address, sb.Address} {
				if err := x.ping(netip.MustParseAddr(st)); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := a.ping(b1.addr.String(), 1); err != nil {
			t.Fatalf("host a → container b1: %v", err)
		}
	})

	t.Run("sha256 transfer a1 → b1 through the encrypted overlay", func(t *testing.T) {
		before := a.peers()[0].TxBytes
		const size = 16 << 20
		bps := transfer(t, &node{t: t, name: "a1", host: a1.h}, &node{t: t, name: "b1", host: b1.h}, b1.addr.String(), 5201, size)
		sent := a.peers()[0].TxBytes - before
		t.Logf("16 MiB a1→b1: %.2f Gbit/s, %d bytes through a's tunnel", bps/1e9, sent)
		if sent < size {
			t.Fatalf("only %d bytes went through the tunnel for a %d-byte transfer", sent, size)
		}
	})

	t.Run("portmap: b reaches a1:80 at a's overlay address, port 8080", func(t *testing.T) {
		portTransfer(t, a1.h, "0.0.0.0:80", b.host, sa.Address+":8080", 1<<20)
	})

	t.Run("weft register --address: b's DNS answers a1's address", func(t *testing.T) {
		netlab.RequireTools(t, "dig")
		if out, err := a.cli("register", "web", "--port", "80", "--address", a1.addr.String()); err != nil {
			t.Fatalf("%v %s", err, out)
		}
		eventually(t, 15*time.Second, "web.service on b", expectAnswers(b, "web.service.weft.", "A", a1.addr.String()))
		// a may not name b's container
		if out, err := a.cli("register", "evil", "--port", "80", "--address", b1.addr.String()); err == nil {
			t.Fatalf("a registered b's container address: %s", out)
		}
	})

	t.Run("a repeated ADD answers the attachment and leaves the container working", func(t *testing.T) {
		// A runtime retrying an ADD (a chained plugin failed, no DEL between) gets weft-cni's
		// existing attachment back: the same address, no second veth.
		before, _ := a.host.Run("ip", "-o", "link", "show", "master", "weft-br0")
		r, err := ca.cni.AddNetworkList(context.Background(), ca.list, a1.rt)
		if err != nil {
			t.Fatalf("repeated ADD: %v", err)
		}
		res, err := current.NewResultFromResult(r)
		if err != nil || len(res.IPs) != 1 || !res.IPs[0].Address.IP.Equal(a1.addr.AsSlice()) {
			t.Fatalf("repeated ADD answered %v (%v), want %s", r, err, a1.addr)
		}
		if after, _ := a.host.Run("ip", "-o", "link", "show", "master", "weft-br0"); strings.Count(after, "\n") != strings.Count(before, "\n") {
			t.Fatalf("the repeated ADD changed the bridge's ports:\n%s\nthen\n%s", before, after)
		}
		if err := a1.ping(b1.addr); err != nil {
			t.Fatalf("a1 after the repeated ADD: %v", err)
		}
	})

	t.Run("CHECK passes, and fails without the veth", func(t *testing.T) {
		for i, c := range ctrs {
			h := ca
			if i == 2 {
				h = cb
			}
			if err := h.check(c); err != nil {
				t.Fatalf("CHECK %s: %v", c.h.Name, err)
			}
		}
		if _, err := a2.h.Run("ip", "link", "del", "eth0"); err != nil {
			t.Fatal(err)
		}
		err := ca.check(a2)
		if err == nil {
			t.Fatal("CHECK passed after the veth was deleted")
		}
		t.Logf("CHECK after deleting the veth: %v", err)
	})

	t.Run("DEL frees the address; a new ADD takes it", func(t *testing.T) {
		freed := a2.addr
		ca.del(t, a2)
		ca.del(t, a2) // idempotent
		a3 := ca.add(t, lab, "a3")
		if a3.addr != freed {
			t.Fatalf("a3 got %s, not the freed %s", a3.addr, freed)
		}
		eventually(t, 10*time.Second, "a3 → b1", func() error { return a3.ping(b1.addr) })
		ca.del(t, a3)
	})

	t.Run("agent restart: containers keep working, reservations survive", func(t *testing.T) {
		a.kill()
		a.start(gossipConfig(a, key, b.underlay) + cniConf(a))
		if got := a.status().Subnet; got != sa.Subnet {
			t.Fatalf("a came back on %s, not %s", got, sa.Subnet)
		}
		eventually(t, 20*time.Second, "a1 → b1 after a's restart", func() error { return a1.ping(b1.addr) })
		a4 := ca.add(t, lab, "a4")
		if a4.addr == a1.addr {
			t.Fatalf("after the restart a4 got a1's address %s", a1.addr)
		}
		if err := ca.check(a1); err != nil {
			t.Fatalf("CHECK a1 after the restart: %v", err)
		}
		ca.del(t, a4)
	})

	// STATUS (CNI 1.1): the agent answers.
	if err := ca.cni.GetStatusNetworkList(context.Background(), ca.list); err != nil {
		t.Fatalf("STATUS: %v", err)
	}
	ca.del(t, a1)
	cb.del(t, b1)
	if out, _ := a.host.Run("ip", "-o", "link", "show", "master", "weft-br0"); strings.TrimSpace(out) != "" {
		t.Fatalf("veths left on a's bridge after DEL:\n%s", out)
	}
}

// portTransfer runs the sink in sinkHost on listen and the source in srcHost towards dial,
// through whatever translation lies between, and compares the sha256 on both sides.
func portTransfer(t *testing.T, sinkHost *netlab.Host, listen string, srcHost *netlab.Host, dial string, size int64) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sink := sinkHost.Command(ctx, self, "-test.run=^$", "sink", listen)
	sink.Env = append(os.Environ(), helperEnv+"=sink")
	out, err := sink.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sink.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sink.Process.Kill(); _ = sink.Wait() }()
	rd := bufio.NewReader(out)
	if line, err := rd.ReadString('\n'); err != nil || strings.TrimSpace(line) != "listening" {
		t.Fatalf("sink: %q %v", line, err)
	}
	src := srcHost.Command(ctx, self, "-test.run=^$", "source", dial, strconv.FormatInt(size, 10))
	src.Env = append(os.Environ(), helperEnv+"=source")
	sent, err := src.CombinedOutput()
	if err != nil {
		t.Fatalf("source: %v: %s", err, sent)
	}
	got, err := rd.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(sent)) != strings.TrimSpace(got) {
		t.Fatalf("sent %q, received %q", sent, got)
	}
}

// TestNetns_CNIForwardGuard: with containers on, the agent forwards what arrives through the
// tunnel; a hostile peer (b, whose own agent sends 192.168.99.0/24 to a because its config says
// so) must still not reach a network behind a. The guard rule drops it; without the guard
// (deleted by hand) the same packets do reach the victim, so the check can fail.
func TestNetns_CNIForwardGuard(t *testing.T) {
	netlab.Require(t)
	netlab.RequireTools(t, "ping")
	lab := netlab.NewT(t)
	ha, _ := lab.AddHost("a")
	hb, _ := lab.AddHost("b")
	hv, err := lab.AddHost("v")
	if err != nil {
		t.Fatal(err)
	}
	if err := lab.Link(ha, "eth0", "192.168.61.1/24", hb, "eth0", "192.168.61.2/24"); err != nil {
		t.Fatal(err)
	}
	if err := lab.Link(ha, "eth1", "192.168.99.1/24", hv, "eth0", "192.168.99.5/24"); err != nil {
		t.Fatal(err)
	}
	if _, err := hv.Run("ip", "route", "add", "default", "via", "192.168.99.1"); err != nil {
		t.Fatal(err)
	}
	// Only the guard may stand between b and v: forwarding on a's victim side too.
	if _, err := ha.Run("sh", "-c", "echo 1 > /proc/sys/net/ipv4/conf/eth1/forwarding"); err != nil {
		t.Fatal(err)
	}
	a, b := newNode(t, ha, "192.168.61.1"), newNode(t, hb, "192.168.61.2")
	a.start(staticPeerConf("10.42.1.0/24", b, "10.42.2.0/24") + fmt.Sprintf("cni:\n  enabled: true\n  subnet_env: %s\n", filepath.Join(a.dir, "subnet.env")))
	b.start(staticPeerConf("10.42.2.0/24", a, "10.42.1.0/24, 192.168.99.0/24"))
	eventually(t, 10*time.Second, "b pings a", func() error { return b.ping("10.42.1.1", 1) })
	if err := b.ping("192.168.99.5", 3); err == nil {
		t.Fatal("a forwarded tunnel traffic to a network behind it")
	}
	if _, err := ha.Run("ip", "rule", "del", "priority", "32701"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "without the guard, b reaches v through a", func() error { return b.ping("192.168.99.5", 1) })
}

// TestNetns_CNIMasquerade: with cni.ipmasq a container reaches a host outside the cluster
// that has no route back to the overlay (its "internet"), through the host's address; the
// host still does not forward its LAN's new connections; without weft's table (deleted by
// hand) the container's packets get no answer and the LAN's pass, so both checks can fail.
func TestNetns_CNIMasquerade(t *testing.T) {
	netlab.Require(t)
	netlab.RequireTools(t, "ping", "nft")
	lab := netlab.NewT(t)
	ha, _ := lab.AddHost("a")
	hv, err := lab.AddHost("v")
	if err != nil {
		t.Fatal(err)
	}
	hl, err := lab.AddHost("l")
	if err != nil {
		t.Fatal(err)
	}
	if err := lab.Link(ha, "eth1", "192.168.99.1/24", hv, "eth0", "192.168.99.5/24"); err != nil {
		t.Fatal(err)
	}
	if err := lab.Link(ha, "eth2", "192.168.98.1/24", hl, "eth0", "192.168.98.5/24"); err != nil {
		t.Fatal(err)
	}
	if _, err := hl.Run("ip", "route", "add", "default", "via", "192.168.98.1"); err != nil {
		t.Fatal(err)
	}
	// v routes a's LAN back (so only a's forwarding decides), not the overlay.
	if _, err := hv.Run("ip", "route", "add", "192.168.98.0/24", "via", "192.168.99.1"); err != nil {
		t.Fatal(err)
	}
	a := newNode(t, ha, "192.168.99.1")
	a.start(fmt.Sprintf("gossip: {disabled: true}\ndns: {disabled: true}\nsubnet: 10.42.1.0/24\ncni:\n  enabled: true\n  ipmasq: true\n  subnet_env: %s\n", filepath.Join(a.dir, "subnet.env")))
	ca := newCNIHost(t, a)
	ctr := ca.add(t, netlab.NewT(t), "c1")
	eventually(t, 10*time.Second, "the container reaches v through the masquerade", func() error { return ctr.ping(netip.MustParseAddr("192.168.99.5")) })
	// a's LAN (l) may not use a as a router to v: only replies and port mappings are forwarded.
	if out, err := hl.Run("ping", "-c", "2", "-W", "1", "192.168.99.5"); err == nil {
		t.Fatalf("a forwards its LAN's traffic:\n%s", out)
	}
	if _, err := ha.Run("nft", "delete", "table", "ip", "weft-cni"); err != nil {
		t.Fatal(err)
	}
	if err := ctr.ping(netip.MustParseAddr("192.168.99.5")); err == nil {
		t.Fatal("the container reached v without the masquerade: the test proves nothing")
	}
	if out, err := hl.Run("ping", "-c", "1", "-W", "2", "192.168.99.5"); err != nil {
		t.Fatalf("without weft's forward filter l should reach v (else the LAN check proves nothing): %v\n%s", err, out)
	}
	ca.del(t, ctr)
}

// TestNetns_CNISubnetMove: when a static subnet elsewhere takes this host's, the guard and
// subnet.env follow the new subnet, and a new container gets an address of it that works
// (a static claim displaces a holder inside gossip.allowed_static only).
func TestNetns_CNISubnetMove(t *testing.T) {
	nodes := gossipLab(t, "a", "s")
	a, s := nodes[0], nodes[1]
	key := gossipKeyB64(t)
	env := filepath.Join(a.dir, "subnet.env")
	a.start(allowStatic(gossipConfig(a, key), "10.42.0.0/16") + fmt.Sprintf("cni:\n  enabled: true\n  subnet_env: %s\n", env))
	taken := a.status().Subnet
	ca := newCNIHost(t, a)
	lab := netlab.NewT(t)
	old := ca.add(t, lab, "c0") // the bridge exists with the old gateway
	s.start(gossipConfig(s, key, a.underlay) + "subnet: " + taken + "\n")
	var moved string
	eventually(t, 30*time.Second, "a moves off the static subnet", func() error {
		if moved = a.status().Subnet; moved == taken || moved == "" {
			return fmt.Errorf("a still on %q", moved)
		}
		return nil
	})
	eventually(t, 10*time.Second, "subnet.env follows", func() error {
		b, _ := os.ReadFile(env)
		if want := "FLANNEL_SUBNET=" + netip.MustParsePrefix(moved).Addr().Next().String() + "/24"; !strings.Contains(string(b), want) {
			return fmt.Errorf("subnet.env %q lacks %q", b, want)
		}
		return nil
	})
	out, err := a.host.Run("ip", "rule")
	if err != nil || !strings.Contains(out, "to "+moved) || strings.Contains(out, "to "+taken) {
		t.Fatalf("guard rules after the move (%s → %s):\n%s", taken, moved, out)
	}
	ca.del(t, old)
	c := ca.add(t, lab, "c1")
	if !netip.MustParsePrefix(moved).Contains(c.addr) {
		t.Fatalf("new container %s not in the new subnet %s", c.addr, moved)
	}
	if out, _ := a.host.Run("ip", "-4", "addr", "show", "dev", "weft-br0"); strings.Contains(out, strings.TrimSuffix(taken, "0/24")+"1/") {
		t.Fatalf("the bridge kept the old gateway:\n%s", out)
	}
	eventually(t, 20*time.Second, "s reaches the new container", func() error { return s.ping(c.addr.String(), 1) })
	eventually(t, 20*time.Second, "a reaches s's (formerly a's) subnet through the tunnel", func() error { return a.ping(s.status().Address, 1) })
	ca.del(t, c)
}
