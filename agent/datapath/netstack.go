package datapath

import (
	"fmt"
	"net/netip"

	"github.com/weftnet/weft/agent/api"
	"github.com/weftnet/weft/agent/config"
	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/netproxy"
	"github.com/weftnet/weft/usernet"
)

// Netstack mode (rootless): the L3 datapath runs over package usernet, a batched
// tun.Device backed by gVisor's userspace TCP/IP stack, so the batched tunnel loop is the
// same as with a TUN while nothing needs root: no /dev/net/tun, no netlink, no routes. The
// host reaches the overlay only through the services package rootless starts on the stack
// (Stack).

// Stack is the netstack datapath as the rootless services see it.
type Stack interface {
	Datapath
	// Net is the userspace stack the tunnel runs over; nil before Start.
	Net() *usernet.Device
	// Proxied counts what the proxies, forwards and exposes carried and refused, by
	// reason; Stats returns it as the datapath's counters (`weft status`).
	Proxied() *netproxy.Counters
}

// nsPath is encrypted L3 over the netstack device.
type nsPath struct {
	encrypted
	net     *usernet.Device
	proxied netproxy.Counters
}

var _ Stack = (*nsPath)(nil)

func (d *nsPath) Start() (uint16, error) {
	addr, _ := d.deps.Address()
	dev, err := usernet.New([]netip.Addr{addr}, d.cfg.MTU)
	if err != nil {
		return 0, fmt.Errorf("netstack: %w", err)
	}
	d.net = dev
	return d.startTunnel(dev, d.cfg.MTU, nil)
}

// AddStatic: no kernel routes; the netstack's default route leads into the tunnel, which
// routes by the peers' allowed prefixes.
func (d *nsPath) AddStatic(p config.PeerConfig) error {
	_, err := d.upsertStatic(p, false)
	return err
}

func (d *nsPath) AddMember(m Member, subnet netip.Prefix) error {
	_, err := d.upsertMember(m, []netip.Prefix{subnet})
	return err
}

func (d *nsPath) RemoveMember(m Member) { d.deps.Table().Remove(m.Key) }

func (d *nsPath) Stats() (map[string]uint64, map[string]uint64) {
	drops, _ := d.encrypted.Stats()
	return drops, d.proxied.Snapshot()
}

func (d *nsPath) FDB(func(crypto.PublicKey) string) []api.FDBEntry { return []api.FDBEntry{} }

func (d *nsPath) Net() *usernet.Device { return d.net }

func (d *nsPath) Proxied() *netproxy.Counters { return &d.proxied }
