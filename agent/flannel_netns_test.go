package agent_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/weftnet/weft/internal/netlab"
)

// The stock flannel CNI plugin reads subnet.env and delegates to the standard bridge plugin.
// Its module is not served here, so these tests give Debian's bridge and host-local plugins
// exactly the configuration flannel's plugin builds from weft's subnet.env (flannel-io/
// cni-plugin, doCmdAdd): type bridge (its default bridge cni0), ipMasq = !FLANNEL_IPMASQ,
// mtu = FLANNEL_MTU, isGateway, host-local over FLANNEL_SUBNET's network with a route to
// FLANNEL_NETWORK. What they check is what the README's Containers section states.
const debianCNIDir = "/usr/lib/cni"

// flannelHost is a weft host whose containers are wired as the flannel plugin would.
type flannelHost struct {
	n    *node
	cni  *libcni.CNIConfig
	conf *libcni.NetworkConfig
}

func newFlannelHost(t *testing.T, n *node) *flannelHost {
	t.Helper()
	env := readSubnetEnv(t, filepath.Join(n.dir, "subnet.env"))
	sn := netip.MustParsePrefix(env["FLANNEL_SUBNET"]).Masked()
	var mtu int
	fmt.Sscan(env["FLANNEL_MTU"], &mtu)
	delegate := map[string]any{
		"cniVersion": "1.0.0",
		"name":       "flannel",
		"type":       "bridge",
		"ipMasq":     env["FLANNEL_IPMASQ"] != "true",
		"mtu":        mtu,
		"isGateway":  true,
		"ipam": map[string]any{
			"type":    "host-local",
			"dataDir": filepath.Join(n.dir, "flannel-ipam"),
			"ranges":  [][]map[string]string{{{"subnet": sn.String()}}},
			"routes":  []map[string]string{{"dst": env["FLANNEL_NETWORK"]}},
		},
	}
	raw, _ := json.Marshal(delegate)
	conf, err := libcni.ConfFromBytes(raw)
	if err != nil {
		t.Fatal(err)
	}
	// The plugins run in the host's namespace, as a runtime's would.
	bin := filepath.Join(n.dir, "flannel-bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"bridge", "host-local"} {
		script := fmt.Sprintf("#!/bin/sh\nexec ip netns exec %s %s \"$@\"\n", n.host.NS, filepath.Join(debianCNIDir, p))
		if err := os.WriteFile(filepath.Join(bin, p), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return &flannelHost{n: n, conf: conf, cni: libcni.NewCNIConfigWithCacheDir([]string{bin}, filepath.Join(n.dir, "flannel-cache"), nil)}
}

func readSubnetEnv(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			env[k] = v
		}
	}
	return env
}

func (f *flannelHost) add(t *testing.T, lab *netlab.Lab, name string) *container {
	t.Helper()
	h, err := lab.AddHost(name)
	if err != nil {
		t.Fatal(err)
	}
	rt := &libcni.RuntimeConf{ContainerID: "ctr-" + h.NS, NetNS: "/run/netns/" + h.NS, IfName: "eth0"}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := f.cni.AddNetwork(ctx, f.conf, rt)
	if err != nil {
		t.Fatalf("flannel-style ADD on %s: %v", f.n.name, err)
	}
	t.Cleanup(func() { _ = f.cni.DelNetwork(context.Background(), f.conf, rt) })
	res, err := current.NewResultFromResult(r)
	if err != nil || len(res.IPs) != 1 {
		t.Fatalf("ADD result %v: %v", r, err)
	}
	a, _ := netip.AddrFromSlice(res.IPs[0].Address.IP.To4())
	return &container{h: h, rt: rt, addr: a}
}

// seenSource runs an iperf3 server in dst for one short client run from src and returns the
// source address the server saw.
func seenSource(t *testing.T, src, dst *container) netip.Addr {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	srv := dst.h.Command(ctx, "iperf3", "-s", "-1", "-B", dst.addr.String())
	var out strings.Builder
	srv.Stdout = &out
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	var cerr error
	for range 50 {
		if _, cerr = src.h.RunContext(ctx, "iperf3", "-c", dst.addr.String(), "-n", "256K"); cerr == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = srv.Wait()
	if cerr != nil {
		t.Fatalf("iperf3 %s -> %s: %v\n%s", src.addr, dst.addr, cerr, out.String())
	}
	// "Accepted connection from 10.42.1.1, port 40000"
	_, rest, ok := strings.Cut(out.String(), "Accepted connection from ")
	if !ok {
		t.Fatalf("iperf3 server output has no peer:\n%s", out.String())
	}
	a, err := netip.ParseAddr(strings.TrimSpace(strings.SplitN(rest, ",", 2)[0]))
	if err != nil {
		t.Fatalf("iperf3 server output: %v\n%s", err, out.String())
	}
	return a
}

// TestNetns_FlannelDelegate: containers wired as the stock flannel plugin wires them from
// weft's subnet.env reach each other across hosts. With cni.ipmasq off (FLANNEL_IPMASQ=false)
// the bridge masquerades container-to-container traffic to the host's gateway address, as
// stock flannel does; with cni.ipmasq on (and cni.bridge set to flannel's cni0, so the
// agent's forwarding filter knows it) the containers' own addresses arrive; without
// cni.bridge that filter drops them.
func TestNetns_FlannelDelegate(t *testing.T) {
	netlab.Require(t)
	netlab.RequireTools(t, "ping", "iperf3", "nft")
	for _, p := range []string{"bridge", "host-local"} {
		if _, err := os.Stat(filepath.Join(debianCNIDir, p)); err != nil {
			netlab.SkipOrFail(t, "%s/%s missing (apt install containernetworking-plugins)", debianCNIDir, p)
		}
	}
	for _, tc := range []struct {
		name    string
		cni     string
		masked  bool // the far container sees the gateway, not the container
		blocked bool // the agent's forwarding filter drops cni0's traffic
	}{
		{"ipmasq off", "cni:\n  enabled: true\n  subnet_env: %s\n", true, false},
		{"ipmasq on, bridge cni0", "cni:\n  enabled: true\n  ipmasq: true\n  bridge: cni0\n  subnet_env: %s\n", false, false},
		{"ipmasq on, bridge not set", "cni:\n  enabled: true\n  ipmasq: true\n  subnet_env: %s\n", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nodes := gossipLab(t, "a", "b")
			a, b := nodes[0], nodes[1]
			key := gossipKeyB64(t)
			a.start(gossipConfig(a, key) + fmt.Sprintf(tc.cni, filepath.Join(a.dir, "subnet.env")))
			b.start(gossipConfig(b, key, a.underlay) + fmt.Sprintf(tc.cni, filepath.Join(b.dir, "subnet.env")))
			eventually(t, 30*time.Second, "hosts reach each other", func() error { return allPairsPing(nodes) })
			fa, fb := newFlannelHost(t, a), newFlannelHost(t, b)
			lab := netlab.NewT(t)
			ca, cb := fa.add(t, lab, "fa"), fb.add(t, lab, "fb")
			subA := netip.MustParsePrefix(a.status().Subnet)
			if !subA.Contains(ca.addr) {
				t.Fatalf("container %s outside a's subnet %s", ca.addr, subA)
			}
			if out, err := a.host.Run("ip", "-o", "-4", "addr", "show", "cni0"); err != nil || !strings.Contains(out, subA.Addr().Next().String()+"/") {
				t.Fatalf("cni0 should hold the subnet's .1, as weft-br0 would: %v %s", err, out)
			}
			if tc.blocked {
				// b's container is reachable from b itself; from a's cni0 nothing passes.
				if out, err := b.host.Run("ping", "-c", "1", "-W", "2", cb.addr.String()); err != nil {
					t.Fatalf("b cannot reach its own container: %v %s", err, out)
				}
				for range 2 {
					if err := ca.ping(cb.addr); err == nil {
						t.Fatal("cni0's traffic passed a forwarding filter that names weft-br0 only: the README's advice to set cni.bridge is wrong")
					}
				}
				return
			}
			eventually(t, 10*time.Second, "flannel-wired containers reach each other", func() error { return ca.ping(cb.addr) })
			src := seenSource(t, ca, cb)
			want := ca.addr
			if tc.masked {
				want = subA.Addr().Next() // a's gateway, also its TUN address
			}
			t.Logf("b's container saw %s (a's container %s)", src, ca.addr)
			if src != want {
				t.Fatalf("b's container saw %s, want %s", src, want)
			}
		})
	}
}
