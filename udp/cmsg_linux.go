package udp

import (
	"encoding/binary"
	"net/netip"

	"golang.org/x/sys/unix"
)

// Control messages as the kernel writes and reads them: a cmsghdr (cmsg_len of the word
// size, level, type), the data, padding to the word size.

// nextCmsg splits the first control message off b. ok is false when b holds no complete
// one (a short or lying cmsg_len ends the walk: the rest is not trusted).
func nextCmsg(b []byte) (level, typ int32, data, rest []byte, ok bool) {
	if len(b) < unix.SizeofCmsghdr {
		return 0, 0, nil, nil, false
	}
	ne := binary.NativeEndian
	var l uint64
	if errQueueWord == 8 {
		l = ne.Uint64(b[0:8])
	} else {
		l = uint64(ne.Uint32(b[0:4]))
	}
	if l < unix.SizeofCmsghdr || l > uint64(len(b)) {
		return 0, 0, nil, nil, false
	}
	level = int32(ne.Uint32(b[errQueueWord:]))
	typ = int32(ne.Uint32(b[errQueueWord+4:]))
	data = b[unix.SizeofCmsghdr:l]
	if next := cmsgAlign(int(l)); next < len(b) {
		rest = b[next:]
	}
	return level, typ, data, rest, true
}

// putCmsg writes a control message header for n bytes of data at the start of b (which
// must have room for cmsgAlign(SizeofCmsghdr+n) bytes) and returns its data region.
func putCmsg(b []byte, level, typ int32, n int) []byte {
	ne := binary.NativeEndian
	l := unix.SizeofCmsghdr + n
	if errQueueWord == 8 {
		ne.PutUint64(b[0:8], uint64(l))
	} else {
		ne.PutUint32(b[0:4], uint32(l))
	}
	ne.PutUint32(b[errQueueWord:], uint32(level))
	ne.PutUint32(b[errQueueWord+4:], uint32(typ))
	data := b[unix.SizeofCmsghdr:cmsgAlign(l)]
	clear(data)
	return data[:n]
}

// Sizes of what a received or sent datagram carries in its control data.
var (
	pktinfoSpace = cmsgAlign(unix.SizeofCmsghdr + unix.SizeofInet6Pktinfo) // the larger of both
	segmentSpace = cmsgAlign(unix.SizeofCmsghdr + 2)
	groSpace     = cmsgAlign(unix.SizeofCmsghdr + 4)
)

const (
	sendOOBSize = 64 // ≥ pktinfoSpace + segmentSpace (40 + 24 on 64-bit)
	recvOOBSize = 80 // ≥ pktinfoSpace + groSpace, with room to spare
)

// parseRecvOOB reads the sticky source (IP_PKTINFO, IPV6_PKTINFO) and the GRO segment size
// (UDP_GRO, 0 for an ordinary datagram) from a received datagram's control data.
func parseRecvOOB(b []byte) (src netip.Addr, ifindex int32, gso int) {
	ne := binary.NativeEndian
	for {
		level, typ, data, rest, ok := nextCmsg(b)
		if !ok {
			return src, ifindex, gso
		}
		switch {
		case level == unix.IPPROTO_IP && typ == unix.IP_PKTINFO && len(data) >= unix.SizeofInet4Pktinfo:
			// struct in_pktinfo { int ipi_ifindex; in_addr ipi_spec_dst; in_addr ipi_addr; }
			ifindex = int32(ne.Uint32(data[0:4]))
			src = netip.AddrFrom4([4]byte(data[4:8]))
		case level == unix.IPPROTO_IPV6 && typ == unix.IPV6_PKTINFO && len(data) >= unix.SizeofInet6Pktinfo:
			// struct in6_pktinfo { in6_addr ipi6_addr; int ipi6_ifindex; }
			src = netip.AddrFrom16([16]byte(data[0:16]))
			ifindex = int32(ne.Uint32(data[16:20]))
		case level == unix.SOL_UDP && typ == unix.UDP_GRO && len(data) >= 2:
			if len(data) >= 4 {
				gso = int(int32(ne.Uint32(data[0:4])))
			} else {
				gso = int(ne.Uint16(data[0:2]))
			}
		}
		if rest == nil {
			return src, ifindex, gso
		}
		b = rest
	}
}

// putPktinfo writes the sticky source control message into b and returns its length.
func putPktinfo(b []byte, src netip.Addr, ifindex int32) int {
	ne := binary.NativeEndian
	if src.Is4() {
		d := putCmsg(b, unix.IPPROTO_IP, unix.IP_PKTINFO, unix.SizeofInet4Pktinfo)
		ne.PutUint32(d[0:4], uint32(ifindex))
		a := src.As4()
		copy(d[4:8], a[:])
		return cmsgAlign(unix.SizeofCmsghdr + unix.SizeofInet4Pktinfo)
	}
	d := putCmsg(b, unix.IPPROTO_IPV6, unix.IPV6_PKTINFO, unix.SizeofInet6Pktinfo)
	a := src.As16()
	copy(d[0:16], a[:])
	ne.PutUint32(d[16:20], uint32(ifindex))
	return cmsgAlign(unix.SizeofCmsghdr + unix.SizeofInet6Pktinfo)
}

// putSegment writes a UDP_SEGMENT control message (the GSO segment size) into b and returns
// its length.
func putSegment(b []byte, size int) int {
	d := putCmsg(b, unix.SOL_UDP, unix.UDP_SEGMENT, 2)
	binary.NativeEndian.PutUint16(d, uint16(size))
	return segmentSpace
}

// sockaddrScope is the scope id of a sockaddr_in6 (0 for anything else).
func sockaddrScope(b []byte) uint32 {
	if len(b) < unix.SizeofSockaddrInet6 || binary.NativeEndian.Uint16(b[0:2]) != unix.AF_INET6 {
		return 0
	}
	return binary.NativeEndian.Uint32(b[24:28])
}

// putSockaddr writes ap as a sockaddr_in (IPv4) or sockaddr_in6 with scope into b and
// returns its length.
func putSockaddr(b *[unix.SizeofSockaddrInet6]byte, ap netip.AddrPort, scope uint32) uint32 {
	clear(b[:])
	binary.BigEndian.PutUint16(b[2:4], ap.Port())
	if a := ap.Addr(); a.Is4() {
		binary.NativeEndian.PutUint16(b[0:2], unix.AF_INET)
		a4 := a.As4()
		copy(b[4:8], a4[:])
		return unix.SizeofSockaddrInet4
	}
	binary.NativeEndian.PutUint16(b[0:2], unix.AF_INET6)
	a16 := ap.Addr().As16()
	copy(b[8:24], a16[:])
	binary.NativeEndian.PutUint32(b[24:28], scope)
	return unix.SizeofSockaddrInet6
}
