package udp

/* Inbound flow (one receive function per socket, called by one goroutine at a time)
 *
 * 1. receive points one mmsghdr at each of the caller's buffers (with UDP GRO on: at the
 *    last BatchSize/64 of them, each able to hold a 64-segment super-datagram) and calls
 *    recvmmsg inside RawConn.Read, so that an empty socket parks the goroutine in the
 *    runtime's poller and Close wakes it with net.ErrClosed.
 * 2. IP_RECVERR makes a pending ICMP error come back once as the error of recvmmsg (the
 *    socket's sk_err). That is no failure of receiving: the socket's error queue is drained
 *    (recvmsg MSG_ERRQUEUE until EAGAIN, each message parsed by ParseErrQueue and handed
 *    to the error handler) and recvmmsg is called again. The queue is drained too when
 *    the poller woke the reader and no datagram was there (POLLERR: an error queued,
 *    its sk_err taken by a send first), and at the next call after a send failed.
 * 3. Super-datagrams are split forward into the caller's buffers, one datagram each;
 *    each datagram's endpoint comes from a bounded cache keyed by the peer's address and
 *    the sticky source, so steady-state receiving allocates nothing.
 */

import (
	"net"
	"os"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/conn"
)

const (
	// udpSegmentMax is the kernel's limit of segments per GSO send and GRO receive.
	udpSegmentMax = 64
	// errQueueDrainMax bounds one drain, so that a flood of ICMP errors cannot starve the
	// datagrams; what is left is drained at the next call.
	errQueueDrainMax = 64
	// skErrRetries bounds recvmmsg calls that fail in a row within one receive.
	skErrRetries = 16
)

// recvState is a socket's receive scratch, allocated once; mu makes one receive at a time.
type recvState struct {
	mu    sync.Mutex
	s     *socket
	hdrs  [batchSize]unix.Mmsghdr
	iovs  [batchSize]unix.Iovec
	names [batchSize][unix.SizeofSockaddrInet6]byte
	oobs  [batchSize][recvOOBSize]byte
	cache epCache

	// one receive's state, for readFn
	first, count int // the mmsghdrs passed to recvmmsg
	got          int
	woken        bool // readFn runs after the poller woke the reader
	fails        int
	errno        unix.Errno
	readFn       func(fd uintptr) bool
	drainFn      func(fd uintptr) bool

	// error queue scratch
	eqHdr  unix.Msghdr
	eqIov  unix.Iovec
	eqName [unix.SizeofSockaddrInet6]byte
	eqOOB  [256]byte
	eqData [2048]byte
}

func newRecvState(s *socket) *recvState {
	rs := &recvState{s: s}
	rs.cache.seed = s.b.seed
	rs.readFn = rs.read
	rs.drainFn = func(fd uintptr) bool { rs.drain(fd); return true }
	for i := range rs.hdrs {
		h := &rs.hdrs[i].Hdr
		h.Name = &rs.names[i][0]
		h.Iov = &rs.iovs[i]
		h.Iovlen = 1
		h.Control = &rs.oobs[i][0]
	}
	return rs
}

// receive is the socket's conn.ReceiveFunc. bufs are borrowed until it returns. Pass
// BatchSize buffers of 65535 bytes, as wireguard-go does: with GRO one read may bring a
// super-datagram of 64 datagrams, read into one buffer and split into 64; a super-datagram
// larger than its buffer is dropped (RecvTruncated), segments beyond the buffers given are
// dropped (GROOverflow).
func (s *socket) receive(bufs [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
	rs := s.recv
	rs.mu.Lock()
	defer rs.mu.Unlock()
	n := min(len(bufs), len(sizes), len(eps), batchSize)
	if n == 0 {
		return 0, nil
	}
	if s.errPending.Load() && s.errPending.Swap(false) {
		if err := s.rc.Read(rs.drainFn); err != nil {
			return 0, net.ErrClosed
		}
	}
	rs.first, rs.count = 0, n
	if s.rxOffload {
		k := max(1, n/udpSegmentMax)
		rs.first, rs.count = n-k, k
	}
	for i := rs.first; i < n; i++ {
		rs.iovs[i] = unix.Iovec{Base: unsafe.SliceData(bufs[i]), Len: uint64(len(bufs[i]))}
		h := &rs.hdrs[i].Hdr
		h.Namelen = unix.SizeofSockaddrInet6
		h.Controllen = recvOOBSize
		h.Flags = 0
		rs.hdrs[i].Len = 0
	}
	rs.woken, rs.fails, rs.errno, rs.got = false, 0, 0, 0
	if err := s.rc.Read(rs.readFn); err != nil {
		return 0, net.ErrClosed
	}
	if rs.errno != 0 {
		return 0, os.NewSyscallError("recvmmsg", rs.errno)
	}
	if !s.rxOffload {
		for i := 0; i < rs.got; i++ {
			sizes[i], eps[i] = rs.datagram(i)
		}
		return rs.got, nil
	}
	return rs.split(bufs, sizes, eps), nil
}

// read is the RawConn.Read callback: recvmmsg until datagrams come, an error that is not
// the socket's pending ICMP error, or nothing is there (false: wait in the poller).
func (rs *recvState) read(fd uintptr) bool {
	for {
		r, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&rs.hdrs[rs.first])),
			uintptr(rs.count), 0, 0, 0)
		switch e {
		case 0:
			rs.got = int(r)
			return true
		case unix.EINTR:
		case unix.EAGAIN:
			if rs.woken {
				rs.drain(fd) // woken without a datagram: POLLERR, an error was queued
			}
			rs.woken = true
			return false
		default:
			// With RECVERR a queued ICMP error also sets sk_err, which this recvmmsg
			// returned: drain the queue and read on. A persistent failure ends the call.
			rs.drain(fd)
			if rs.fails++; rs.fails > skErrRetries {
				rs.errno = e
				return true
			}
		}
	}
}

// datagram returns the size and endpoint of the datagram mmsghdr i holds (size 0 when it
// was truncated: dropped, counted).
func (rs *recvState) datagram(i int) (int, conn.Endpoint) {
	m := &rs.hdrs[i]
	if m.Hdr.Flags&unix.MSG_TRUNC != 0 {
		rs.s.b.recvTruncated.Add(1)
		return 0, nil
	}
	ep, _ := rs.endpoint(i)
	if ep == nil {
		return 0, nil
	}
	return int(m.Len), ep
}

// endpoint returns the endpoint of mmsghdr i and its GRO segment size (0: none).
func (rs *recvState) endpoint(i int) (*Endpoint, int) {
	h := &rs.hdrs[i].Hdr
	name := rs.names[i][:min(int(h.Namelen), len(rs.names[i]))]
	dst, ok := parseSockaddr(name)
	if !ok {
		return nil, 0
	}
	src, ifindex, gso := parseRecvOOB(rs.oobs[i][:min(int(h.Controllen), recvOOBSize)])
	return rs.cache.get(dst, sockaddrScope(name), src, ifindex), gso
}

// split cuts the super-datagrams read into bufs[first:first+got] into one datagram per
// buffer from bufs[0], and returns how many it made. A segment never lands beyond the
// message it comes from (with n ≥ 64·k it never needs to); one that would is dropped.
func (rs *recvState) split(bufs [][]byte, sizes []int, eps []conn.Endpoint) int {
	out := 0
	for j := 0; j < rs.got; j++ {
		i := rs.first + j
		m := &rs.hdrs[i]
		if m.Hdr.Flags&unix.MSG_TRUNC != 0 {
			rs.s.b.recvTruncated.Add(1)
			continue
		}
		ep, gso := rs.endpoint(i)
		if ep == nil {
			continue
		}
		n := int(m.Len)
		if gso <= 0 || gso >= n {
			gso = max(n, 1)
		}
		for off := 0; off < n || off == 0; off += gso {
			end := min(off+gso, n)
			if out > i {
				rs.s.b.groOverflow.Add(uint64((n - off + gso - 1) / gso))
				break
			}
			if copy(bufs[out], bufs[i][off:end]) < end-off {
				rs.s.b.recvTruncated.Add(1)
				sizes[out], eps[out] = 0, nil
			} else {
				sizes[out], eps[out] = end-off, ep
			}
			out++
			if n == 0 {
				break
			}
		}
	}
	return out
}

// drain reads the socket's error queue until it is empty (or errQueueDrainMax messages)
// and hands each error to the handler. It runs inside a RawConn callback, with fd.
func (rs *recvState) drain(fd uintptr) {
	b := rs.s.b
	for k := 0; k < errQueueDrainMax; k++ {
		rs.eqIov = unix.Iovec{Base: &rs.eqData[0], Len: uint64(len(rs.eqData))}
		rs.eqHdr = unix.Msghdr{
			Name: &rs.eqName[0], Namelen: uint32(len(rs.eqName)),
			Iov: &rs.eqIov, Iovlen: 1,
			Control: &rs.eqOOB[0], Controllen: uint64(len(rs.eqOOB)),
		}
		r, _, e := unix.Syscall(unix.SYS_RECVMSG, fd, uintptr(unsafe.Pointer(&rs.eqHdr)),
			unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return // EAGAIN: empty
		}
		oob := rs.eqOOB[:min(int(rs.eqHdr.Controllen), len(rs.eqOOB))]
		name := rs.eqName[:min(int(rs.eqHdr.Namelen), len(rs.eqName))]
		se, ok := ParseErrQueue(oob, name, rs.eqData[:min(int(r), len(rs.eqData))])
		if !ok {
			b.errQueueMalformed.Add(1)
			continue
		}
		b.errQueueReported.Add(1)
		if h := b.handler.Load(); h != nil {
			(*h)(se)
		}
	}
	rs.s.errPending.Store(true) // more may wait: the next receive goes on
}
