package tap

// The read protocol both TAP devices (Device, FrameDevice) share: one readv(2) per frame
// on the non-blocking descriptor, inside RawConn.Read, so that a blocking read parks in
// the runtime's poller and Close wakes it, and a non-blocking one (TryRead, the rest of a
// batch) returns at once when nothing is queued.

import (
	"net"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rawRead is a device's read state, set up once so that reading allocates nothing: its
// RawConn.Read callback (fn: the device fills its iovec, then calls readv), whether the
// read in progress blocks in the poller, and the callback's result. One reader at a time.
type rawRead struct {
	fn    func(fd uintptr) bool
	block bool
	n     int
	err   error
}

// read runs fn once through rc, blocking in the poller or not. It returns the bytes read,
// -1 when a non-blocking read found nothing queued, and net.ErrClosed once the file is
// closed.
func (r *rawRead) read(rc syscall.RawConn, block bool) (int, error) {
	r.block = block
	err := rc.Read(r.fn)
	switch {
	case err != nil:
		return 0, net.ErrClosed // the file is closed
	case r.err == unix.EAGAIN:
		return -1, nil // only when not blocking
	case r.err != nil:
		return 0, r.err
	}
	return r.n, nil
}

// readv ends a device's callback: one readv of iov. It asks the poller to wait (returns
// false) only for a blocking read that found nothing.
func (r *rawRead) readv(fd uintptr, iov []unix.Iovec) bool {
	n, e := readvFD(fd, iov)
	if e == unix.EAGAIN && r.block {
		return false
	}
	r.n, r.err = n, nil
	if e != 0 {
		r.err = e
	}
	return true
}

// readvFD is one readv(2) of iov on the non-blocking descriptor fd, retried on EINTR: the
// body of the RawConn.Read callbacks of Device and FrameDevice (which ask the poller to
// wait on EAGAIN when they block). It returns the bytes read, or 0 and the error.
func readvFD(fd uintptr, iov []unix.Iovec) (int, syscall.Errno) {
	for {
		n, _, e := unix.Syscall(unix.SYS_READV, fd, uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
		switch e {
		case 0:
			return int(n), 0
		case unix.EINTR:
			continue
		default:
			return 0, e
		}
	}
}
