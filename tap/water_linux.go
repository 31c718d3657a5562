package tap

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"

	"github.com/songgao/water"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/tun"
)

// FrameDevice is a TAP opened through songgao/water, without a virtio-net header: one
// Ethernet frame per read(2) and per write(2), no offloads. It is what OpenBest falls back
// to where the kernel refuses IFF_VNET_HDR or TUNSETOFFLOAD. It has none of Device's
// EnableOffload, TrustWrittenChecksums or TryRead, so package tunnel and l2.PlainVTEP drive
// it frame by frame: the kernel segments TCP in software before the TAP and every frame
// costs a syscall (and, encrypted, a read of its own). water opens the descriptor
// O_NONBLOCK in an os.File, so a Read parks in the runtime's poller and Close wakes it.
type FrameDevice struct {
	file   *os.File
	name   string
	events chan tun.Event

	closeOnce sync.Once
	closeErr  error
}

var _ tun.Device = (*FrameDevice)(nil)

// OpenFrames creates a non-persistent TAP through water (it disappears when closed) and
// applies cfg's MTU, MAC and Up as Open does.
//
// water (v0.0.0-20200317203138) opens /dev/net/tun without O_CLOEXEC, which OpenFrames
// sets right after (a child forked in between inherits the descriptor), and leaks the
// descriptor when its TUNSETIFF fails.
func OpenFrames(cfg Config) (*FrameDevice, error) {
	if len(cfg.Name) > 15 {
		return nil, fmt.Errorf("tap: interface name %q is longer than 15 bytes", cfg.Name)
	}
	ifce, err := water.New(water.Config{
		DeviceType:             water.TAP,
		PlatformSpecificParams: water.PlatformSpecificParams{Name: cfg.Name},
	})
	if err != nil {
		return nil, fmt.Errorf("tap: create %q through water: %w (needs CAP_NET_ADMIN)", cfg.Name, err)
	}
	f, ok := ifce.ReadWriteCloser.(*os.File)
	if !ok {
		ifce.Close()
		return nil, fmt.Errorf("tap: water returned a %T, not an *os.File", ifce.ReadWriteCloser)
	}
	d := &FrameDevice{file: f, name: ifce.Name(), events: make(chan tun.Event, 1)}
	rc, err := f.SyscallConn()
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("tap: %w", err)
	}
	if err := rc.Control(func(fd uintptr) { unix.CloseOnExec(int(fd)) }); err != nil {
		d.Close()
		return nil, fmt.Errorf("tap: %w", err)
	}
	if err := setupLink(d.name, cfg); err != nil {
		d.Close()
		return nil, err
	}
	if cfg.Up {
		d.events <- tun.EventUp
	}
	return d, nil
}

// Read reads one frame into bufs[0][offset:], blocking until there is one, and returns 1
// with sizes[0] its length. The buffer is the caller's; nothing is kept. After Close it
// returns net.ErrClosed.
func (d *FrameDevice) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	if len(bufs) == 0 || len(sizes) == 0 || offset >= len(bufs[0]) {
		return 0, io.ErrShortBuffer
	}
	n, err := d.file.Read(bufs[0][offset:])
	if err != nil {
		return 0, closedErr(err)
	}
	sizes[0] = n
	return 1, nil
}

// Write writes each bufs[i][offset:] as one frame. It does not retain the buffers and
// leaves them unmodified. Safe for concurrent use.
func (d *FrameDevice) Write(bufs [][]byte, offset int) (int, error) {
	for i, b := range bufs {
		if _, err := d.file.Write(b[offset:]); err != nil {
			return i, closedErr(err)
		}
	}
	return len(bufs), nil
}

// closedErr is net.ErrClosed for an error of a closed file, err otherwise.
func closedErr(err error) error {
	if errors.Is(err, os.ErrClosed) {
		return net.ErrClosed
	}
	return err
}

// File returns the device's file (water's os.File over a non-blocking descriptor).
func (d *FrameDevice) File() *os.File { return d.file }

// MTU returns the interface's current MTU.
func (d *FrameDevice) MTU() (int, error) { return linkMTU(d.name) }

// HardwareAddr returns the TAP's MAC address.
func (d *FrameDevice) HardwareAddr() ([6]byte, error) { return linkMAC(d.name) }

// Name returns the interface name.
func (d *FrameDevice) Name() (string, error) { return d.name, nil }

// Events delivers EventUp once if the device was opened Up; it is closed by Close.
func (d *FrameDevice) Events() <-chan tun.Event { return d.events }

// BatchSize is 1: one frame per Read.
func (d *FrameDevice) BatchSize() int { return 1 }

// Close removes the device; a blocked Read returns net.ErrClosed. Idempotent.
func (d *FrameDevice) Close() error {
	d.closeOnce.Do(func() {
		d.closeErr = d.file.Close()
		close(d.events)
	})
	return d.closeErr
}
