package cni_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/weftnet/weft/cni"
	"github.com/weftnet/weft/internal/cnilab"
	"github.com/weftnet/weft/internal/netlab"
)

// agentStub answers GET /v1/subnet as an agent with container networking on would.
func agentStub(t *testing.T, hn cni.HostNetwork) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "weft.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _ = json.NewEncoder(w).Encode(hn) })}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return sock
}

// TestNetns_CNIConcurrentAdds: 50 ADDs at once on one host (separate plugin processes racing
// for the store and for creating the bridge) get 50 distinct addresses; 50 DELs leave no
// reservation and no veth.
func TestNetns_CNIConcurrentAdds(t *testing.T) {
	netlab.Require(t)
	lab := netlab.NewT(t)
	host, err := lab.AddHost("h")
	if err != nil {
		t.Fatal(err)
	}
	sub := netip.MustParsePrefix("10.42.9.0/24")
	sock := agentStub(t, cni.HostNetwork{Network: netip.MustParsePrefix("10.42.0.0/16"), Subnet: sub,
		Address: netip.MustParseAddr("10.42.9.1"), Gateway: netip.MustParseAddr("10.42.9.1"), MTU: 1412, Containers: true})
	dir := t.TempDir()
	bin, err := cnilab.BinDir(filepath.Join(dir, "bin"), host.NS)
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	list, err := libcni.ConfListFromBytes([]byte(fmt.Sprintf(`{"cniVersion":"1.1.0","name":"weft","plugins":[{"type":"weft-cni","socket":%q,"dataDir":%q}]}`, sock, data)))
	if err != nil {
		t.Fatal(err)
	}
	cfg := libcni.NewCNIConfigWithCacheDir([]string{bin}, filepath.Join(dir, "cache"), nil)

	const n = 50
	rts := make([]*libcni.RuntimeConf, n)
	for i := range rts {
		h, err := lab.AddHost(fmt.Sprint("c", i))
		if err != nil {
			t.Fatal(err)
		}
		rts[i] = &libcni.RuntimeConf{ContainerID: "ctr-" + h.NS, NetNS: "/run/netns/" + h.NS, IfName: "eth0"}
	}
	addrs := make([]netip.Addr, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range rts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := cfg.AddNetworkList(context.Background(), list, rts[i])
			if err != nil {
				errs[i] = err
				return
			}
			res, err := current.NewResultFromResult(r)
			if err != nil || len(res.IPs) != 1 {
				errs[i] = fmt.Errorf("result %v: %v", r, err)
				return
			}
			addrs[i], _ = netip.AddrFromSlice(res.IPs[0].Address.IP.To4())
		}()
	}
	wg.Wait()
	t.Logf("%d concurrent ADDs in %s", n, time.Since(start).Round(time.Millisecond))
	seen := map[netip.Addr]int{}
	for i, a := range addrs {
		if errs[i] != nil {
			t.Fatalf("ADD %d: %v", i, errs[i])
		}
		if !sub.Contains(a) || a == netip.MustParseAddr("10.42.9.1") {
			t.Fatalf("ADD %d got %s", i, a)
		}
		if j, dup := seen[a]; dup {
			t.Fatalf("containers %d and %d both got %s", j, i, a)
		}
		seen[a] = i
	}
	out, err := host.Run("ip", "-o", "link", "show", "master", cni.DefaultBridge)
	if err != nil || strings.Count(out, "\n") != n {
		t.Fatalf("bridge ports: %v\n%s", err, out)
	}

	// VERSION speaks 1.1; GC (1.1) keeps the attachments the runtime still lists and frees
	// the rest.
	vi, err := cfg.GetVersionInfo(context.Background(), "weft-cni")
	if err != nil || !slices.Contains(vi.SupportedVersions(), "1.1.0") {
		t.Fatalf("VERSION: %v %v", vi, err)
	}
	var valid []types.GCAttachment
	for _, rt := range rts[:n/2] {
		valid = append(valid, types.GCAttachment{ContainerID: rt.ContainerID, IfName: rt.IfName})
	}
	if err := cfg.GCNetworkList(context.Background(), list, &libcni.GCArgs{ValidAttachments: valid}); err != nil {
		t.Fatalf("GC: %v", err)
	}
	store, err := cni.OpenStore(data, "weft")
	if err != nil {
		t.Fatal(err)
	}
	if left, err := store.Count(sub); err != nil || left != n/2 {
		t.Fatalf("after GC %d reservations, want %d (%v)", left, n/2, err)
	}

	for i := range rts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = cfg.DelNetworkList(context.Background(), list, rts[i])
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("DEL %d: %v", i, err)
		}
	}
	if left, err := store.Count(sub); err != nil || left != 0 {
		t.Fatalf("%d reservations leaked after DEL (%v)", left, err)
	}
	if out, _ := host.Run("ip", "-o", "link", "show", "master", cni.DefaultBridge); strings.TrimSpace(out) != "" {
		t.Fatalf("veths left after DEL:\n%s", out)
	}
}
