package agent

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/weftnet/weft/agent/api"
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

// gateway is the bridge's address: the subnet's first.
func gateway(p netip.Prefix) netip.Addr { return p.Masked().Addr().Next() }

// SubnetInfo is this host's container network.
func (a *Agent) SubnetInfo() api.Subnet {
	a.mu.Lock()
	address, subnet := a.address, a.subnet // moved by gossip at run time (onSubnetChanged)
	a.mu.Unlock()
	s := api.Subnet{Network: a.cfg.ClusterCIDR.Prefix.String(), MTU: a.cfg.MTU, IPMasq: a.cfg.CNI.IPMasq, Containers: a.cfg.CNI.Enabled}
	if subnet.IsValid() {
		s.Subnet = subnet.Masked().String()
		s.Gateway = gateway(subnet).String()
	}
	if address.IsValid() {
		s.Address = address.String()
	}
	return s
}

func (a *Agent) cniRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/subnet", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, a.SubnetInfo()) })
}

// subnetEnv is Flannel's subnet.env for s: FLANNEL_SUBNET is the gateway with the subnet's
// prefix length, as Flannel writes it.
func subnetEnv(s api.Subnet) string {
	sub := s.Subnet
	if p, err := netip.ParsePrefix(s.Subnet); err == nil {
		sub = netip.PrefixFrom(gateway(p), p.Bits()).String()
	}
	return fmt.Sprintf("FLANNEL_NETWORK=%s\nFLANNEL_SUBNET=%s\nFLANNEL_MTU=%d\nFLANNEL_IPMASQ=%t\n", s.Network, sub, s.MTU, s.IPMasq)
}

// writeSubnetEnv replaces path atomically (a reader never sees half a file).
func writeSubnetEnv(path string, s api.Subnet) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("cni.subnet_env: %w", err)
	}
	if err := writeFileAtomic(path, []byte(subnetEnv(s)), 0o644); err != nil {
		return fmt.Errorf("cni.subnet_env: %w", err)
	}
	return nil
}

// startContainers prepares the host for containers once the device exists; the returned
// func undoes what the agent set up (not the bridge, which the plugin owns and the
// containers still use).
func (a *Agent) startContainers() (func(), error) {
	if !a.cfg.CNI.Enabled {
		return func() {}, nil
	}
	if !a.subnet.IsValid() {
		return nil, errors.New("cni.enabled needs a subnet for this host (gossip allocation or subnet)")
	}
	undo, err := a.hostForwarding()
	if err != nil {
		return nil, err
	}
	if a.cfg.CNI.SubnetEnv != "" {
		if err := writeSubnetEnv(a.cfg.CNI.SubnetEnv, a.SubnetInfo()); err != nil {
			undo()
			return nil, err
		}
	}
	a.log.Info("containers served", "subnet", a.subnet, "bridge", a.cfg.CNI.Bridge, "ipmasq", a.cfg.CNI.IPMasq)
	return undo, nil
}

// containersMoved follows a move of this host's subnet (onSubnetChanged): the guard, the
// masquerade and subnet.env name the new subnet. Running containers keep their old
// addresses, which no longer route: they must be re-created (the plugin's next ADD moves the
// bridge's gateway).
func (a *Agent) containersMoved() {
	if !a.cfg.CNI.Enabled {
		return
	}
	if err := a.retarget(); err != nil {
		a.log.Error("containers after the subnet moved", "err", err)
	}
	if a.cfg.CNI.SubnetEnv != "" {
		if err := writeSubnetEnv(a.cfg.CNI.SubnetEnv, a.SubnetInfo()); err != nil {
			a.log.Error("containers after the subnet moved", "err", err)
		}
	}
	a.log.Warn("this host's subnet moved: re-create its containers, their addresses are in the old one", "subnet", a.SubnetInfo().Subnet)
}
