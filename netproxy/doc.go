// Package netproxy carries local TCP and UDP into an overlay network that is reachable only
// through a userspace stack (weft's netstack mode), and back:
//
//   - SOCKS5 (RFC 1928) with CONNECT and UDP ASSOCIATE, optional username/password
//     authentication (RFC 1929);
//   - an HTTP proxy: CONNECT, and absolute-URI requests forwarded;
//   - relays: a local listener whose connections or datagrams go to one overlay destination
//     (a forward), or an overlay listener whose traffic goes to one local address (an expose).
//
// The package knows nothing of weft: the overlay is a Network (dial and listen), and a
// Resolver turns a request's host into an overlay address or refuses it. Every limit is
// bounded (connections, UDP sessions, handshake time, idle time) and every malformed request
// is refused, counted by reason, and never panics.
package netproxy
