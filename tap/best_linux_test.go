package tap_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/tun"

	"github.com/weftnet/weft/internal/netlab"
	"github.com/weftnet/weft/l2"
	"github.com/weftnet/weft/tap"
)

// tapCaseEnv names the case of bestCases the helper process runs.
const tapCaseEnv = "WEFT_TAP_CASE"

// bestCase is one way the kernel answers OpenBest, and what OpenBest must make of it.
type bestCase struct {
	name        string
	offload     bool  // asked for
	iff, off    error // what the kernel's TUNSETIFF (with IFF_VNET_HDR) and TUNSETOFFLOAD answer; nil: the real ioctl
	wantOffload bool
	wantReason  string
	wantErr     error // OpenBest must fail with it, without falling back
	tun         bool  // OpenTUN and EnableOffload instead of OpenBest (package tunnel's fallback rule)
}

var bestCases = []bestCase{
	{name: "offload", offload: true, wantOffload: true},
	{name: "not_wanted", wantReason: tap.ReasonNotWanted},
	{name: "vnet_hdr_einval", offload: true, iff: unix.EINVAL, wantReason: "kernel refused IFF_VNET_HDR: invalid argument"},
	{name: "vnet_hdr_eopnotsupp", offload: true, iff: unix.EOPNOTSUPP, wantReason: "kernel refused IFF_VNET_HDR: operation not supported"},
	{name: "tunsetoffload_einval", offload: true, off: unix.EINVAL, wantReason: "kernel refused TUNSETOFFLOAD: invalid argument"},
	// Errors of permission or of a device in use are the operator's to fix, not a reason to
	// run slower: OpenBest reports them.
	{name: "vnet_hdr_eperm", offload: true, iff: unix.EPERM, wantErr: unix.EPERM},
	{name: "vnet_hdr_eacces", offload: true, iff: unix.EACCES, wantErr: unix.EACCES},
	{name: "vnet_hdr_ebusy", offload: true, iff: unix.EBUSY, wantErr: unix.EBUSY},
	// weft's own TUN: tunnel.CreateTUN falls back on wireguard-go's TUN exactly when
	// tap.Refused recognizes the error, and reports anything else.
	{name: "tun_offload", tun: true, wantOffload: true},
	{name: "tun_tunsetoffload_einval", tun: true, off: unix.EINVAL, wantReason: "kernel refused TUNSETOFFLOAD: invalid argument"},
	{name: "tun_vnet_hdr_eopnotsupp", tun: true, iff: unix.EOPNOTSUPP, wantReason: "kernel refused IFF_VNET_HDR: operation not supported"},
	{name: "tun_vnet_hdr_eperm", tun: true, iff: unix.EPERM, wantErr: unix.EPERM},
}

// helperOpenTUN runs a tun case: what OpenTUN and EnableOffload return, as CreateTUN sees it.
func helperOpenTUN(c bestCase, name string) error {
	d, err := tap.OpenTUN(tap.Config{Name: name, MTU: 1400})
	if err == nil {
		defer d.Close()
		err = d.EnableOffload()
	}
	reason, refused := tap.Refused(err)
	switch {
	case c.wantOffload && err != nil:
		return fmt.Errorf("OpenTUN with offload: %w", err)
	case c.wantReason != "" && (!refused || reason != c.wantReason):
		return fmt.Errorf("OpenTUN: %v (refusal %v, %q), want the refusal %q", err, refused, reason, c.wantReason)
	case c.wantErr != nil && (refused || !errors.Is(err, c.wantErr)):
		return fmt.Errorf("OpenTUN: %v (refusal %v), want %v reported, not a refusal", err, refused, c.wantErr)
	}
	if err == nil {
		if _, err := d.HardwareAddr(); err == nil {
			return errors.New("a TUN reports a MAC address")
		}
		if m, err := d.MTU(); err != nil || m != 1400 {
			return fmt.Errorf("TUN MTU %d, %v", m, err)
		}
	}
	fmt.Printf("OpenTUN ok: %v (refusal %v)\n", err, refused)
	return nil
}

// TestOpenBest_Netns runs each case of bestCases in a helper process inside one fresh
// namespace: the kernel's refusals are played through tap.RefuseForTest, the TAPs are real.
func TestOpenBest_Netns(t *testing.T) {
	lab := netlab.NewT(t)
	h, err := lab.AddHost("best")
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range bestCases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cmd := h.Command(ctx, exe, "-test.run=^$", "-test.count=1") // TestMain runs the helper
			cmd.Env = append(os.Environ(), tapHelperEnv+"=weftb"+strconv.Itoa(i), tapCaseEnv+"="+c.name)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("helper: %v\n%s", err, out)
			}
			t.Logf("%s", out)
		})
	}
}

// helperOpenBest runs the case named cname of bestCases inside a namespace of its own.
func helperOpenBest(cname, name string) error {
	var c bestCase
	for _, bc := range bestCases {
		if bc.name == cname {
			c = bc
		}
	}
	if c.name == "" {
		return fmt.Errorf("no case %q", cname)
	}
	defer tap.RefuseForTest(c.iff, c.off)()
	if c.tun {
		return helperOpenTUN(c, name)
	}
	want := l2.MAC{0x02, 0xfe, 0x00, 0x00, 0x00, 0x0b}
	dev, mode, err := tap.OpenBest(tap.Config{Name: name, MTU: 1400, MAC: want, Up: true}, c.offload)
	if c.wantErr != nil {
		if !errors.Is(err, c.wantErr) || dev != nil {
			return fmt.Errorf("OpenBest = %v, %v, want the error %v", dev, err, c.wantErr)
		}
		if _, lerr := netlink.LinkByName(name); lerr == nil {
			return fmt.Errorf("OpenBest failed (%v) but fell back: link %s exists", err, name)
		}
		fmt.Printf("OpenBest ok: %v reported, no fallback\n", err)
		return nil
	}
	if err != nil {
		return fmt.Errorf("OpenBest: %w", err)
	}
	if mode.Offload != c.wantOffload || mode.Reason != c.wantReason {
		return fmt.Errorf("mode %+v, want offload %v, reason %q", mode, c.wantOffload, c.wantReason)
	}
	if fallback := c.wantReason != "" && c.wantReason != tap.ReasonNotWanted; mode.Fallback() != fallback {
		return fmt.Errorf("mode %+v: Fallback() = %v", mode, mode.Fallback())
	}
	link, err := netlink.LinkByName(name)
	if err != nil {
		return err
	}
	if link.Attrs().MTU != 1400 || !bytes.Equal(link.Attrs().HardwareAddr, want[:]) || link.Attrs().Flags&net.FlagUp == 0 {
		return fmt.Errorf("link %s: mtu %d, mac %v, flags %v", name, link.Attrs().MTU, link.Attrs().HardwareAddr, link.Attrs().Flags)
	}
	if mtu, err := dev.MTU(); err != nil || mtu != 1400 {
		return fmt.Errorf("MTU = %d, %v", mtu, err)
	}
	if got, _ := dev.Name(); got != name {
		return fmt.Errorf("Name = %q", got)
	}
	select {
	case ev := <-dev.Events():
		if ev != tun.EventUp {
			return fmt.Errorf("event %v", ev)
		}
	default:
		return errors.New("no EventUp")
	}
	if err := checkTunFDs(); err != nil {
		return err
	}
	typ := "Device"
	if c.wantOffload {
		d, ok := dev.(*tap.Device)
		if !ok {
			return fmt.Errorf("OpenBest with offload returned a %T", dev)
		}
		if n := link.Attrs().GSOMaxSegs; n != 64 {
			return fmt.Errorf("offload on, but gso_max_segs is %d", n)
		}
		if d.BatchSize() != tap.BatchSize {
			return fmt.Errorf("BatchSize = %d", d.BatchSize())
		}
	} else {
		typ = "FrameDevice"
		if err := checkFrameByFrame(dev); err != nil {
			return err
		}
	}
	if err := checkTAPARP(dev, link, want, 8, 4); err != nil {
		return err
	}
	if !c.wantOffload {
		// A burst the kernel queued on the TAP comes back in fewer Reads than frames. (The
		// Device with offload on reads a batch only with room for a super-frame: 64
		// buffers; TestTAPDevice_Netns checks its batches.)
		if err := checkTAPBatchRead(dev, link); err != nil {
			return err
		}
	}
	if err := checkTAPClose(dev, name, typ); err != nil {
		return err
	}
	checked := "link, events, write→kernel ARP→read, close"
	if !c.wantOffload {
		checked = "link, events, write→kernel ARP→read, batched read, close"
	}
	fmt.Printf("OpenBest ok: %s (%T): %s\n", mode, dev, checked)
	return nil
}

// checkFrameByFrame checks that dev is a FrameDevice that offers neither offload nor
// trusted checksums (the loops that drive it cannot turn them on), but batched reads
// (BatchSize > 1) and TryRead, so the loops still send bursts together.
func checkFrameByFrame(dev tun.Device) error {
	if _, ok := dev.(*tap.FrameDevice); !ok {
		return fmt.Errorf("OpenBest without offload returned a %T", dev)
	}
	if _, ok := dev.(interface{ EnableOffload() error }); ok {
		return errors.New("FrameDevice has EnableOffload")
	}
	if _, ok := dev.(interface{ TrustWrittenChecksums() }); ok {
		return errors.New("FrameDevice has TrustWrittenChecksums")
	}
	if _, ok := dev.(interface{ TryRead([]byte) (int, error) }); !ok {
		return errors.New("FrameDevice has no TryRead")
	}
	if dev.BatchSize() != tap.FrameBatchSize {
		return fmt.Errorf("BatchSize = %d, want %d", dev.BatchSize(), tap.FrameBatchSize)
	}
	return nil
}

// checkTunFDs checks that exactly one descriptor of /dev/net/tun is open (a TAP closed on
// the way to the fallback is not leaked) and that it is close-on-exec (water opens it
// without O_CLOEXEC; OpenFrames sets it).
func checkTunFDs() error {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return err
	}
	var fds []int
	for _, e := range ents {
		if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err != nil || target != "/dev/net/tun" {
			continue
		}
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			return err
		}
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err != nil {
			if errors.Is(err, syscall.EBADF) {
				continue // ReadDir's own descriptor, closed since
			}
			return err
		}
		if flags&unix.FD_CLOEXEC == 0 {
			return fmt.Errorf("descriptor %d of /dev/net/tun is not close-on-exec", fd)
		}
		fds = append(fds, fd)
	}
	if len(fds) != 1 {
		return fmt.Errorf("%d descriptors of /dev/net/tun open (%v), want 1", len(fds), fds)
	}
	return nil
}

// TestMode_String: what the agent logs and shows, and which modes are worth a warning.
func TestMode_String(t *testing.T) {
	for _, tc := range []struct {
		mode     tap.Mode
		want     string
		fallback bool
	}{
		{tap.Mode{Offload: true}, "offload", false},
		{tap.Mode{Reason: tap.ReasonNotWanted}, "frame by frame: offload not wanted", false},
		{tap.Mode{Reason: "kernel refused TUNSETOFFLOAD: invalid argument"}, "frame by frame: kernel refused TUNSETOFFLOAD: invalid argument", true},
	} {
		if got := tc.mode.String(); got != tc.want {
			t.Errorf("%+v.String() = %q, want %q", tc.mode, got, tc.want)
		}
		if got := tc.mode.Fallback(); got != tc.fallback {
			t.Errorf("%+v.Fallback() = %v, want %v", tc.mode, got, tc.fallback)
		}
	}
}
