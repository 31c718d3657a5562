package tap

import (
	"os"

	"golang.org/x/sys/unix"
)

// The checksum helpers, for the external test package (tap_linux_test.go).
var (
	CsumAdd  = csumAdd
	CsumFold = csumFold
)

// RefuseForTest plays a kernel that refuses: TUNSETIFF with IFF_VNET_HDR fails with setIff
// and TUNSETOFFLOAD with setOffload (nil: the real ioctl). Only for the helper processes of
// best_linux_test.go, which each run one case; restore puts the real ioctls back.
func RefuseForTest(setIff, setOffload error) (restore func()) {
	iff, off := ioctlSetIff, ioctlSetOffload
	if setIff != nil {
		ioctlSetIff = func(int, *unix.Ifreq) error { return setIff }
	}
	if setOffload != nil {
		ioctlSetOffload = func(int, int) error { return setOffload }
	}
	return func() { ioctlSetIff, ioctlSetOffload = iff, off }
}

// NewFrameDeviceForTest wraps f, a non-blocking descriptor that keeps message boundaries
// (one end of a SOCK_SEQPACKET socketpair), in a FrameDevice named name, as OpenFrames
// wraps water's TAP: the batched reads are tested without a namespace.
func NewFrameDeviceForTest(f *os.File, name string) (*FrameDevice, error) {
	return newFrameDevice(f, name)
}
