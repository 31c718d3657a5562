// Package usernet is a userspace TCP/IP stack (gVisor's) behind golang.zx2c4.com/wireguard's
// tun.Device, for weft's rootless mode: the tunnel reads the packets the stack sends and
// writes it the packets peers sent, and the host reaches the overlay only through the Dial
// and Listen functions here (the agent's proxies, forwards and exposes).
//
// It replaces wireguard-go's tun/netstack, whose device hands every outgoing packet from
// the stack's goroutine to Read through an unbuffered channel and reads one packet per
// call (BatchSize 1): the tunnel then sealed and sent each 1.4 KB packet with a syscall of
// its own, 39 % of the rootless agent's CPU in a profile. Here Read blocks for the first
// packet the stack queued and takes the others already queued with it, up to the caller's
// batch, so a TCP window's worth leaves in one sendmmsg with UDP GSO.
package usernet

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"syscall"

	"golang.zx2c4.com/wireguard/tun"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
)

const (
	nicID = 1
	// BatchSize is the most packets one Read returns: as many as the tunnel seals and
	// sends together (wireguard-go's conn.IdealBatchSize).
	BatchSize = 128
	// queueLen is the stack's outbound queue: packets wait there for Read. A full queue
	// drops (TCP retransmits), so it holds several batches.
	queueLen = 4 * BatchSize * 4
)

// Device is the stack as a tun.Device. Safe for one reader and concurrent writers.
type Device struct {
	ep     *channel.Endpoint
	stack  *stack.Stack
	mtu    int
	events chan tun.Event
	ctx    context.Context
	cancel context.CancelFunc
	once   sync.Once
}

var _ tun.Device = (*Device)(nil)

// New creates the stack with the given local addresses (IPv4 and/or IPv6), routes
// everything to the device, and returns it up.
func New(addrs []netip.Addr, mtu int) (*Device, error) {
	if mtu < 576 || mtu > 65535 {
		return nil, fmt.Errorf("usernet: mtu %d: must be 576 to 65535", mtu)
	}
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, ipv6.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol, icmp.NewProtocol4, icmp.NewProtocol6},
		HandleLocal:        true,
	})
	ctx, cancel := context.WithCancel(context.Background())
	d := &Device{ep: channel.New(queueLen, uint32(mtu), ""), stack: s, mtu: mtu, events: make(chan tun.Event, 1), ctx: ctx, cancel: cancel}
	fail := func(err error) (*Device, error) {
		d.Close()
		return nil, err
	}
	sack := tcpip.TCPSACKEnabled(true) // off by default in gVisor
	if err := s.SetTransportProtocolOption(tcp.ProtocolNumber, &sack); err != nil {
		return fail(fmt.Errorf("usernet: TCP SACK: %v", err))
	}
	moderate := tcpip.TCPModerateReceiveBufferOption(true) // grow the window with the rate, as Linux does
	if err := s.SetTransportProtocolOption(tcp.ProtocolNumber, &moderate); err != nil {
		return fail(fmt.Errorf("usernet: TCP receive buffer moderation: %v", err))
	}
	if err := s.CreateNIC(nicID, d.ep); err != nil {
		return fail(fmt.Errorf("usernet: create NIC: %v", err))
	}
	var v4, v6 bool
	for _, a := range addrs {
		proto := tcpip.NetworkProtocolNumber(ipv4.ProtocolNumber)
		if !a.Unmap().Is4() {
			proto = ipv6.ProtocolNumber
			v6 = true
		} else {
			a, v4 = a.Unmap(), true
		}
		pa := tcpip.ProtocolAddress{Protocol: proto, AddressWithPrefix: tcpip.AddrFromSlice(a.AsSlice()).WithPrefix()}
		if err := s.AddProtocolAddress(nicID, pa, stack.AddressProperties{}); err != nil {
			return fail(fmt.Errorf("usernet: address %s: %v", a, err))
		}
	}
	if v4 {
		s.AddRoute(tcpip.Route{Destination: header.IPv4EmptySubnet, NIC: nicID})
	}
	if v6 {
		s.AddRoute(tcpip.Route{Destination: header.IPv6EmptySubnet, NIC: nicID})
	}
	d.events <- tun.EventUp
	return d, nil
}

// Read blocks until the stack has a packet to send and returns it in bufs[0][offset:],
// then the packets already queued behind it in the following buffers, without blocking.
// A packet longer than its buffer is dropped (never expected: the stack sends at most
// the MTU). It returns os.ErrClosed once Close was called.
func (d *Device) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	pkt := d.ep.ReadContext(d.ctx)
	if pkt == nil {
		return 0, os.ErrClosed
	}
	n := 0
	for pkt != nil {
		if size, ok := copyOut(bufs[n][offset:], pkt); ok {
			sizes[n] = size
			n++
		}
		if n == len(bufs) || n == len(sizes) {
			break
		}
		pkt = d.ep.Read()
	}
	return n, nil
}

// copyOut copies the packet into dst and releases it; false when it does not fit.
func copyOut(dst []byte, pkt *stack.PacketBuffer) (int, bool) {
	defer pkt.DecRef()
	if pkt.Size() > len(dst) {
		return 0, false
	}
	n := 0
	for _, s := range pkt.AsSlices() {
		n += copy(dst[n:], s)
	}
	return n, true
}

// Write hands each packet at bufs[i][offset:] (IPv4 or IPv6) to the stack.
func (d *Device) Write(bufs [][]byte, offset int) (int, error) {
	for i, b := range bufs {
		pkt := b[offset:]
		if len(pkt) == 0 {
			continue
		}
		var proto tcpip.NetworkProtocolNumber
		switch pkt[0] >> 4 {
		case 4:
			proto = ipv4.ProtocolNumber
		case 6:
			proto = ipv6.ProtocolNumber
		default:
			return i, syscall.EAFNOSUPPORT
		}
		pb := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(pkt)})
		d.ep.InjectInbound(proto, pb)
		pb.DecRef()
	}
	return len(bufs), nil
}

// Close stops the stack and ends a blocked Read. Idempotent.
func (d *Device) Close() error {
	d.once.Do(func() {
		d.cancel()
		d.stack.RemoveNIC(nicID)
		d.stack.Close()
		d.ep.Close()
		close(d.events)
	})
	return nil
}

func (d *Device) File() *os.File           { return nil }
func (d *Device) MTU() (int, error)        { return d.mtu, nil }
func (d *Device) Name() (string, error)    { return "usernet", nil }
func (d *Device) Events() <-chan tun.Event { return d.events }
func (d *Device) BatchSize() int           { return BatchSize }

// fullAddr is a's FullAddress on the device's NIC and its network protocol.
func fullAddr(a netip.AddrPort) (tcpip.FullAddress, tcpip.NetworkProtocolNumber) {
	ip := a.Addr().Unmap()
	proto := tcpip.NetworkProtocolNumber(ipv4.ProtocolNumber)
	if ip.Is6() {
		proto = ipv6.ProtocolNumber
	}
	fa := tcpip.FullAddress{NIC: nicID, Port: a.Port()}
	if ip.IsValid() {
		fa.Addr = tcpip.AddrFromSlice(ip.AsSlice())
	}
	return fa, proto
}

// DialTCP connects to dst through the stack.
func (d *Device) DialTCP(ctx context.Context, dst netip.AddrPort) (*gonet.TCPConn, error) {
	fa, proto := fullAddr(dst)
	return gonet.DialContextTCP(ctx, d.stack, fa, proto)
}

// ListenTCP listens on at (one of the stack's addresses) inside the stack.
func (d *Device) ListenTCP(at netip.AddrPort) (*gonet.TCPListener, error) {
	fa, proto := fullAddr(at)
	return gonet.ListenTCP(d.stack, fa, proto)
}

// DialUDP opens a UDP socket from laddr (port 0: any) connected to raddr.
func (d *Device) DialUDP(laddr, raddr netip.AddrPort) (*gonet.UDPConn, error) {
	if !raddr.IsValid() {
		return nil, errors.New("usernet: DialUDP needs a remote address")
	}
	l, proto := fullAddr(laddr)
	r, _ := fullAddr(raddr)
	return gonet.DialUDP(d.stack, &l, &r, proto)
}

// ListenUDP opens an unconnected UDP socket on at.
func (d *Device) ListenUDP(at netip.AddrPort) (*gonet.UDPConn, error) {
	l, proto := fullAddr(at)
	return gonet.DialUDP(d.stack, &l, nil, proto)
}
