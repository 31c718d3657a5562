// Package rootless owns the services of netstack mode (rootless): what makes the overlay,
// which runs in a userspace TCP/IP stack (package datapath's netstack datapath), reachable
// from the host and the host from the overlay, with no device and no root.
//
// The host reaches the overlay only through what Start serves on loopback (package
// netproxy): a SOCKS5 and an HTTP proxy and the configured forwards; the overlay reaches the
// host through the exposes (an overlay port relayed to a local address). DNS answers for
// other hosts ("overlay:PORT" in dns.listen) are served inside the stack.
//
// Destinations are overlay-only: a proxy or forward resolves NAME.service.weft (a passing
// instance, chosen at random) and HOST.node.weft through the catalog, accepts address
// literals inside cluster_cidr or a peer's allowed prefixes, and refuses everything else
// (the stack has no route to the Internet; the host's own network is the host's business).
//
// It gets the stack, the catalog and a peer lookup from the agent as Deps; it may import
// netproxy, usernet, discovery/catalog (the catalog's read side and DNS handler) and
// agent/config; never github.com/weftnet/weft/agent or another agent subsystem.
package rootless
