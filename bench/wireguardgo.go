package bench

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/pflag"
	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/internal/netlab"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun"
)

// WireGuardGoCommand is the hidden weft-bench subcommand whose main is WireGuardGoMain.
const WireGuardGoCommand = "__wireguard-go"

// Overlay of the wireguard-go system.
const (
	wgA, wgB   = "10.231.1.1", "10.231.1.2"
	wgBits     = "/24"
	wgIf       = "wg0"
	wgPort     = 51820
	wgMTU      = device.DefaultMTU // 1420: 1500 - 20 (IPv4) - 8 (UDP) - 32 (header, tag) - 20 spare for IPv6
	wgUsageTag = "--peer-public-key"
)

// WireGuardGoMain is the main of `weft-bench __wireguard-go`, the process the benchmark runs in each
// namespace for the wireguard-go baseline: wireguard-go's device (as a library, the same
// module weft builds with) on a Linux TUN with the default UDP bind, configured with one peer
// through its configuration protocol, until SIGINT or SIGTERM. Addresses and routes are left
// to the caller (`ip addr add ... dev IFACE; ip link set IFACE up`).
//
// args are the flags after the subcommand name (the CLI must not parse them):
//
//	--interface wg0 --private-key BASE64 --listen-port 51820 --peer-public-key BASE64
//	--endpoint IP:PORT --allowed-ips CIDR[,CIDR] --mtu 1420 [--verbose]
//
// The keys are given in the clear on the command line because they are throwaway keys of a
// lab that exists for one measurement; do not use this command outside the benchmark.
func WireGuardGoMain(args []string) error {
	fs := pflag.NewFlagSet(WireGuardGoCommand, pflag.ContinueOnError)
	var (
		ifname     = fs.String("interface", wgIf, "TUN interface to create")
		privateKey = fs.String("private-key", "", "this side's private key (base64)")
		listenPort = fs.Int("listen-port", wgPort, "UDP port to listen on")
		peerKey    = fs.String("peer-public-key", "", "the peer's public key (base64)")
		endpoint   = fs.String("endpoint", "", "the peer's UDP endpoint IP:PORT (optional: learned from its first packet)")
		allowedIPs = fs.StringSlice("allowed-ips", nil, "prefixes routed to the peer, comma-separated")
		mtu        = fs.Int("mtu", wgMTU, "TUN MTU")
		verbose    = fs.Bool("verbose", false, "log wireguard-go's verbose messages")
	)
	fs.SetOutput(os.Stdout)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil
		}
		return err
	}
	uapi, err := wireGuardGoConfig(*privateKey, *listenPort, *peerKey, *endpoint, *allowedIPs)
	if err != nil {
		return err
	}
	tdev, err := tun.CreateTUN(*ifname, *mtu)
	if err != nil {
		return fmt.Errorf("creating TUN %s: %w", *ifname, err)
	}
	level := device.LogLevelError
	if *verbose {
		level = device.LogLevelVerbose
	}
	dev := device.NewDevice(tdev, conn.NewDefaultBind(), device.NewLogger(level, "("+*ifname+") "))
	defer dev.Close()
	if err := dev.IpcSet(uapi); err != nil {
		return fmt.Errorf("configuring wireguard-go: %w", err)
	}
	if err := dev.Up(); err != nil {
		return fmt.Errorf("wireguard-go up: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	select {
	case <-ctx.Done():
	case <-dev.Wait():
	}
	return nil
}

// wireGuardGoConfig renders wireguard-go's configuration protocol text for one peer.
func wireGuardGoConfig(privateKey string, port int, peerKey, endpoint string, allowed []string) (string, error) {
	priv, err := crypto.ParsePrivateKey(privateKey)
	if err != nil {
		return "", fmt.Errorf("--private-key: %w", err)
	}
	pub, err := crypto.ParsePublicKey(peerKey)
	if err != nil {
		return "", fmt.Errorf("--peer-public-key: %w", err)
	}
	if port <= 0 || port > 65535 {
		return "", fmt.Errorf("%w: --listen-port %d is not a UDP port", ErrOptions, port)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "private_key=%s\nlisten_port=%d\nreplace_peers=true\n", hexKey(priv), port)
	fmt.Fprintf(&b, "public_key=%s\nreplace_allowed_ips=true\n", hexKey(pub))
	if endpoint != "" {
		ap, err := netip.ParseAddrPort(endpoint)
		if err != nil {
			return "", fmt.Errorf("%w: --endpoint: %v", ErrOptions, err)
		}
		fmt.Fprintf(&b, "endpoint=%s\n", ap)
	}
	for _, a := range allowed {
		p, err := netip.ParsePrefix(strings.TrimSpace(a))
		if err != nil {
			return "", fmt.Errorf("%w: --allowed-ips: %v", ErrOptions, err)
		}
		fmt.Fprintf(&b, "allowed_ip=%s\n", p)
	}
	return b.String(), nil
}

// checkWireGuardGo verifies that the wireguard-go binary (weft-bench) has the hidden subcommand.
func checkWireGuardGo(o *Options) error {
	return probeBinary(o.WireGuardGoBin, wgUsageTag, WireGuardGoCommand, "--help")
}

// wireGuardGoUp starts `weft-bench __wireguard-go` in both namespaces, each with the other as its
// peer, then addresses and raises the TUNs.
func wireGuardGoUp(ctx context.Context, s *session) (string, error) {
	ka, kb, err := newKeyPairs()
	if err != nil {
		return "", err
	}
	sides := []struct {
		h               *netlab.Host
		self, peer      keyPair
		endpoint, addr  string
		peerAddrAllowed string
	}{
		{s.a, ka, kb, underlayB, wgA, wgB + "/32"},
		{s.b, kb, ka, underlayA, wgB, wgA + "/32"},
	}
	for _, side := range sides {
		p, err := s.startSystem(side.h, s.opts.WireGuardGoBin, WireGuardGoCommand,
			"--interface", wgIf,
			"--private-key", side.self.private.String(),
			"--listen-port", strconv.Itoa(wgPort),
			"--peer-public-key", side.peer.public.String(),
			"--endpoint", side.endpoint+":"+strconv.Itoa(wgPort),
			"--allowed-ips", side.peerAddrAllowed,
			"--mtu", strconv.Itoa(wgQuickMTU(s.underlayMTU)),
		)
		if err != nil {
			return "", err
		}
		if err := s.waitLink(ctx, side.h, wgIf, p); err != nil {
			return "", err
		}
		if err := s.runAll(ctx, side.h,
			[]string{"ip", "addr", "add", side.addr + wgBits, "dev", wgIf},
			[]string{"ip", "link", "set", wgIf, "up"},
		); err != nil {
			return "", err
		}
	}
	return wgB, nil
}

// wgQuickMTU is the MTU wg-quick gives a WireGuard interface over a route of MTU
// routeMTU: 80 less (an IPv6 header's worth, so one MTU fits both families), 1420 at 1500.
func wgQuickMTU(routeMTU int) int {
	if routeMTU == 0 {
		return wgMTU
	}
	return routeMTU - 80
}
