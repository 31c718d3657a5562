package containers

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sync"

	"github.com/vishvananda/netlink"

	"github.com/weftnet/weft/agent/api"
	"github.com/weftnet/weft/agent/internal/jsonhttp"
	"github.com/weftnet/weft/internal/fsutil"
)

// Container networking, the agent's side of the weft-cni plugin (package cni). The plugin
// owns the bridge (weft-br0) and gives it the gateway, the /24's .1: the address the TUN
// carries too, with the cluster CIDR's prefix. Both routes are connected routes, the bridge's
// /24 the more specific, so the kernel sends this host's subnet to its containers and every
// other subnet into the tunnel, and the .1 stays a local address of the host whichever device
// a packet came in on. The agent
//
//   - serves GET /v1/subnet (Subnet), which the plugin reads at ADD;
//   - turns IPv4 forwarding on for its TUN (the bridge's the plugin turns on), per device, so
//     the host forwards nothing else; and, since a peer could now send packets for any
//     address through the tunnel, routing rules let what comes in on the TUN reach only
//     this host's subnet (local addresses are found before them, in the local table);
//   - writes Flannel's subnet.env;
//   - optionally masquerades containers' traffic to outside the cluster CIDR (nftables).

// Deps is what container networking needs of the agent: the cni section and a few other
// configuration values, read once, and the host's live subnet and address.
type Deps struct {
	// Enabled is cni.enabled: without it Start does nothing, but /v1/subnet still answers.
	Enabled bool
	// Interface is the TUN; Bridge is cni.bridge, the plugin's bridge.
	Interface string
	Bridge    string
	// IPMasq is cni.ipmasq: masquerade containers' traffic to outside ClusterCIDR.
	IPMasq bool
	// SubnetEnv is cni.subnet_env, the path of Flannel's subnet.env ("": not written).
	SubnetEnv string
	// ClusterCIDR is the overlay; MTU the overlay MTU.
	ClusterCIDR netip.Prefix
	MTU         int
	// Subnet and Address return this host's current subnet and overlay address (they move
	// with the subnet at run time).
	Subnet  func() netip.Prefix
	Address func() netip.Addr
	// Log is the agent's logger.
	Log *slog.Logger
}

// Containers is the agent's container-networking state: the guard rules in force.
type Containers struct {
	d Deps

	mu    sync.Mutex
	rules []*netlink.Rule
	masq  bool // the masquerade table is installed (retarget replaces it)
}

// New returns the container networking of d; nothing is installed until Start.
func New(d Deps) *Containers {
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	return &Containers{d: d}
}

// Gateway is the bridge's address: the subnet's first.
func Gateway(p netip.Prefix) netip.Addr { return p.Masked().Addr().Next() }

// Subnet is this host's container network.
func (c *Containers) Subnet() api.Subnet {
	address, subnet := c.d.Address(), c.d.Subnet() // moved by gossip at run time
	s := api.Subnet{Network: c.d.ClusterCIDR.String(), MTU: c.d.MTU, IPMasq: c.d.IPMasq, Containers: c.d.Enabled}
	if subnet.IsValid() {
		s.Subnet = subnet.Masked().String()
		s.Gateway = Gateway(subnet).String()
	}
	if address.IsValid() {
		s.Address = address.String()
	}
	return s
}

// Routes adds GET /v1/subnet to mux.
func (c *Containers) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/subnet", func(w http.ResponseWriter, r *http.Request) { jsonhttp.WriteJSON(w, http.StatusOK, c.Subnet()) })
}

// subnetEnv is Flannel's subnet.env for s: FLANNEL_SUBNET is the gateway with the subnet's
// prefix length, as Flannel writes it.
func subnetEnv(s api.Subnet) string {
	sub := s.Subnet
	if p, err := netip.ParsePrefix(s.Subnet); err == nil {
		sub = netip.PrefixFrom(Gateway(p), p.Bits()).String()
	}
	return fmt.Sprintf("FLANNEL_NETWORK=%s\nFLANNEL_SUBNET=%s\nFLANNEL_MTU=%d\nFLANNEL_IPMASQ=%t\n", s.Network, sub, s.MTU, s.IPMasq)
}

// writeSubnetEnv replaces path atomically (a reader never sees half a file).
func writeSubnetEnv(path string, s api.Subnet) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("cni.subnet_env: %w", err)
	}
	if err := fsutil.WriteFileAtomic(path, []byte(subnetEnv(s)), 0o644); err != nil {
		return fmt.Errorf("cni.subnet_env: %w", err)
	}
	return nil
}

// Start prepares the host for containers once the device exists; the returned func undoes
// what it set up (not the bridge, which the plugin owns and the containers still use).
func (c *Containers) Start() (func(), error) {
	if !c.d.Enabled {
		return func() {}, nil
	}
	subnet := c.d.Subnet()
	if !subnet.IsValid() {
		return nil, errors.New("cni.enabled needs a subnet for this host (gossip allocation or subnet)")
	}
	undo, err := c.hostForwarding()
	if err != nil {
		return nil, err
	}
	if c.d.SubnetEnv != "" {
		if err := writeSubnetEnv(c.d.SubnetEnv, c.Subnet()); err != nil {
			undo()
			return nil, err
		}
	}
	c.d.Log.Info("containers served", "subnet", subnet, "bridge", c.d.Bridge, "ipmasq", c.d.IPMasq)
	return undo, nil
}

// Moved follows a move of this host's subnet: the guard, the masquerade and subnet.env name
// the new subnet. Running containers keep their old addresses, which no longer route: they
// must be re-created (the plugin's next ADD moves the bridge's gateway).
func (c *Containers) Moved() {
	if !c.d.Enabled {
		return
	}
	if err := c.retarget(); err != nil {
		c.d.Log.Error("containers after the subnet moved", "err", err)
	}
	if c.d.SubnetEnv != "" {
		if err := writeSubnetEnv(c.d.SubnetEnv, c.Subnet()); err != nil {
			c.d.Log.Error("containers after the subnet moved", "err", err)
		}
	}
	c.d.Log.Warn("this host's subnet moved: re-create its containers, their addresses are in the old one", "subnet", c.Subnet().Subnet)
}
