package netproxy

import (
	"context"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/weftnet/weft/internal/testkit"
)

func TestRelayTCP(t *testing.T) {
	port := testkit.TCPEcho(t).Port()
	cnt := &Counters{}
	dst := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)
	r := RelayTCP(listen(t), func(ctx context.Context) (net.Conn, error) { return hostNet{}.DialTCP(ctx, dst) },
		Limits{MaxConns: 2}, nil, cnt)
	defer r.Close()
	var held []net.Conn
	for i := 0; i < 2; i++ {
		c := dial(t, r.Addr())
		_, _ = c.Write([]byte("abc"))
		if got := readN(t, c, 3); string(got) != "abc" {
			t.Fatalf("echo %q", got)
		}
		held = append(held, c)
	}
	third := dial(t, r.Addr())
	expectClosed(t, third)
	if cnt.Snapshot()["conn_limit"] != 1 {
		t.Fatalf("counters %v", cnt.Snapshot())
	}
	held[0].Close()
	testkit.Eventually(t, 3*time.Second, func() bool {
		c, err := net.Dial("tcp", r.Addr().String())
		if err != nil {
			return false
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(time.Second))
		_, _ = c.Write([]byte("z"))
		b := make([]byte, 1)
		_, err = io.ReadFull(c, b)
		return err == nil && b[0] == 'z'
	}, "the condition (counters %v)", testkit.Later(func() any { return cnt.Snapshot() }))
}

func TestRelayTCP_DialFailure(t *testing.T) {
	cnt := &Counters{}
	r := RelayTCP(listen(t), func(ctx context.Context) (net.Conn, error) {
		_, err := resolver(ctx, "nope.service.weft")
		return nil, err
	}, Limits{}, nil, cnt)
	defer r.Close()
	expectClosed(t, dial(t, r.Addr()))
	testkit.Eventually(t, 3*time.Second, func() bool { return cnt.Snapshot()["unknown_name"] == 1 }, "the condition (counters %v)", testkit.Later(func() any { return cnt.Snapshot() }))
}

func TestRelayUDP_SessionsAndExpiry(t *testing.T) {
	port := testkit.UDPEcho(t).Port()
	cnt := &Counters{}
	dst := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := RelayUDP(pc, func(context.Context) (net.Conn, error) { return hostNet{}.DialUDP(dst) },
		Limits{MaxUDPSessions: 2, UDPIdle: 200 * time.Millisecond}, nil, cnt)
	defer r.Close()
	client := func() *net.UDPConn {
		c, err := net.DialUDP("udp", nil, r.Addr().(*net.UDPAddr))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	buf := make([]byte, 64)
	for i := 0; i < 2; i++ {
		c := client()
		_ = c.SetDeadline(time.Now().Add(3 * time.Second))
		_, _ = c.Write([]byte("hi"))
		n, err := c.Read(buf)
		if err != nil || string(buf[:n]) != "echo:hi" {
			t.Fatalf("session %d: %q %v", i, buf[:n], err)
		}
	}
	third := client()
	_, _ = third.Write([]byte("hi"))
	_ = third.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := third.Read(buf); err == nil {
		t.Fatal("a third session over the bound was relayed")
	}
	if cnt.Snapshot()["udp_session_limit"] < 1 {
		t.Fatalf("counters %v", cnt.Snapshot())
	}
	testkit.Eventually(t, 3*time.Second, func() bool { return r.Sessions() == 0 }, "the condition (counters %v)", testkit.Later(func() any { return cnt.Snapshot() }))
	if cnt.Snapshot()["udp_session_expired"] < 2 {
		t.Fatalf("counters %v", cnt.Snapshot())
	}
	// Once the idle sessions are gone, a new source gets one.
	_ = third.SetDeadline(time.Now().Add(3 * time.Second))
	_, _ = third.Write([]byte("again"))
	n, err := third.Read(buf)
	if err != nil || string(buf[:n]) != "echo:again" {
		t.Fatalf("after expiry: %q %v", buf[:n], err)
	}
}

// TestRelayTCP_CloseCancelsDial: Close does not wait for a dial in progress to time out.
func TestRelayTCP_CloseCancelsDial(t *testing.T) {
	dialing := make(chan struct{})
	r := RelayTCP(listen(t), func(ctx context.Context) (net.Conn, error) {
		close(dialing)
		<-ctx.Done()
		return nil, ctx.Err()
	}, Limits{DialTimeout: time.Hour}, nil, &Counters{})
	c := dial(t, r.Addr())
	<-dialing
	closed := make(chan struct{})
	go func() { r.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(30 * time.Second): // a hang, not a speed target
		t.Fatal("Close waits for the dial's hour-long timeout")
	}
	expectClosed(t, c)
}
