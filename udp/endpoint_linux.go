package udp

import (
	"net/netip"
	"sync/atomic"

	"golang.zx2c4.com/wireguard/conn"
)

// Endpoint is a peer's UDP address and, for a received datagram, the local address and
// interface it arrived on (the sticky source: replies leave from the address the peer sent
// to). Its address never changes; ClearSrc only stops the sticky source from being used.
type Endpoint struct {
	dst     netip.AddrPort
	scope   uint32     // the IPv6 scope id (interface index) of a link-local dst, else 0
	src     netip.Addr // the sticky source; invalid: the kernel chooses
	ifindex int32      // the interface the datagram came in on, with src
	cleared atomic.Bool
}

var _ conn.Endpoint = (*Endpoint)(nil)

// AddrPort is the peer's address and port.
func (e *Endpoint) AddrPort() netip.AddrPort { return e.dst }

// Port is the peer's UDP port (the tunnel reads it to build the AddrPort without allocating).
func (e *Endpoint) Port() uint16 { return e.dst.Port() }

// DstIP is the peer's address.
func (e *Endpoint) DstIP() netip.Addr { return e.dst.Addr() }

// DstToString is the peer's address and port as ip:port.
func (e *Endpoint) DstToString() string { return e.dst.String() }

// DstToBytes is the peer's address and port in netip.AddrPort's binary form (for WireGuard's
// cookie MACs, as StdNetEndpoint).
func (e *Endpoint) DstToBytes() []byte {
	b, _ := e.dst.MarshalBinary()
	return b
}

// SrcIP is the sticky source address, invalid when there is none or it was cleared.
func (e *Endpoint) SrcIP() netip.Addr {
	if e.cleared.Load() {
		return netip.Addr{}
	}
	return e.src
}

// SrcToString is SrcIP as a string ("" without one).
func (e *Endpoint) SrcToString() string {
	if a := e.SrcIP(); a.IsValid() {
		return a.String()
	}
	return ""
}

// ClearSrc stops replies through e from being sent from the sticky source address: the
// kernel chooses the source again. Safe for concurrent use.
func (e *Endpoint) ClearSrc() { e.cleared.Store(true) }

// sticky returns the source address and interface to send from, if any.
func (e *Endpoint) sticky() (netip.Addr, int32, bool) {
	if !e.src.IsValid() || e.cleared.Load() {
		return netip.Addr{}, 0, false
	}
	return e.src, e.ifindex, true
}

// epCacheSize is the number of slots of a receive socket's endpoint cache: far more than the
// peers a host talks to at once, small enough to bound what a flood of spoofed sources costs.
const epCacheSize = 256

// epCache maps (peer address, local address, interface) to an Endpoint handed out before,
// so that receiving allocates nothing in steady state. Direct-mapped with a random seed: a
// collision or a miss allocates one Endpoint and replaces the slot; memory stays bounded
// whatever the senders. Owned by one receive function (its lock).
type epCache struct {
	seed  uint64
	slots [epCacheSize]*Endpoint
}

func (c *epCache) get(dst netip.AddrPort, scope uint32, src netip.Addr, ifindex int32) *Endpoint {
	h := c.hash(dst, src, ifindex^int32(scope))
	slot := &c.slots[h%epCacheSize]
	if e := *slot; e != nil && e.dst == dst && e.scope == scope && e.src == src && e.ifindex == ifindex && !e.cleared.Load() {
		return e
	}
	e := &Endpoint{dst: dst, scope: scope, src: src, ifindex: ifindex}
	*slot = e
	return e
}

func (c *epCache) hash(dst netip.AddrPort, src netip.Addr, ifindex int32) uint64 {
	const m = 0x9e3779b97f4a7c15
	a, s := dst.Addr().As16(), src.As16()
	h := c.seed
	for _, w := range [...]uint64{
		le64(a[0:8]), le64(a[8:16]), le64(s[0:8]), le64(s[8:16]),
		uint64(dst.Port()) | uint64(uint32(ifindex))<<16,
	} {
		h = (h ^ w) * m
		h ^= h >> 29
	}
	return h
}

func le64(b []byte) uint64 {
	_ = b[7]
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
}
