package tunnel

import (
	"sync"

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
