// Package clients serves stock WireGuard clients (phones, laptops, wg-quick) as peers of
// this host: their store (StateDir/clients.json), the allocation of their addresses from
// the host's /24, the wg-quick config weft generates for them, the /v1/clients routes, and
// the host side of forwarding for them (forwarding on the TUN and the client guard rules),
// which follows a move of the host's subnet, and the announcement of the clients'
// addresses in gossip (package clienttag, the tag's codec, which agent/netpolicy reads so
// that every host judges a client as itself, never as this host).
//
// It gets what it needs from the agent as a Deps struct of values and functions. It may
// import agent/api, agent/config (SplitHostPort), agent/internal/hostnet and jsonhttp, crypto,
// netlink and x/sys; never the agent, the peer table or another subsystem.
package clients
