package udp

/* Outbound flow (Send, on the caller's goroutine; any number of callers at once)
 *
 * 1. A sendScratch from the pool (mmsghdrs, iovecs, control data, allocated once each).
 * 2. With UDP GSO: each run of equal-sized buffers (the last of a run may be shorter; at most
 *    64 segments and 65535 bytes of IP packet) becomes one message whose iovecs are the
 *    buffers themselves, with a UDP_SEGMENT control message: nothing is copied. Without
 *    GSO, one message per buffer. Every message carries the sticky source (IP_PKTINFO,
 *    IPV6_PKTINFO) when the endpoint has one.
 * 3. sendmmsg inside RawConn.Write (a full socket buffer parks the caller in the poller).
 *    A message the kernel refuses is retried once (the error may be the socket's pending
 *    ICMP error, sk_err, which the send consumed), then skipped with its error kept, and
 *    the rest of the batch is sent. EIO on a GSO message turns GSO off for the socket
 *    (the device cannot checksum) and the batch goes on without it.
 * 4. Errors: EMSGSIZE for a datagram bigger than the device MTU. For a GSO message whose
 *    segment is bigger than the device MTU udp_send_skb refuses it (gso_size + headers
 *    checked against the MTU): EMSGSIZE on Linux 6.18 (TestNetns_DeviceMTU), EINVAL on
 *    older kernels. Either way (EMSGSIZE after its one retry) the run is sent again one
 *    datagram per message, so that its datagrams that fit (a shorter tail) leave and each
 *    one too big fails with EMSGSIZE, the error Send returns (errors.Is(err,
 *    syscall.EMSGSIZE)), with a local error queued for the handler. Later runs of the
 *    batch keep GSO.
 */

import (
	"net"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/conn"
)

const (
	// Bytes of UDP payload one GSO message may carry: the IP packet's length field is 16
	// bits (IPv6's excludes its own header).
	maxIPv4Payload = 1<<16 - 1 - 20 - 8
	maxIPv6Payload = 1<<16 - 1 - 8
)

// sendScratch is one Send's state, pooled.
type sendScratch struct {
	hdrs  [batchSize]unix.Mmsghdr
	iovs  [batchSize]unix.Iovec // by buffer index: a message's iovecs are contiguous
	oobs  [batchSize][sendOOBSize]byte
	gso   [batchSize]bool // the message carries UDP_SEGMENT
	first [batchSize]int  // the message's first buffer
	name  [unix.SizeofSockaddrInet6]byte
	pkt   [sendOOBSize]byte // the sticky source control message, pktLen bytes
	pktN  int

	nmsg, next int
	errno      unix.Errno
	writeFn    func(fd uintptr) bool
}

func newSendScratch() *sendScratch {
	sc := &sendScratch{}
	sc.writeFn = sc.write
	return sc
}

// Send sends bufs to ep, one datagram each, DF set. It does not retain bufs. ep must come
// from this bind (ParseEndpoint or a receive function). Longer lists than BatchSize go in
// several sendmmsg calls. The first error is returned after the rest was tried; after
// Close it is net.ErrClosed.
func (b *Bind) Send(bufs [][]byte, ep conn.Endpoint) error {
	e, ok := ep.(*Endpoint)
	if !ok {
		return conn.ErrWrongEndpointType
	}
	s := b.v4.Load()
	if !e.dst.Addr().Is4() {
		s = b.v6.Load()
	}
	if s == nil {
		if b.v4.Load() == nil && b.v6.Load() == nil {
			return net.ErrClosed
		}
		return syscall.EAFNOSUPPORT
	}
	sc := b.sendPool.Get().(*sendScratch)
	defer b.sendPool.Put(sc)
	putSockaddr(&sc.name, e.dst, e.scope)
	sc.pktN = 0
	if src, ifindex, ok := e.sticky(); ok && src.Is4() == e.dst.Addr().Is4() {
		sc.pktN = putPktinfo(sc.pkt[:], src, ifindex)
	}
	var first error
	for len(bufs) > 0 {
		chunk := bufs[:min(len(bufs), batchSize)]
		bufs = bufs[len(chunk):]
		if err := s.send(sc, chunk); err != nil {
			if err == net.ErrClosed {
				return err
			}
			if first == nil {
				first = err
			}
		}
	}
	return first
}

// send sends bufs (at most batchSize) with sc's name and sticky source.
func (s *socket) send(sc *sendScratch, bufs [][]byte) error {
	sc.build(bufs, 0, 0, s.txOffload.Load(), s.is6)
	var first error
	retried := -1
	for sc.next < sc.nmsg {
		sc.errno = 0
		if err := s.rc.Write(sc.writeFn); err != nil {
			return net.ErrClosed
		}
		if sc.errno == 0 {
			break
		}
		s.errPending.Store(true) // errors may be queued: the next receive drains them
		k, errno := sc.next, sc.errno
		switch {
		case errno == unix.EIO && sc.gso[k]:
			// UDP_SEGMENT needs checksum offload the device lacks: GSO off for good.
			if s.txOffload.Swap(false) {
				s.b.gsoFallbacks.Add(1)
			}
			sc.build(bufs, sc.first[k], 0, false, s.is6)
			retried = -1
		case retried != k && errno != unix.EINVAL:
			retried = k // perhaps the socket's pending ICMP error, not this message's
		case sc.gso[k] && (errno == unix.EINVAL || errno == unix.EMSGSIZE):
			// A segment bigger than the MTU: this run again, one datagram per message.
			s.b.gsoSizeRefused.Add(1)
			end := sc.first[k] + int(sc.hdrs[k].Hdr.Iovlen)
			sc.build(bufs, sc.first[k], end, true, s.is6)
			retried = -1
		default:
			if first == nil {
				first = os.NewSyscallError("sendmmsg", errno)
			}
			sc.next = k + 1
			retried = -1
		}
	}
	return first
}

// build fills sc's messages for bufs[from:], coalescing runs when gso is on, except among
// bufs[:plainUntil].
func (sc *sendScratch) build(bufs [][]byte, from, plainUntil int, gso, is6 bool) {
	maxPayload := maxIPv4Payload
	if is6 {
		maxPayload = maxIPv6Payload
	}
	m := 0
	for i := from; i < len(bufs); m++ {
		size := len(bufs[i])
		j, total := i+1, size
		if gso && size > 0 && i >= plainUntil {
			for j < len(bufs) && j-i < udpSegmentMax {
				l := len(bufs[j])
				if l == 0 || l > size || total+l > maxPayload {
					break
				}
				total += l
				j++
				if l < size {
					break // a shorter segment ends the run
				}
			}
		}
		for k := i; k < j; k++ {
			sc.iovs[k] = unix.Iovec{Base: unsafe.SliceData(bufs[k]), Len: uint64(len(bufs[k]))}
		}
		oob := sc.oobs[m][:]
		n := copy(oob, sc.pkt[:sc.pktN])
		sc.gso[m] = j-i > 1
		if sc.gso[m] {
			n += putSegment(oob[n:], size)
		}
		h := &sc.hdrs[m].Hdr
		*h = unix.Msghdr{
			Name:    &sc.name[0],
			Namelen: uint32(unix.SizeofSockaddrInet4),
			Iov:     &sc.iovs[i],
			Iovlen:  uint64(j - i),
		}
		if is6 {
			h.Namelen = unix.SizeofSockaddrInet6
		}
		if n > 0 {
			h.Control, h.Controllen = &oob[0], uint64(n)
		}
		sc.first[m] = i
		i = j
	}
	sc.nmsg, sc.next = m, 0
}

// write is the RawConn.Write callback: sendmmsg from sc.next until all are sent, one is
// refused (sc.errno, sc.next its index), or the socket buffer is full (false: wait).
func (sc *sendScratch) write(fd uintptr) bool {
	for sc.next < sc.nmsg {
		r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&sc.hdrs[sc.next])),
			uintptr(sc.nmsg-sc.next), 0, 0, 0)
		switch e {
		case 0:
			if r == 0 {
				return false
			}
			sc.next += int(r)
		case unix.EINTR:
		case unix.EAGAIN:
			return false
		default:
			sc.errno = e
			return true
		}
	}
	return true
}
