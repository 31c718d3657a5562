// Package containers is the agent's side of container networking (the weft-cni plugin,
// package cni): it serves /v1/subnet, which the plugin reads at ADD; turns forwarding on for
// the TUN and installs the routing guard; optionally masquerades containers' traffic to
// outside the cluster CIDR (nftables); writes Flannel's subnet.env; and follows a move of
// the host's subnet.
//
// It gets what it needs from the agent as a Deps struct of values and functions. It may
// import agent/api, agent/internal/hostnet and jsonhttp, netlink and x/sys; never the agent
// or another subsystem.
package containers
