package udp

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/conn"
)

// batchSize is the datagrams per receive and at most per Send (wireguard-go's ideal batch).
const batchSize = conn.IdealBatchSize

// socketBufferSize is what the socket buffers are raised to, as StdNetBind: 7 MiB (beyond
// net.core.[rw]mem_max when the process has CAP_NET_ADMIN).
const socketBufferSize = 7 << 20

// Bind is weft's conn.Bind: an IPv4 and an IPv6 UDP socket on one port, DF on every
// datagram, the kernel's errors about sent datagrams reported to a handler.
type Bind struct {
	mu   sync.Mutex // Open, Close, SetMark
	v4   atomic.Pointer[socket]
	v6   atomic.Pointer[socket]
	mark atomic.Uint32

	handler  atomic.Pointer[func(SendError)]
	sendPool sync.Pool // *sendScratch
	seed     uint64    // endpoint cache hash seed

	errQueueMalformed atomic.Uint64
	errQueueReported  atomic.Uint64
	recvTruncated     atomic.Uint64
	groOverflow       atomic.Uint64
	gsoFallbacks      atomic.Uint64
	gsoSizeRefused    atomic.Uint64
}

var _ conn.Bind = (*Bind)(nil)

// NewBind returns weft's bind, closed; Open opens it.
func NewBind() *Bind {
	b := &Bind{}
	var s [8]byte
	_, _ = rand.Read(s[:])
	b.seed = binary.LittleEndian.Uint64(s[:])
	b.sendPool.New = func() any { return newSendScratch() }
	return b
}

// SetErrorHandler sets fn to receive every error the kernel reports about a datagram this
// bind sent (call it before Open; nil stops reporting). fn runs on a receive goroutine,
// inside the receive function, and may run on the IPv4 and the IPv6 one at once: it must
// not block, and must not keep e.Quote.
func (b *Bind) SetErrorHandler(fn func(e SendError)) {
	if fn == nil {
		b.handler.Store(nil)
		return
	}
	b.handler.Store(&fn)
}

// Stats are the bind's counters since NewBind.
type Stats struct {
	ErrQueueReported  uint64 // error queue messages parsed into a SendError (handed to the handler, if any)
	ErrQueueMalformed uint64 // error queue messages ParseErrQueue refused: dropped
	RecvTruncated     uint64 // datagrams dropped: larger than the caller's buffer (MSG_TRUNC)
	GROOverflow       uint64 // segments of GRO super-datagrams dropped: more than the caller's buffers
	GSOFallbacks      uint64 // sockets that went without UDP GSO after the kernel refused it (EIO)
	GSOSizeRefused    uint64 // GSO messages refused for a segment over the MTU, resent one datagram each
}

// Stats returns the bind's counters.
func (b *Bind) Stats() Stats {
	return Stats{
		ErrQueueReported:  b.errQueueReported.Load(),
		ErrQueueMalformed: b.errQueueMalformed.Load(),
		RecvTruncated:     b.recvTruncated.Load(),
		GROOverflow:       b.groOverflow.Load(),
		GSOFallbacks:      b.gsoFallbacks.Load(),
		GSOSizeRefused:    b.gsoSizeRefused.Load(),
	}
}

// BatchSize is the number of buffers a receive function fills at most, and the most Send
// takes at once with one sendmmsg (Send cuts longer lists).
func (b *Bind) BatchSize() int { return batchSize }

// ParseEndpoint parses "ip:port" (IPv4-mapped IPv6 addresses become IPv4). An IPv6 zone
// ("[fe80::1%eth0]:51820") names the interface by name or index.
func (b *Bind) ParseEndpoint(s string) (conn.Endpoint, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return nil, err
	}
	e := &Endpoint{dst: netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())}
	if zone := ap.Addr().Zone(); zone != "" {
		if n, err := strconv.ParseUint(zone, 10, 32); err == nil {
			e.scope = uint32(n)
		} else {
			ifc, err := net.InterfaceByName(zone)
			if err != nil {
				return nil, fmt.Errorf("udp.ParseEndpoint %q: %w", s, err)
			}
			e.scope = uint32(ifc.Index)
		}
	}
	return e, nil
}

// socket is one of the bind's two UDP sockets.
type socket struct {
	b    *Bind
	conn *net.UDPConn
	rc   syscall.RawConn
	is6  bool

	txOffload  atomic.Bool // UDP GSO; off for good after the kernel refused it
	rxOffload  bool        // UDP GRO on
	errPending atomic.Bool // a send failed or a drain stopped early: the next receive drains
	recv       *recvState
}

// Open opens both sockets on port (0: any, the same for both). It fails with
// conn.ErrBindAlreadyOpen when the bind is open.
func (b *Bind) Open(port uint16) ([]conn.ReceiveFunc, uint16, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.v4.Load() != nil || b.v6.Load() != nil {
		return nil, 0, conn.ErrBindAlreadyOpen
	}
	for tries := 0; ; tries++ {
		v4, p, err := b.listen("udp4", int(port))
		if err != nil && !errors.Is(err, syscall.EAFNOSUPPORT) {
			return nil, 0, fmt.Errorf("udp.Open: %w", err)
		}
		v6, p6, err := b.listen("udp6", p)
		if port == 0 && errors.Is(err, syscall.EADDRINUSE) && tries < 100 {
			v4.close()
			continue // the port taken for IPv6: another one for both
		}
		if err != nil && !errors.Is(err, syscall.EAFNOSUPPORT) {
			v4.close()
			return nil, 0, fmt.Errorf("udp.Open: %w", err)
		}
		if v4 == nil && v6 == nil {
			return nil, 0, fmt.Errorf("udp.Open: %w", syscall.EAFNOSUPPORT)
		}
		var fns []conn.ReceiveFunc
		if v4 != nil {
			b.v4.Store(v4)
			fns = append(fns, v4.receive)
		} else {
			p = p6
		}
		if v6 != nil {
			b.v6.Store(v6)
			fns = append(fns, v6.receive)
		}
		return fns, uint16(p), nil
	}
}

// Close closes both sockets; the receive functions return net.ErrClosed.
func (b *Bind) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	err4 := b.v4.Swap(nil).close()
	err6 := b.v6.Swap(nil).close()
	return errors.Join(err4, err6)
}

func (s *socket) close() error {
	if s == nil {
		return nil
	}
	return s.conn.Close()
}

// SetMark sets SO_MARK on both sockets, on those of later Opens and on RouteMTU's lookups.
func (b *Bind) SetMark(mark uint32) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.mark.Store(mark)
	for _, s := range [...]*socket{b.v4.Load(), b.v6.Load()} {
		if s == nil {
			continue
		}
		var serr error
		if err := s.rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, int(mark))
		}); err != nil {
			return fmt.Errorf("udp.SetMark: %w", err)
		}
		if serr != nil {
			return fmt.Errorf("udp.SetMark: %w", serr)
		}
	}
	return nil
}

// listen opens one socket (network "udp4" or "udp6") with its options, and returns the
// port it got.
func (b *Bind) listen(network string, port int) (*socket, int, error) {
	is6 := network == "udp6"
	mark := b.mark.Load()
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var err error
		cerr := rc.Control(func(fd uintptr) { err = setOptions(int(fd), is6, mark) })
		return errors.Join(cerr, err)
	}}
	pc, err := lc.ListenPacket(context.Background(), network, ":"+strconv.Itoa(port))
	if err != nil {
		return nil, 0, err
	}
	c := pc.(*net.UDPConn)
	rc, err := c.SyscallConn()
	if err != nil {
		c.Close()
		return nil, 0, err
	}
	s := &socket{b: b, conn: c, rc: rc, is6: is6}
	_ = rc.Control(func(fd uintptr) {
		_, err := unix.GetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_SEGMENT)
		s.txOffload.Store(err == nil)
		// GRO was asked for in setOptions. A kernel that cannot report it (before 5.12)
		// has a GRO wireguard-go calls buggy: turn it off again there.
		v, err := unix.GetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_GRO)
		s.rxOffload = err == nil && v == 1
		if !s.rxOffload {
			_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_GRO, 0)
		}
	})
	s.recv = newRecvState(s)
	return s, c.LocalAddr().(*net.UDPAddr).Port, nil
}

// setOptions sets a new socket's options before bind(2). The buffers and GRO are best
// effort; DF, RECVERR and PKTINFO are required.
func setOptions(fd int, is6 bool, mark uint32) error {
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, socketBufferSize)
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, socketBufferSize)
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, socketBufferSize)
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, socketBufferSize)
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_UDP, unix.UDP_GRO, 1)
	opts := [...]struct {
		level, opt, v int
		name          string
	}{
		// DF set, never fragmented here, the learned PMTU ignored: weft owns path MTU.
		{unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_PROBE, "IP_MTU_DISCOVER"},
		{unix.IPPROTO_IP, unix.IP_RECVERR, 1, "IP_RECVERR"},
		{unix.IPPROTO_IP, unix.IP_PKTINFO, 1, "IP_PKTINFO"},
	}
	if is6 {
		opts = [...]struct {
			level, opt, v int
			name          string
		}{
			{unix.IPPROTO_IPV6, unix.IPV6_MTU_DISCOVER, unix.IPV6_PMTUDISC_PROBE, "IPV6_MTU_DISCOVER"},
			{unix.IPPROTO_IPV6, unix.IPV6_RECVERR, 1, "IPV6_RECVERR"},
			{unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1, "IPV6_RECVPKTINFO"},
		}
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1); err != nil {
			return fmt.Errorf("IPV6_V6ONLY: %w", err)
		}
	}
	for _, o := range opts {
		if err := unix.SetsockoptInt(fd, o.level, o.opt, o.v); err != nil {
			return fmt.Errorf("%s: %w", o.name, err)
		}
	}
	if mark != 0 {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_MARK, int(mark)); err != nil {
			return fmt.Errorf("SO_MARK: %w", err)
		}
	}
	return nil
}

// RouteMTU is the IP MTU of the route toward dst as the kernel sees it now: the device MTU,
// a route's mtu metric, or a PMTU the kernel learned. It sends nothing: it connects a
// throwaway UDP socket (with the bind's mark) and reads IP_MTU or IPV6_MTU. The bind need
// not be open. The kernel caps IP_MTU at 65535 (lo's 65536 reads as 65535).
func (b *Bind) RouteMTU(dst netip.Addr) (int, error) {
	dst = dst.Unmap()
	if !dst.IsValid() || dst.IsUnspecified() {
		return 0, fmt.Errorf("udp.RouteMTU: invalid destination %v", dst)
	}
	family, level, opt := unix.AF_INET6, unix.IPPROTO_IPV6, unix.IPV6_MTU
	var sa unix.Sockaddr = &unix.SockaddrInet6{Port: 9, Addr: dst.As16()}
	if dst.Is4() {
		family, level, opt = unix.AF_INET, unix.IPPROTO_IP, unix.IP_MTU
		sa = &unix.SockaddrInet4{Port: 9, Addr: dst.As4()}
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return 0, fmt.Errorf("udp.RouteMTU: socket: %w", err)
	}
	defer unix.Close(fd)
	if mark := b.mark.Load(); mark != 0 {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_MARK, int(mark)); err != nil {
			return 0, fmt.Errorf("udp.RouteMTU: SO_MARK: %w", err)
		}
	}
	if err := unix.Connect(fd, sa); err != nil {
		return 0, fmt.Errorf("udp.RouteMTU: no route to %v: %w", dst, err)
	}
	mtu, err := unix.GetsockoptInt(fd, level, opt)
	if err != nil {
		return 0, fmt.Errorf("udp.RouteMTU: getsockopt MTU: %w", err)
	}
	return mtu, nil
}
