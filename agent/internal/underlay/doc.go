// Package underlay finds the link that carries the agent's data port traffic, and its MTU,
// from the host's routing table: the route toward the peers (static peers' endpoints, the
// gossip join addresses), else the link holding the bind or advertise address, else the
// default routes. The overlay MTU follows it (agent/wire_mtu.go).
//
// Every lookup is a query of the kernel's tables (netlink RouteGet, RouteList, AddrList):
// nothing is sent on the network. The selection is plain Go over a Lookup of functions, so
// that it is tested with fakes; lookup_linux.go fills a Lookup from netlink.
//
// It may import x/sys and netlink only; nothing of weft.
package underlay
