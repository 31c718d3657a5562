package testkit

import (
	"bytes"
	"errors"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

func readBufs(n int) ([][]byte, []int) {
	bufs := make([][]byte, n)
	for i := range bufs {
		bufs[i] = make([]byte, 64)
	}
	return bufs, make([]int, n)
}

func TestDevice_ReadBatch(t *testing.T) {
	d := NewDevice(DeviceConfig{BatchSize: 3})
	for i := range 5 {
		d.Inject([]byte{byte(i), byte(i)})
	}
	bufs, sizes := readBufs(4)
	n, err := d.Read(bufs, sizes, 8)
	if err != nil || n != 3 {
		t.Fatalf("first read: %d packets, %v; want the batch size, 3", n, err)
	}
	for i := range n {
		if sizes[i] != 2 || bufs[i][8] != byte(i) {
			t.Fatalf("packet %d: size %d, %x", i, sizes[i], bufs[i][8:10])
		}
	}
	if n, err = d.Read(bufs, sizes, 0); n != 2 || err != nil { // does not wait for a third
		t.Fatalf("second read: %d packets, %v; want the 2 queued", n, err)
	}
	if n, err := d.TryRead(bufs[0]); n != 0 || err != nil {
		t.Fatalf("TryRead on an empty queue: %d, %v", n, err)
	}
	d.Inject([]byte{9})
	if n, err := d.TryRead(bufs[0]); n != 1 || err != nil || bufs[0][0] != 9 {
		t.Fatalf("TryRead: %d, %v", n, err)
	}
	if d.BatchSize() != 3 {
		t.Fatalf("BatchSize %d", d.BatchSize())
	}
	if mtu, _ := d.MTU(); mtu != DefaultMTU {
		t.Fatalf("MTU %d", mtu)
	}
}

func TestDevice_WriteKeeps(t *testing.T) {
	d := NewDevice(DeviceConfig{Keep: 1, Signal: 2, MTU: 1450})
	if mtu, _ := d.MTU(); mtu != 1450 {
		t.Fatalf("MTU %d", mtu)
	}
	buf := []byte{0, 0, 1, 2, 3}
	if n, err := d.Write([][]byte{buf, buf}, 2); n != 2 || err != nil {
		t.Fatalf("Write: %d, %v", n, err)
	}
	buf[2] = 7 // the device kept a copy
	if got := d.Recv(t); !bytes.Equal(got, []byte{1, 2, 3}) {
		t.Fatalf("kept %x", got)
	}
	select {
	case p := <-d.Out:
		t.Fatalf("the second copy (%x) did not fit Out: want it dropped without Backpressure", p)
	default:
	}
	if len(d.Written) != 2 || d.PacketsWritten() != 2 || d.BytesWritten() != 6 {
		t.Fatalf("signals %d, packets %d, bytes %d", len(d.Written), d.PacketsWritten(), d.BytesWritten())
	}
}

func TestDevice_Backpressure(t *testing.T) {
	d := NewDevice(DeviceConfig{Keep: 1, Backpressure: true})
	var wrote atomic.Int32
	done := make(chan error)
	go func() {
		n, err := d.Write([][]byte{{1}, {2}}, 0)
		wrote.Store(int32(n))
		done <- err
	}()
	if p := d.Recv(t); p[0] != 1 {
		t.Fatalf("first %x", p)
	}
	if p := d.Recv(t); p[0] != 2 {
		t.Fatalf("second %x", p)
	}
	if err := <-done; err != nil || wrote.Load() != 2 {
		t.Fatalf("Write: %d, %v", wrote.Load(), err)
	}
	// A blocked Write returns when the device closes.
	go func() { _, err := d.Write([][]byte{{1}, {2}}, 0); done <- err }()
	time.Sleep(10 * time.Millisecond)
	d.Close()
	if err := <-done; !errors.Is(err, os.ErrClosed) {
		t.Fatalf("blocked Write after Close: %v", err)
	}
}

func TestDevice_Close(t *testing.T) {
	d := NewDevice(DeviceConfig{})
	errc := make(chan error)
	go func() {
		bufs, sizes := readBufs(1)
		_, err := d.Read(bufs, sizes, 0)
		errc <- err
	}()
	time.Sleep(10 * time.Millisecond)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d.Close() // idempotent
	if err := <-errc; !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Read after Close: %v", err)
	}
	if _, err := d.TryRead(make([]byte, 1)); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("TryRead after Close: %v", err)
	}
	if _, ok := <-d.Events(); ok {
		t.Fatal("Events not closed")
	}
}

// The device allocates nothing per packet unless it keeps copies, so the datapaths'
// zero-allocation tests measure the datapath, not the fake.
func TestDevice_ZeroAllocs(t *testing.T) {
	d := NewDevice(DeviceConfig{BatchSize: 4, Signal: 8})
	pkt := make([]byte, 1400)
	bufs, sizes := readBufs(4)
	for i := range bufs {
		bufs[i] = make([]byte, 1500)
	}
	out := [][]byte{pkt, pkt, pkt, pkt}
	allocs := testing.AllocsPerRun(100, func() {
		for range 4 {
			d.In <- pkt
		}
		if n, _ := d.Read(bufs, sizes, 0); n != 4 {
			t.Fatalf("read %d", n)
		}
		d.Write(out, 0)
		for range 4 {
			<-d.Written
		}
		d.TryRead(bufs[0])
	})
	if allocs > 0 {
		t.Fatalf("%v allocations per round", allocs)
	}
}

func TestCaptureBind(t *testing.T) {
	b := NewCaptureBind(4, 16)
	ep, err := b.ParseEndpoint("192.0.2.1:51820")
	if err != nil || ep.DstToString() != "192.0.2.1:51820" || ep.DstIP().String() != "192.0.2.1" {
		t.Fatalf("endpoint %v, %v", ep, err)
	}
	if e := ep.(*Endpoint); e.Port() != 51820 {
		t.Fatalf("port %d", e.Port())
	}
	if b.Last() != nil {
		t.Fatal("Last before any Send")
	}
	msg := []byte("hello")
	allocs := testing.AllocsPerRun(10, func() {
		b.N = 0
		if err := b.Send([][]byte{msg, msg[:2]}, ep); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 0 {
		t.Fatalf("Send: %v allocations", allocs)
	}
	if b.N != 2 || string(b.Slots[0]) != "hello" || string(b.Last()) != "he" || b.BatchSize() != 4 {
		t.Fatalf("N %d, slots %q %q", b.N, b.Slots[0], b.Last())
	}
}
