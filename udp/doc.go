// Package udp is weft's UDP socket layer: a golang.zx2c4.com/wireguard/conn.Bind for Linux
// that gives the datapath what wireguard-go's StdNetBind cannot.
//
//   - DF on every datagram, and weft owns path-MTU state: IP_PMTUDISC_PROBE and
//     IPV6_PMTUDISC_PROBE make the kernel set DF (IPv4), never fragment, and ignore the
//     PMTU it learned, so weft may probe larger sizes. A datagram bigger than the device
//     MTU fails Send with an error for which errors.Is(err, syscall.EMSGSIZE) holds.
//   - The errors the kernel reports about datagrams this bind sent (IP_RECVERR,
//     IPV6_RECVERR): ICMP "fragmentation needed", "packet too big", unreachables, local
//     EMSGSIZE. The receive functions drain the socket's error queue and hand each error,
//     parsed by ParseErrQueue, to the handler set with SetErrorHandler.
//   - RouteMTU: the MTU of the route toward a destination as the kernel sees it now.
//
// Otherwise it behaves as StdNetBind: an IPv4 and an IPv6 socket on one port, recvmmsg
// with UDP GRO, sendmmsg with UDP GSO (falling back when the kernel refuses it), sticky
// source addresses (IP_PKTINFO, IPV6_RECVPKTINFO), large socket buffers, SO_MARK. Unlike
// StdNetBind it allocates nothing per packet in steady state: received endpoints come
// from a small bounded cache, and a GSO run is sent from the caller's buffers as one
// iovec each, without copying them together.
//
// Elsewhere than Linux, NewBind wraps StdNetBind (no error queue, no RouteMTU).
//
// The package imports nothing of weft; the datapath (tunnel) and the agent may import it.
package udp
