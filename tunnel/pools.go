package tunnel

import (
	"sync"

	"golang.org/x/sys/unix"

	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/vxlan"
)

const (
	// headroom is where an inner packet starts in every buffer: room for the transport
	// header and the VXLAN header, written in place before sealing. It also exceeds the
	// 10-byte virtio-net header wireguard-go's Linux TUN writes in front of the offset.
	headroom = crypto.MessageTransportHeaderSize + vxlan.HeaderSize
	// maxInner is the largest inner packet a buffer holds.
	maxInner = 65535 - headroom - crypto.MessageTransportTagSize - 15
	// bufSize holds a whole UDP datagram (inbound) or headroom + a GSO-split inner packet
	// + padding + tag (outbound), and leaves capacity behind a packet for the TUN's GRO and
	// the bind's GSO, which coalesce by appending to a batch's first buffer.
	bufSize = 65536 + 64
)

// packetBuf is one pooled buffer. Loops own a batch of them for their whole life;
// the pool supplies the few that outlive a batch (pending packets, flood copies).
type packetBuf [bufSize]byte

type bufPool struct{ p sync.Pool }

func newBufPool() *bufPool {
	return &bufPool{p: sync.Pool{New: func() any { return new(packetBuf) }}}
}

// get returns a whole buffer (len == cap == bufSize).
func (bp *bufPool) get() []byte { return bp.p.Get().(*packetBuf)[:] }

// put takes back a buffer obtained from get, sliced from its start to any length.
func (bp *bufPool) put(b []byte) {
	if cap(b) < bufSize {
		return // not ours
	}
	bp.p.Put((*packetBuf)(b[:bufSize]))
}

// ownedBufs allocates the buffers each loop owns for its whole life (a receive batch, a
// device read batch, the probe buffers: 64 KiB each, a few hundred in all) outside the Go
// heap, with mmap. On the heap they would count as live heap although their pages are
// mostly never touched (a batch fills as far as the traffic goes), and the collector lets
// the heap grow to twice the live heap before it collects: some 25 MiB of idle buffers let
// an idle agent's garbage grow its resident memory by as much again. Off the heap, an
// untouched page costs nothing and the collector paces on real garbage. They are unmapped
// by Close once every loop has returned; a loop must never hand one to the pool or to a
// peer's queue (it copies into a pool buffer instead).
type ownedBufs struct {
	mu    sync.Mutex
	slabs [][]byte
}

// get returns n whole buffers (len == cap == bufSize) from one mapping; where mmap fails,
// from the heap.
func (o *ownedBufs) get(n int) [][]byte {
	out := make([][]byte, n)
	mem, err := unix.Mmap(-1, 0, n*bufSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		for i := range out {
			out[i] = new(packetBuf)[:]
		}
		return out
	}
	o.mu.Lock()
	o.slabs = append(o.slabs, mem)
	o.mu.Unlock()
	for i := range out {
		out[i] = mem[i*bufSize : (i+1)*bufSize : (i+1)*bufSize]
	}
	return out
}

// free unmaps every buffer get returned. Call it only when no loop can touch them again.
func (o *ownedBufs) free() {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, m := range o.slabs {
		_ = unix.Munmap(m)
	}
	o.slabs = nil
}
