package udp

import (
	"encoding/binary"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

// sizeofSockExtendedErr is the size of struct sock_extended_err.
const sizeofSockExtendedErr = 16

// errQueueWord is the size of cmsghdr's cmsg_len (size_t).
const errQueueWord = unix.SizeofCmsghdr - 8

// cmsgAlign rounds n up to the alignment of control messages (the word size).
func cmsgAlign(n int) int { return (n + errQueueWord - 1) &^ (errQueueWord - 1) }

// ParseErrQueue parses one message read with MSG_ERRQUEUE from a UDP socket: oob its control
// data, name its msg_name as the kernel wrote it (a sockaddr_in or sockaddr_in6, namelen
// bytes), data its payload (the quote). It returns false for anything malformed, and for
// every error queue message that is no IP or IPv6 RECVERR of local or ICMP origin
// (timestamps, zerocopy notifications). It does not retain its arguments, except that
// SendError.Quote aliases data. Hostile input: every length is checked.
func ParseErrQueue(oob, name, data []byte) (SendError, bool) {
	ee, off, ok := findRecvErr(oob)
	if !ok || len(ee) < sizeofSockExtendedErr {
		return SendError{}, false
	}
	ne := binary.NativeEndian
	var e SendError
	errno := ne.Uint32(ee[0:4])
	origin := ee[4]
	if errno == 0 || errno > 4095 {
		return SendError{}, false
	}
	e.Errno = syscall.Errno(errno)
	switch origin {
	case unix.SO_EE_ORIGIN_LOCAL:
		e.Local = true
	case unix.SO_EE_ORIGIN_ICMP, unix.SO_EE_ORIGIN_ICMP6:
		e.Type, e.Code = ee[5], ee[6]
		from, ok := parseSockaddr(off)
		if !ok {
			return SendError{}, false
		}
		e.From = from.Addr()
	default:
		return SendError{}, false
	}
	if e.Errno == syscall.EMSGSIZE {
		e.MTU = int(min(ne.Uint32(ee[8:12]), 1<<30))
	}
	dst, ok := parseSockaddr(name)
	if !ok {
		return SendError{}, false
	}
	e.Dst = dst
	e.Quote = data
	return e, true
}

// findRecvErr returns the sock_extended_err of the first IP_RECVERR or IPV6_RECVERR
// control message of oob and the offender sockaddr that follows it (possibly empty).
func findRecvErr(oob []byte) (ee, offender []byte, ok bool) {
	for {
		level, typ, data, rest, ok := nextCmsg(oob)
		if !ok {
			return nil, nil, false
		}
		if (level == unix.IPPROTO_IP && typ == unix.IP_RECVERR) ||
			(level == unix.IPPROTO_IPV6 && typ == unix.IPV6_RECVERR) {
			if len(data) < sizeofSockExtendedErr {
				return nil, nil, false
			}
			return data[:sizeofSockExtendedErr], data[sizeofSockExtendedErr:], true
		}
		if rest == nil {
			return nil, nil, false
		}
		oob = rest
	}
}

// parseSockaddr reads a sockaddr_in or sockaddr_in6 as the kernel writes it (family in
// native order, port and address in network order). An IPv6 scope id is not kept.
func parseSockaddr(b []byte) (netip.AddrPort, bool) {
	if len(b) < 2 {
		return netip.AddrPort{}, false
	}
	switch binary.NativeEndian.Uint16(b[0:2]) {
	case unix.AF_INET:
		if len(b) < unix.SizeofSockaddrInet4 {
			return netip.AddrPort{}, false
		}
		port := binary.BigEndian.Uint16(b[2:4])
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[4:8])), port), true
	case unix.AF_INET6:
		if len(b) < unix.SizeofSockaddrInet6 {
			return netip.AddrPort{}, false
		}
		port := binary.BigEndian.Uint16(b[2:4])
		return netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[8:24])), port), true
	}
	return netip.AddrPort{}, false
}
