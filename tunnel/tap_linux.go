package tunnel

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"

	"github.com/songgao/water"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/tun"
)

// TAPDevice is a Linux TAP device (opened with songgao/water) behind wireguard-go's
// tun.Device, so the batched loop that drives TUN devices drives it too. A TAP reads and
// writes whole Ethernet frames without FCS and has no offloads, so one syscall moves one
// frame; Read still returns a batch (up to TAPBatchSize frames already queued), so that the
// loop routes, seals and sends them together (one sendmmsg, UDP GSO) instead of one by one.
type TAPDevice struct {
	ifce   *water.Interface
	file   *os.File
	name   string
	events chan tun.Event

	// TryRead state, set up once so that a non-blocking read allocates nothing.
	rc     syscall.RawConn
	tryBuf []byte
	tryN   int
	tryErr error
	tryFn  func(fd uintptr) bool

	closeOnce sync.Once
	closeErr  error
}

var _ tun.Device = (*TAPDevice)(nil)

// TAPConfig configures OpenTAP.
type TAPConfig struct {
	// Name of the interface (at most 15 bytes); empty lets the kernel pick tapN.
	Name string
	// MTU of the interface; 0 keeps the kernel default (1500). For VXLAN over a 1500-byte
	// underlay use 1450, as the kernel vxlan driver does.
	MTU int
	// MAC, when non-zero, replaces the kernel's random address (so the gossiped MAC survives
	// restarts).
	MAC MAC
	// Up brings the link up after configuring it.
	Up bool
}

// OpenTAP creates a non-persistent TAP device; it disappears when closed.
func OpenTAP(cfg TAPConfig) (*TAPDevice, error) {
	if len(cfg.Name) > 15 {
		return nil, fmt.Errorf("tap: interface name %q is longer than 15 bytes", cfg.Name)
	}
	ifce, err := water.New(water.Config{
		DeviceType:             water.TAP,
		PlatformSpecificParams: water.PlatformSpecificParams{Name: cfg.Name, Persist: false},
	})
	if err != nil {
		return nil, fmt.Errorf("tap: open /dev/net/tun: %w (needs CAP_NET_ADMIN)", err)
	}
	f, ok := ifce.ReadWriteCloser.(*os.File)
	if !ok {
		ifce.Close()
		return nil, errors.New("tap: water returned no *os.File")
	}
	d := &TAPDevice{ifce: ifce, file: f, name: ifce.Name(), events: make(chan tun.Event, 4)}
	if d.rc, err = f.SyscallConn(); err != nil {
		d.Close()
		return nil, fmt.Errorf("tap: %w", err)
	}
	d.tryFn = func(fd uintptr) bool {
		d.tryN, d.tryErr = unix.Read(int(fd), d.tryBuf)
		return true // never wait: EAGAIN means "nothing queued"
	}
	link, err := netlink.LinkByName(d.name)
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("tap: find link %s: %w", d.name, err)
	}
	if cfg.MTU > 0 {
		if err := netlink.LinkSetMTU(link, cfg.MTU); err != nil {
			d.Close()
			return nil, fmt.Errorf("tap: set MTU %d on %s: %w", cfg.MTU, d.name, err)
		}
	}
	if !cfg.MAC.IsZero() {
		if err := netlink.LinkSetHardwareAddr(link, net.HardwareAddr(cfg.MAC[:])); err != nil {
			d.Close()
			return nil, fmt.Errorf("tap: set MAC %s on %s: %w", cfg.MAC, d.name, err)
		}
	}
	if cfg.Up {
		if err := netlink.LinkSetUp(link); err != nil {
			d.Close()
			return nil, fmt.Errorf("tap: set %s up: %w", d.name, err)
		}
		d.events <- tun.EventUp
	}
	return d, nil
}

// File returns the device's file.
func (d *TAPDevice) File() *os.File { return d.file }

// TAPBatchSize is the most frames one Read returns: the first blocks, the others are the
// frames the kernel already queued (read without blocking). 64 frames fill one UDP GSO send
// (the kernel's UDP_MAX_SEGMENTS) and amortise the loop's per-batch work, while a burst
// larger than that waits at most one more batch.
const TAPBatchSize = 64

// Read reads one frame into bufs[0][offset:], blocking until there is one, then as many
// frames as are already queued (up to len(bufs)) into bufs[1:], without blocking. It returns
// the number of frames; sizes[i] is the length of frame i. The buffers are the caller's;
// nothing is kept. An error of a non-blocking read ends the batch and shows again on the
// next blocking read.
func (d *TAPDevice) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	n, err := d.file.Read(bufs[0][offset:])
	if err != nil {
		if errors.Is(err, os.ErrClosed) {
			return 0, net.ErrClosed
		}
		return 0, err
	}
	sizes[0] = n
	count := 1
	for count < len(bufs) && count < len(sizes) {
		n, err := d.TryRead(bufs[count][offset:])
		if err != nil || n == 0 {
			break
		}
		sizes[count] = n
		count++
	}
	return count, nil
}

// TryRead reads one frame into b if the kernel has one queued, without blocking; (0, nil)
// when none is. The plaintext VTEP uses it to gather a burst into one GSO send. Not safe for
// concurrent use with itself (one reader, like Read).
func (d *TAPDevice) TryRead(b []byte) (int, error) {
	d.tryBuf = b
	err := d.rc.Read(d.tryFn)
	d.tryBuf = nil
	if err != nil {
		return 0, net.ErrClosed
	}
	switch {
	case d.tryErr == unix.EAGAIN:
		return 0, nil
	case d.tryErr != nil:
		return 0, d.tryErr
	}
	return d.tryN, nil
}

// Write writes each bufs[i][offset:] as one frame. It does not retain the buffers.
func (d *TAPDevice) Write(bufs [][]byte, offset int) (int, error) {
	for i, b := range bufs {
		if _, err := d.file.Write(b[offset:]); err != nil {
			if errors.Is(err, os.ErrClosed) {
				return i, net.ErrClosed
			}
			return i, err
		}
	}
	return len(bufs), nil
}

// MTU returns the interface's current MTU.
func (d *TAPDevice) MTU() (int, error) {
	link, err := netlink.LinkByName(d.name)
	if err != nil {
		return 0, fmt.Errorf("tap: %w", err)
	}
	return link.Attrs().MTU, nil
}

// HardwareAddr returns the TAP's MAC address (what the host publishes over gossip).
func (d *TAPDevice) HardwareAddr() (MAC, error) {
	var m MAC
	link, err := netlink.LinkByName(d.name)
	if err != nil {
		return m, fmt.Errorf("tap: %w", err)
	}
	if len(link.Attrs().HardwareAddr) != len(m) {
		return m, fmt.Errorf("tap: %s has no MAC-48 address", d.name)
	}
	copy(m[:], link.Attrs().HardwareAddr)
	return m, nil
}

// Name returns the interface name.
func (d *TAPDevice) Name() (string, error) { return d.name, nil }

// Events delivers EventUp once if the device was opened Up; it is closed by Close.
func (d *TAPDevice) Events() <-chan tun.Event { return d.events }

// BatchSize is TAPBatchSize: the most frames one Read returns.
func (d *TAPDevice) BatchSize() int { return TAPBatchSize }

// Close removes the device; a blocked Read returns net.ErrClosed. Idempotent.
func (d *TAPDevice) Close() error {
	d.closeOnce.Do(func() {
		d.closeErr = d.ifce.Close()
		close(d.events)
	})
	return d.closeErr
}
