package udp

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/conn"
)

// openT opens b on any port and closes it in t.Cleanup.
func openT(t testing.TB, b conn.Bind) ([]conn.ReceiveFunc, uint16) {
	t.Helper()
	fns, port, err := b.Open(0)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return fns, port
}

// receiver reads from one receive function into its own buffers.
type receiver struct {
	fn    conn.ReceiveFunc
	bufs  [][]byte
	sizes []int
	eps   []conn.Endpoint
}

func newReceiver(fn conn.ReceiveFunc, batch int) *receiver {
	r := &receiver{fn: fn, bufs: make([][]byte, batch), sizes: make([]int, batch), eps: make([]conn.Endpoint, batch)}
	for i := range r.bufs {
		r.bufs[i] = make([]byte, 65536)
	}
	return r
}

// recvN reads until want datagrams came (sizes 0 skipped), calling each on every one. A
// watchdog closes bind after a deadline, so a lost datagram fails instead of hanging.
func (r *receiver) recvN(t testing.TB, bind conn.Bind, want int, each func(b []byte, ep conn.Endpoint)) {
	t.Helper()
	done := make(chan struct{})
	defer close(done)
	timedOut := make(chan struct{})
	go func() {
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			close(timedOut)
			bind.Close()
		}
	}()
	got := 0
	for got < want {
		n, err := r.fn(r.bufs, r.sizes, r.eps)
		if err != nil {
			select {
			case <-timedOut:
				t.Fatalf("received %d of %d datagrams before the deadline", got, want)
			default:
			}
			t.Fatalf("receive: %v", err)
		}
		for i := 0; i < n; i++ {
			if r.sizes[i] == 0 {
				continue
			}
			got++
			if each != nil {
				each(r.bufs[i][:r.sizes[i]], r.eps[i])
			}
		}
	}
}

func fnFor(fns []conn.ReceiveFunc, v6 bool) conn.ReceiveFunc {
	if v6 {
		return fns[1]
	}
	return fns[0]
}

func loopback(v6 bool) netip.Addr {
	if v6 {
		return netip.IPv6Loopback()
	}
	return netip.AddrFrom4([4]byte{127, 0, 0, 1})
}

// payloads makes datagrams of the given sizes, each filled with its index.
func payloads(sizes ...int) [][]byte {
	out := make([][]byte, len(sizes))
	for i, n := range sizes {
		out[i] = bytes.Repeat([]byte{byte(i)}, n)
	}
	return out
}

func repeat(n, size int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = size
	}
	return s
}

func TestBind_RoundTrip(t *testing.T) {
	cases := []struct {
		name  string
		sizes []int
	}{
		{"one", []int{100}},
		{"gso run 64x1400", repeat(64, 1400)},
		{"full batch 128x1400", repeat(128, 1400)},
		{"runs with short tails", append(append(append(repeat(5, 1400), 1000), repeat(3, 1400)...), 20, 1, 1)},
		{"growing sizes", []int{10, 20, 30, 40, 1500, 1500, 9000}},
		{"more than a batch", repeat(300, 200)},
		{"64k payload run", repeat(50, 1460)}, // more than 65535 bytes: two GSO messages
		{"zero length", []int{0, 5}},
	}
	for _, v6 := range []bool{false, true} {
		a, b := NewBind(), NewBind()
		_, portA := openT(t, a)
		fnsB, portB := openT(t, b)
		r := newReceiver(fnFor(fnsB, v6), a.BatchSize())
		dst, _ := b.ParseEndpoint(netip.AddrPortFrom(loopback(v6), portB).String())
		for _, c := range cases {
			t.Run(c.name+map[bool]string{false: "/v4", true: "/v6"}[v6], func(t *testing.T) {
				msgs := payloads(c.sizes...)
				if err := a.Send(msgs, dst); err != nil {
					t.Fatalf("Send: %v", err)
				}
				want := 0
				for _, m := range msgs {
					if len(m) > 0 {
						want++
					}
				}
				i := 0
				r.recvN(t, b, want, func(got []byte, ep conn.Endpoint) {
					for i < len(msgs) && len(msgs[i]) == 0 {
						i++
					}
					if !bytes.Equal(got, msgs[i]) {
						t.Fatalf("datagram %d: got %d bytes (first %x), want %d bytes of %x", i, len(got), got[:min(len(got), 1)], len(msgs[i]), byte(i))
					}
					e := ep.(*Endpoint)
					if want := netip.AddrPortFrom(loopback(v6), portA); e.AddrPort() != want || e.Port() != portA || e.DstIP() != loopback(v6) {
						t.Fatalf("endpoint %v, want %v", e.AddrPort(), want)
					}
					if e.SrcIP() != loopback(v6) {
						t.Fatalf("sticky source %v, want %v", e.SrcIP(), loopback(v6))
					}
					i++
				})
			})
		}
	}
}

// TestBind_GSOGRO checks that a run of equal datagrams leaves as one GSO message and
// arrives as one GRO super-datagram, split into one buffer each (on kernels with both).
func TestBind_GSOGRO(t *testing.T) {
	a, b := NewBind(), NewBind()
	openT(t, a)
	fnsB, portB := openT(t, b)
	s := b.v4.Load()
	if !a.v4.Load().txOffload.Load() || !s.rxOffload {
		t.Skip("kernel without UDP GSO or GRO")
	}
	dst, _ := a.ParseEndpoint(netip.AddrPortFrom(loopback(false), portB).String())
	msgs := payloads(repeat(40, 1400)...)
	if err := a.Send(msgs, dst); err != nil {
		t.Fatal(err)
	}
	r := newReceiver(fnsB[0], b.BatchSize())
	n, err := r.fn(r.bufs, r.sizes, r.eps)
	if err != nil {
		t.Fatal(err)
	}
	if s.recv.got != 1 || n != len(msgs) {
		t.Fatalf("recvmmsg returned %d messages split into %d datagrams, want 1 into %d", s.recv.got, n, len(msgs))
	}
	for i := 0; i < n; i++ {
		if !bytes.Equal(r.bufs[i][:r.sizes[i]], msgs[i]) {
			t.Fatalf("datagram %d differs", i)
		}
	}
}

// TestBind_Oversize: a datagram the kernel cannot send fails Send with EMSGSIZE, and the
// rest of the batch is sent.
func TestBind_Oversize(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		a, b := NewBind(), NewBind()
		openT(t, a)
		fnsB, portB := openT(t, b)
		dst, _ := a.ParseEndpoint(netip.AddrPortFrom(loopback(v6), portB).String())
		msgs := payloads(100, 70000, 100)
		err := a.Send(msgs, dst)
		if !errors.Is(err, syscall.EMSGSIZE) {
			t.Fatalf("v6=%v: Send of a 70000-byte datagram: %v, want EMSGSIZE", v6, err)
		}
		r := newReceiver(fnFor(fnsB, v6), b.BatchSize())
		r.recvN(t, b, 2, nil)
	}
}

func TestBind_OpenClose(t *testing.T) {
	b := NewBind()
	fns, port, err := b.Open(0)
	if err != nil {
		t.Fatal(err)
	}
	if len(fns) != 2 || port == 0 {
		t.Fatalf("Open: %d functions, port %d", len(fns), port)
	}
	if _, _, err := b.Open(0); !errors.Is(err, conn.ErrBindAlreadyOpen) {
		t.Fatalf("second Open: %v", err)
	}
	if err := b.SetMark(0x77); err != nil {
		t.Fatalf("SetMark: %v", err)
	}
	errs := make(chan error, len(fns))
	for _, fn := range fns {
		go func() {
			r := newReceiver(fn, 8)
			_, err := r.fn(r.bufs, r.sizes, r.eps)
			errs <- err
		}()
	}
	time.Sleep(20 * time.Millisecond) // let them block (not needed for correctness)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	for range fns {
		if err := <-errs; !errors.Is(err, net.ErrClosed) {
			t.Fatalf("receive after Close: %v", err)
		}
	}
	ep, _ := b.ParseEndpoint("127.0.0.1:9")
	if err := b.Send([][]byte{{1}}, ep); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Send after Close: %v", err)
	}
	// Reopen on the same port, as wireguard-go does on a bind update.
	if _, p2, err := b.Open(port); err != nil || p2 != port {
		t.Fatalf("reopen on %d: port %d, %v", port, p2, err)
	}
	b.Close()
	if err := b.Send([][]byte{{1}}, &wrongEndpoint{}); !errors.Is(err, conn.ErrWrongEndpointType) {
		t.Fatalf("Send to a foreign endpoint: %v", err)
	}
}

type wrongEndpoint struct{ conn.Endpoint }

func TestBind_ParseEndpoint(t *testing.T) {
	b := NewBind()
	for in, want := range map[string]string{
		"192.0.2.1:51820":          "192.0.2.1:51820",
		"[::ffff:192.0.2.1]:51820": "192.0.2.1:51820",
		"[2001:db8::1]:1":          "[2001:db8::1]:1",
	} {
		ep, err := b.ParseEndpoint(in)
		if err != nil || ep.DstToString() != want || ep.SrcIP().IsValid() || ep.SrcToString() != "" {
			t.Errorf("ParseEndpoint(%q) = %v, %v", in, ep, err)
		}
	}
	if ep, err := b.ParseEndpoint("[fe80::1%lo]:7"); err != nil || ep.(*Endpoint).scope != 1 || ep.DstToString() != "[fe80::1%lo]:7" {
		t.Errorf("ParseEndpoint with zone lo: %v, %v", ep, err)
	}
	if ep, err := b.ParseEndpoint("[fe80::1%7]:7"); err != nil || ep.(*Endpoint).scope != 7 {
		t.Errorf("ParseEndpoint with zone 7: %v, %v", ep, err)
	}
	var sa [28]byte
	if n := putSockaddr(&sa, netip.MustParseAddrPort("[fe80::1]:7"), 7); n != 28 || sockaddrScope(sa[:n]) != 7 {
		t.Errorf("sockaddr_in6 scope %d (%d bytes), want 7", sockaddrScope(sa[:n]), n)
	}
	for _, in := range []string{"", "192.0.2.1", "host:1", "[::1]:99999", "[fe80::1%no-such-if0]:7"} {
		if _, err := b.ParseEndpoint(in); err == nil {
			t.Errorf("ParseEndpoint(%q) accepted", in)
		}
	}
}

func TestBind_RouteMTU(t *testing.T) {
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Skip(err)
	}
	b := NewBind()
	for _, a := range []netip.Addr{loopback(false), loopback(true)} {
		mtu, err := b.RouteMTU(a)
		want := lo.MTU
		if a.Is4() {
			want = min(want, 65535) // IP_MTU is capped at IP_MAX_MTU, IPV6_MTU is not
		}
		if err != nil || mtu != want {
			t.Errorf("RouteMTU(%v) = %d, %v; want lo's %d", a, mtu, err, want)
		}
	}
	if _, err := b.RouteMTU(netip.Addr{}); err == nil {
		t.Error("RouteMTU of the zero Addr accepted")
	}
}

// TestBind_SendReceiveAlloc: steady-state Send and receive allocate nothing (sticky source
// on, GSO and GRO where the kernel has them).
func TestBind_SendReceiveAlloc(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates; make test-norace runs this")
	}
	for _, v6 := range []bool{false, true} {
		a, b := NewBind(), NewBind()
		fnsA, portA := openT(t, a)
		fnsB, portB := openT(t, b)
		rA := newReceiver(fnFor(fnsA, v6), a.BatchSize())
		rB := newReceiver(fnFor(fnsB, v6), b.BatchSize())
		dst, _ := a.ParseEndpoint(netip.AddrPortFrom(loopback(v6), portB).String())
		msgs := payloads(append(repeat(16, 1400), 100)...)
		var back conn.Endpoint // b's endpoint for a, with its sticky source
		// recv reads want datagrams without recvN's watchdog (it allocates); a lost
		// datagram hangs until the test binary's -timeout.
		recv := func(r *receiver, want int, keep *conn.Endpoint) {
			for got := 0; got < want; {
				n, err := r.fn(r.bufs, r.sizes, r.eps)
				if err != nil {
					t.Fatal(err)
				}
				for i := 0; i < n; i++ {
					if r.sizes[i] > 0 {
						got++
						*keep = r.eps[i]
					}
				}
			}
		}
		round := func() {
			if err := a.Send(msgs, dst); err != nil {
				t.Fatal(err)
			}
			recv(rB, len(msgs), &back)
			if err := b.Send(msgs[:1], back); err != nil {
				t.Fatal(err)
			}
			var fromB conn.Endpoint
			recv(rA, 1, &fromB)
		}
		round()
		if got := back.(*Endpoint).AddrPort(); got != netip.AddrPortFrom(loopback(v6), portA) {
			t.Fatalf("endpoint %v", got)
		}
		if n := testing.AllocsPerRun(200, round); n != 0 {
			t.Errorf("v6=%v: %.1f allocations per round trip, want 0", v6, n)
		}
	}
}
