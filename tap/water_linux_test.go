package tap_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/weftnet/weft/tap"
)

// FrameDevice's batched reads, on one end of a SOCK_SEQPACKET socketpair: like a TAP
// without a virtio-net header, each read(2) returns one whole message (frame), and the
// descriptor is non-blocking and pollable as water's is. The TAP itself is tested in
// TestOpenBest_Netns (checkTAPBatchRead, checkTAPClose).

// framePair returns a FrameDevice over one end of a socketpair and the other end's
// descriptor, on which the test writes the frames the device is to read.
func framePair(t *testing.T) (*tap.FrameDevice, int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fds[1]) })
	// Both ends non-blocking: the device's as water's, the writer's so that a device that
	// reads too little fails the test (EAGAIN once the pair's buffer is full), never hangs it.
	for _, fd := range fds {
		if err := unix.SetNonblock(fd, true); err != nil {
			t.Fatal(err)
		}
	}
	dev, err := tap.NewFrameDeviceForTest(os.NewFile(uintptr(fds[0]), "socketpair"), "pair0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	return dev, fds[1]
}

// testFrame is frame i of a burst: i+60 bytes, each byte i.
func testFrame(i int) []byte { return bytes.Repeat([]byte{byte(i)}, 60+i) }

func writeFrames(t testing.TB, fd, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if _, err := unix.Write(fd, testFrame(i)); err != nil {
			t.Fatal(err)
		}
	}
}

func frameBufs(n, size int) ([][]byte, []int) {
	bufs := make([][]byte, n)
	for i := range bufs {
		bufs[i] = make([]byte, size)
	}
	return bufs, make([]int, n)
}

// checkFrames checks that the k frames read at offset are frames from, from+1, … whole.
func checkFrames(t *testing.T, bufs [][]byte, sizes []int, offset, k, from int) {
	t.Helper()
	for i := range k {
		if got, want := bufs[i][offset:offset+sizes[i]], testFrame(from+i); !bytes.Equal(got, want) {
			t.Fatalf("frame %d: % x, want % x", i, got, want)
		}
	}
}

func TestFrameDevice_ReadBatch(t *testing.T) {
	dev, peer := framePair(t)
	if got := dev.BatchSize(); got != tap.FrameBatchSize || got <= 1 {
		t.Fatalf("BatchSize = %d", got)
	}
	bufs, sizes := frameBufs(8, 200)
	writeFrames(t, peer, 0, 5)
	k, err := dev.Read(bufs, sizes, 4)
	if err != nil || k != 5 {
		t.Fatalf("Read of 5 queued frames into 8 buffers = %d, %v", k, err)
	}
	checkFrames(t, bufs, sizes, 4, k, 0)

	// More queued than buffers: the rest waits for the next Read, in order.
	writeFrames(t, peer, 10, 15)
	if k, err := dev.Read(bufs[:3], sizes, 4); err != nil || k != 3 {
		t.Fatalf("Read into 3 buffers = %d, %v", k, err)
	}
	checkFrames(t, bufs, sizes, 4, 3, 10)
	if k, err := dev.Read(bufs, sizes[:1], 0); err != nil || k != 1 { // sizes bounds the batch too
		t.Fatalf("Read with 1 size = %d, %v", k, err)
	}
	checkFrames(t, bufs, sizes, 0, 1, 13)
	if k, err := dev.Read(bufs, sizes, 0); err != nil || k != 1 {
		t.Fatalf("Read of the last queued frame = %d, %v", k, err)
	}
	checkFrames(t, bufs, sizes, 0, 1, 14)

	// A buffer with no room past the offset ends the batch; its frame stays queued.
	writeFrames(t, peer, 20, 22)
	short := [][]byte{make([]byte, 200), make([]byte, 4), make([]byte, 200)}
	if k, err := dev.Read(short, sizes, 4); err != nil || k != 1 {
		t.Fatalf("Read with a short second buffer = %d, %v", k, err)
	}
	checkFrames(t, short, sizes, 4, 1, 20)
	if k, err := dev.Read(bufs, sizes, 0); err != nil || k != 1 {
		t.Fatalf("Read after the short buffer = %d, %v", k, err)
	}
	checkFrames(t, bufs, sizes, 0, 1, 21)
	if _, err := dev.Read([][]byte{make([]byte, 4)}, sizes, 4); !errors.Is(err, io.ErrShortBuffer) {
		t.Fatalf("Read with no room in the first buffer: %v", err)
	}
}

func TestFrameDevice_TryRead(t *testing.T) {
	dev, peer := framePair(t)
	b := make([]byte, 200)
	if n, err := dev.TryRead(b); n != 0 || err != nil {
		t.Fatalf("TryRead with nothing queued = %d, %v, want 0, nil", n, err)
	}
	writeFrames(t, peer, 3, 5)
	for i := 3; i < 5; i++ {
		n, err := dev.TryRead(b)
		if err != nil || !bytes.Equal(b[:n], testFrame(i)) {
			t.Fatalf("TryRead = % x, %v, want frame %d", b[:n], err, i)
		}
	}
	if n, err := dev.TryRead(b); n != 0 || err != nil {
		t.Fatalf("TryRead after the queue drained = %d, %v", n, err)
	}
	if _, err := dev.TryRead(nil); !errors.Is(err, io.ErrShortBuffer) {
		t.Fatalf("TryRead(nil): %v", err)
	}
	dev.Close()
	if _, err := dev.TryRead(b); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("TryRead after Close: %v", err)
	}
}

// TestFrameDevice_ReadAllocs: a batched Read (the blocking first read and the non-blocking
// rest) allocates nothing; the encrypted loop calls it for every burst.
func TestFrameDevice_ReadAllocs(t *testing.T) {
	dev, peer := framePair(t)
	bufs, sizes := frameBufs(8, 200)
	frame := testFrame(1)
	var k, short int
	var err, werr error
	allocs := testing.AllocsPerRun(200, func() {
		for range 3 {
			if _, e := unix.Write(peer, frame); e != nil {
				werr = e
			}
		}
		if k, err = dev.Read(bufs, sizes, 4); k != 3 {
			short++
		}
	})
	if werr != nil || err != nil || short > 0 {
		t.Fatalf("write error %v; Read error %v; %d of the Reads did not return the 3 queued frames", werr, err, short)
	}
	if allocs != 0 {
		t.Fatalf("Read allocates %v times per batch, want 0", allocs)
	}
}

// TestFrameDevice_CloseUnblocksRead: a Read waiting for the first frame parks in the
// runtime's poller, and Close wakes it with net.ErrClosed.
func TestFrameDevice_CloseUnblocksRead(t *testing.T) {
	dev, _ := framePair(t)
	done := make(chan error, 1)
	go func() {
		bufs, sizes := frameBufs(4, 200)
		_, err := dev.Read(bufs, sizes, 0)
		done <- err
	}()
	if err := waitParked("tap.(*FrameDevice).Read", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := dev.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Read after Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not unblock Read")
	}
}
