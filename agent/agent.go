package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/tun"

	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/discovery"
	"github.com/weftnet/weft/l2"
	"github.com/weftnet/weft/peers"
	"github.com/weftnet/weft/tunnel"
)

// Agent is one host's weft daemon. New prepares it; Run brings everything up, serves until
// its context ends or a leave is requested, then tears everything down in reverse order.
type Agent struct {
	cfg Config
	log *slog.Logger

	priv crypto.PrivateKey
	id   *crypto.Identity

	table *peers.Table
	dev   tun.Device
	tnl   *tunnel.Tunnel
	gsp   *gossip // nil when gossip is disabled
	api   *apiServer
	cat   *catalogGlue  // nil until the catalog starts
	l2    *l2.Router    // encrypted L2 mode only
	plain *l2.PlainVTEP // L2 with encryption: none only

	started time.Time
	address netip.Addr
	subnet  netip.Prefix
	port    uint16

	leaveOnce sync.Once
	leaving   chan struct{}

	mu       sync.Mutex
	problems []string
}

// New validates cfg and loads (or creates) the private key; nothing is opened yet.
func New(cfg Config, log *slog.Logger) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &Agent{cfg: cfg, log: log, leaving: make(chan struct{})}
	if err := a.loadKey(); err != nil {
		return nil, err
	}
	return a, nil
}

func (a *Agent) keyPath() string {
	if a.cfg.PrivateKeyFile != "" {
		return a.cfg.PrivateKeyFile
	}
	return filepath.Join(a.cfg.StateDir, "private.key")
}

// loadKey reads the private key, generating and saving one (0600) on first start.
func (a *Agent) loadKey() error {
	path := a.keyPath()
	priv, err := crypto.LoadPrivateKeyFile(path)
	switch {
	case err == nil:
		a.priv = priv
		return nil
	case errors.Is(err, os.ErrNotExist):
		if priv, err = crypto.GeneratePrivateKey(); err != nil {
			return fmt.Errorf("generate private key: %w", err)
		}
		if err := crypto.SavePrivateKeyFile(path, priv); err != nil {
			return fmt.Errorf("save private key: %w (run the agent as root, or set state_dir / --state-dir to a writable directory)", err)
		}
		a.log.Info("generated a new private key", "path", path, "public_key", priv.Public().String())
		a.priv = priv
		return nil
	default:
		return err
	}
}

// PublicKey is this host's public key.
func (a *Agent) PublicKey() crypto.PublicKey { return a.priv.Public() }

// Run brings the agent up and serves until ctx is done or Leave is called.
func (a *Agent) Run(ctx context.Context) (err error) {
	a.started = time.Now()
	a.id = crypto.NewIdentity(a.priv)
	var closers []func()
	defer func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}()
	closers = append(closers, a.id.Close)

	a.table = peers.NewTable(a.id)

	if !a.cfg.Gossip.Disabled {
		g, err := startGossip(ctx, a)
		if err != nil {
			return err
		}
		a.gsp = g
		closers = append(closers, g.shutdown)
		a.subnet = g.subnet()
		if !a.subnet.IsValid() && a.cfg.Subnet.IsValid() {
			// Our static subnet is withdrawn (another host claimed it first): come up on it
			// anyway, so the operator can look; `weft status` shows the conflict.
			a.subnet = a.cfg.Subnet.Prefix
		}
		if err := g.c.Err(); err != nil {
			a.problem(err.Error())
		}
		if !a.subnet.IsValid() && !a.cfg.Address.IsValid() {
			return fmt.Errorf("no overlay subnet: %v (widen cluster_cidr or set subnet)", g.c.Err())
		}
	} else {
		a.subnet = a.cfg.Subnet.Prefix
	}
	a.address = a.cfg.Address.Addr
	if !a.address.IsValid() {
		if !a.subnet.IsValid() {
			return errors.New("no overlay address: set address or subnet")
		}
		a.address = a.subnet.Masked().Addr().Next()
	}

	if err := a.startDatapath(); err != nil {
		return err
	}
	closers = append(closers, a.stopDatapath)

	for _, p := range a.cfg.Peers {
		if err := a.addStaticPeer(p); err != nil {
			return err
		}
	}

	cat, err := startCatalog(a)
	if err != nil {
		return err
	}
	a.cat = cat
	closers = append(closers, cat.close)

	if a.cfg.MetricsListen != "" {
		stop, err := serveMetrics(a.cfg.MetricsListen, a, a.log)
		if err != nil {
			return fmt.Errorf("metrics_listen %s: %w", a.cfg.MetricsListen, err)
		}
		closers = append(closers, stop)
	}

	api, err := newAPIServer(a.cfg.ControlSocket, a, a.log)
	if err != nil {
		return err
	}
	a.api = api
	closers = append(closers, func() { _ = api.Close() })

	a.log.Info("weft agent up", "name", a.cfg.Name, "public_key", a.priv.Public().String(),
		"address", a.address, "subnet", a.subnet, "interface", a.cfg.Interface, "port", a.port, "mode", a.cfg.Mode)
	if a.gsp != nil {
		if err := a.gsp.start(ctx); err != nil {
			return err
		}
		// Stop handling membership first on the way down: its events touch the catalog,
		// the peer table and the device, which the closers above tear down.
		closers = append(closers, a.gsp.shutdown)
	}

	select {
	case <-ctx.Done():
		a.log.Info("stopping")
	case <-a.leaving:
		a.log.Info("left the cluster; stopping")
	}
	return nil
}

// startDatapath opens the device and the UDP port and starts the packet loops.
func (a *Agent) startDatapath() error {
	if a.cfg.Mode == "l2" {
		return a.startL2()
	}
	dev, err := tunnel.CreateTUN(a.cfg.Interface, a.cfg.MTU)
	if err != nil {
		return fmt.Errorf("create TUN %s: %w (is /dev/net/tun present and are you root?)", a.cfg.Interface, err)
	}
	a.dev = dev
	if err := configureLink(a.cfg.Interface, a.address, a.linkBits(), a.cfg.MTU); err != nil {
		dev.Close()
		return err
	}
	return a.runTunnel(dev, a.cfg.MTU, nil)
}

// runTunnel starts the encrypted loop over dev; router nil means L3 routing, otherwise the
// frames are Ethernet (L2). The tunnel owns dev from here on, also on error.
func (a *Agent) runTunnel(dev tun.Device, mtu int, router tunnel.Router) error {
	tcfg := tunnel.DefaultConfig()
	tcfg.VNI = a.cfg.VNI
	tcfg.MTU = mtu
	tcfg.Identity = a.id
	tcfg.Logger = a.log
	if router != nil {
		tcfg.NextProtoL2 = true
		tcfg.Router = router
	}
	tnl, err := tunnel.New(tcfg, dev, conn.NewDefaultBind(), a.table)
	if err != nil {
		dev.Close()
		return err
	}
	port, err := tnl.Up(uint16(a.cfg.ListenPort))
	if err != nil {
		tnl.Close()
		// err names the port already; say what to do about it.
		return fmt.Errorf("%w (is another weft or WireGuard on it? set another listen_port)", err)
	}
	a.tnl, a.port = tnl, port
	return nil
}

// linkBits is the prefix length of the device's address: the cluster CIDR's, so the whole
// overlay is on-link through the device; else the static subnet's when it holds the address;
// else a host route.
func (a *Agent) linkBits() int {
	switch {
	case a.cfg.ClusterCIDR.Contains(a.address):
		return a.cfg.ClusterCIDR.Bits()
	case a.cfg.Subnet.IsValid() && a.cfg.Subnet.Contains(a.address):
		return a.cfg.Subnet.Bits()
	}
	return a.address.BitLen()
}

func (a *Agent) stopDatapath() {
	if a.tnl != nil {
		_ = a.tnl.Close()
	}
	if a.plain != nil {
		_ = a.plain.Close()
	}
}

func (a *Agent) addStaticPeer(p PeerConfig) error {
	if a.plain != nil {
		return nil // plain VXLAN: the endpoints are the VTEP's static remotes
	}
	key, err := crypto.ParsePublicKey(p.PublicKey)
	if err != nil {
		return fmt.Errorf("peer%s public_key: %w", p.at(), err)
	}
	pc := peers.PeerConfig{PublicKey: key, Endpoint: p.Endpoint.AddrPort, PersistentKeepalive: p.Keepalive.Duration}
	if p.PresharedKey != "" {
		if pc.PresharedKey, err = crypto.ParsePresharedKey(p.PresharedKey); err != nil {
			return fmt.Errorf("peer%s preshared_key: %w", p.at(), err)
		}
	}
	for _, ip := range p.AllowedIPs {
		pc.AllowedIPs = append(pc.AllowedIPs, ip.Prefix)
		if a.cfg.Mode == "l3" && (!a.cfg.ClusterCIDR.Contains(ip.Addr()) || a.cfg.ClusterCIDR.Bits() > ip.Bits()) {
			if err := addRoute(a.cfg.Interface, ip.Prefix); err != nil {
				return err
			}
		}
	}
	peer, err := a.table.Upsert(pc)
	if err != nil {
		if !errors.Is(err, peers.ErrPrefixMoved) {
			return fmt.Errorf("peer%s: %w", p.at(), err)
		}
		a.log.Warn("static peer takes a prefix from another peer", "peer", p.PublicKey, "err", err)
	}
	a.peerAdded(peer, l2.MAC{})
	return nil
}

// problem records a condition shown by `weft status` until the agent restarts.
func (a *Agent) problem(msg string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, p := range a.problems {
		if p == msg {
			return
		}
	}
	a.problems = append(a.problems, msg)
}

// onSubnetChanged moves the device's address when the allocator moved this host's subnet
// (a conflict lost to a lower key) and the address was derived from it.
func (a *Agent) onSubnetChanged(sn netip.Prefix) {
	a.mu.Lock()
	old := a.address
	derived := !a.cfg.Address.IsValid()
	a.subnet = sn
	if derived && sn.IsValid() {
		a.address = sn.Masked().Addr().Next()
	}
	addr := a.address
	a.mu.Unlock()
	if !derived || addr == old || (a.tnl == nil && a.plain == nil) {
		return
	}
	if err := moveAddress(a.cfg.Interface, old, addr, a.cfg.ClusterCIDR.Bits()); err != nil {
		a.log.Error("move overlay address", "from", old, "to", addr, "err", err)
		return
	}
	a.log.Info("overlay address moved", "from", old, "to", addr)
	if a.cat != nil {
		_ = a.cat.cat.UpdateNode(a.cfg.Name, addr, a.cat.cat.Tag())
		a.cat.rebindDNS(addr)
	}
}

// onMembersChanged is called after every gossip event (the catalog follows members).
func (a *Agent) onMembersChanged(ev discovery.Event) {
	if a.cat != nil {
		a.cat.memberEvent(ev)
	}
}
