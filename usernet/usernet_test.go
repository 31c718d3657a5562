package usernet

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

const mtu = 1420

// pair connects two stacks as the tunnel would: what one Reads the other is Written, in
// batches. maxBatch records the largest batch a Read returned.
type pair struct {
	a, b     *Device
	maxBatch atomic.Int64
	wg       sync.WaitGroup
}

func newPair(t *testing.T) *pair {
	t.Helper()
	a, err := New([]netip.Addr{netip.MustParseAddr("10.42.1.1")}, mtu)
	if err != nil {
		t.Fatal(err)
	}
	b, err := New([]netip.Addr{netip.MustParseAddr("10.42.2.1")}, mtu)
	if err != nil {
		t.Fatal(err)
	}
	p := &pair{a: a, b: b}
	pump := func(from, to *Device) {
		defer p.wg.Done()
		bufs := make([][]byte, BatchSize)
		for i := range bufs {
			bufs[i] = make([]byte, 16+mtu)
		}
		sizes := make([]int, BatchSize)
		for {
			n, err := from.Read(bufs, sizes, 16)
			if err != nil {
				return
			}
			if int64(n) > p.maxBatch.Load() {
				p.maxBatch.Store(int64(n))
			}
			out := make([][]byte, n)
			for i := range n {
				out[i] = bufs[i][:16+sizes[i]]
			}
			if _, err := to.Write(out, 16); err != nil {
				t.Errorf("write: %v", err)
				return
			}
		}
	}
	p.wg.Add(2)
	go pump(a, b)
	go pump(b, a)
	t.Cleanup(func() {
		a.Close()
		b.Close()
		p.wg.Wait()
	})
	return p
}

// TestDevice_TCPThroughTwoStacks: 4 MiB over TCP from one stack to the other arrive intact
// (sha256), and the sender's Reads came in batches, not one packet at a time.
func TestDevice_TCPThroughTwoStacks(t *testing.T) {
	p := newPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ln, err := p.b.ListenTCP(netip.MustParseAddrPort("10.42.2.1:5001"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	payload := make([]byte, 4<<20)
	rand.Read(payload)
	want := sha256.Sum256(payload)
	got := make(chan [32]byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			t.Error(err)
			got <- [32]byte{}
			return
		}
		defer c.Close()
		h := sha256.New()
		if _, err := io.Copy(h, c); err != nil {
			t.Error(err)
		}
		var s [32]byte
		copy(s[:], h.Sum(nil))
		got <- s
	}()
	c, err := p.a.DialTCP(ctx, netip.MustParseAddrPort("10.42.2.1:5001"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(c, bytes.NewReader(payload)); err != nil {
		t.Fatal(err)
	}
	c.Close()
	select {
	case s := <-got:
		if s != want {
			t.Fatal("the data arrived changed")
		}
	case <-ctx.Done():
		t.Fatal("transfer did not finish")
	}
	if m := p.maxBatch.Load(); m < 2 {
		t.Fatalf("largest Read batch %d: packets were read one at a time", m)
	}
	t.Logf("largest Read batch: %d packets", p.maxBatch.Load())
}

// TestDevice_UDP: a datagram each way through DialUDP and ListenUDP.
func TestDevice_UDP(t *testing.T) {
	p := newPair(t)
	srv, err := p.b.ListenUDP(netip.MustParseAddrPort("10.42.2.1:53"))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cl, err := p.a.DialUDP(netip.MustParseAddrPort("10.42.1.1:0"), netip.MustParseAddrPort("10.42.2.1:53"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := cl.Write([]byte("query")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	srv.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, from, err := srv.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "query" {
		t.Fatalf("server read %q, %v", buf[:n], err)
	}
	if _, err := srv.WriteTo([]byte("answer"), from); err != nil {
		t.Fatal(err)
	}
	cl.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err = cl.Read(buf); err != nil || string(buf[:n]) != "answer" {
		t.Fatalf("client read %q, %v", buf[:n], err)
	}
	if _, err := p.a.DialUDP(netip.MustParseAddrPort("10.42.1.1:0"), netip.AddrPort{}); err == nil {
		t.Fatal("DialUDP without a remote address accepted")
	}
}

// TestDevice_CloseEndsRead: Close unblocks a Read waiting for a packet (os.ErrClosed), and a
// second Close is harmless.
func TestDevice_CloseEndsRead(t *testing.T) {
	d, err := New([]netip.Addr{netip.MustParseAddr("10.42.1.1")}, mtu)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := d.Read([][]byte{make([]byte, mtu)}, []int{0}, 0)
		done <- err
	}()
	time.Sleep(20 * time.Millisecond) // let it block (if Close came first, Read still ends)
	d.Close()
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrClosed) {
			t.Fatalf("Read after Close: %v, want os.ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Read still blocked after Close")
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-d.Events(); ok {
		if _, ok := <-d.Events(); ok {
			t.Fatal("events channel not closed")
		}
	}
}

// TestDevice_WriteRefusesNonIP: a packet that is neither IPv4 nor IPv6 is refused with
// EAFNOSUPPORT and the count of packets handed over; empty buffers are skipped.
func TestDevice_WriteRefusesNonIP(t *testing.T) {
	d, err := New([]netip.Addr{netip.MustParseAddr("10.42.1.1")}, mtu)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ip := make([]byte, 20)
	ip[0] = 0x45
	n, err := d.Write([][]byte{{}, ip, {0x10, 1, 2}}, 0)
	if n != 2 || !errors.Is(err, syscall.EAFNOSUPPORT) {
		t.Fatalf("Write = %d, %v; want 2, EAFNOSUPPORT", n, err)
	}
	if _, err := New(nil, 100); err == nil {
		t.Fatal("mtu 100 accepted")
	}
}

// FuzzDevice_Write: whatever an (authenticated, but possibly hostile) peer sends through
// the tunnel reaches the stack as written; neither the device nor the stack may panic.
func FuzzDevice_Write(f *testing.F) {
	f.Add([]byte{0x45, 0, 0, 20, 0, 0, 0, 0, 64, 6, 0, 0, 10, 42, 2, 1, 10, 42, 1, 1})
	f.Add([]byte{0x60, 0, 0, 0, 0, 0, 17, 64})
	f.Add([]byte{0x45})
	d, err := New([]netip.Addr{netip.MustParseAddr("10.42.1.1")}, mtu)
	if err != nil {
		f.Fatal(err)
	}
	defer d.Close()
	go func() { // drain what the stack answers
		bufs, sizes := [][]byte{make([]byte, 65536)}, []int{0}
		for {
			if _, err := d.Read(bufs, sizes, 0); err != nil {
				return
			}
		}
	}()
	f.Fuzz(func(t *testing.T, pkt []byte) {
		_, _ = d.Write([][]byte{pkt}, 0)
	})
}
