package tap

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"

	"github.com/songgao/water"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/tun"
)

// FrameDevice is a TAP opened through songgao/water, without a virtio-net header: one
// Ethernet frame per read(2) and per write(2), no offloads. It is what OpenBest falls back
// to where the kernel refuses IFF_VNET_HDR or TUNSETOFFLOAD. It has none of Device's
// EnableOffload or TrustWrittenChecksums: the kernel segments TCP in software before the
// TAP and every frame costs a syscall. But like Device its Read returns a batch (the frames
// already queued) and it has TryRead, so the encrypted loop seals a burst together and
// sends it in one sendmmsg or UDP GSO send, and l2.PlainVTEP gathers a burst into one GSO
// send. water opens the descriptor O_NONBLOCK in an os.File, so a blocking read parks in
// the runtime's poller and Close wakes it.
type FrameDevice struct {
	link

	// Read state, set up once so that reading allocates nothing: a readv of the frame
	// straight into the caller's buffer (rdst), through rd. One reader at a time (Read or
	// TryRead).
	rc   syscall.RawConn
	riov [1]unix.Iovec
	rdst []byte
	rd   rawRead
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
	d, err := newFrameDevice(f, ifce.Name())
	if err != nil {
		f.Close()
		return nil, err
	}
	if err := d.rc.Control(func(fd uintptr) { unix.CloseOnExec(int(fd)) }); err != nil {
		d.Close()
		return nil, fmt.Errorf("tap: %w", err)
	}
	if err := d.setup(cfg); err != nil {
		return nil, err
	}
	return d, nil
}

// newFrameDevice wraps f, a non-blocking descriptor that reads and writes one frame per
// syscall, named name; Close closes f.
func newFrameDevice(f *os.File, name string) (*FrameDevice, error) {
	d := &FrameDevice{link: link{file: f, name: name, events: make(chan tun.Event, 1)}}
	var err error
	if d.rc, err = f.SyscallConn(); err != nil {
		return nil, fmt.Errorf("tap: %w", err)
	}
	d.rd.fn = d.readv
	return d, nil
}

// FrameBatchSize is FrameDevice's BatchSize: the most frames one Read returns. 64 is what
// one UDP GSO send carries at most (the kernel's UDP_MAX_SEGMENTS), so a longer batch
// would leave in several sends anyway, while every buffer more is one more full-size
// buffer the encrypted loop holds; the TAP queues up to txqueuelen (1000) frames, so a
// burst drains in batches of 64.
const FrameBatchSize = 64

// Read reads one frame into bufs[0][offset:], blocking until there is one, then as many
// frames as are already queued into the following buffers (up to len(bufs) and
// len(sizes)), without blocking. It returns the number of frames; sizes[i] is the length
// of frame i. The buffers are the caller's; nothing is kept. An error of a non-blocking
// read ends the batch and shows again on the next blocking read. After Close it returns
// net.ErrClosed. It allocates nothing.
func (d *FrameDevice) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	if len(bufs) == 0 || len(sizes) == 0 || offset >= len(bufs[0]) {
		return 0, io.ErrShortBuffer
	}
	n, err := d.readFrame(bufs[0][offset:], true)
	if err != nil {
		return 0, err
	}
	sizes[0] = n
	count := 1
	for count < len(bufs) && count < len(sizes) && offset < len(bufs[count]) {
		n, err := d.readFrame(bufs[count][offset:], false)
		if err != nil || n < 0 {
			break
		}
		sizes[count] = n
		count++
	}
	return count, nil
}

// TryRead reads one frame into b if the kernel has one queued, without blocking; (0, nil)
// when none is. The plaintext VTEP uses it to gather a burst into one GSO send. Not safe
// for concurrent use with itself or Read (one reader).
func (d *FrameDevice) TryRead(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, io.ErrShortBuffer
	}
	n, err := d.readFrame(b, false)
	if err != nil {
		return 0, err
	}
	return max(n, 0), nil
}

// readFrame reads one frame into b (not empty), blocking in the poller or not: its length,
// or -1 when a non-blocking read found nothing queued.
func (d *FrameDevice) readFrame(b []byte, block bool) (int, error) {
	d.rdst = b
	n, err := d.rd.read(d.rc, block)
	d.rdst, d.riov[0].Base = nil, nil // keep no caller buffer alive
	return n, err
}

// readv is rd's callback: one readv of the frame.
func (d *FrameDevice) readv(fd uintptr) bool {
	d.riov[0].Base = &d.rdst[0]
	d.riov[0].SetLen(len(d.rdst))
	return d.rd.readv(fd, d.riov[:])
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

// BatchSize is FrameBatchSize: the most frames one Read returns.
func (d *FrameDevice) BatchSize() int { return FrameBatchSize }
