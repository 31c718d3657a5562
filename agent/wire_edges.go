package agent

import (
	"errors"
	"net/http"
	"net/netip"
	"time"

	"github.com/weftnet/weft/agent/api"
	"github.com/weftnet/weft/agent/clients"
	"github.com/weftnet/weft/agent/containers"
	"github.com/weftnet/weft/agent/resolver"
	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/peers"
)

// The edge subsystems, wired: stock WireGuard clients (agent/clients), container
// networking (agent/containers) and the host resolver (agent/resolver). New builds the first
// two (after the key is loaded); Run starts and stops them; onSubnetChanged tells them the
// subnet moved. Tests that build an Agent by hand leave a.cl and a.ctr nil, hence the nil
// checks on the paths such tests reach.

// currentSubnet and currentAddress are this host's subnet and overlay address, which
// onSubnetChanged moves at run time.
func (a *Agent) currentSubnet() netip.Prefix {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.subnet
}

func (a *Agent) currentAddress() netip.Addr {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.address
}

// newClients builds the stock WireGuard clients over a's config, datapath and state.
func newClients(a *Agent) *clients.Clients {
	c := a.cfg
	return clients.New(clients.Deps{
		Mode:            c.Mode,
		Encryption:      c.Encryption,
		Netstack:        c.Netstack,
		Containers:      c.CNI.Enabled,
		StateDir:        c.StateDir,
		Range:           c.Clients.Range,
		Interface:       c.Interface,
		ClusterCIDR:     c.ClusterCIDR.Prefix,
		MTU:             c.MTU,
		DNSDomain:       c.DNS.Domain,
		DNSDisabled:     c.DNS.Disabled,
		DNSListen:       c.DNS.Listen,
		GossipAdvertise: c.Gossip.Advertise,
		GossipBind:      c.Gossip.Bind,
		HostKey:         a.publicKey(),
		Subnet:          a.currentSubnet,
		Address:         a.currentAddress,
		Port:            func() uint16 { return a.port },
		DatapathUp:      a.dpUp.Load,
		AddPeer: func(key crypto.PublicKey, addr netip.Addr, keepalive time.Duration) error {
			_, err := a.table.Upsert(peers.PeerConfig{PublicKey: key, WireGuardFraming: true, PersistentKeepalive: keepalive,
				AllowedIPs: []netip.Prefix{netip.PrefixFrom(addr, 32)}})
			if err != nil && !errors.Is(err, peers.ErrPrefixMoved) {
				return err
			}
			return nil
		},
		RemovePeer: func(key crypto.PublicKey) { a.table.Remove(key) },
		IsPeer:     func(key crypto.PublicKey) bool { return a.table.ByKey(key) != nil },
		Changed: func() {
			if a.pol != nil {
				a.pol.KickRebuild() // a client's policy identity (client@HOST/NAME)
			}
		},
		// The clients' addresses, announced so that every host judges them as clients
		// of this host (netpolicy), never as this host.
		SetTag: func(key, value string) error {
			if a.gsp == nil {
				return nil
			}
			return a.gsp.Cluster().SetTag(key, value)
		},
		Problem: a.problem,
		Log:     a.log,
	})
}

// newContainers builds container networking over a's config and state.
func newContainers(a *Agent) *containers.Containers {
	c := a.cfg
	return containers.New(containers.Deps{
		Enabled:     c.CNI.Enabled,
		Interface:   c.Interface,
		Bridge:      c.CNI.Bridge,
		IPMasq:      c.CNI.IPMasq,
		SubnetEnv:   c.CNI.SubnetEnv,
		ClusterCIDR: c.ClusterCIDR.Prefix,
		MTU:         c.MTU,
		Subnet:      a.currentSubnet,
		Address:     a.currentAddress,
		Log:         a.log,
	})
}

// startClients loads the stored clients and adds them as peers (after the datapath).
func (a *Agent) startClients() error { return a.cl.Start() }

// stopClients removes the client guard.
func (a *Agent) stopClients() {
	if a.cl != nil {
		a.cl.Stop()
	}
}

// clientsMoved: the client guard follows the subnet sn.
func (a *Agent) clientsMoved(sn netip.Prefix) {
	if a.cl != nil {
		a.cl.Moved(sn)
	}
}

// clientList is the stock WireGuard clients (policy gives each an identity of its own,
// client@HOST/NAME, by key and by address).
func (a *Agent) clientList() []api.WGClient {
	if a.cl == nil {
		return nil
	}
	return a.cl.List()
}

// clientAddr answers NAME.client.DOMAIN in DNS.
func (a *Agent) clientAddr(name string) (netip.Addr, bool) {
	if a.cl == nil {
		return netip.Addr{}, false
	}
	return a.cl.Addr(name)
}

func (a *Agent) clientRoutes(mux *http.ServeMux) { a.cl.Routes(mux) }

// startContainers prepares the host for containers once the device exists; the returned
// func undoes it.
func (a *Agent) startContainers() (func(), error) { return a.ctr.Start() }

// containersMoved: the guard, the masquerade and subnet.env follow the subnet.
func (a *Agent) containersMoved() {
	if a.ctr != nil {
		a.ctr.Moved()
	}
}

// SubnetInfo is this host's container network.
func (a *Agent) SubnetInfo() api.Subnet { return a.ctr.Subnet() }

func (a *Agent) cniRoutes(mux *http.ServeMux) { a.ctr.Routes(mux) }

// gateway is the bridge's address in a subnet: its first.
func gateway(p netip.Prefix) netip.Addr { return containers.Gateway(p) }

// hostResolver is the systemd-resolved the catalog's DNS points at (a seam for tests;
// zero: the system's).
type hostResolver = resolver.Resolved

// setupResolver points the host's resolver (r, zero: the system's) at the DNS server just
// started on addrs, overlay being the overlay address (services.Deps.HostResolver); it
// returns what reverts that, or nil.
func (a *Agent) setupResolver(r hostResolver, addrs []netip.AddrPort, overlay netip.Addr) func() {
	if a.cfg.DNS.ResolvedDisabled {
		return nil
	}
	return resolver.Point(resolver.Deps{Resolved: r, Interface: a.cfg.Interface, Domain: a.cfg.DNS.Domain,
		Problem: a.problem, Log: a.log}, addrs, overlay)
}
