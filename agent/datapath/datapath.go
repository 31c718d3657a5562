package datapath

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"syscall"
	"time"

	"golang.zx2c4.com/wireguard/tun"

	"github.com/weftnet/weft/agent/api"
	"github.com/weftnet/weft/agent/config"
	"github.com/weftnet/weft/agent/internal/underlay"
	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/l2"
	"github.com/weftnet/weft/peers"
	"github.com/weftnet/weft/tap"
	"github.com/weftnet/weft/tunnel"
	"github.com/weftnet/weft/udp"
)

// Datapath is the packet loop the agent runs. New chooses one from the config and the rest
// of the agent speaks only to this interface.
type Datapath interface {
	// Start opens the device and the UDP port and starts the loops; it returns the port.
	Start() (uint16, error)
	// Close stops the loops and closes the device.
	Close()
	// AddStatic applies a static peer of the config.
	AddStatic(p config.PeerConfig) error
	// AddMember applies a gossip member that passed the agent's checks (subnet: the /24 it
	// announced). An error wrapping peers.ErrPrefixMoved was applied nevertheless.
	AddMember(m Member, subnet netip.Prefix) error
	// RemoveMember withdraws what AddMember applied.
	RemoveMember(m Member)
	// Stats returns the datapath's drops by reason name (peers.DropReason), the same names
	// in every mode, and the counters of its own it has (nil when none).
	Stats() (drops, counters map[string]uint64)
	// FDB lists the forwarding database (empty in L3); nameOf names a peer's key.
	FDB(nameOf func(crypto.PublicKey) string) []api.FDBEntry
}

// Member is what a gossip member is applied as, so that it can be withdrawn.
type Member struct {
	Key      crypto.PublicKey
	Endpoint netip.AddrPort // data endpoint (the plain VXLAN remote)
	MAC      l2.MAC
	Addr     netip.Addr // overlay address: .1 of its subnet
}

// Config is the part of the agent's (validated) configuration a datapath reads; it does not
// change while the datapath runs.
type Config struct {
	// Mode is "l3" or "l2".
	Mode string
	// Encryption is "wireguard" or "none" (l2 only: plain RFC 7348 VXLAN).
	Encryption string
	// Netstack runs the l3 loop over a userspace TCP/IP stack instead of a TUN.
	Netstack bool
	// Interface is the TUN/TAP device's name.
	Interface string
	// MTU is the device's MTU.
	MTU int
	// PathMTUProbeInterval is how often each peer's path MTU is searched again (0: never).
	PathMTUProbeInterval time.Duration
	// CryptoWorkers is tunnel.Config.CryptoWorkers (0: automatic).
	CryptoWorkers int
	// VNI is the overlay's VXLAN network identifier.
	VNI uint32
	// ListenPort is the UDP data port (0: any).
	ListenPort int
	// ClusterCIDR is the overlay range: a static peer's prefixes outside it get kernel
	// routes through the device (L3).
	ClusterCIDR netip.Prefix
	// TAPOffload opens the TAP with offloads where the kernel allows (tap.OpenBest).
	TAPOffload bool
	// ARPSuppression (plain L2) answers ARP for the members' addresses locally.
	ARPSuppression bool
	// LearnUnknownVTEPs (plain L2) accepts VXLAN from VTEPs that are no peer or member.
	LearnUnknownVTEPs bool
	// Peers are the static peers: in plain L2 their endpoints are the VTEP's remotes.
	Peers []config.PeerConfig
}

// ConfigOf takes a datapath's Config from the agent's validated configuration.
func ConfigOf(c config.Config) Config {
	return Config{Mode: c.Mode, Encryption: c.Encryption, Netstack: c.Netstack, Interface: c.Interface,
		MTU: c.MTU, PathMTUProbeInterval: c.PathMTUProbeInterval.Duration, CryptoWorkers: c.CryptoWorkers, VNI: c.VNI, ListenPort: c.ListenPort, ClusterCIDR: c.ClusterCIDR.Prefix,
		TAPOffload: c.TapOffload, ARPSuppression: c.ARPSuppression, LearnUnknownVTEPs: c.Plain.LearnUnknownVTEPs,
		Peers: c.Peers}
}

// Deps is what a datapath takes from the agent. The functions are called from Start on (the
// agent makes the table, identity and policy when it runs, after New), Table also from
// AddMember/RemoveMember and the L2 router's source lookups.
type Deps struct {
	// Logger logs the datapath's control path.
	Logger *slog.Logger
	// PublicKey is this host's public key (its TAP MAC derives from it).
	PublicKey crypto.PublicKey
	// TAPMAC derives the TAP MAC of the host with a public key.
	TAPMAC func(crypto.PublicKey) l2.MAC
	// Table is the agent's peer table.
	Table func() *peers.Table
	// Identity is this host's handshake identity.
	Identity func() *crypto.Identity
	// Policy is the tunnel's policy hook.
	Policy func() tunnel.Policy
	// Address is the device's overlay address and the prefix length it carries.
	Address func() (addr netip.Addr, bits int)
	// ConfigureLink gives a device its address, MTU and state up.
	ConfigureLink func(name string, addr netip.Addr, bits, mtu int) error
	// AddRoute routes a prefix into the device.
	AddRoute func(name string, p netip.Prefix) error
	// OpenTAP opens the TAP (tap.OpenBest).
	OpenTAP func(cfg tap.Config, offload bool) (tun.Device, tap.Mode, error)
	// TAPOpened is told how the TAP was opened, before Start returns (status shows it).
	TAPOpened func(tap.Mode)
	// TUNOpened is told which TUN device L3 opened (tunnel.CreateTUN's mode), before Start
	// returns (status shows it). Nil: not told.
	TUNOpened func(mode string)
}

// New chooses the datapath of cfg; nothing is opened until Start.
func New(cfg Config, deps Deps) Datapath {
	e := encrypted{cfg: cfg, deps: deps}
	switch {
	case cfg.Netstack:
		return &nsPath{encrypted: e} // l3 over a userspace stack (netstack.go)
	case cfg.Mode != "l2":
		return &l3Path{e}
	case cfg.Encryption == "none":
		return &plainPath{cfg: cfg, deps: deps}
	default:
		return &l2Path{encrypted: e, router: l2.NewRouter(cfg.VNI, l2.DefaultFDBConfig(), tableLookup{deps.Table})}
	}
}

// encrypted is what the encrypted datapaths share: the tunnel over the peer table.
type encrypted struct {
	cfg  Config
	deps Deps
	tnl  *tunnel.Tunnel
}

// startTunnel starts the encrypted loop over dev; router nil means L3 routing, otherwise the
// frames are Ethernet (L2). The tunnel owns dev from here on, also on error.
func (e *encrypted) startTunnel(dev tun.Device, mtu int, router tunnel.Router) (uint16, error) {
	tcfg := tunnel.DefaultConfig()
	tcfg.VNI = e.cfg.VNI
	tcfg.MTU = mtu
	tcfg.PathMTUInterval = e.cfg.PathMTUProbeInterval
	tcfg.CryptoWorkers = e.cfg.CryptoWorkers
	tcfg.Identity = e.deps.Identity()
	tcfg.Logger = e.deps.Logger
	tcfg.Router = router
	tcfg.NextProtoL2 = router != nil
	tcfg.Policy = e.deps.Policy()
	// weft's own bind: DF on every datagram, and the kernel's errors about them (ICMP
	// "fragmentation needed" / "packet too big", local EMSGSIZE) feed the per-peer path MTU.
	bind := udp.NewBind()
	tcfg.RouteMTU = underlay.LinkMTU
	tnl, err := tunnel.New(tcfg, dev, bind, e.deps.Table())
	if err != nil {
		dev.Close()
		return 0, err
	}
	bind.SetErrorHandler(func(se udp.SendError) {
		if se.Errno == syscall.EMSGSIZE {
			tnl.PathError(se.Dst, se.MTU, se.Local, se.Quote)
		}
	})
	port, err := tnl.Up(uint16(e.cfg.ListenPort))
	if err != nil {
		tnl.Close()
		// err names the port already; say what to do about it.
		return 0, fmt.Errorf("%w (is another weft or WireGuard on it? set another listen_port)", err)
	}
	e.tnl = tnl
	return port, nil
}

func (e *encrypted) Close() { _ = e.tnl.Close() }

func (e *encrypted) Stats() (map[string]uint64, map[string]uint64) {
	st := e.tnl.Stats()
	return st.Drops, map[string]uint64{
		"path_mtu_probes": st.PathMTUProbes, "path_mtu_changes": st.PathMTUChanges,
		"icmp_too_big": st.ICMPTooBig, "icmp_too_big_limited": st.ICMPLimited,
		"path_errors_ignored":     st.PathErrorsIgnored,
		"crypto_parallel_batches": st.ParallelBatches,
		"csum_partial_sent":       st.PartialSent, "csum_partial_received": st.PartialReceived,
	}
}

// StaticPeer is the peer table's configuration of a static peer of the config.
func StaticPeer(p config.PeerConfig) (peers.PeerConfig, error) {
	key, err := crypto.ParsePublicKey(p.PublicKey)
	if err != nil {
		return peers.PeerConfig{}, fmt.Errorf("peer%s public_key: %w", p.At(), err)
	}
	pc := peers.PeerConfig{PublicKey: key, Endpoint: p.Endpoint.AddrPort, PersistentKeepalive: p.Keepalive.Duration,
		WireGuardFraming: p.Framing == "wireguard"}
	if p.PresharedKey != "" {
		if pc.PresharedKey, err = crypto.ParsePresharedKey(p.PresharedKey); err != nil {
			return peers.PeerConfig{}, fmt.Errorf("peer%s preshared_key: %w", p.At(), err)
		}
	}
	for _, ip := range p.AllowedIPs {
		pc.AllowedIPs = append(pc.AllowedIPs, ip.Prefix)
	}
	return pc, nil
}

// upsertStatic puts a static peer into the table; with routes, its prefixes outside the
// cluster CIDR get kernel routes through the device (L3).
func (e *encrypted) upsertStatic(p config.PeerConfig, routes bool) (*peers.Peer, error) {
	pc, err := StaticPeer(p)
	if err != nil {
		return nil, err
	}
	for _, ip := range p.AllowedIPs {
		if routes && (!e.cfg.ClusterCIDR.Contains(ip.Addr()) || e.cfg.ClusterCIDR.Bits() > ip.Bits()) {
			if err := e.deps.AddRoute(e.cfg.Interface, ip.Prefix); err != nil {
				return nil, err
			}
		}
	}
	peer, err := e.deps.Table().Upsert(pc)
	if err != nil {
		if !errors.Is(err, peers.ErrPrefixMoved) {
			return nil, fmt.Errorf("peer%s: %w", p.At(), err)
		}
		e.deps.Logger.Warn("static peer takes a prefix from another peer", "peer", p.PublicKey, "err", err)
	}
	return peer, nil
}

// upsertMember puts a gossip member into the table at its data endpoint with the given
// allowed prefixes. The peer is returned also with an error wrapping peers.ErrPrefixMoved
// (applied); with another error it is nil.
func (e *encrypted) upsertMember(m Member, allowed []netip.Prefix) (*peers.Peer, error) {
	p, err := e.deps.Table().Upsert(peers.PeerConfig{PublicKey: m.Key, Endpoint: m.Endpoint, AllowedIPs: allowed})
	if err != nil && !errors.Is(err, peers.ErrPrefixMoved) {
		return nil, err
	}
	return p, err
}

// l3Path is encrypted L3: a TUN, LPM routing over the peers' allowed prefixes.
type l3Path struct{ encrypted }

var _ Datapath = (*l3Path)(nil)

func (d *l3Path) Start() (uint16, error) {
	dev, mode, err := tunnel.CreateTUN(d.cfg.Interface, d.cfg.MTU)
	if err != nil {
		return 0, fmt.Errorf("create TUN %s: %w (is /dev/net/tun present and are you root? without root, run with --netstack)", d.cfg.Interface, err)
	}
	d.deps.Logger.Info("tun device", "interface", d.cfg.Interface, "device", mode)
	if d.deps.TUNOpened != nil {
		d.deps.TUNOpened(mode)
	}
	addr, bits := d.deps.Address()
	if err := d.deps.ConfigureLink(d.cfg.Interface, addr, bits, d.cfg.MTU); err != nil {
		dev.Close()
		return 0, err
	}
	return d.startTunnel(dev, d.cfg.MTU, nil)
}

func (d *l3Path) AddStatic(p config.PeerConfig) error {
	_, err := d.upsertStatic(p, true)
	return err
}

func (d *l3Path) AddMember(m Member, subnet netip.Prefix) error {
	_, err := d.upsertMember(m, []netip.Prefix{subnet})
	return err
}

func (d *l3Path) RemoveMember(m Member) { d.deps.Table().Remove(m.Key) }

func (d *l3Path) FDB(func(crypto.PublicKey) string) []api.FDBEntry { return []api.FDBEntry{} }
