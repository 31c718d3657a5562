package testkit

import (
	"net/netip"

	"golang.zx2c4.com/wireguard/conn"
)

// Endpoint is a conn.Endpoint at an address and port. Like conn.StdNetEndpoint it has
// Port (from the embedded netip.AddrPort), so code that reads an endpoint's address does
// not allocate.
type Endpoint struct{ netip.AddrPort }

var _ conn.Endpoint = (*Endpoint)(nil)

// ClearSrc does nothing: the endpoint has no source.
func (e *Endpoint) ClearSrc() {}

// SrcToString returns "".
func (e *Endpoint) SrcToString() string { return "" }

// DstToString returns the address and port.
func (e *Endpoint) DstToString() string { return e.AddrPort.String() }

// DstToBytes returns the address and port in netip's binary form.
func (e *Endpoint) DstToBytes() []byte { b, _ := e.AddrPort.MarshalBinary(); return b }

// DstIP returns the address.
func (e *Endpoint) DstIP() netip.Addr { return e.Addr() }

// SrcIP returns the zero Addr.
func (e *Endpoint) SrcIP() netip.Addr { return netip.Addr{} }

// CaptureBind is a conn.Bind whose Send copies each message into the next of its
// preallocated Slots, without allocating, so a test can drive a datapath's send step
// directly (no goroutines, no sockets) and read what it sent. Open returns no receive
// functions: a test hands received messages to the code under test itself.
type CaptureBind struct {
	// Slots hold the messages sent, in order; Slots[:N] are filled. Each slot has the
	// capacity given to NewCaptureBind.
	Slots [][]byte
	// N is the number of messages sent since it was last reset; a test sets it to 0 to
	// start over.
	N int

	batch int
}

var _ conn.Bind = (*CaptureBind)(nil)

// CaptureSlots is the number of messages a CaptureBind holds before N is reset.
const CaptureSlots = 1024

// NewCaptureBind returns a CaptureBind reporting batch as its batch size, with
// CaptureSlots slots of slotSize bytes.
func NewCaptureBind(batch, slotSize int) *CaptureBind {
	b := &CaptureBind{batch: batch, Slots: make([][]byte, CaptureSlots)}
	for i := range b.Slots {
		b.Slots[i] = make([]byte, slotSize)
	}
	return b
}

// Open returns no receive functions and port 1.
func (b *CaptureBind) Open(uint16) ([]conn.ReceiveFunc, uint16, error) { return nil, 1, nil }

// Close does nothing.
func (b *CaptureBind) Close() error { return nil }

// SetMark does nothing.
func (b *CaptureBind) SetMark(uint32) error { return nil }

// BatchSize returns the batch size given to NewCaptureBind.
func (b *CaptureBind) BatchSize() int { return b.batch }

// ParseEndpoint parses an address:port into an *Endpoint.
func (b *CaptureBind) ParseEndpoint(s string) (conn.Endpoint, error) {
	a, err := netip.ParseAddrPort(s)
	return &Endpoint{a}, err
}

// Send copies each message into the next slot (truncated to the slot's capacity). It does
// not retain bufs.
func (b *CaptureBind) Send(bufs [][]byte, _ conn.Endpoint) error {
	for _, m := range bufs {
		b.Slots[b.N] = b.Slots[b.N][:copy(b.Slots[b.N][:cap(b.Slots[b.N])], m)]
		b.N++
	}
	return nil
}

// Last returns the last message sent; nil when none was.
func (b *CaptureBind) Last() []byte {
	if b.N == 0 {
		return nil
	}
	return b.Slots[b.N-1]
}
