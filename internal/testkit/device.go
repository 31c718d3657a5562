package testkit

import (
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/tun"
)

// DefaultMTU is the MTU a Device reports unless configured otherwise (tuntest's value).
const DefaultMTU = 1420

// DeviceConfig configures a Device. The zero value is a batch-1 device that keeps nothing
// it is written: it only counts.
type DeviceConfig struct {
	// BatchSize is what BatchSize reports and the most packets one Read returns; 0 means 1.
	BatchSize int
	// MTU is what MTU reports; 0 means DefaultMTU.
	MTU int
	// Queue is the capacity of In; 0 means 1024, room for a test's burst before the
	// reader starts.
	Queue int
	// Keep is the capacity of Out. When non-zero, Write copies every packet it is given to
	// Out (one allocation per packet); when zero, Out is nil and Write allocates nothing.
	Keep int
	// Signal is the capacity of Written. When non-zero, Write sends on Written once per
	// packet, which costs no allocation (zero-allocation tests wait on it); when zero,
	// Written is nil.
	Signal int
	// Backpressure makes Write wait for room in Out and Written (until Close) instead of
	// dropping the copy or the signal when the test does not keep up.
	Backpressure bool
}

// Device is an in-memory tun.Device: a test sends packets on In for the code under test
// to Read, and sees what the code Writes on Out (copies) or Written (signals), and in the
// counters. It also has TryRead, as tap.Device does. Close makes Read and Write return
// os.ErrClosed and closes the Events channel.
type Device struct {
	// In holds the packets Read returns, in order. Read copies them into its buffers and
	// does not retain them.
	In chan []byte
	// Out receives a copy of every packet written (nil unless DeviceConfig.Keep).
	Out chan []byte
	// Written receives one signal per packet written (nil unless DeviceConfig.Signal).
	Written chan struct{}

	batch, mtu   int
	backpressure bool
	events       chan tun.Event
	closed       chan struct{}
	once         sync.Once
	packets      atomic.Uint64
	bytes        atomic.Uint64
}

var _ tun.Device = (*Device)(nil)

// NewDevice returns an open Device configured by cfg.
func NewDevice(cfg DeviceConfig) *Device {
	d := &Device{
		batch: max(cfg.BatchSize, 1), mtu: cfg.MTU, backpressure: cfg.Backpressure,
		In:     make(chan []byte, orDefault(cfg.Queue, 1024)),
		events: make(chan tun.Event, 1),
		closed: make(chan struct{}),
	}
	if d.mtu == 0 {
		d.mtu = DefaultMTU
	}
	if cfg.Keep > 0 {
		d.Out = make(chan []byte, cfg.Keep)
	}
	if cfg.Signal > 0 {
		d.Written = make(chan struct{}, cfg.Signal)
	}
	return d
}

// orDefault returns v, or def when v is zero.
func orDefault(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// File returns nil: the device has no file descriptor.
func (d *Device) File() *os.File { return nil }

// Read waits for a packet on In and copies it into bufs[0][offset:], then copies the
// packets already queued, without waiting, into the next buffers, up to the batch size.
func (d *Device) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	select {
	case <-d.closed:
		return 0, os.ErrClosed
	case p := <-d.In:
		sizes[0] = copy(bufs[0][offset:], p)
	}
	n, most := 1, min(len(bufs), d.batch)
	for n < most {
		select {
		case p := <-d.In:
			sizes[n] = copy(bufs[n][offset:], p)
			n++
		default:
			return n, nil
		}
	}
	return n, nil
}

// TryRead copies one queued packet into b without waiting; (0, nil) when none is queued.
func (d *Device) TryRead(b []byte) (int, error) {
	select {
	case p := <-d.In:
		return copy(b, p), nil
	case <-d.closed:
		return 0, os.ErrClosed
	default:
		return 0, nil
	}
}

// Write counts each packet bufs[i][offset:], copies it to Out and signals Written (when
// configured). It does not retain bufs.
func (d *Device) Write(bufs [][]byte, offset int) (int, error) {
	for _, b := range bufs {
		d.packets.Add(1)
		d.bytes.Add(uint64(len(b) - offset))
		if d.Out != nil {
			p := append([]byte(nil), b[offset:]...)
			if d.backpressure {
				select {
				case d.Out <- p:
				case <-d.closed:
					return 0, os.ErrClosed
				}
			} else {
				select {
				case d.Out <- p:
				default:
				}
			}
		}
		if d.Written != nil {
			if d.backpressure {
				select {
				case d.Written <- struct{}{}:
				case <-d.closed:
					return 0, os.ErrClosed
				}
			} else {
				select {
				case d.Written <- struct{}{}:
				default:
				}
			}
		}
	}
	return len(bufs), nil
}

// MTU returns the configured MTU.
func (d *Device) MTU() (int, error) { return d.mtu, nil }

// Name returns "fake0".
func (d *Device) Name() (string, error) { return "fake0", nil }

// Events returns the event channel: no event is ever sent; it is closed by Close.
func (d *Device) Events() <-chan tun.Event { return d.events }

// BatchSize returns the configured batch size.
func (d *Device) BatchSize() int { return d.batch }

// Close unblocks Read and Write and closes Events. It is idempotent.
func (d *Device) Close() error {
	d.once.Do(func() { close(d.closed); close(d.events) })
	return nil
}

// KeepWritten makes Write copy every packet to Out from now on, Out having room for
// capacity packets (a device built without DeviceConfig.Keep, so that a test can measure
// allocations first). Call it while nothing writes to the device.
func (d *Device) KeepWritten(capacity int) {
	if d.Out == nil {
		d.Out = make(chan []byte, capacity)
	}
}

// Inject queues p for Read; it blocks while In is full.
func (d *Device) Inject(p []byte) { d.In <- p }

// PacketsWritten returns how many packets Write has been given.
func (d *Device) PacketsWritten() uint64 { return d.packets.Load() }

// BytesWritten returns the total length of the packets Write has been given.
func (d *Device) BytesWritten() uint64 { return d.bytes.Load() }

// RecvTimeout is how long Recv waits for a written packet.
const RecvTimeout = 5 * time.Second

// Recv returns the next packet written to the device (from Out), failing the test when
// none comes within RecvTimeout. The device must keep copies (DeviceConfig.Keep).
func (d *Device) Recv(t testing.TB) []byte {
	t.Helper()
	if d.Out == nil {
		t.Fatal("testkit: Recv on a Device that keeps no copies (DeviceConfig.Keep is 0)")
	}
	select {
	case p := <-d.Out:
		return p
	case <-time.After(RecvTimeout):
		t.Fatalf("no packet written to the device within %v", RecvTimeout)
		return nil
	}
}
