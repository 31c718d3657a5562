package tap_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/weftnet/weft/internal/netlab"
	"github.com/weftnet/weft/l2"
	"github.com/weftnet/weft/tap"
	"golang.zx2c4.com/wireguard/tun"
)

// An external test package: the TAP check reads the kernel's ARP answer with l2's Ethernet
// and ARP codecs, and l2 imports tap.

// tapHelperEnv names the TAP the helper process (TestMain) opens inside its namespace.
const tapHelperEnv = "WEFT_TAP_HELPER"

// TestMain runs the helper process that TestTAPDevice_Netns (or, with WEFT_TAP_CASE,
// TestOpenBest_Netns) starts inside a namespace when WEFT_TAP_HELPER names its TAP, and the
// tests otherwise.
func TestMain(m *testing.M) {
	if name := os.Getenv(tapHelperEnv); name != "" {
		helper := helperTAP
		if c := os.Getenv(tapCaseEnv); c != "" {
			helper = func(name string) error { return helperOpenBest(c, name) }
		}
		if err := helper(name); err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestTAPDevice_Netns opens a real TAP inside a fresh namespace (through the helper process
// that TestMain runs) and checks its tun.Device behaviour there.
func TestTAPDevice_Netns(t *testing.T) {
	lab := netlab.NewT(t)
	h, err := lab.AddHost("tap")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := h.Command(ctx, exe, "-test.run=^$", "-test.count=1") // TestMain runs the helper
	cmd.Env = append(os.Environ(), tapHelperEnv+"=weft9")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("tap helper: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}

// helperTAP runs inside a namespace of its own.
func helperTAP(name string) error {
	want := l2.MAC{0x02, 0xfe, 0x00, 0x00, 0x00, 0x09}
	dev, err := tap.Open(tap.Config{Name: name, MTU: 1400, MAC: want, Up: true})
	if err != nil {
		return err
	}
	if got, _ := dev.Name(); got != name {
		return fmt.Errorf("Name = %q", got)
	}
	if mtu, err := dev.MTU(); err != nil || mtu != 1400 {
		return fmt.Errorf("MTU = %d, %v", mtu, err)
	}
	if mac, err := dev.HardwareAddr(); err != nil || mac != want {
		return fmt.Errorf("HardwareAddr = %v, %v", mac, err)
	}
	if dev.BatchSize() != tap.BatchSize || dev.File() == nil {
		return errors.New("BatchSize/File")
	}
	select {
	case ev := <-dev.Events():
		if ev != 1 { // tun.EventUp
			return fmt.Errorf("event %v", ev)
		}
	default:
		return errors.New("no EventUp")
	}
	link, err := netlink.LinkByName(name)
	if err != nil {
		return err
	}
	if err := checkTAPARP(dev, link, want, 8, 4); err != nil {
		return err
	}
	if err := checkTAPBatchRead(dev, link); err != nil {
		return err
	}
	if err := checkTAPOffloadChecksum(dev); err != nil {
		return err
	}
	if err := checkTAPClose(dev, name, "Device"); err != nil {
		return err
	}
	fmt.Println("TAP ok: MTU, MAC, events, write→kernel ARP→read, batched read, offload checksums, close")
	return dev.Close()
}

// checkTAPARP checks that a frame written to the TAP is received by the kernel: an ARP
// request for an address of ours is answered with the TAP's MAC (mac), and the answer is
// read back from the TAP. Frames are written at woff (two in one Write) and read at roff.
func checkTAPARP(dev tun.Device, link netlink.Link, mac l2.MAC, woff, roff int) error {
	addr, _ := netlink.ParseAddr("10.77.0.1/24")
	if err := netlink.AddrAdd(link, addr); err != nil {
		return err
	}
	asker := l2.MAC{0x02, 0, 0, 0, 0, 0x77}
	req := arpRequest(asker, "10.77.0.2", "10.77.0.1")
	// Two buffers in one Write: each is a frame of its own.
	two := [][]byte{append(make([]byte, woff), req...), append(make([]byte, woff), req...)}
	if n, err := dev.Write(two, woff); err != nil || n != 2 {
		return fmt.Errorf("Write = %d, %v", n, err)
	}
	buf, sizes := [][]byte{make([]byte, 1600)}, []int{0}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		done := make(chan error, 1)
		go func() { _, err := dev.Read(buf, sizes, roff); done <- err }()
		select {
		case err := <-done:
			if err != nil {
				return fmt.Errorf("Read: %w", err)
			}
		case <-time.After(5 * time.Second):
			return errors.New("no frame from the kernel")
		}
		f := buf[0][roff : roff+sizes[0]]
		eth, err := l2.ParseEthernet(f)
		if err != nil || eth.EtherType != l2.EtherTypeARP {
			continue // IPv6 router solicitations and the like
		}
		rep, err := l2.ParseARP(f[eth.PayloadOffset:])
		if err != nil || rep.Op != l2.ARPReply || rep.SenderMAC != mac || eth.Dst != asker {
			return fmt.Errorf("kernel's ARP answer %+v %v", rep, err)
		}
		return nil
	}
	return errors.New("no ARP answer from the kernel")
}

// checkTAPClose checks that Close unblocks a Read parked in the runtime's poller (the stack
// of the reader shows tap.(*typ).Read waiting in runtime_pollWait) with net.ErrClosed,
// removes the link, is idempotent, and that Read and Write after it return net.ErrClosed.
func checkTAPClose(dev tun.Device, name, typ string) error {
	buf, sizes := [][]byte{make([]byte, 1600)}, []int{0}
	done := make(chan error, 1)
	go func() { // frames the kernel still sends (IPv6 solicitations) are read and dropped
		for {
			if _, err := dev.Read(buf, sizes, 0); err != nil {
				done <- err
				return
			}
		}
	}()
	if err := waitParked("tap.(*"+typ+").Read", 5*time.Second); err != nil {
		return err
	}
	if err := dev.Close(); err != nil {
		return fmt.Errorf("Close: %w", err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			return fmt.Errorf("Read after Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		return errors.New("Close did not unblock Read")
	}
	if _, err := netlink.LinkByName(name); err == nil {
		return errors.New("link still present after Close (persist must be off)")
	}
	if err := dev.Close(); err != nil {
		return fmt.Errorf("second Close: %w", err)
	}
	if _, err := dev.Read(buf, sizes, 0); !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("Read on a closed device: %v", err)
	}
	if _, err := dev.Write([][]byte{make([]byte, 60)}, 0); !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("Write on a closed device: %v", err)
	}
	return nil
}

// waitParked waits until a goroutine's stack shows fn waiting in the poller: a Read that
// blocks in a syscall instead (a blocking descriptor) would never show it, and Close could
// not wake it.
func waitParked(fn string, timeout time.Duration) error {
	buf := make([]byte, 1<<20)
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		n := runtime.Stack(buf, true)
		for _, g := range strings.Split(string(buf[:n]), "\n\n") {
			if strings.Contains(g, fn) && strings.Contains(g, "runtime_pollWait") {
				return nil
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("no goroutine in %s parked in the poller", fn)
}

// checkTAPBatchRead has the kernel queue a burst of frames on the TAP (UDP datagrams to a
// static neighbour behind it) before one Read, which must return more than one of them, each
// whole and in order.
func checkTAPBatchRead(dev tun.Device, link netlink.Link) error {
	far := l2.MAC{0x02, 0, 0, 0, 0, 0x99}
	if err := netlink.NeighAdd(&netlink.Neigh{
		LinkIndex: link.Attrs().Index, State: netlink.NUD_PERMANENT,
		IP: net.ParseIP("10.77.0.9"), HardwareAddr: net.HardwareAddr(far[:]),
	}); err != nil {
		return fmt.Errorf("neigh add: %w", err)
	}
	c, err := net.Dial("udp4", "10.77.0.9:9")
	if err != nil {
		return err
	}
	defer c.Close()
	const burst = 6
	for i := range burst {
		if _, err := c.Write(bytes.Repeat([]byte{byte(i + 1)}, 100+i)); err != nil {
			return fmt.Errorf("udp write: %w", err)
		}
	}
	bufs, sizes := make([][]byte, 2*burst), make([]int, 2*burst)
	for i := range bufs {
		bufs[i] = make([]byte, 1600)
	}
	got, reads := 0, 0
	deadline := time.Now().Add(5 * time.Second)
	for got < burst && time.Now().Before(deadline) {
		n, err := dev.Read(bufs, sizes, 4)
		if err != nil {
			return fmt.Errorf("batched Read: %w", err)
		}
		reads++
		for i := range n {
			f := bufs[i][4 : 4+sizes[i]]
			eth, err := l2.ParseEthernet(f)
			if err != nil || eth.Dst != far || eth.EtherType != l2.EtherTypeIPv4 {
				continue // the kernel's own chatter
			}
			if want := 14 + 20 + 8 + 100 + got; len(f) != want {
				return fmt.Errorf("frame %d is %d bytes, want %d", got, len(f), want)
			}
			if p := f[14+20+8:]; !bytes.Equal(p, bytes.Repeat([]byte{byte(got + 1)}, len(p))) {
				return fmt.Errorf("frame %d: payload % x", got, p)
			}
			got++
		}
	}
	if got < burst {
		return fmt.Errorf("read %d of %d queued frames", got, burst)
	}
	if reads >= burst {
		return fmt.Errorf("%d queued frames took %d Reads: not batched", burst, reads)
	}
	return nil
}

// checkTAPOffloadChecksum turns offload on and reads a UDP datagram the kernel handed over
// with a partial checksum (CHECKSUM_PARTIAL): Read must have completed it.
func checkTAPOffloadChecksum(dev *tap.Device) error {
	if err := dev.EnableOffload(); err != nil {
		return err
	}
	c, err := net.Dial("udp4", "10.77.0.9:9")
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.Write([]byte("a datagram whose checksum the device completes")); err != nil {
		return err
	}
	bufs, sizes := make([][]byte, tap.BatchSize), make([]int, tap.BatchSize)
	for i := range bufs {
		bufs[i] = make([]byte, 65600)
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		n, err := dev.Read(bufs, sizes, 24)
		if err != nil {
			return fmt.Errorf("Read with offload: %w", err)
		}
		for i := range n {
			f := bufs[i][24 : 24+sizes[i]]
			if len(f) < 42 || binary.BigEndian.Uint16(f[12:]) != l2.EtherTypeIPv4 || f[23] != 17 {
				continue
			}
			udp := f[34:]
			if binary.BigEndian.Uint16(udp[6:]) == 0 {
				return errors.New("UDP checksum left empty")
			}
			if s := tap.CsumFold(tap.CsumAdd(tap.CsumAdd(0, f[26:34])+17+uint64(len(udp)), udp)); s != 0xffff {
				return fmt.Errorf("UDP checksum not completed (sum %#x)", s)
			}
			if m := dev.MalformedFrames(); m != 0 {
				return fmt.Errorf("%d malformed frames", m)
			}
			return nil
		}
	}
	return errors.New("no UDP frame read with offload on")
}

// arpRequest is the broadcast frame "who has tip? tell sip (smac)".
func arpRequest(smac l2.MAC, sip, tip string) []byte {
	b := append(append([]byte{}, l2.BroadcastMAC[:]...), smac[:]...)
	b = binary.BigEndian.AppendUint16(b, l2.EtherTypeARP)
	b = append(b, 0, 1, 8, 0, 6, 4, 0, 1)
	b = append(b, smac[:]...)
	s := netip.MustParseAddr(sip).As4()
	b = append(b, s[:]...)
	b = append(b, make([]byte, 6)...)
	t := netip.MustParseAddr(tip).As4()
	return append(b, t[:]...)
}
