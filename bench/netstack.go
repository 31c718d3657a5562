package bench

import (
	"context"
)

// SystemWeftNetstack is weft's rootless mode: host a runs the agent with netstack: true (no
// TUN: a userspace TCP/IP stack) and reaches b only through a local port forward; b runs
// the ordinary L3 agent. iperf3 on a connects to the forward on 127.0.0.1, so the row measures
// what a rootless user gets: loopback TCP into the agent, gVisor's TCP, the tunnel, b's
// kernel. There is no ping: the host has no route into the overlay.
const SystemWeftNetstack = "weft-netstack"

// netstackForward is the forward's local address on a: iperf3's port, so iperf3 -c 127.0.0.1
// needs no other option.
const netstackForward = "127.0.0.1:" + iperf3Port

func weftNetstackSystem() *system {
	return &system{
		name:    SystemWeftNetstack,
		weft:    true,
		desc:    "weft agent, netstack (rootless, no TUN) on a through a local TCP forward; L3 TUN on b",
		tcpOnly: true,
		check:   func(o *Options) error { return probeBinary(o.WeftBin, "--netstack", "agent", "--help") },
		up:      weftNetstackUp,
	}
}

func weftNetstackUp(ctx context.Context, s *session) (string, error) {
	ka, kb, err := newKeyPairs()
	if err != nil {
		return "", err
	}
	ca, cb, target := weftConfigs(weftVariant{mode: "l3", encryption: "wireguard"}, s.dir, ka, kb)
	ca.Netstack = true
	ca.Forward = []weftForward{{Listen: netstackForward, To: target + ":" + iperf3Port}}
	pathA, err := writeWeftFiles(ca, ka)
	if err != nil {
		return "", err
	}
	pathB, err := writeWeftFiles(cb, kb)
	if err != nil {
		return "", err
	}
	pb, err := s.startSystem(s.b, s.opts.WeftBin, "agent", "-c", pathB)
	if err != nil {
		return "", err
	}
	if err := s.waitLink(ctx, s.b, weftIf, pb); err != nil {
		return "", err
	}
	pa, err := s.startSystem(s.a, s.opts.WeftBin, "agent", "-c", pathA)
	if err != nil {
		return "", err
	}
	if err := waitIperf3Port(ctx, s.a, "the forward on "+s.a.Name, pa.exited); err != nil {
		return "", err
	}
	return "127.0.0.1", nil
}
