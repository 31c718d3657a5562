package l2

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/weftnet/weft/internal/netlab"
	"github.com/weftnet/weft/tap"
)

// The kernel interop test: namespace A runs weft's PlainVTEP on a real TAP device, namespace
// B a Linux kernel vxlan device on the same VNI. The TAP and the UDP socket must live in A,
// so the test binary re-executes itself inside A (`ip netns exec`) as a helper process
// (l2HelperMain, which TestMain runs when the WEFT_L2_HELPER variable is set); the same helper also acts as
// a tiny TCP sender and receiver for the sha256-checked transfers.

const (
	l2HelperEnv     = "WEFT_L2_HELPER"
	l2HelperArgsEnv = "WEFT_L2_ARGS"
	l2TransferBytes = 50 << 20
)

// l2HelperArgs is the helper's configuration, passed as JSON in WEFT_L2_ARGS.
type l2HelperArgs struct {
	Tap    string `json:",omitempty"`
	Addr   string `json:",omitempty"` // CIDR for the TAP
	MTU    int    `json:",omitempty"`
	VNI    uint32 `json:",omitempty"`
	Remote string `json:",omitempty"` // underlay addr:port of the kernel VTEP
	Listen string `json:",omitempty"` // tcp listen address (recv)
	Dial   string `json:",omitempty"` // tcp address (send)
	File   string `json:",omitempty"` // file to send
}

// l2HelperMain is the body of the helper process, run by TestMain when WEFT_L2_HELPER is
// set (so a normal run has no test that checks nothing); it returns the exit code.
func l2HelperMain(mode string) int {
	var args l2HelperArgs
	if err := json.Unmarshal([]byte(os.Getenv(l2HelperArgsEnv)), &args); err != nil {
		fmt.Fprintln(os.Stderr, "helper args:", err)
		return 2
	}
	var err error
	switch mode {
	case "vtep":
		err = helperVTEP(args)
	case "recv":
		err = helperRecv(args)
	case "send":
		err = helperSend(args)
	default:
		err = fmt.Errorf("unknown helper mode %q", mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 1
	}
	return 0
}

// helperVTEP opens the TAP, addresses it, runs the VTEP, prints "READY <mac>" and serves
// until stdin closes (or five minutes pass), then prints its stats.
func helperVTEP(args l2HelperArgs) error {
	dev, err := tap.Open(tap.Config{Name: args.Tap, MTU: args.MTU, Up: true})
	if err != nil {
		return err
	}
	hw, err := dev.HardwareAddr()
	if err != nil {
		return err
	}
	mac := MAC(hw)
	link, err := netlink.LinkByName(args.Tap)
	if err != nil {
		return err
	}
	addr, err := netlink.ParseAddr(args.Addr)
	if err != nil {
		return err
	}
	if err := netlink.AddrAdd(link, addr); err != nil {
		return fmt.Errorf("addr add: %w", err)
	}
	v, err := NewPlainVTEP(PlainConfig{VNI: args.VNI, Remotes: []netip.AddrPort{netip.MustParseAddrPort(args.Remote)}}, dev)
	if err != nil {
		return err
	}
	v.Start()
	fmt.Printf("READY %s\n", mac)
	done := make(chan struct{})
	go func() { io.Copy(io.Discard, os.Stdin); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
	}
	st, _ := json.Marshal(v.Stats())
	fmt.Printf("STATS %s\n", st)
	return v.Close()
}

// helperRecv accepts one TCP connection, reads it to EOF and prints "SHA256 <hex> <bytes>".
func helperRecv(args l2HelperArgs) error {
	ln, err := net.Listen("tcp", args.Listen)
	if err != nil {
		return err
	}
	defer ln.Close()
	fmt.Println("LISTENING")
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(2 * time.Minute))
	c, err := ln.Accept()
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	h := sha256.New()
	n, err := io.Copy(h, c)
	if err != nil {
		return err
	}
	fmt.Printf("SHA256 %s %d\n", hex.EncodeToString(h.Sum(nil)), n)
	return nil
}

// helperSend dials (retrying for 10 s while the listener starts) and sends the file.
func helperSend(args l2HelperArgs) error {
	f, err := os.Open(args.File)
	if err != nil {
		return err
	}
	defer f.Close()
	var c net.Conn
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err = net.DialTimeout("tcp", args.Dial, 2*time.Second)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	if _, err := io.Copy(c, f); err != nil {
		return err
	}
	return c.(*net.TCPConn).CloseWrite()
}

// helperCmd runs the helper in host's namespace.
func helperCmd(ctx context.Context, t *testing.T, h *netlab.Host, mode string, args l2HelperArgs) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(args)
	cmd := h.Command(ctx, exe, "-test.run=^$", "-test.count=1") // TestMain runs the helper
	cmd.Env = append(os.Environ(), l2HelperEnv+"="+mode, l2HelperArgsEnv+"="+string(js))
	return cmd
}

// readLine waits for a line of out starting with prefix and returns the rest.
func readLine(t *testing.T, lines <-chan string, prefix string, timeout time.Duration) string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("helper exited before printing %q", prefix)
			}
			if rest, ok := strings.CutPrefix(l, prefix); ok {
				return strings.TrimSpace(rest)
			}
		case <-deadline:
			t.Fatalf("no %q from helper within %v", prefix, timeout)
		}
	}
}

// startLines starts cmd, its stderr on the test's, and returns the lines of its stdout.
func startLines(t *testing.T, cmd *exec.Cmd) <-chan string {
	t.Helper()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ch := make(chan string, 16)
	go func() {
		defer close(ch)
		s := bufio.NewScanner(out)
		for s.Scan() {
			ch <- s.Text()
		}
	}()
	return ch
}

// transfer sends file from sender's namespace to a listener at listen in recver's namespace
// and returns the receiver's sha256 and the elapsed time.
func transfer(ctx context.Context, t *testing.T, sender, recver *netlab.Host, listen, file string) (string, time.Duration) {
	t.Helper()
	rc := helperCmd(ctx, t, recver, "recv", l2HelperArgs{Listen: listen})
	lines := startLines(t, rc)
	readLine(t, lines, "LISTENING", 20*time.Second)
	start := time.Now()
	sc := helperCmd(ctx, t, sender, "send", l2HelperArgs{Dial: listen, File: file})
	if out, err := sc.CombinedOutput(); err != nil {
		t.Fatalf("sender in %s: %v: %s", sender.Name, err, out)
	}
	sum := readLine(t, lines, "SHA256 ", 2*time.Minute)
	elapsed := time.Since(start)
	if err := rc.Wait(); err != nil {
		t.Fatalf("receiver in %s: %v", recver.Name, err)
	}
	return sum, elapsed
}

// TestPlainVTEP_NetnsKernelInterop: weft's plaintext VTEP against the Linux kernel vxlan
// driver: ARP resolves, ping both ways, and 50 MB TCP transfers are bit-exact whichever side
// connects.
func TestPlainVTEP_NetnsKernelInterop(t *testing.T) {
	a, b := netlab.PairT(t, "eth0", "192.168.77.1/24", "192.168.77.2/24")
	netlab.RequireTools(t, "ping", "ethtool")
	// A veth never computes checksums it was handed as offloaded (CHECKSUM_PARTIAL): the inner
	// TCP checksum of B's vxlan packets would reach A's userspace socket unfinished, where a
	// physical NIC would have filled it in. So B's underlay computes checksums in software.
	if out, err := b.Run("ethtool", "-K", "eth0", "tx", "off"); err != nil {
		netlab.SkipOrFail(t, "ethtool -K eth0 tx off: %v %s", err, out)
	}
	for _, c := range [][]string{
		{"ip", "link", "add", "vx0", "type", "vxlan", "id", "42", "dstport", "4789",
			"local", "192.168.77.2", "remote", "192.168.77.1", "dev", "eth0"},
		{"ip", "addr", "add", "10.99.0.2/24", "dev", "vx0"},
		{"ip", "link", "set", "vx0", "up"},
	} {
		if out, err := b.Run(c[0], c[1:]...); err != nil {
			netlab.SkipOrFail(t, "kernel vxlan unavailable: %v %s", err, out)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	vc := helperCmd(ctx, t, a, "vtep", l2HelperArgs{
		Tap: "weft0", Addr: "10.99.0.1/24", MTU: 1450, VNI: 42, Remote: "192.168.77.2:4789",
	})
	stdin, err := vc.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	vlines := startLines(t, vc)
	var stats PlainStats
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		stdin.Close()
		timeout := time.After(10 * time.Second)
	wait:
		for {
			select {
			case l, ok := <-vlines:
				if !ok {
					break wait
				}
				if st, ok := strings.CutPrefix(l, "STATS "); ok {
					t.Logf("weft VTEP stats: %s", st)
					if err := json.Unmarshal([]byte(st), &stats); err != nil {
						t.Errorf("stats: %v", err)
					}
				}
			case <-timeout:
				t.Errorf("vtep helper did not stop within 10 s")
				break wait
			}
		}
		if err := vc.Wait(); err != nil {
			t.Errorf("vtep helper: %v", err)
		}
	}
	defer stop()
	macA := readLine(t, vlines, "READY ", 20*time.Second)
	t.Logf("weft TAP in A has MAC %s", macA)

	// ping B → A first: B's kernel floods the ARP request to A; A learns B's MAC.
	if out, err := b.Run("ping", "-c", "3", "-i", "0.2", "-W", "2", "10.99.0.1"); err != nil {
		t.Fatalf("ping B→A: %v\n%s", err, out)
	}
	neigh, err := b.Run("ip", "neigh", "show", "10.99.0.1", "dev", "vx0")
	if err != nil || !strings.Contains(neigh, macA) {
		t.Fatalf("ARP in B: %q (want %s), %v", neigh, macA, err)
	}
	t.Logf("B's neighbor entry: %s", strings.TrimSpace(neigh))
	if out, err := a.Run("ping", "-c", "3", "-i", "0.2", "-W", "2", "10.99.0.2"); err != nil {
		t.Fatalf("ping A→B: %v\n%s", err, out)
	}
	if fdb, err := b.Run("bridge", "fdb", "show", "dev", "vx0"); err == nil {
		t.Logf("kernel FDB in B:\n%s", fdb)
	}

	// 50 MB of random data, transferred once each way; each side connects once.
	file := filepath.Join(t.TempDir(), "payload")
	want := writeRandomFile(t, file, l2TransferBytes)
	for _, tc := range []struct {
		name           string
		sender, recver *netlab.Host
		listen         string
	}{
		{"A connects, sends to B", a, b, "10.99.0.2:5001"},
		{"B connects, sends to A", b, a, "10.99.0.1:5002"},
	} {
		sum, elapsed := transfer(ctx, t, tc.sender, tc.recver, tc.listen, file)
		wantLine := fmt.Sprintf("%s %d", want, l2TransferBytes)
		if sum != wantLine {
			t.Fatalf("%s: receiver got %q, want %q", tc.name, sum, wantLine)
		}
		t.Logf("%s: 50 MiB sha256 ok in %v (%.0f Mbit/s)", tc.name, elapsed.Round(time.Millisecond),
			float64(l2TransferBytes)*8/elapsed.Seconds()/1e6)
	}

	// A kernel VTEP of another VNI on the same port: its frames reach A and are dropped.
	for _, c := range [][]string{
		{"ip", "link", "add", "vx1", "type", "vxlan", "id", "43", "dstport", "4789",
			"local", "192.168.77.2", "remote", "192.168.77.1", "dev", "eth0"},
		{"ip", "addr", "add", "10.98.0.2/24", "dev", "vx1"},
		{"ip", "link", "set", "vx1", "up"},
	} {
		if out, err := b.Run(c[0], c[1:]...); err != nil {
			t.Fatalf("%v %s", err, out)
		}
	}
	if out, err := b.Run("ping", "-c", "2", "-i", "0.2", "-W", "1", "10.98.0.1"); err == nil {
		t.Fatalf("ping across VNIs succeeded:\n%s", out)
	}
	stop()
	if stats.Drops["wrong_vni"] == 0 {
		t.Fatalf("no wrong-VNI drops counted: %+v", stats)
	}
	if stats.Drops["malformed"] != 0 || stats.Drops["send_failed"] != 0 || stats.DeviceWriteErrors != 0 {
		t.Fatalf("unexpected drops: %+v", stats)
	}
}

func writeRandomFile(t *testing.T, path string, n int) string {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := rand.NewChaCha8([32]byte{byte(time.Now().UnixNano())})
	h := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(f, h), r, int64(n)); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}
