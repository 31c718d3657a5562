package tap

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/tun"
)

// Device is a Linux TAP device behind wireguard-go's tun.Device, so the batched loop that
// drives TUN devices drives it too. A TAP reads and writes whole Ethernet frames without FCS.
// Read returns a batch (the frames the kernel already queued, up to BatchSize), so that
// the loop routes, seals and sends them together (one sendmmsg, UDP GSO) instead of one by
// one; with EnableOffload the kernel hands over TCP super-frames (TSO), which Read cuts into
// ordinary frames, so one syscall moves up to tapMaxGSOSegs frames.
type Device struct {
	link

	// offload: TSO and checksum offload are on (EnableOffload); Read then cuts super-frames.
	offload atomic.Bool
	// trusted: the writer authenticated every frame (TrustWrittenChecksums); Write's GRO
	// then merges segments without verifying their checksums.
	trusted atomic.Bool
	// l3: a TUN (OpenTUN): frames are IP packets, without an Ethernet header.
	l3 bool
	// malformed counts frames Read dropped: a super-frame it could not cut, or a read
	// shorter than the virtio-net header. Never expected from a kernel.
	malformed atomic.Uint64
	// Read state, set up once so that reading allocates nothing: readv of the virtio-net
	// header into vhdr and the frame straight into the caller's buffer (rdst), through rd.
	rc   syscall.RawConn
	vhdr [vnetHdrLen]byte
	riov [2]unix.Iovec
	rdst []byte
	rd   rawRead

	// Write state for frames without headroom for the header (writev behind a zero header),
	// guarded by wmu.
	wmu     sync.Mutex
	zhdr    [vnetHdrLen]byte
	wiov    [2]unix.Iovec
	wsrc    []byte
	werr    error
	writeFn func(fd uintptr) bool

	// gathers: writeCoalesced's writev states (gather), one per concurrent writer.
	gathers sync.Pool
}

var _ tun.Device = (*Device)(nil)

// link is what both TAP devices (Device, FrameDevice) share: the device's file, the
// interface name, the event channel, and the accessors and Close over them.
type link struct {
	file      *os.File
	name      string
	events    chan tun.Event
	closeOnce sync.Once
	closeErr  error
}

// File returns the device's file.
func (l *link) File() *os.File { return l.file }

// MTU returns the interface's current MTU.
func (l *link) MTU() (int, error) { return linkMTU(l.name) }

// HardwareAddr returns the TAP's MAC address (what the host publishes over gossip).
func (l *link) HardwareAddr() ([6]byte, error) { return linkMAC(l.name) }

// Name returns the interface name.
func (l *link) Name() (string, error) { return l.name, nil }

// Events delivers EventUp once if the device was opened Up; it is closed by Close.
func (l *link) Events() <-chan tun.Event { return l.events }

// Close removes the device; a blocked Read returns net.ErrClosed. Idempotent.
func (l *link) Close() error {
	l.closeOnce.Do(func() {
		l.closeErr = l.file.Close()
		close(l.events)
	})
	return l.closeErr
}

// Config configures Open.
type Config struct {
	// Name of the interface (at most 15 bytes); empty lets the kernel pick tapN.
	Name string
	// MTU of the interface; 0 keeps the kernel default (1500). For VXLAN over a 1500-byte
	// underlay use 1450, as the kernel vxlan driver does.
	MTU int
	// MAC, when non-zero, replaces the kernel's random address (so the gossiped MAC survives
	// restarts).
	MAC [6]byte
	// Up brings the link up after configuring it.
	Up bool
}

// Open creates a non-persistent TAP device; it disappears when closed. The device is
// opened with a virtio-net header (IFF_VNET_HDR), which Read and Write hide; offloads stay
// off until EnableOffload. A kernel that refuses the header (EINVAL or EOPNOTSUPP from
// TUNSETIFF) is reported as such (OpenBest then opens through water instead).
func Open(cfg Config) (*Device, error) { return open(cfg, false) }

// OpenTUN creates a non-persistent TUN device (IP packets, no link-layer header) with the
// same virtio-net header, batching, TSO cutting and GRO merging as Open's TAP: weft's own
// L3 device. cfg.MAC must be zero. HardwareAddr fails on it (a TUN has none).
func OpenTUN(cfg Config) (*Device, error) {
	if cfg.MAC != ([6]byte{}) {
		return nil, errors.New("tap: a TUN has no MAC address")
	}
	return open(cfg, true)
}

func open(cfg Config, l3 bool) (*Device, error) {
	if len(cfg.Name) > 15 {
		return nil, fmt.Errorf("tap: interface name %q is longer than 15 bytes", cfg.Name)
	}
	kind, what := uint16(unix.IFF_TAP), "tap"
	if l3 {
		kind, what = unix.IFF_TUN, "tun"
	}
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("tap: open /dev/net/tun: %w (needs CAP_NET_ADMIN)", err)
	}
	ifr, err := unix.NewIfreq(cfg.Name)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("tap: %w", err)
	}
	ifr.SetUint16(kind | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
	if err := ioctlSetIff(fd, ifr); err != nil {
		unix.Close(fd)
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP) {
			return nil, &refusal{what: "IFF_VNET_HDR", name: cfg.Name, err: err}
		}
		return nil, fmt.Errorf("%s: create %q: %w (needs CAP_NET_ADMIN)", what, cfg.Name, err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("tap: %w", err)
	}
	f := os.NewFile(uintptr(fd), "/dev/net/tun") // non-blocking: reads park in the poller
	d := &Device{link: link{file: f, name: ifr.Name(), events: make(chan tun.Event, 4)}, l3: l3}
	if d.rc, err = f.SyscallConn(); err != nil {
		d.Close()
		return nil, fmt.Errorf("tap: %w", err)
	}
	d.rd.fn = d.readv
	d.writeFn = d.writev
	d.gathers.New = newGather
	if err := d.setup(cfg); err != nil {
		return nil, err
	}
	return d, nil
}

// setup finishes opening: it applies cfg to the link (setupLink) and announces EventUp
// when cfg.Up. On failure it closes the device.
func (l *link) setup(cfg Config) error {
	if err := setupLink(l.name, cfg); err != nil {
		l.Close()
		return err
	}
	if cfg.Up {
		l.events <- tun.EventUp
	}
	return nil
}

// setupLink applies cfg's MTU, MAC and Up to the link name that Open or OpenFrames just
// created: what both devices share.
func setupLink(name string, cfg Config) error {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("tap: find link %s: %w", name, err)
	}
	if cfg.MTU > 0 {
		if err := netlink.LinkSetMTU(link, cfg.MTU); err != nil {
			return fmt.Errorf("tap: set MTU %d on %s: %w", cfg.MTU, name, err)
		}
	}
	if cfg.MAC != ([6]byte{}) {
		if err := netlink.LinkSetHardwareAddr(link, net.HardwareAddr(cfg.MAC[:])); err != nil {
			return fmt.Errorf("tap: set MAC %s on %s: %w", net.HardwareAddr(cfg.MAC[:]), name, err)
		}
	}
	if cfg.Up {
		if err := netlink.LinkSetUp(link); err != nil {
			return fmt.Errorf("tap: set %s up: %w", name, err)
		}
	}
	return nil
}

// linkMTU is the MTU of the link name.
func linkMTU(name string) (int, error) {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return 0, fmt.Errorf("tap: %w", err)
	}
	return link.Attrs().MTU, nil
}

// linkMAC is the MAC-48 address of the link name.
func linkMAC(name string) ([6]byte, error) {
	var m [6]byte
	link, err := netlink.LinkByName(name)
	if err != nil {
		return m, fmt.Errorf("tap: %w", err)
	}
	if len(link.Attrs().HardwareAddr) != len(m) {
		return m, fmt.Errorf("tap: %s has no MAC-48 address", name)
	}
	copy(m[:], link.Attrs().HardwareAddr)
	return m, nil
}

// BatchSize is the most frames one Read returns: the first read blocks, the others take
// what the kernel already queued, without blocking. 128 frames hold two TSO super-frames of
// at most tapMaxGSOSegs segments (or a burst of small frames), as wireguard-go's TUN batch.
const BatchSize = 128

// Read reads one frame into bufs[0][offset:], blocking until there is one, then as many
// frames as are already queued into the following buffers, without blocking. With offload
// on (EnableOffload), a TCP super-frame comes back cut into segments, one per buffer, each
// an ordinary frame with its own headers and checksums, and partial checksums are
// completed. It returns the number of frames; sizes[i] is the length of frame i. The
// buffers are the caller's; nothing is kept. A malformed super-frame (never expected from
// the kernel) is dropped; an error of a non-blocking read ends the batch and shows again on
// the next blocking read.
func (d *Device) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	return d.read(bufs, sizes, nil, offset)
}

// ReadPartial is Read that leaves transport checksums partial where the kernel handed them
// over so (offload on): a super-frame's segments get only their pseudo-header sums (the
// TCP checksum of every segment is not computed), a frame with a partial checksum keeps
// it, and partial[i] says where frame i's checksum is (Partial{} when it is complete). The
// reader completes each (Complete) unless it hands the frame to a peer that takes partial
// checksums. partial needs as many entries as bufs.
func (d *Device) ReadPartial(bufs [][]byte, sizes []int, partial []Partial, offset int) (int, error) {
	if len(partial) < len(bufs) {
		return 0, errors.New("tap: ReadPartial needs a Partial per buffer")
	}
	return d.read(bufs, sizes, partial, offset)
}

// PartialChecksums reports whether the device hands over and takes partial transport
// checksums (ReadPartial, WritePartial): TSO and checksum offload are on.
func (d *Device) PartialChecksums() bool { return d.offload.Load() }

func (d *Device) read(bufs [][]byte, sizes []int, partial []Partial, offset int) (int, error) {
	count := 0
	for count == 0 {
		n, err := d.readFrame(bufs, sizes, partial, offset, true)
		if err != nil {
			return 0, err
		}
		count = n
	}
	reserve := 1
	if d.offload.Load() {
		reserve = tapMaxGSOSegs // room for a whole super-frame
	}
	for len(bufs)-count >= reserve && len(sizes)-count >= reserve {
		var p []Partial
		if partial != nil {
			p = partial[count:]
		}
		n, err := d.readFrame(bufs[count:], sizes[count:], p, offset, false)
		if err != nil || n < 0 {
			break
		}
		count += n
	}
	return count, nil
}

// readFrame reads one frame (blocking or not) into bufs[0][offset:] and finishes it (see
// tapFinishFrame). It returns the frames made, 0 for a dropped malformed one, and -1 when
// a non-blocking read found nothing queued.
func (d *Device) readFrame(bufs [][]byte, sizes []int, partial []Partial, offset int, block bool) (int, error) {
	d.rdst = bufs[0][offset:]
	n, err := d.rd.read(d.rc, block)
	d.rdst, d.riov[1].Base = nil, nil // keep no caller buffer alive
	if err != nil || n < 0 {
		return n, err
	}
	if n < vnetHdrLen {
		d.malformed.Add(1)
		return 0, nil
	}
	h := parseVnetHdr(d.vhdr[:])
	n -= vnetHdrLen
	if h.flags == 0 && h.gsoType == unix.VIRTIO_NET_HDR_GSO_NONE {
		sizes[0] = n
		if partial != nil {
			partial[0] = Partial{}
		}
		return 1, nil
	}
	k, err := tapFinish(h, bufs, sizes, partial, offset, n, d.l3)
	if err != nil {
		d.malformed.Add(1)
		return 0, nil
	}
	return k, nil
}

// MalformedFrames counts the frames Read dropped because it could not make ordinary frames
// of them (see tapFinishFrame); zero unless the kernel misbehaves.
func (d *Device) MalformedFrames() uint64 { return d.malformed.Load() }

// readv is rd's callback: one readv of the header and the frame.
func (d *Device) readv(fd uintptr) bool {
	if len(d.rdst) == 0 {
		d.rd.n, d.rd.err = 0, unix.EINVAL
		return true
	}
	d.riov[0].Base, d.riov[1].Base = &d.vhdr[0], &d.rdst[0]
	d.riov[0].SetLen(vnetHdrLen)
	d.riov[1].SetLen(len(d.rdst))
	return d.rd.readv(fd, d.riov[:])
}

// writev is writeFn: one writev of a zero header and the frame wsrc.
func (d *Device) writev(fd uintptr) bool {
	if len(d.wsrc) == 0 {
		d.werr = unix.EINVAL
		return true
	}
	d.wiov[0].Base, d.wiov[1].Base = &d.zhdr[0], &d.wsrc[0]
	d.wiov[0].SetLen(vnetHdrLen)
	d.wiov[1].SetLen(len(d.wsrc))
	for {
		_, _, e := unix.Syscall(unix.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&d.wiov[0])), 2)
		switch e {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false // wait until writable
		}
		d.werr = nil
		if e != 0 {
			d.werr = e
		}
		return true
	}
}

// TryRead reads one frame into b if the kernel has one queued, without blocking; (0, nil)
// when none is. The plaintext VTEP uses it to gather a burst into one GSO send. Not safe for
// concurrent use with itself or Read (one reader). It does not cut super-frames: the VTEP
// leaves offload off.
func (d *Device) TryRead(b []byte) (int, error) {
	bufs, sizes := [1][]byte{b}, [1]int{}
	n, err := d.readFrame(bufs[:], sizes[:], nil, 0, false)
	if err != nil {
		return 0, err
	}
	if n <= 0 {
		return 0, nil
	}
	return sizes[0], nil
}

// Write writes each bufs[i][offset:] as one frame, behind a zero virtio-net header (written
// into the buffer's headroom when offset leaves room for it). With offload on and that
// headroom, consecutive segments of one TCP flow are merged into one super-frame (GRO),
// appended into the first one's capacity beyond its length: the buffers are modified. It
// does not retain them. Safe for concurrent use.
func (d *Device) Write(bufs [][]byte, offset int) (int, error) {
	if d.offload.Load() && offset >= vnetHdrLen {
		return d.writeCoalesced(bufs, offset, nil)
	}
	for i, b := range bufs {
		var err error
		if offset >= vnetHdrLen {
			clear(b[offset-vnetHdrLen : offset])
			_, err = d.file.Write(b[offset-vnetHdrLen:])
		} else {
			d.wmu.Lock()
			d.wsrc = b[offset:]
			if err = d.rc.Write(d.writeFn); err == nil {
				err = d.werr
			} else {
				err = net.ErrClosed
			}
			d.wsrc, d.wiov[1].Base = nil, nil
			d.wmu.Unlock()
		}
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				return i, net.ErrClosed
			}
			return i, err
		}
	}
	return len(bufs), nil
}

// writeCoalesced writes bufs with offload on: runs of segments of one TCP flow go as one
// super-frame (see tapCoalesce), so the kernel's TCP receives 64 KiB at a time. Each
// super-frame is one writev of its parts, straight from the buffers: nothing is copied. It
// returns the number of buffers written.
func (d *Device) writeCoalesced(bufs [][]byte, offset int, partial []Partial) (int, error) {
	g := d.gathers.Get().(*gather)
	defer d.gathers.Put(g)
	for i := 0; i < len(bufs); {
		var next int
		g.parts, next = tapCoalesce(bufs, i, offset, !d.trusted.Load(), d.l3, g.parts, partial)
		err := d.rc.Write(g.fn)
		clear(g.parts) // keep no caller buffer alive
		if err != nil {
			return i, net.ErrClosed
		}
		if g.err != 0 {
			return i, &os.PathError{Op: "writev", Path: d.name, Err: g.err}
		}
		i = next
	}
	return len(bufs), nil
}

// gather is one writeCoalesced call's writev state, pooled so that concurrent writers (the
// loop's receive functions) allocate nothing.
type gather struct {
	parts [][]byte
	iov   [tapMaxGSOSegs]unix.Iovec
	err   unix.Errno
	fn    func(fd uintptr) bool
}

func newGather() any {
	g := &gather{parts: make([][]byte, 0, tapMaxGSOSegs)}
	g.fn = g.writev
	return g
}

// writev is g's RawConn.Write callback: one writev of g.parts (a TUN/TAP write is one
// frame, whole or refused); false asks the poller to wait until the device is writable.
func (g *gather) writev(fd uintptr) bool {
	n := 0
	for _, p := range g.parts {
		if len(p) == 0 {
			continue
		}
		g.iov[n].Base = &p[0]
		g.iov[n].SetLen(len(p))
		n++
	}
	g.err = 0
	for {
		_, _, e := unix.Syscall(unix.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&g.iov[0])), uintptr(n))
		switch e {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		}
		g.err = e
		clear(g.iov[:n])
		return true
	}
}

// WritePartial is Write for a writer that trusts its frames (TrustWrittenChecksums) and
// left some transport checksums partial: partial[i] (as ReadPartial gives it) marks frame
// i, which goes up as CHECKSUM_PARTIAL, merged or alone, so the kernel completes the
// checksum only if it forwards the frame. Only with offload on (PartialChecksums), headroom
// for the header and a trusting writer; otherwise it refuses the whole batch.
func (d *Device) WritePartial(bufs [][]byte, offset int, partial []Partial) (int, error) {
	if !d.offload.Load() || !d.trusted.Load() || offset < vnetHdrLen || len(partial) < len(bufs) {
		return 0, errors.New("tap: WritePartial needs offload, a trusting writer, headroom and a Partial per buffer")
	}
	return d.writeCoalesced(bufs, offset, partial)
}

// EnableOffload turns on TCP segmentation and checksum offload (TSO4, TSO6, CSUM): the
// kernel then hands over TCP super-frames of up to tapMaxGSOSegs segments, which Read cuts
// into frames, and frames with partial checksums, which Read completes; Write merges
// segments into super-frames. Only for a reader
// that passes Read at least tapMaxGSOSegs buffers (the encrypted loop; BatchSize). OpenBest
// calls it; calling it again does the same again. A kernel's refusal of gso_max_segs or of
// TUNSETOFFLOAD comes back as an error OpenBest recognizes.
func (d *Device) EnableOffload() error {
	link, err := netlink.LinkByName(d.name)
	if err != nil {
		return fmt.Errorf("tap: %w", err)
	}
	if err := netlink.LinkSetGSOMaxSegs(link, tapMaxGSOSegs); err != nil {
		return &refusal{what: fmt.Sprintf("gso_max_segs %d", tapMaxGSOSegs), name: d.name, err: err}
	}
	var serr error
	if err := d.rc.Control(func(fd uintptr) {
		serr = ioctlSetOffload(int(fd), unix.TUN_F_CSUM|unix.TUN_F_TSO4|unix.TUN_F_TSO6)
	}); err != nil {
		return fmt.Errorf("tap: %w", err)
	}
	if serr != nil {
		return &refusal{what: "TUNSETOFFLOAD", name: d.name, err: serr}
	}
	d.offload.Store(true)
	return nil
}

// TrustWrittenChecksums tells the device that every frame written from now on was
// authenticated by the writer (the encrypted loop: an AEAD checked it), so Write's merging
// of TCP segments skips verifying their checksums: verification would only catch what the
// authenticated sender itself sent. Writers of plaintext (the plain VTEP) must not call it.
func (d *Device) TrustWrittenChecksums() { d.trusted.Store(true) }

// BatchSize is BatchSize: the most frames one Read returns.
func (d *Device) BatchSize() int { return BatchSize }
