//go:build linux

package l2

import (
	"encoding/binary"
	"errors"
	"net"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// UDP segmentation offloads for the plaintext VTEP: on send, a run of equal-sized VXLAN
// packets to one remote leaves in one sendmsg with UDP_SEGMENT (the kernel or NIC cuts it
// into datagrams, each a normal RFC 7348 packet on the wire); on receive, UDP_GRO hands back
// runs of datagrams of one sender as one buffer with their segment size.

// plainMaxSegments bounds one GSO send (the kernel's UDP_MAX_SEGMENTS is at least 64).
const plainMaxSegments = 64

// plainCmsgSpace is the room for one uint16 UDP_SEGMENT/UDP_GRO control message.
var plainCmsgSpace = unix.CmsgSpace(2)

// plainEnableGRO turns on UDP_GRO for conn; false when the kernel refuses.
func plainEnableGRO(conn *net.UDPConn) bool {
	rc, err := conn.SyscallConn()
	if err != nil {
		return false
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_UDP, unix.UDP_GRO, 1)
	}); err != nil {
		return false
	}
	return serr == nil
}

// plainPutSegment writes a UDP_SEGMENT control message for segment size seg into oob
// (len >= plainCmsgSpace) and returns it.
func plainPutSegment(oob []byte, seg int) []byte {
	oob = oob[:plainCmsgSpace]
	clear(oob)
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	h.Level = unix.SOL_UDP
	h.Type = unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	binary.NativeEndian.PutUint16(oob[unix.CmsgLen(0):], uint16(seg))
	return oob
}

// plainGROSize returns the segment size of a UDP_GRO control message in oob, or 0.
func plainGROSize(oob []byte) int {
	for len(oob) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(h.Len)
		if l < unix.SizeofCmsghdr || l > len(oob) {
			return 0
		}
		if h.Level == unix.SOL_UDP && h.Type == unix.UDP_GRO && l >= unix.CmsgLen(2) {
			return int(binary.NativeEndian.Uint16(oob[unix.CmsgLen(0):]))
		}
		oob = oob[min(unix.CmsgSpace(l-unix.CmsgLen(0)), len(oob)):]
	}
	return 0
}

// plainGSOUnsupported reports a send error that means "no UDP_SEGMENT here" (EIO: the device
// cannot checksum; EINVAL/ENOPROTOOPT: an old kernel), after which the VTEP sends datagrams
// one by one.
func plainGSOUnsupported(err error) bool {
	var se *os.SyscallError
	if !errors.As(err, &se) {
		return false
	}
	return se.Err == unix.EIO || se.Err == unix.EINVAL || se.Err == unix.ENOPROTOOPT
}
