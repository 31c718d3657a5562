package udp

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/conn"

	"github.com/weftnet/weft/internal/netlab"
)

// inNetns runs fn on an OS thread moved into host's network namespace: sockets fn creates
// live there for good (a socket keeps the namespace it was made in). The thread goes back
// to the test's namespace afterwards; should that fail, it stays locked and the runtime
// ends it with its goroutine (or, the main thread, parks it).
func inNetns(t *testing.T, h *netlab.Host, fn func()) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer unix.Close(orig)
		fd, err := unix.Open("/run/netns/"+h.NS, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		returned := false
		defer func() {
			if !returned { // fn ended the goroutine (t.FailNow there): say so, never hang
				errc <- errors.New("fn did not return (a t.Fatal inside inNetns?); its thread stays locked and is discarded")
			}
		}()
		fn()
		returned = true
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			errc <- err // the thread stays locked: never reused in the wrong namespace
			return
		}
		runtime.UnlockOSThread()
		errc <- nil
	}()
	if err := <-errc; err != nil {
		t.Fatalf("in %s: %v", h.NS, err)
	}
}

func mustRun(t *testing.T, h *netlab.Host, args ...string) {
	t.Helper()
	if _, err := h.Run(args[0], args[1:]...); err != nil {
		t.Fatal(err)
	}
}

// addrs adds CIDR addresses to a link (IPv6 without duplicate address detection, so that
// they are usable at once).
func addrs(t *testing.T, h *netlab.Host, dev string, cidrs ...string) {
	t.Helper()
	for _, c := range cidrs {
		args := []string{"ip", "addr", "add", c, "dev", dev}
		if netip.MustParsePrefix(c).Addr().Is6() {
			args = append(args, "nodad")
		}
		mustRun(t, h, args...)
	}
}

// openIn opens a bind inside h's namespace, runs a reader goroutine per receive function
// (as the tunnel does) delivering datagrams to got, and closes it in t.Cleanup.
func openIn(t *testing.T, h *netlab.Host, handler func(SendError), got chan<- []byte) (*Bind, uint16) {
	t.Helper()
	b := NewBind()
	b.SetErrorHandler(handler)
	var (
		fns  []conn.ReceiveFunc
		port uint16
		err  error
	)
	inNetns(t, h, func() { fns, port, err = b.Open(0) })
	if err != nil {
		t.Fatalf("Open in %s: %v", h.Name, err)
	}
	t.Cleanup(func() { b.Close() })
	for _, fn := range fns {
		go func() {
			r := newReceiver(fn, b.BatchSize())
			for {
				n, err := r.fn(r.bufs, r.sizes, r.eps)
				if err != nil {
					return
				}
				for i := 0; i < n; i++ {
					if r.sizes[i] > 0 && got != nil {
						select {
						case got <- bytes.Clone(r.bufs[i][:r.sizes[i]]):
						default:
						}
					}
				}
			}
		}()
	}
	return b, port
}

func routeMTU(t *testing.T, h *netlab.Host, b *Bind, dst string) int {
	t.Helper()
	var (
		mtu int
		err error
	)
	inNetns(t, h, func() { mtu, err = b.RouteMTU(netip.MustParseAddr(dst)) })
	if err != nil {
		t.Fatalf("RouteMTU(%s): %v", dst, err)
	}
	return mtu
}

func timeout() <-chan time.Time { return time.After(10 * time.Second) }

func expectDatagram(t *testing.T, got <-chan []byte, want []byte) {
	t.Helper()
	select {
	case g := <-got:
		if !bytes.Equal(g, want) {
			t.Fatalf("received %d bytes, want %d", len(g), len(want))
		}
	case <-timeout():
		t.Fatalf("the %d-byte datagram did not arrive", len(want))
	}
}

// TestNetns_ICMPFragNeeded: a — r — b, r's link toward b has MTU 1400. A datagram making a
// 1500-byte IP packet leaves a with DF (the router cannot fragment it) and the router's
// "fragmentation needed" (IPv6: "packet too big") reaches the handler through the error
// queue with MTU 1400; a 1400-byte one passes. RouteMTU reads the device MTU, a route's
// mtu metric and the learned PMTU; Send ignores the learned PMTU (weft owns it).
func TestNetns_ICMPFragNeeded(t *testing.T) {
	lab := netlab.NewT(t)
	a, err := lab.AddHost("a")
	if err != nil {
		t.Fatal(err)
	}
	r, err := lab.AddHost("r")
	if err != nil {
		t.Fatal(err)
	}
	bh, err := lab.AddHost("b")
	if err != nil {
		t.Fatal(err)
	}
	if err := lab.Link(a, "eth0", "", r, "ra", ""); err != nil {
		t.Fatal(err)
	}
	if err := lab.Link(r, "rb", "", bh, "eth0", ""); err != nil {
		t.Fatal(err)
	}
	addrs(t, a, "eth0", "10.77.1.2/24", "fd77:1::2/64")
	addrs(t, r, "ra", "10.77.1.1/24", "fd77:1::1/64")
	addrs(t, r, "rb", "10.77.2.1/24", "fd77:2::1/64")
	addrs(t, bh, "eth0", "10.77.2.2/24", "fd77:2::2/64")
	mustRun(t, r, "ip", "link", "set", "rb", "mtu", "1400")
	mustRun(t, r, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
	mustRun(t, a, "ip", "route", "add", "default", "via", "10.77.1.1")
	mustRun(t, a, "ip", "-6", "route", "add", "default", "via", "fd77:1::1")
	mustRun(t, bh, "ip", "route", "add", "default", "via", "10.77.2.1")
	mustRun(t, bh, "ip", "-6", "route", "add", "default", "via", "fd77:2::1")

	col := newErrCollector()
	bindA, _ := openIn(t, a, col.handle, nil)
	got := make(chan []byte, 16)
	_, portB := openIn(t, bh, nil, got)

	for _, c := range []struct {
		name, dst, far, router string
		hdr                    int
		typ, code              uint8
	}{
		{"v4", "10.77.2.2", "10.77.3.9", "10.77.1.1", 28, 3, 4},
		{"v6", "fd77:2::2", "fd77:3::9", "fd77:1::1", 48, 2, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			if m := routeMTU(t, a, bindA, c.dst); m != 1500 {
				t.Errorf("RouteMTU(b) before = %d, want a's device MTU 1500", m)
			}
			if c.name == "v6" {
				mustRun(t, a, "ip", "-6", "route", "add", "fd77:3::/64", "via", c.router, "mtu", "1400")
			} else {
				mustRun(t, a, "ip", "route", "add", "10.77.3.0/24", "via", c.router, "mtu", "1400")
			}
			if m := routeMTU(t, a, bindA, c.far); m != 1400 {
				t.Errorf("RouteMTU through a route with mtu 1400 = %d", m)
			}

			dst := netip.AddrPortFrom(netip.MustParseAddr(c.dst), portB)
			ep, _ := bindA.ParseEndpoint(dst.String())
			fits := bytes.Repeat([]byte{0xf1}, 1400-c.hdr)
			if err := bindA.Send([][]byte{fits}, ep); err != nil {
				t.Fatalf("Send of a 1400-byte packet: %v", err)
			}
			expectDatagram(t, got, fits)

			big := bytes.Repeat([]byte{0xb1}, 1500-c.hdr)
			copy(big, "weft-probe")
			if err := bindA.Send([][]byte{big}, ep); err != nil {
				t.Fatalf("Send of a 1500-byte packet: %v", err)
			}
			e := col.wait(t, func(e SendError) bool { return e.Dst == dst && e.Errno == syscall.EMSGSIZE })
			if e.Local || e.MTU != 1400 || e.From != netip.MustParseAddr(c.router) || e.Type != c.typ || e.Code != c.code {
				t.Errorf("SendError %+v: want MTU 1400 from the router %s, ICMP %d/%d", e, c.router, c.typ, c.code)
			}
			if len(e.Quote) < 8 || !bytes.HasPrefix(big, e.Quote) {
				t.Errorf("quote (%d bytes) is not the start of the datagram", len(e.Quote))
			}
			select {
			case g := <-got:
				t.Fatalf("b received %d bytes: the datagram was fragmented", len(g))
			default:
			}
			if m := routeMTU(t, a, bindA, c.dst); m != 1400 {
				t.Errorf("RouteMTU(b) after the ICMP error = %d, want the learned 1400", m)
			}
			// The learned PMTU does not bind the bind: a probe of 1500 still leaves.
			if err := bindA.Send([][]byte{big}, ep); err != nil {
				t.Errorf("Send of 1500 after the kernel learned 1400: %v (weft owns the PMTU)", err)
			}
		})
	}
}

// TestNetns_DeviceMTU: a's device has MTU 1400. A datagram one byte too big fails Send with
// EMSGSIZE and is never sent fragmented; the kernel's local error (MTU 1400) reaches the
// handler. A GSO run whose segments are one byte too big fails too (the kernel says
// EINVAL), reported so that errors.Is(err, syscall.EMSGSIZE) holds; a run that fits passes.
func TestNetns_DeviceMTU(t *testing.T) {
	a, bh := netlab.PairT(t, "eth0", "10.78.0.1/24", "10.78.0.2/24")
	addrs(t, a, "eth0", "fd78::1/64")
	addrs(t, bh, "eth0", "fd78::2/64")
	mustRun(t, a, "ip", "link", "set", "eth0", "mtu", "1400")

	col := newErrCollector()
	bindA, _ := openIn(t, a, col.handle, nil)
	got := make(chan []byte, 256)
	_, portB := openIn(t, bh, nil, got)

	for _, c := range []struct {
		name, dst string
		hdr       int
	}{{"v4", "10.78.0.2", 28}, {"v6", "fd78::2", 48}} {
		t.Run(c.name, func(t *testing.T) {
			dst := netip.AddrPortFrom(netip.MustParseAddr(c.dst), portB)
			ep, _ := bindA.ParseEndpoint(dst.String())
			if m := routeMTU(t, a, bindA, c.dst); m != 1400 {
				t.Errorf("RouteMTU = %d, want the device's 1400", m)
			}
			over := bytes.Repeat([]byte{0x0e}, 1400-c.hdr+1)
			fits := bytes.Repeat([]byte{0xf1}, 1400-c.hdr)

			err := bindA.Send([][]byte{over, fits}, ep)
			if !errors.Is(err, syscall.EMSGSIZE) {
				t.Fatalf("Send of a datagram over the device MTU: %v, want EMSGSIZE", err)
			}
			expectDatagram(t, got, fits) // the rest of the batch left; the big one did not
			e := col.wait(t, func(e SendError) bool { return e.Local && e.Dst.Addr() == dst.Addr() })
			if e.Errno != syscall.EMSGSIZE || e.MTU != 1400 || e.From.IsValid() {
				t.Errorf("local SendError %+v: want EMSGSIZE, MTU 1400, no reporter", e)
			}

			run := make([][]byte, 10)
			for i := range run {
				run[i] = over
			}
			before := bindA.Stats().GSOSizeRefused
			err = bindA.Send(run, ep)
			if bindA.Stats().GSOSizeRefused == before && bindA.v4.Load().txOffload.Load() {
				t.Errorf("the kernel did not refuse the GSO run for its size")
			}
			t.Logf("GSO run of %d-byte segments over a 1400 MTU: %v", len(over), err)
			if !errors.Is(err, syscall.EMSGSIZE) {
				t.Fatalf("GSO Send over the device MTU: %v, want errors.Is EMSGSIZE", err)
			}
			for i := range run {
				run[i] = fits
			}
			if err := bindA.Send(run, ep); err != nil {
				t.Fatalf("GSO Send of segments that fit: %v", err)
			}
			for range run {
				expectDatagram(t, got, fits)
			}
			select {
			case g := <-got:
				t.Fatalf("b received %d more bytes: an oversize datagram left", len(g))
			case <-time.After(100 * time.Millisecond):
			}
		})
	}
}

// TestNetns_GSOFallback: on a device without transmit checksum offload, older kernels refuse
// UDP GSO (EIO) and the bind turns GSO off for the socket; newer ones (6.18 here) segment
// and checksum in software. Either way the batch arrives whole.
func TestNetns_GSOFallback(t *testing.T) {
	netlab.RequireTools(t, "ethtool")
	a, bh := netlab.PairT(t, "eth0", "10.79.0.1/24", "10.79.0.2/24")
	mustRun(t, a, "ethtool", "-K", "eth0", "tx", "off")
	bindA, _ := openIn(t, a, nil, nil)
	got := make(chan []byte, 256)
	_, portB := openIn(t, bh, nil, got)
	if !bindA.v4.Load().txOffload.Load() {
		t.Skip("kernel without UDP GSO")
	}
	ep, _ := bindA.ParseEndpoint(netip.AddrPortFrom(netip.MustParseAddr("10.79.0.2"), portB).String())
	msgs := payloads(repeat(10, 1000)...)
	if err := bindA.Send(msgs, ep); err != nil {
		t.Fatalf("Send: %v", err)
	}
	for i := range msgs {
		expectDatagram(t, got, msgs[i])
	}
	s := bindA.Stats()
	if off := !bindA.v4.Load().txOffload.Load(); off != (s.GSOFallbacks == 1) {
		t.Fatalf("stats %+v with GSO off=%v: want one fallback exactly when GSO is off", s, off)
	}
	t.Logf("the kernel refused GSO (EIO): %v", s.GSOFallbacks == 1)
	if err := bindA.Send(msgs, ep); err != nil {
		t.Fatalf("Send without GSO: %v", err)
	}
	for i := range msgs {
		expectDatagram(t, got, msgs[i])
	}
}

// TestNetns_LinkLocal: a peer at an IPv6 link-local address, named with its zone, is reached,
// and the reply through the received endpoint (which keeps the scope id) comes back.
func TestNetns_LinkLocal(t *testing.T) {
	a, bh := netlab.PairT(t, "eth0", "", "")
	addrs(t, a, "eth0", "fe80::a/64")
	addrs(t, bh, "eth0", "fe80::b/64")
	gotA := make(chan []byte, 4)
	bindA, portA := openIn(t, a, nil, gotA)
	bindB := NewBind()
	fns, portB, err := func() (fns []conn.ReceiveFunc, port uint16, err error) {
		inNetns(t, bh, func() { fns, port, err = bindB.Open(0) })
		return
	}()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bindB.Close() })

	var ep conn.Endpoint
	inNetns(t, a, func() { ep, err = bindA.ParseEndpoint(fmt.Sprintf("[fe80::b%%eth0]:%d", portB)) })
	if err != nil {
		t.Fatal(err)
	}
	if err := bindA.Send([][]byte{[]byte("ping")}, ep); err != nil {
		t.Fatalf("Send to a link-local peer: %v", err)
	}
	var back conn.Endpoint
	newReceiver(fns[1], 8).recvN(t, bindB, 1, func(_ []byte, e conn.Endpoint) { back = e })
	if got := back.(*Endpoint); got.AddrPort() != netip.AddrPortFrom(netip.MustParseAddr("fe80::a"), portA) || got.scope == 0 {
		t.Fatalf("endpoint %v scope %d: want fe80::a with the scope of b's eth0", got.AddrPort(), got.scope)
	}
	back.ClearSrc() // the reply finds its way by the scope id alone
	if err := bindB.Send([][]byte{[]byte("pong")}, back); err != nil {
		t.Fatalf("reply to a link-local peer: %v", err)
	}
	expectDatagram(t, gotA, []byte("pong"))
}
