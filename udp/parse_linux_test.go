package udp

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"reflect"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// recvErrCmsg builds the control data the kernel writes for an error queue message
// (ip_recv_error / ipv6_recv_error): a RECVERR message holding a sock_extended_err and the
// offender's sockaddr (zeroed, AF_UNSPEC, for local errors).
func recvErrCmsg(v6 bool, errno syscall.Errno, origin, typ, code uint8, info uint32, offender netip.Addr) []byte {
	ee := make([]byte, sizeofSockExtendedErr)
	ne := binary.NativeEndian
	ne.PutUint32(ee[0:4], uint32(errno))
	ee[4], ee[5], ee[6] = origin, typ, code
	ne.PutUint32(ee[8:12], info)
	var sa [unix.SizeofSockaddrInet6]byte
	saLen := unix.SizeofSockaddrInet4
	if v6 {
		saLen = unix.SizeofSockaddrInet6
	}
	if offender.IsValid() {
		saLen = int(putSockaddr(&sa, netip.AddrPortFrom(offender, 0), 0))
	}
	body := append(ee, sa[:saLen]...)
	level, typ2 := int32(unix.IPPROTO_IP), int32(unix.IP_RECVERR)
	if v6 {
		level, typ2 = unix.IPPROTO_IPV6, unix.IPV6_RECVERR
	}
	b := make([]byte, cmsgAlign(unix.SizeofCmsghdr+len(body)))
	copy(putCmsg(b, level, typ2, len(body)), body)
	return b
}

func sockaddr(ap netip.AddrPort) []byte {
	var b [unix.SizeofSockaddrInet6]byte
	n := putSockaddr(&b, ap, 0)
	return b[:n]
}

func pktinfoCmsg(src netip.Addr) []byte {
	b := make([]byte, pktinfoSpace)
	return b[:putPktinfo(b, src, 3)]
}

var (
	peer4   = netip.MustParseAddrPort("192.0.2.10:51820")
	router4 = netip.MustParseAddr("198.51.100.1")
	peer6   = netip.MustParseAddrPort("[2001:db8::10]:51820")
	router6 = netip.MustParseAddr("2001:db8:ffff::1")
	quote   = []byte{4, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8}
)

// errQueueSeeds are messages as the kernel writes them for the cases weft acts on.
func errQueueSeeds() []struct {
	name             string
	oob, name2, data []byte
	want             SendError
} {
	return []struct {
		name             string
		oob, name2, data []byte
		want             SendError
	}{
		{"icmp frag needed v4",
			recvErrCmsg(false, syscall.EMSGSIZE, unix.SO_EE_ORIGIN_ICMP, 3, 4, 1400, router4),
			sockaddr(peer4), quote,
			SendError{Dst: peer4, From: router4, Errno: syscall.EMSGSIZE, Type: 3, Code: 4, MTU: 1400, Quote: quote}},
		{"icmpv6 packet too big",
			recvErrCmsg(true, syscall.EMSGSIZE, unix.SO_EE_ORIGIN_ICMP6, 2, 0, 1400, router6),
			sockaddr(peer6), quote,
			SendError{Dst: peer6, From: router6, Errno: syscall.EMSGSIZE, Type: 2, MTU: 1400, Quote: quote}},
		{"port unreachable v4, after a pktinfo",
			append(pktinfoCmsg(netip.MustParseAddr("192.0.2.1")), recvErrCmsg(false, syscall.ECONNREFUSED, unix.SO_EE_ORIGIN_ICMP, 3, 3, 0, peer4.Addr())...),
			sockaddr(peer4), quote[:8],
			SendError{Dst: peer4, From: peer4.Addr(), Errno: syscall.ECONNREFUSED, Type: 3, Code: 3, Quote: quote[:8]}},
		{"port unreachable v6",
			recvErrCmsg(true, syscall.ECONNREFUSED, unix.SO_EE_ORIGIN_ICMP6, 1, 4, 0, peer6.Addr()),
			sockaddr(peer6), nil,
			SendError{Dst: peer6, From: peer6.Addr(), Errno: syscall.ECONNREFUSED, Type: 1, Code: 4}},
		{"local emsgsize v4 (no port, no quote)",
			recvErrCmsg(false, syscall.EMSGSIZE, unix.SO_EE_ORIGIN_LOCAL, 0, 0, 1500, netip.Addr{}),
			sockaddr(netip.AddrPortFrom(peer4.Addr(), 0)), nil,
			SendError{Dst: netip.AddrPortFrom(peer4.Addr(), 0), Local: true, Errno: syscall.EMSGSIZE, MTU: 1500}},
		{"local emsgsize v6",
			recvErrCmsg(true, syscall.EMSGSIZE, unix.SO_EE_ORIGIN_LOCAL, 0, 0, 1280, netip.Addr{}),
			sockaddr(peer6), nil,
			SendError{Dst: peer6, Local: true, Errno: syscall.EMSGSIZE, MTU: 1280}},
	}
}

func TestParseErrQueue_Valid(t *testing.T) {
	for _, c := range errQueueSeeds() {
		t.Run(c.name, func(t *testing.T) {
			got, ok := ParseErrQueue(c.oob, c.name2, c.data)
			if !ok {
				t.Fatal("refused")
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got  %+v\nwant %+v", got, c.want)
			}
		})
	}
}

func TestParseErrQueue_Refused(t *testing.T) {
	good := recvErrCmsg(false, syscall.EMSGSIZE, unix.SO_EE_ORIGIN_ICMP, 3, 4, 1400, router4)
	mutate := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	ne := binary.NativeEndian
	cases := []struct {
		name       string
		oob, name2 []byte
	}{
		{"empty", nil, sockaddr(peer4)},
		{"short header", good[:unix.SizeofCmsghdr-1], sockaddr(peer4)},
		{"cmsg_len beyond the buffer", good[:len(good)-8], sockaddr(peer4)},
		{"cmsg_len below the header", mutate(func(b []byte) []byte { ne.PutUint64(b, 3); return b }), sockaddr(peer4)},
		{"cmsg_len huge", mutate(func(b []byte) []byte { ne.PutUint64(b, 1<<63); return b }), sockaddr(peer4)},
		{"extended error cut short", mutate(func(b []byte) []byte {
			ne.PutUint64(b, unix.SizeofCmsghdr+10)
			return b
		}), sockaddr(peer4)},
		{"another level", mutate(func(b []byte) []byte { ne.PutUint32(b[8:], unix.SOL_SOCKET); return b }), sockaddr(peer4)},
		{"errno zero", mutate(func(b []byte) []byte { ne.PutUint32(b[16:], 0); return b }), sockaddr(peer4)},
		{"errno huge", mutate(func(b []byte) []byte { ne.PutUint32(b[16:], 1<<31); return b }), sockaddr(peer4)},
		{"zerocopy origin", mutate(func(b []byte) []byte { b[20] = unix.SO_EE_ORIGIN_ZEROCOPY; return b }), sockaddr(peer4)},
		{"timestamping origin", mutate(func(b []byte) []byte { b[20] = unix.SO_EE_ORIGIN_TIMESTAMPING; return b }), sockaddr(peer4)},
		{"icmp without offender", good[:unix.SizeofCmsghdr+sizeofSockExtendedErr], sockaddr(peer4)},
		{"offender of unknown family", mutate(func(b []byte) []byte { ne.PutUint16(b[32:], 99); return b }), sockaddr(peer4)},
		{"no name", good, nil},
		{"short name", good, sockaddr(peer4)[:7]},
		{"short v6 name", good, sockaddr(peer6)[:20]},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if e, ok := ParseErrQueue(c.oob, c.name2, quote); ok {
				t.Fatalf("accepted: %+v", e)
			}
		})
	}
}

// marshalErrQueue writes e as the kernel would (the inverse of ParseErrQueue).
func marshalErrQueue(e SendError) (oob, name, data []byte) {
	origin := uint8(unix.SO_EE_ORIGIN_LOCAL)
	if !e.Local {
		origin = unix.SO_EE_ORIGIN_ICMP
		if e.From.Is6() {
			origin = unix.SO_EE_ORIGIN_ICMP6
		}
	}
	return recvErrCmsg(e.Dst.Addr().Is6(), e.Errno, origin, e.Type, e.Code, uint32(e.MTU), e.From),
		sockaddr(e.Dst), e.Quote
}

func FuzzParseErrQueue(f *testing.F) {
	for _, c := range errQueueSeeds() {
		f.Add(c.oob, c.name2, c.data)
	}
	f.Fuzz(func(t *testing.T, oob, name, data []byte) {
		parseRecvOOB(oob) // the receive path's control data parser: must not panic either
		_, _ = parseSockaddr(name)
		_ = sockaddrScope(name)
		e, ok := ParseErrQueue(oob, name, data)
		if !ok {
			return
		}
		switch {
		case e.Errno == 0 || e.Errno > 4095:
			t.Fatalf("errno %d", e.Errno)
		case e.Local && e.From.IsValid(), !e.Local && !e.From.IsValid():
			t.Fatalf("local %v with from %v", e.Local, e.From)
		case e.MTU < 0 || e.MTU > 1<<30 || (e.MTU != 0 && e.Errno != syscall.EMSGSIZE):
			t.Fatalf("mtu %d with errno %v", e.MTU, e.Errno)
		case !e.Dst.Addr().IsValid():
			t.Fatalf("dst %v", e.Dst)
		case len(e.Quote) != len(data) || (len(data) > 0 && &e.Quote[0] != &data[0]):
			t.Fatal("quote is not data")
		}
		e2, ok := ParseErrQueue(marshalErrQueue(e))
		if !ok || !reflect.DeepEqual(e, e2) {
			t.Fatalf("parse → marshal → parse: %+v → %+v (%v)", e, e2, ok)
		}
	})
}
