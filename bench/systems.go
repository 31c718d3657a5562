package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/weftnet/weft/internal/netlab"
)

// Names of the systems Run can measure.
const (
	SystemVeth        = "veth"          // the bare veth pair: the ceiling
	SystemVXLAN       = "vxlan"         // Linux kernel vxlan devices, plaintext
	SystemWireGuardGo = "wireguard-go"  // wireguard-go as a library on its own TUN: the reference
	SystemWeft        = "weft"          // weft agent, L3 (TUN), encrypted
	SystemWeftL2      = "weft-l2"       // weft agent, L2 (TAP), encrypted
	SystemWeftL2Plain = "weft-l2-plain" // weft agent, L2 (TAP), plain RFC 7348 VXLAN
)

// system is one overlay the harness can bring up between the lab's two hosts.
type system struct {
	name, desc string
	// placeholder systems are listed (and run when named in Options.Systems) but are not in
	// the default set until the agent supports them; enabling one is flipping this flag.
	placeholder bool
	// tcpOnly systems are measured by iperf3 alone: no ping (weft-netstack reaches the
	// overlay through a TCP forward, and pinging its target would measure loopback).
	tcpOnly bool
	// check reports why the system cannot run with these options; nil means it can.
	check func(o *Options) error
	// up brings the overlay up in s and returns host b's overlay address, the target of
	// every measurement from host a. Processes it starts are stopped by s.close.
	up func(ctx context.Context, s *session) (string, error)
	// ifname is the overlay device on host a whose MTU the report records ("": none, the
	// bare veth).
	ifname string
	// weft systems run weft agents, with pprof on each namespace's loopback (weftPprof):
	// Options.ProfileDir profiles them.
	weft bool
}

// systems is every system in default measurement order.
var systems = []*system{
	{name: SystemVeth, desc: "bare veth pair (no overlay)", up: vethUp},
	{name: SystemVXLAN, desc: "Linux kernel vxlan, VNI 42, UDP 4789, plaintext", up: vxlanUp, ifname: "vx0"},
	{name: SystemWireGuardGo, desc: "wireguard-go (library, TUN, StdNetBind) in its own process", check: checkWireGuardGo, up: wireGuardGoUp, ifname: wgIf},
	weftSystem(SystemWeft, "weft agent, L3 TUN, encrypted", weftVariant{mode: "l3", encryption: "wireguard"}),
	weftSystem(SystemWeftL2, "weft agent, L2 TAP, encrypted", weftVariant{mode: "l2", encryption: "wireguard"}),
	weftSystem(SystemWeftL2Plain, "weft agent, L2 TAP, plain VXLAN (RFC 7348)", weftVariant{mode: "l2", encryption: "none"}),
	weftNetstackSystem(), // netstack.go
	weftPolicySystem(),   // policy.go
	// A row the agent cannot run yet is added with placeholder: true (listed, run only when
	// named, left out of the default set) until it can.
}

// SystemNames lists every system Run knows, in default order.
func SystemNames() []string {
	names := make([]string, len(systems))
	for i, s := range systems {
		names[i] = s.name
	}
	return names
}

func lookupSystem(name string) *system {
	for _, s := range systems {
		if s.name == name {
			return s
		}
	}
	return nil
}

// vethUp measures the underlay itself.
func vethUp(_ context.Context, _ *session) (string, error) { return underlayB, nil }

// Overlay of the kernel vxlan system.
const (
	vxlanA, vxlanB = "10.231.0.1", "10.231.0.2"
	vxlanBits      = "/24"
)

func vxlanUp(ctx context.Context, s *session) (string, error) {
	for _, side := range []struct {
		h                  *netlab.Host
		local, remote, adr string
	}{
		{s.a, underlayA, underlayB, vxlanA},
		{s.b, underlayB, underlayA, vxlanB},
	} {
		err := s.runAll(ctx, side.h,
			[]string{"ip", "link", "add", "vx0", "type", "vxlan", "id", "42", "dstport", "4789",
				"local", side.local, "remote", side.remote, "dev", underlayIf},
			[]string{"ip", "addr", "add", side.adr + vxlanBits, "dev", "vx0"},
			[]string{"ip", "link", "set", "vx0", "up"},
		)
		if err != nil {
			return "", fmt.Errorf("kernel vxlan: %w", err)
		}
	}
	return vxlanB, nil
}

// probeBinary runs bin with args (a --help) and checks that its output mentions want: the
// way to tell whether this weft (or weft-bench) binary has a subcommand.
func probeBinary(bin string, want string, args ...string) error {
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("%w (build weft and weft-bench with `make build`; pass weft's path with --weft-bin)", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), want) {
		first, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
		if err == nil {
			err = fmt.Errorf("its help does not mention %s", want)
		}
		return fmt.Errorf("%s has no `%s` command (%v; %q): rebuild it from this tree (`make build`; weft's path goes to --weft-bin)",
			bin, args[0], err, tail(first, 120))
	}
	return nil
}
