package udp

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// closedPort returns a UDP port on addr nobody listens on (bound a moment, then closed).
func closedPort(t *testing.T, addr netip.Addr) uint16 {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, 0)))
	if err != nil {
		t.Fatal(err)
	}
	p := c.LocalAddr().(*net.UDPAddr).Port
	c.Close()
	return uint16(p)
}

// errCollector is an error handler that keeps copies of what it gets.
type errCollector struct {
	mu   sync.Mutex
	errs []SendError
	ch   chan struct{}
}

func newErrCollector() *errCollector { return &errCollector{ch: make(chan struct{}, 1000)} }

func (c *errCollector) handle(e SendError) {
	e.Quote = bytes.Clone(e.Quote)
	c.mu.Lock()
	c.errs = append(c.errs, e)
	c.mu.Unlock()
	select {
	case c.ch <- struct{}{}:
	default:
	}
}

// wait returns the first collected error that match accepts, failing t after a deadline.
func (c *errCollector) wait(t *testing.T, match func(SendError) bool) SendError {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		c.mu.Lock()
		for _, e := range c.errs {
			if match(e) {
				c.mu.Unlock()
				return e
			}
		}
		seen := append([]SendError(nil), c.errs...)
		c.mu.Unlock()
		select {
		case <-c.ch:
		case <-deadline:
			t.Fatalf("no matching SendError before the deadline; got %+v", seen)
		}
	}
}

// TestBind_ErrQueuePortUnreachable sends to a closed port over loopback: the kernel's ICMP
// port unreachable comes back through the error queue to the handler, and receiving goes on
// (the sk_err that RECVERR sets does not stop the receive function or lose datagrams).
func TestBind_ErrQueuePortUnreachable(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		t.Run(map[bool]string{false: "v4", true: "v6"}[v6], func(t *testing.T) {
			a, b := NewBind(), NewBind()
			col := newErrCollector()
			a.SetErrorHandler(col.handle)
			fnsA, portA := openT(t, a)
			fnsB, portB := openT(t, b)
			lo := loopback(v6)
			closed := closedPort(t, lo)

			// A reader on a, as the tunnel runs one per receive function.
			var (
				mu  sync.Mutex
				got [][]byte
			)
			rA := newReceiver(fnFor(fnsA, v6), a.BatchSize())
			readerDone := make(chan error, 1)
			go func() {
				for {
					n, err := rA.fn(rA.bufs, rA.sizes, rA.eps)
					if err != nil {
						readerDone <- err
						return
					}
					mu.Lock()
					for i := 0; i < n; i++ {
						if rA.sizes[i] > 0 {
							got = append(got, bytes.Clone(rA.bufs[i][:rA.sizes[i]]))
						}
					}
					mu.Unlock()
				}
			}()

			dead, _ := a.ParseEndpoint(netip.AddrPortFrom(lo, closed).String())
			msg := []byte("hello, is anyone listening on this port?")
			if err := a.Send([][]byte{msg}, dead); err != nil {
				t.Fatalf("Send to a closed port: %v", err)
			}
			e := col.wait(t, func(e SendError) bool { return e.Errno == syscall.ECONNREFUSED })
			if e.Dst != netip.AddrPortFrom(lo, closed) || e.From != lo || e.Local || e.MTU != 0 {
				t.Errorf("SendError %+v: want Dst %v From %v, not local, no MTU", e, netip.AddrPortFrom(lo, closed), lo)
			}
			wantType, wantCode := uint8(3), uint8(3) // ICMP destination unreachable, port
			if v6 {
				wantType, wantCode = 1, 4 // ICMPv6 destination unreachable, port
			}
			if e.Type != wantType || e.Code != wantCode {
				t.Errorf("type/code %d/%d, want %d/%d", e.Type, e.Code, wantType, wantCode)
			}
			if !bytes.Equal(e.Quote, msg) {
				t.Errorf("quote %q, want %q", e.Quote, msg)
			}

			// More errors (each sets sk_err) interleaved with datagrams from b: all arrive.
			epA, _ := b.ParseEndpoint(netip.AddrPortFrom(lo, portA).String())
			const rounds = 20
			for i := 0; i < rounds; i++ {
				if err := a.Send([][]byte{msg}, dead); err != nil && !errors.Is(err, syscall.ECONNREFUSED) {
					t.Fatalf("Send %d to a closed port: %v", i, err)
				}
				if err := b.Send([][]byte{{byte(i)}}, epA); err != nil {
					t.Fatalf("Send %d to a: %v", i, err)
				}
			}
			deadline := time.Now().Add(10 * time.Second)
			for {
				mu.Lock()
				n := len(got)
				mu.Unlock()
				if n == rounds {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("a received %d of %d datagrams", n, rounds)
				}
				time.Sleep(5 * time.Millisecond)
			}
			select {
			case err := <-readerDone:
				t.Fatalf("a's receive function stopped: %v", err)
			default:
			}
			if s := a.Stats(); s.ErrQueueReported < 2 || s.ErrQueueMalformed != 0 {
				t.Errorf("stats %+v: want several reported, none malformed", s)
			}
			_ = portB
			_ = fnsB
			a.Close()
			if err := <-readerDone; !errors.Is(err, net.ErrClosed) {
				t.Errorf("receive after Close: %v, want net.ErrClosed", err)
			}
		})
	}
}

// waitPollErr waits until s's socket reports POLLERR (an error is queued) without reading it.
func waitPollErr(t *testing.T, s *socket) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var revents int16
		_ = s.rc.Control(func(fd uintptr) {
			p := []unix.PollFd{{Fd: int32(fd), Events: 0}}
			if n, _ := unix.Poll(p, 0); n > 0 {
				revents = p[0].Revents
			}
		})
		if revents&unix.POLLERR != 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no error queued before the deadline")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestBind_SendAfterPendingICMP: an ICMP error pending on the socket (sk_err, with no reader
// to take it) does not fail the next Send to another peer, and the next receive reports it.
func TestBind_SendAfterPendingICMP(t *testing.T) {
	a, b := NewBind(), NewBind()
	col := newErrCollector()
	a.SetErrorHandler(col.handle)
	fnsA, portA := openT(t, a)
	fnsB, portB := openT(t, b)
	lo := loopback(false)
	dead, _ := a.ParseEndpoint(netip.AddrPortFrom(lo, closedPort(t, lo)).String())
	live, _ := a.ParseEndpoint(netip.AddrPortFrom(lo, portB).String())

	if err := a.Send([][]byte{[]byte("to nobody")}, dead); err != nil {
		t.Fatal(err)
	}
	waitPollErr(t, a.v4.Load())
	if err := a.Send([][]byte{[]byte("to b")}, live); err != nil {
		t.Fatalf("Send to a live peer with an ICMP error pending: %v", err)
	}
	newReceiver(fnsB[0], 8).recvN(t, b, 1, nil)

	// a's next receive drains the queue: the handler hears of the refused datagram.
	epA, _ := b.ParseEndpoint(netip.AddrPortFrom(lo, portA).String())
	if err := b.Send([][]byte{[]byte("to a")}, epA); err != nil {
		t.Fatal(err)
	}
	newReceiver(fnsA[0], 8).recvN(t, a, 1, nil)
	col.wait(t, func(e SendError) bool { return e.Errno == syscall.ECONNREFUSED && e.Dst == dead.(*Endpoint).AddrPort() })
}
