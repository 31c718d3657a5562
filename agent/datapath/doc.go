// Package datapath owns the agent's packet loop glue: the one datapath a host runs, chosen
// once by New from the mode, behind the Datapath seam the agent speaks to.
//
//   - l3Path: a TUN and the encrypted loop (package tunnel) routing by the peers' allowed
//     prefixes (datapath.go);
//   - l2Path: a TAP and the same loop with an l2.Router (FDB) over Ethernet frames (l2.go);
//   - plainPath: a TAP and the plain RFC 7348 VTEP, no peer table (l2.go);
//   - nsPath: l3Path's loop over a userspace TCP/IP stack (package usernet) instead of a TUN
//     (netstack.go); the services that reach it from the host are package rootless's.
//
// It gets what it needs from the agent as a Config (settings) and Deps (the peer table,
// identity, policy hook, the device address, the system calls that configure a link):
// never the agent itself. It may import the datapath packages (tunnel, peers, l2, tap,
// usernet, netproxy), crypto, agent/config and agent/api's JSON types; never
// github.com/weftnet/weft/agent, discovery or another agent subsystem.
package datapath
