package agent

import (
	"errors"
	"fmt"
	"net/netip"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/tun"

	"github.com/weftnet/weft/agent/api"
	"github.com/weftnet/weft/agent/config"
	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/l2"
	"github.com/weftnet/weft/peers"
	"github.com/weftnet/weft/tunnel"
)

// datapath is the packet loop the agent runs. New chooses one of three from the config
// (newDatapath) and the rest of the agent speaks only to this interface:
//
//   - l3Path: a TUN and the encrypted loop routing by the peers' allowed prefixes;
//   - l2Path: a TAP and the same loop with l2.Router (FDB) over Ethernet frames (l2.go);
//   - plainPath: a TAP and the plain RFC 7348 VTEP, no peer table (l2.go);
//   - nsPath: l3Path's loop over a userspace TCP/IP stack instead of a TUN (netstack.go).
type datapath interface {
	// start opens the device and the UDP port and starts the loops; it returns the port.
	start() (uint16, error)
	// close stops the loops and closes the device.
	close()
	// addStatic applies a static peer of the config.
	addStatic(p config.PeerConfig) error
	// addMember applies a gossip member that passed the agent's checks (subnet: the /24 it
	// announced). An error wrapping peers.ErrPrefixMoved was applied nevertheless.
	addMember(mp memberPeer, subnet netip.Prefix) error
	// removeMember withdraws what addMember applied.
	removeMember(mp memberPeer)
	// stats returns the datapath's drops by reason name (peers.DropReason), the same names
	// in every mode, and the counters of its own it has (nil when none).
	stats() (drops, counters map[string]uint64)
	// fdb lists the forwarding database (empty in L3); nameOf names a peer's key.
	fdb(nameOf func(crypto.PublicKey) string) []api.FDBEntry
}

// newDatapath chooses the datapath of a's (validated) config.
func newDatapath(a *Agent) datapath {
	switch {
	case a.cfg.Netstack:
		return &nsPath{encrypted: encrypted{a: a}} // l3 over a userspace stack (netstack.go)
	case a.cfg.Mode != "l2":
		return &l3Path{encrypted{a: a}}
	case a.cfg.Encryption == "none":
		return &plainPath{a: a}
	default:
		return &l2Path{encrypted: encrypted{a: a}, router: l2.NewRouter(a.cfg.VNI, l2.DefaultFDBConfig(), peerTable{a})}
	}
}

// encrypted is what the two encrypted datapaths share: the tunnel over the peer table.
type encrypted struct {
	a   *Agent
	tnl *tunnel.Tunnel
}

// startTunnel starts the encrypted loop over dev; router nil means L3 routing, otherwise the
// frames are Ethernet (L2). The tunnel owns dev from here on, also on error.
func (e *encrypted) startTunnel(dev tun.Device, mtu int, router tunnel.Router) (uint16, error) {
	a := e.a
	tcfg := tunnel.DefaultConfig()
	tcfg.VNI = a.cfg.VNI
	tcfg.MTU = mtu
	tcfg.Identity = a.id
	tcfg.Logger = a.log
	tcfg.Router = router
	tcfg.NextProtoL2 = router != nil
	tcfg.Policy = a.pol.hook
	tnl, err := tunnel.New(tcfg, dev, conn.NewDefaultBind(), a.table)
	if err != nil {
		dev.Close()
		return 0, err
	}
	port, err := tnl.Up(uint16(a.cfg.ListenPort))
	if err != nil {
		tnl.Close()
		// err names the port already; say what to do about it.
		return 0, fmt.Errorf("%w (is another weft or WireGuard on it? set another listen_port)", err)
	}
	e.tnl = tnl
	return port, nil
}

func (e *encrypted) close() { _ = e.tnl.Close() }

func (e *encrypted) stats() (map[string]uint64, map[string]uint64) {
	return e.tnl.Stats().Drops, nil
}

// upsertStatic puts a static peer into the table; with routes, its prefixes outside the
// cluster CIDR get kernel routes through the device (L3).
func (e *encrypted) upsertStatic(p config.PeerConfig, routes bool) (*peers.Peer, error) {
	a := e.a
	key, err := crypto.ParsePublicKey(p.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("peer%s public_key: %w", p.At(), err)
	}
	pc := peers.PeerConfig{PublicKey: key, Endpoint: p.Endpoint.AddrPort, PersistentKeepalive: p.Keepalive.Duration,
		WireGuardFraming: p.Framing == "wireguard"}
	if p.PresharedKey != "" {
		if pc.PresharedKey, err = crypto.ParsePresharedKey(p.PresharedKey); err != nil {
			return nil, fmt.Errorf("peer%s preshared_key: %w", p.At(), err)
		}
	}
	for _, ip := range p.AllowedIPs {
		pc.AllowedIPs = append(pc.AllowedIPs, ip.Prefix)
		if routes && (!a.cfg.ClusterCIDR.Contains(ip.Addr()) || a.cfg.ClusterCIDR.Bits() > ip.Bits()) {
			if err := addRoute(a.cfg.Interface, ip.Prefix); err != nil {
				return nil, err
			}
		}
	}
	peer, err := a.table.Upsert(pc)
	if err != nil {
		if !errors.Is(err, peers.ErrPrefixMoved) {
			return nil, fmt.Errorf("peer%s: %w", p.At(), err)
		}
		a.log.Warn("static peer takes a prefix from another peer", "peer", p.PublicKey, "err", err)
	}
	return peer, nil
}

// upsertMember puts a gossip member into the table at its data endpoint with the given
// allowed prefixes. The peer is returned also with an error wrapping peers.ErrPrefixMoved
// (applied); with another error it is nil.
func (e *encrypted) upsertMember(mp memberPeer, allowed []netip.Prefix) (*peers.Peer, error) {
	p, err := e.a.table.Upsert(peers.PeerConfig{PublicKey: mp.key, Endpoint: mp.ep, AllowedIPs: allowed})
	if err != nil && !errors.Is(err, peers.ErrPrefixMoved) {
		return nil, err
	}
	return p, err
}

// l3Path is encrypted L3: a TUN, LPM routing over the peers' allowed prefixes.
type l3Path struct{ encrypted }

var _ datapath = (*l3Path)(nil)

func (d *l3Path) start() (uint16, error) {
	a := d.a
	dev, err := tunnel.CreateTUN(a.cfg.Interface, a.cfg.MTU)
	if err != nil {
		return 0, fmt.Errorf("create TUN %s: %w (is /dev/net/tun present and are you root? without root, run with --netstack)", a.cfg.Interface, err)
	}
	if err := configureLink(a.cfg.Interface, a.address, a.linkBits(), a.cfg.MTU); err != nil {
		dev.Close()
		return 0, err
	}
	return d.startTunnel(dev, a.cfg.MTU, nil)
}

func (d *l3Path) addStatic(p config.PeerConfig) error {
	_, err := d.upsertStatic(p, true)
	return err
}

func (d *l3Path) addMember(mp memberPeer, subnet netip.Prefix) error {
	_, err := d.upsertMember(mp, []netip.Prefix{subnet})
	return err
}

func (d *l3Path) removeMember(mp memberPeer) { d.a.table.Remove(mp.key) }

func (d *l3Path) fdb(func(crypto.PublicKey) string) []api.FDBEntry { return []api.FDBEntry{} }
