// Package cni is weft's CNI plugin: Flannel's contract, done against the weft agent. A
// container runtime runs the plugin (cmd/weft-cni) for each container; the plugin asks the
// local agent over its control socket for the host's /24, the overlay MTU and the cluster
// CIDR, and on ADD
//
//   - creates the bridge weft-br0 on demand, holding the gateway (the /24's .1, the same
//     address the agent's TUN carries with the cluster prefix: the bridge's connected /24 route
//     is the more specific one, so the host's own subnet goes to its containers and the rest of
//     the cluster CIDR into the tunnel, while the host's overlay address stays local on both);
//   - takes an address from the /24 in its own file-locked store (ipam.go);
//   - creates a veth pair, one end in the container's namespace with the address, the overlay
//     MTU and routes to the cluster CIDR and a default via the gateway, the other on the bridge;
//   - returns a CNI 1.x result that chained plugins (portmap) build on.
//
// DEL releases the address and removes the container end, and succeeds again when nothing is
// left; CHECK verifies the interface, its address and routes, and the reservation; STATUS says
// whether the agent answers. Every failure is a CNI error with the spec's code and a message
// that says what to do.
package cni
