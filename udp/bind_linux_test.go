package udp

import (
	"bytes"
	"net/netip"
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
