package cni

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/weftnet/weft/internal/netlab"
)

// fakeAgent serves GET /v1/subnet with hn on a unix socket in dir; it returns the socket.
func fakeAgent(t *testing.T, hn any) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "weft.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/subnet" {
			http.NotFound(w, r)
			return
		}
		_ = json.NewEncoder(w).Encode(hn)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return sock
}

var testHostNetwork = map[string]any{
	"network": "10.42.0.0/16", "subnet": "10.42.7.0/24", "address": "10.42.7.1", "gateway": "10.42.7.1",
	"mtu": 1412, "containers": true,
}

func cniErr(t *testing.T, err error) *types.Error {
	t.Helper()
	var te *types.Error
	if !errors.As(err, &te) {
		t.Fatalf("want a CNI error, got %T %v", err, err)
	}
	if te.Details == "" && !strings.Contains(te.Msg, ":") {
		t.Fatalf("error %q says nothing about what to do", te.Msg)
	}
	return te
}

func args(conf string) *skel.CmdArgs {
	return &skel.CmdArgs{ContainerID: "c1", Netns: "/proc/self/ns/net", IfName: "wefttest0", StdinData: []byte(conf)}
}

func TestAdd_NoAgent(t *testing.T) {
	conf := fmt.Sprintf(`{"cniVersion":"1.1.0","name":"weft","socket":%q,"wait":"0s","dataDir":%q}`,
		filepath.Join(t.TempDir(), "none.sock"), t.TempDir())
	te := cniErr(t, cmdAdd(args(conf)))
	if te.Code != types.ErrTryAgainLater || !strings.Contains(te.Details, "start the agent") {
		t.Fatalf("%+v", te)
	}
	if te := cniErr(t, cmdStatus(args(conf))); te.Code != types.ErrPluginNotAvailable {
		t.Fatalf("STATUS without agent: %+v", te)
	}
}

func TestAdd_ContainersOff(t *testing.T) {
	hn := map[string]any{}
	for k, v := range testHostNetwork {
		hn[k] = v
	}
	hn["containers"] = false
	conf := fmt.Sprintf(`{"cniVersion":"1.1.0","name":"weft","socket":%q,"wait":"0s","dataDir":%q}`, fakeAgent(t, hn), t.TempDir())
	if te := cniErr(t, cmdAdd(args(conf))); te.Code != ErrCodeContainersOff || !strings.Contains(te.Details, "cni.enabled") {
		t.Fatalf("%+v", te)
	}
}

// A hostile or broken agent answer (gateway outside the subnet) is refused, not used.
func TestAdd_InconsistentAgent(t *testing.T) {
	hn := map[string]any{}
	for k, v := range testHostNetwork {
		hn[k] = v
	}
	hn["gateway"] = "192.168.1.1"
	conf := fmt.Sprintf(`{"cniVersion":"1.1.0","name":"weft","socket":%q,"wait":"0s","dataDir":%q}`, fakeAgent(t, hn), t.TempDir())
	if te := cniErr(t, cmdAdd(args(conf))); te.Code != types.ErrTryAgainLater || !strings.Contains(te.Details, "inconsistent") {
		t.Fatalf("%+v", te)
	}
}

func TestAdd_Exhausted(t *testing.T) {
	if os.Geteuid() != 0 {
		netlab.SkipOrFail(t, "opens the test's own network namespace: needs root")
	}
	data := t.TempDir()
	s, _ := OpenStore(data, "weft")
	sub := netip.MustParsePrefix("10.42.7.0/24")
	for i := 0; ; i++ {
		if _, err := s.Reserve(sub, fmt.Sprint("x", i), "eth0", netip.MustParseAddr("10.42.7.1")); err != nil {
			break
		}
	}
	conf := fmt.Sprintf(`{"cniVersion":"1.1.0","name":"weft","socket":%q,"wait":"0s","dataDir":%q}`, fakeAgent(t, testHostNetwork), data)
	te := cniErr(t, cmdAdd(args(conf)))
	if te.Code != ErrCodeExhausted || !strings.Contains(te.Msg, "10.42.7.0/24") {
		t.Fatalf("%+v", te)
	}
}

func TestAdd_Malformed(t *testing.T) {
	if te := cniErr(t, cmdAdd(args(`{"name":`))); te.Code != types.ErrDecodingFailure {
		t.Fatalf("%+v", te)
	}
	if te := cniErr(t, cmdDel(args(`{"cniVersion":"1.1.0"}`))); te.Code != types.ErrInvalidNetworkConfig {
		t.Fatalf("%+v", te)
	}
	if te := cniErr(t, cmdCheck(args(`{"cniVersion":"1.1.0","name":"w"}`))); te.Code != types.ErrInvalidNetworkConfig {
		t.Fatalf("CHECK without prevResult: %+v", te)
	}
}

// DEL of a container that never was (or whose namespace is gone) succeeds, twice.
func TestDel_Idempotent(t *testing.T) {
	conf := fmt.Sprintf(`{"cniVersion":"1.1.0","name":"weft","dataDir":%q}`, t.TempDir())
	a := args(conf)
	a.Netns = "/run/netns/weft-cni-test-does-not-exist"
	for i := 0; i < 2; i++ {
		if err := cmdDel(a); err != nil {
			t.Fatalf("DEL %d: %v", i, err)
		}
	}
}

// A chained result: ours follows the previous plugin's interfaces, with our IP's interface
// index shifted past them.
func TestMerge_PrevResult(t *testing.T) {
	zero := 0
	prev := &current.Result{CNIVersion: "1.1.0",
		Interfaces: []*current.Interface{{Name: "lo0"}},
		IPs:        []*current.IPConfig{{Interface: &zero, Address: mustIPNet("192.0.2.2/24")}}}
	two := 2
	ours := &current.Result{
		Interfaces: []*current.Interface{{Name: "weft-br0"}, {Name: "veth1"}, {Name: "eth0", Sandbox: "/run/netns/x"}},
		IPs:        []*current.IPConfig{{Interface: &two, Address: mustIPNet("10.42.7.2/24")}},
		Routes:     []*types.Route{{Dst: mustIPNet("0.0.0.0/0")}},
	}
	m := merge(prev, ours)
	if len(m.Interfaces) != 4 || len(m.IPs) != 2 || *m.IPs[0].Interface != 0 || *m.IPs[1].Interface != 3 || m.Interfaces[3].Name != "eth0" || len(m.Routes) != 1 {
		t.Fatalf("merged: %+v", m)
	}
	if *ours.IPs[0].Interface != 2 {
		t.Fatal("merge changed our result")
	}
}

func mustIPNet(s string) net.IPNet {
	ip, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	n.IP = ip
	return *n
}
