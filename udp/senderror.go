package udp

import (
	"net/netip"
	"syscall"
)

// SendError is one error the kernel reported about a datagram this bind sent: an ICMP or
// ICMPv6 error a router or the peer returned, or a local error (EMSGSIZE) of this host.
type SendError struct {
	// Dst is the destination of the datagram the error is about (the peer's endpoint).
	// For Local errors the kernel gives the address but no port on an unconnected socket:
	// the port is 0.
	Dst netip.AddrPort
	// From is who reported it (the router for ICMP); invalid for Local errors.
	From netip.Addr
	// Local says this host's kernel raised it (SO_EE_ORIGIN_LOCAL: e.g. EMSGSIZE of a
	// datagram bigger than the device MTU).
	Local bool
	// Errno is EMSGSIZE for "fragmentation needed" / "packet too big" (and local
	// oversize), ECONNREFUSED for port unreachable, EHOSTUNREACH, ENETUNREACH, ...
	Errno syscall.Errno
	// Type and Code are the ICMP (or ICMPv6) type and code; 0 for Local errors.
	Type, Code uint8
	// MTU is the MTU reported with EMSGSIZE (ee_info), 0 otherwise. It is what the
	// reporter claimed: a hostile router may claim anything, the consumer bounds it.
	MTU int
	// Quote is the start of our datagram's UDP payload as quoted back (may be short or
	// empty). It is borrowed: valid only during the handler call.
	Quote []byte
}
