package tap

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/tun"
)

// The fallback rule, in one place: OpenBest opens a Device with offloads when it can and a
// FrameDevice (through water) when the kernel refuses them or they are not wanted.

// The two ioctls whose refusal makes OpenBest fall back. Only tests replace them
// (export_linux_test.go), to play a kernel that refuses; water's own TUNSETIFF does not go
// through them.
var (
	ioctlSetIff = func(fd int, ifr *unix.Ifreq) error {
		return unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr)
	}
	ioctlSetOffload = func(fd int, flags int) error {
		return unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, flags)
	}
)

// refusal is an error of a step the kernel refused for want of support (not of permission):
// the virtio-net header at TUNSETIFF (EINVAL, EOPNOTSUPP), gso_max_segs, TUNSETOFFLOAD.
type refusal struct {
	what string // what was refused: "IFF_VNET_HDR", "gso_max_segs 64", "TUNSETOFFLOAD"
	name string // the interface
	err  error
}

func (r *refusal) Error() string {
	return fmt.Sprintf("tap: %s: kernel refused %s: %v", r.name, r.what, r.err)
}

func (r *refusal) Unwrap() error { return r.err }

// reason is the refusal as Mode.Reason says it.
func (r *refusal) reason() string { return "kernel refused " + r.what + ": " + r.err.Error() }

// Mode is how OpenBest opened the TAP.
type Mode struct {
	// Offload: a Device with a virtio-net header and TSO and checksum offload on (reads
	// and writes of up to 64 KiB super-frames, batched). Otherwise a FrameDevice: one
	// frame per syscall (reads still batched).
	Offload bool
	// Reason says why the TAP runs frame by frame: ReasonNotWanted or what the kernel
	// refused ("kernel refused TUNSETOFFLOAD: invalid argument"). Empty with Offload.
	Reason string
}

// ReasonNotWanted is Mode.Reason when OpenBest was asked for no offload.
const ReasonNotWanted = "offload not wanted"

// String is "offload" or "frame by frame: REASON".
func (m Mode) String() string {
	if m.Offload {
		return "offload"
	}
	return "frame by frame: " + m.Reason
}

// Fallback reports whether the TAP runs frame by frame although offload was wanted (the
// kernel refused it): worth one warning.
func (m Mode) Fallback() bool { return !m.Offload && m.Reason != ReasonNotWanted }

// OpenBest opens the TAP of cfg. With offload wanted it opens a Device (IFF_VNET_HDR) and
// turns on TSO and checksum offload (EnableOffload) right away; when the kernel refuses the
// header (EINVAL or EOPNOTSUPP from TUNSETIFF), gso_max_segs or TUNSETOFFLOAD, it closes
// that device and opens a FrameDevice through water instead, and Mode.Reason says what was
// refused. Without offload wanted it opens a FrameDevice. Any other error (EPERM, EACCES,
// EBUSY from TUNSETIFF, a refused MTU or MAC) is returned, not fallen back on.
//
// The Device comes back with offload on: its readers must pass Read BatchSize buffers
// (package tunnel does; l2.PlainVTEP does unless its DisableOffload is set, which wants a
// FrameDevice).
func OpenBest(cfg Config, offload bool) (tun.Device, Mode, error) {
	if !offload {
		fd, err := OpenFrames(cfg)
		if err != nil {
			return nil, Mode{}, err
		}
		return fd, Mode{Reason: ReasonNotWanted}, nil
	}
	d, err := Open(cfg)
	if err == nil {
		if err = d.EnableOffload(); err == nil {
			return d, Mode{Offload: true}, nil
		}
		d.Close()
	}
	var r *refusal
	if !errors.As(err, &r) {
		return nil, Mode{}, err
	}
	fd, err := OpenFrames(cfg)
	if err != nil {
		return nil, Mode{}, fmt.Errorf("%w (opened without offload: the %s)", err, r.reason())
	}
	return fd, Mode{Reason: r.reason()}, nil
}

// Refused reports whether err is the kernel refusing what Open, OpenTUN or EnableOffload
// asked (the virtio-net header, gso_max_segs, TUNSETOFFLOAD), and says what, as in
// Mode.Reason: a caller may then fall back on a device without them.
func Refused(err error) (reason string, ok bool) {
	var r *refusal
	if !errors.As(err, &r) {
		return "", false
	}
	return r.reason(), true
}
