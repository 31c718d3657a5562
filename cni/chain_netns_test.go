package cni_test

import (
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/weftnet/weft/cni"
	"github.com/weftnet/weft/internal/cnilab"
	"github.com/weftnet/weft/internal/netlab"
)

// TestNetns_CNIChainedPlugin: weft-cni chained with a plugin that speaks CNI 1.0.0 only (as
// Debian's portmap). `weft cni install` asks it and writes 1.0.0, and ADD/DEL work through
// the chain; the same chain at 1.1.0 (what install wrote before) fails as it did for users.
// When the chained plugin fails its ADD, the runtime's DEL leaves no weft interface, no
// reservation and no veth, and a retried ADD (no DEL between) is answered, not refused.
func TestNetns_CNIChainedPlugin(t *testing.T) {
	netlab.Require(t)
	lab := netlab.NewT(t)
	host, err := lab.AddHost("h")
	if err != nil {
		t.Fatal(err)
	}
	ctr, err := lab.AddHost("c")
	if err != nil {
		t.Fatal(err)
	}
	sub := netip.MustParsePrefix("10.42.5.0/24")
	sock := agentStub(t, cni.HostNetwork{Network: netip.MustParsePrefix("10.42.0.0/16"), Subnet: sub,
		Address: netip.MustParseAddr("10.42.5.1"), Gateway: netip.MustParseAddr("10.42.5.1"), MTU: 1432, Containers: true})
	dir := t.TempDir()
	bin, err := cnilab.BinDir(filepath.Join(dir, "bin"), host.NS)
	if err != nil {
		t.Fatal(err)
	}
	distro := filepath.Join(dir, "distro")
	chained := filepath.Join(distro, "portmap")
	if err := cnilab.ChainPlugin(chained); err != nil {
		t.Fatal(err)
	}
	weft, err := cnilab.Weft(dir)
	if err != nil {
		t.Fatal(err)
	}
	plugins, _ := cnilab.Plugins()
	out, err := exec.Command(weft, "--socket", sock, "cni", "install", "--conf-dir", filepath.Join(dir, "net.d"),
		"--bin-dir", filepath.Join(dir, "installed"), "--plugin-dir", distro, "--plugin", filepath.Join(plugins, "weft-cni")).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "cniVersion 1.0.0") {
		t.Fatalf("weft cni install: %v\n%s", err, out)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "net.d", "10-weft.conflist"))
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	list := conflistWithData(t, raw, data, "")
	if list.CNIVersion != "1.0.0" {
		t.Fatalf("install wrote %s", raw)
	}
	// The distribution's directory first: its portmap, then weft-cni from the lab's.
	cfg := libcni.NewCNIConfigWithCacheDir([]string{distro, bin}, filepath.Join(dir, "cache"), nil)
	rt := &libcni.RuntimeConf{ContainerID: "ctr-chain", NetNS: "/run/netns/" + ctr.NS, IfName: "eth0"}
	store, err := cni.OpenStore(data, "weft")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	clean := func(when string) {
		t.Helper()
		if n, err := store.Count(sub); err != nil || n != 0 {
			t.Fatalf("%s: %d reservations left (%v)", when, n, err)
		}
		if out, err := ctr.Run("ip", "-o", "link", "show", "eth0"); err == nil {
			t.Fatalf("%s: the container still has eth0:\n%s", when, out)
		}
		if out, _ := host.Run("ip", "-o", "link", "show", "master", cni.DefaultBridge); strings.TrimSpace(out) != "" {
			t.Fatalf("%s: veths left on the bridge:\n%s", when, out)
		}
	}

	// The negotiated list: ADD and DEL through the chain.
	r, err := cfg.AddNetworkList(ctx, list, rt)
	if err != nil {
		t.Fatalf("ADD at 1.0.0: %v", err)
	}
	first := resultAddr(t, r)
	if !sub.Contains(first) {
		t.Fatalf("ADD gave %s, outside %s", first, sub)
	}
	if err := cfg.DelNetworkList(ctx, list, rt); err != nil {
		t.Fatalf("DEL at 1.0.0: %v", err)
	}
	clean("after DEL")

	// The chained plugin fails its ADD: weft-cni wired the container before it ran.
	if err := os.WriteFile(chained+".fail", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := cfg.AddNetworkList(ctx, list, rt); err == nil || !strings.Contains(err.Error(), "failing on purpose") {
		t.Fatalf("ADD with a failing chained plugin: want its error, got %v", err)
	}
	// A runtime retries without DEL: weft-cni answers the attachment it holds, so only the
	// chained plugin's error comes back (before, "already has an interface eth0").
	if _, err := cfg.AddNetworkList(ctx, list, rt); err == nil || !strings.Contains(err.Error(), "failing on purpose") {
		t.Fatalf("retried ADD: want the chained plugin's error again, got %v", err)
	}
	// The runtime's DEL after the failed ADD leaves nothing of weft's.
	if err := cfg.DelNetworkList(ctx, list, rt); err != nil {
		t.Fatalf("DEL after a failed ADD: %v", err)
	}
	clean("after DEL of a failed ADD")

	// Failed ADD, then a successful retry: the same address, one veth.
	if _, err := cfg.AddNetworkList(ctx, list, rt); err == nil {
		t.Fatal("ADD with a failing chained plugin succeeded")
	}
	if err := os.Remove(chained + ".fail"); err != nil {
		t.Fatal(err)
	}
	r, err = cfg.AddNetworkList(ctx, list, rt)
	if err != nil {
		t.Fatalf("retried ADD once the chained plugin works: %v", err)
	}
	if a := resultAddr(t, r); a != first {
		t.Fatalf("the retried ADD answered %s, the reservation is %s", a, first)
	}
	if out, _ := host.Run("ip", "-o", "link", "show", "master", cni.DefaultBridge); strings.Count(out, "\n") != 1 {
		t.Fatalf("want one veth on the bridge after the retry:\n%s", out)
	}
	if err := cfg.CheckNetworkList(ctx, list, rt); err != nil {
		t.Fatalf("CHECK after the retry: %v", err)
	}
	if err := cfg.DelNetworkList(ctx, list, rt); err != nil {
		t.Fatalf("DEL: %v", err)
	}
	clean("after the last DEL")

	// What install wrote before negotiation: 1.1.0 beside a 1.0.0-only plugin fails, as users
	// saw with Debian's portmap (the chain refuses the version, not weft-cni).
	old := conflistWithData(t, raw, data, "1.1.0")
	if _, err := cfg.AddNetworkList(ctx, old, rt); err == nil || !strings.Contains(err.Error(), "incompatible CNI versions") {
		t.Fatalf("ADD at 1.1.0 with a 1.0.0-only chained plugin: want the version refusal, got %v", err)
	}
	_ = cfg.DelNetworkList(ctx, list, rt) // the negotiated list cleans up what the failed ADD wired
	clean("after cleaning up the 1.1.0 attempt")

	// An eth0 that is not weft's (here a bridge) is refused and left alone, with nothing reserved.
	if out, err := ctr.Run("ip", "link", "add", "eth0", "type", "bridge"); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	if _, err := cfg.AddNetworkList(ctx, list, rt); err == nil || !strings.Contains(err.Error(), "not this attachment's") {
		t.Fatalf("ADD over a foreign eth0: want a refusal, got %v", err)
	}
	if out, err := ctr.Run("ip", "-o", "link", "show", "eth0"); err != nil || !strings.Contains(out, "eth0") {
		t.Fatalf("the foreign eth0 went: %v %s", err, out)
	}
	if n, err := store.Count(sub); err != nil || n != 0 {
		t.Fatalf("a refused ADD left %d reservations (%v)", n, err)
	}
}

// conflistWithData parses raw with dataDir set (and cniVersion replaced, when version is set).
func conflistWithData(t *testing.T, raw []byte, data, version string) *libcni.NetworkConfigList {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	m["plugins"].([]any)[0].(map[string]any)["dataDir"] = data
	if version != "" {
		m["cniVersion"] = version
	}
	b, _ := json.Marshal(m)
	list, err := libcni.ConfListFromBytes(b)
	if err != nil {
		t.Fatalf("libcni rejects the conflist: %v\n%s", err, b)
	}
	return list
}

func resultAddr(t *testing.T, r types.Result) netip.Addr {
	t.Helper()
	res, err := current.NewResultFromResult(r)
	if err != nil || len(res.IPs) != 1 {
		t.Fatalf("result %v: %v", r, err)
	}
	a, _ := netip.AddrFromSlice(res.IPs[0].Address.IP.To4())
	return a
}

// TestNetns_CNIReclaimsStale: when a container's veth is gone without a DEL reaching weft-cni
// (its namespace was removed after a chained plugin's DEL failed first), a full subnet frees
// that container's address for the next ADD, and only that one.
func TestNetns_CNIReclaimsStale(t *testing.T) {
	netlab.Require(t)
	lab := netlab.NewT(t)
	host, err := lab.AddHost("h")
	if err != nil {
		t.Fatal(err)
	}
	sub := netip.MustParsePrefix("10.42.6.0/29") // .2-.6: five containers
	sock := agentStub(t, cni.HostNetwork{Network: netip.MustParsePrefix("10.42.0.0/16"), Subnet: sub,
		Address: netip.MustParseAddr("10.42.6.1"), Gateway: netip.MustParseAddr("10.42.6.1"), MTU: 1432, Containers: true})
	dir := t.TempDir()
	bin, err := cnilab.BinDir(filepath.Join(dir, "bin"), host.NS)
	if err != nil {
		t.Fatal(err)
	}
	list, err := libcni.ConfListFromBytes([]byte(`{"cniVersion":"1.0.0","name":"weft","plugins":[{"type":"weft-cni","socket":"` + sock + `","dataDir":"` + filepath.Join(dir, "data") + `"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	cfg := libcni.NewCNIConfigWithCacheDir([]string{bin}, filepath.Join(dir, "cache"), nil)
	ctx := context.Background()
	var rts []*libcni.RuntimeConf
	var hostVeths []string
	for i := range 6 {
		c, err := lab.AddHost("c" + string(rune('0'+i)))
		if err != nil {
			t.Fatal(err)
		}
		rts = append(rts, &libcni.RuntimeConf{ContainerID: "ctr-" + c.NS, NetNS: "/run/netns/" + c.NS, IfName: "eth0"})
	}
	for _, rt := range rts[:5] {
		r, err := cfg.AddNetworkList(ctx, list, rt)
		if err != nil {
			t.Fatal(err)
		}
		res, _ := current.NewResultFromResult(r)
		hostVeths = append(hostVeths, res.Interfaces[1].Name)
	}
	if _, err := cfg.AddNetworkList(ctx, list, rts[5]); err == nil || !strings.Contains(err.Error(), "every address") {
		t.Fatalf("a sixth ADD in a /29: want exhaustion, got %v", err)
	}
	// Container 2's namespace goes without a DEL: its veth pair goes with it.
	if out, err := host.Run("ip", "link", "del", hostVeths[2]); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	r, err := cfg.AddNetworkList(ctx, list, rts[5])
	if err != nil {
		t.Fatalf("ADD after a container vanished without DEL: %v", err)
	}
	store, _ := cni.OpenStore(filepath.Join(dir, "data"), "weft")
	if a, ok, _ := store.Lookup(sub, rts[2].ContainerID, "eth0"); ok {
		t.Fatalf("the vanished container still holds %s", a)
	}
	if got := resultAddr(t, r); !sub.Contains(got) {
		t.Fatalf("got %s", got)
	}
	if n, _ := store.Count(sub); n != 5 {
		t.Fatalf("%d reservations, want 5 (only the vanished container's freed)", n)
	}
	for _, i := range []int{0, 1, 3, 4, 5} {
		if err := cfg.DelNetworkList(ctx, list, rts[i]); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := store.Count(sub); n != 0 {
		t.Fatalf("%d reservations after DEL", n)
	}
}
