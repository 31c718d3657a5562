package netproxy

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/weftnet/weft/internal/testkit"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// hostNet is the overlay of these tests: the host's loopback.
type hostNet struct{}

func (hostNet) DialTCP(ctx context.Context, dst netip.AddrPort) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", dst.String())
}

func (hostNet) DialUDP(dst netip.AddrPort) (net.Conn, error) {
	return net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(dst))
}

func (hostNet) ListenUDP() (net.PacketConn, error) { return net.ListenPacket("udp", "127.0.0.1:0") }

// resolver: "echo.service.weft" is 127.0.0.1; 127.0.0.0/8 literals are the overlay; the rest
// is outside it.
func resolver(_ context.Context, host string) (netip.Addr, error) {
	if strings.EqualFold(host, "echo.service.weft") {
		return netip.MustParseAddr("127.0.0.1"), nil
	}
	if strings.HasSuffix(host, ".weft") {
		return netip.Addr{}, fmt.Errorf("%s: %w", host, ErrUnknownName)
	}
	if a, err := netip.ParseAddr(host); err == nil && a.Is4() && a.As4()[0] == 127 {
		return a, nil
	}
	return netip.Addr{}, fmt.Errorf("%s: %w", host, ErrNotAllowed)
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func startSOCKS(t *testing.T, user, pass string, lim Limits) (*SOCKS5, *Counters) {
	t.Helper()
	cnt := &Counters{}
	s, err := ServeSOCKS5(listen(t), SOCKS5Config{Network: hostNet{}, Resolve: resolver,
		Username: user, Password: pass, Limits: lim, Counters: cnt})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, cnt
}

func dial(t *testing.T, addr net.Addr) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	t.Cleanup(func() { c.Close() })
	return c
}

func readN(t *testing.T, c net.Conn, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("read %d: %v", n, err)
	}
	return b
}

// expectClosed reads until EOF (or a reset) and fails on a timeout.
func expectClosed(t *testing.T, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	_, err := io.Copy(io.Discard, c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("connection still open")
	}
}

// request sends a no-auth greeting and a request; it returns the reply's code.
func request(t *testing.T, c net.Conn, cmd byte, a Addr) byte {
	t.Helper()
	if _, err := c.Write([]byte{5, 1, 0}); err != nil {
		t.Fatal(err)
	}
	if got := readN(t, c, 2); !bytes.Equal(got, []byte{5, 0}) {
		t.Fatalf("method reply %v", got)
	}
	if _, err := c.Write(appendAddr([]byte{5, cmd, 0}, a)); err != nil {
		t.Fatal(err)
	}
	return readReply(t, c)
}

func readReply(t *testing.T, c net.Conn) byte {
	t.Helper()
	h := readN(t, c, 4)
	switch h[3] {
	case atypIPv4:
		readN(t, c, 4+2)
	case atypIPv6:
		readN(t, c, 16+2)
	default:
		t.Fatalf("reply atyp %d", h[3])
	}
	return h[1]
}

func TestSOCKS5_Connect(t *testing.T) {
	port := testkit.TCPEcho(t).Port()
	s, cnt := startSOCKS(t, "", "", Limits{})
	for _, a := range []Addr{{Name: "echo.service.weft", Port: port}, {IP: netip.MustParseAddr("127.0.0.1"), Port: port}} {
		c := dial(t, s.Addr())
		if rep := request(t, c, cmdConnect, a); rep != repSucceeded {
			t.Fatalf("%v: reply %d", a, rep)
		}
		if _, err := c.Write([]byte("hello")); err != nil {
			t.Fatal(err)
		}
		if got := readN(t, c, 5); string(got) != "hello" {
			t.Fatalf("echo %q", got)
		}
		c.Close()
	}
	if cnt.Snapshot()["socks5_connect"] != 2 {
		t.Fatalf("counters %v", cnt.Snapshot())
	}
}

func TestSOCKS5_Refusals(t *testing.T) {
	port := testkit.TCPEcho(t).Port()
	s, cnt := startSOCKS(t, "", "", Limits{})
	cases := []struct {
		name    string
		cmd     byte
		addr    Addr
		rep     byte
		counter string
	}{
		{"outside the overlay", cmdConnect, Addr{IP: netip.MustParseAddr("192.0.2.1"), Port: 80}, repNotAllowed, "not_allowed"},
		{"outside by name", cmdConnect, Addr{Name: "example.com", Port: 80}, repNotAllowed, "not_allowed"},
		{"unknown overlay name", cmdConnect, Addr{Name: "nope.service.weft", Port: 80}, repHostUnreachable, "unknown_name"},
		{"bind", cmdBind, Addr{Name: "echo.service.weft", Port: port}, repCommandUnsupported, "socks5_unsupported_command"},
		{"unknown command", 9, Addr{Name: "echo.service.weft", Port: port}, repCommandUnsupported, "socks5_unsupported_command"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := cnt.Snapshot()[tc.counter]
			c := dial(t, s.Addr())
			if rep := request(t, c, tc.cmd, tc.addr); rep != tc.rep {
				t.Fatalf("reply %d, want %d", rep, tc.rep)
			}
			expectClosed(t, c)
			if cnt.Snapshot()[tc.counter] != before+1 {
				t.Fatalf("%s not counted: %v", tc.counter, cnt.Snapshot())
			}
		})
	}
}

// TestSOCKS5_Hostile sends malformed handshakes: each is refused or closed and counted,
// and the server goes on serving.
func TestSOCKS5_Hostile(t *testing.T) {
	port := testkit.TCPEcho(t).Port()
	s, cnt := startSOCKS(t, "", "", Limits{Handshake: time.Second})
	req := func(rest ...byte) []byte { return append([]byte{5, 1, 0, 5, 1, 0}, rest...) }
	cases := []struct {
		name    string
		send    []byte
		reply   []byte // expected reply bytes before the close (prefix)
		counter string
	}{
		{"socks4 greeting", []byte{4, 1, 0, 80, 127, 0, 0, 1, 0}, nil, "socks5_bad_version"},
		{"http on the socks port", []byte("GET / HTTP/1.1\r\n\r\n"), nil, "socks5_bad_version"},
		{"no methods", []byte{5, 0}, nil, "socks5_malformed"},
		{"truncated greeting", []byte{5, 3, 0}, nil, "socks5_malformed"},
		{"no acceptable method", []byte{5, 1, 2}, []byte{5, 0xff}, "socks5_no_acceptable_method"},
		{"request of another version", append([]byte{5, 1, 0}, 4, 1, 0, 1, 127, 0, 0, 1, 0, 80), []byte{5, 0}, "socks5_bad_version"},
		{"empty domain", req(3, 0, 0, 80), []byte{5, 0, 5, repGeneralFailure}, "socks5_bad_domain"},
		{"domain with a NUL", req(append(append([]byte{3, 4}, "a\x00bc"...), 0, 80)...), []byte{5, 0, 5, repGeneralFailure}, "socks5_bad_domain"},
		{"domain shorter than its length", req(append([]byte{3, 255}, strings.Repeat("a", 20)...)...), []byte{5, 0}, "socks5_malformed"},
		{"unknown address type", req(7, 1, 2, 3, 4, 0, 80), []byte{5, 0, 5, repAddrUnsupported}, "socks5_bad_address_type"},
		{"truncated IPv6", req(4, 0, 0, 0), []byte{5, 0}, "socks5_malformed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := cnt.Snapshot()[tc.counter]
			c := dial(t, s.Addr())
			if _, err := c.Write(tc.send); err != nil {
				t.Fatal(err)
			}
			_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
			got, err := io.ReadAll(c)
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatal("connection not closed")
			}
			if !bytes.HasPrefix(got, tc.reply) || tc.reply == nil && len(got) != 0 {
				t.Fatalf("reply %v, want prefix %v", got, tc.reply)
			}
			if cnt.Snapshot()[tc.counter] != before+1 {
				t.Fatalf("%s not counted: %v", tc.counter, cnt.Snapshot())
			}
		})
	}
	// Still serving.
	c := dial(t, s.Addr())
	if rep := request(t, c, cmdConnect, Addr{Name: "echo.service.weft", Port: port}); rep != repSucceeded {
		t.Fatalf("after the hostile clients: reply %d", rep)
	}
}

func TestSOCKS5_Auth(t *testing.T) {
	port := testkit.TCPEcho(t).Port()
	s, cnt := startSOCKS(t, "alice", "s3cret", Limits{})
	auth := func(user, pass string) (net.Conn, []byte) {
		c := dial(t, s.Addr())
		_, _ = c.Write([]byte{5, 2, 0, 2})
		if got := readN(t, c, 2); !bytes.Equal(got, []byte{5, 2}) {
			t.Fatalf("method %v, want user/pass", got)
		}
		msg := append([]byte{1, byte(len(user))}, user...)
		msg = append(append(msg, byte(len(pass))), pass...)
		_, _ = c.Write(msg)
		return c, readN(t, c, 2)
	}
	c, got := auth("alice", "s3cret")
	if !bytes.Equal(got, []byte{1, 0}) {
		t.Fatalf("good credentials: %v", got)
	}
	_, _ = c.Write(appendAddr([]byte{5, cmdConnect, 0}, Addr{Name: "echo.service.weft", Port: port}))
	if rep := readReply(t, c); rep != repSucceeded {
		t.Fatalf("connect after auth: %d", rep)
	}
	for _, bad := range [][2]string{{"alice", "wrong"}, {"bob", "s3cret"}, {"alice", "s3cret!"}, {"", "s3cret"}} {
		c, got := auth(bad[0], bad[1])
		if !bytes.Equal(got, []byte{1, 1}) {
			t.Fatalf("%v accepted: %v", bad, got)
		}
		expectClosed(t, c)
	}
	if n := cnt.Snapshot()["socks5_auth_failed"]; n != 4 {
		t.Fatalf("auth failures counted %d", n)
	}
	// A client offering only "no authentication" gets no method.
	c = dial(t, s.Addr())
	_, _ = c.Write([]byte{5, 1, 0})
	if got := readN(t, c, 2); !bytes.Equal(got, []byte{5, 0xff}) {
		t.Fatalf("no-auth client: %v", got)
	}
	expectClosed(t, c)
}

func TestSOCKS5_ConnLimit(t *testing.T) {
	s, cnt := startSOCKS(t, "", "", Limits{MaxConns: 1})
	first := dial(t, s.Addr())
	_, _ = first.Write([]byte{5, 1, 0})
	readN(t, first, 2) // the first holds its slot
	second := dial(t, s.Addr())
	expectClosed(t, second)
	if cnt.Snapshot()["conn_limit"] != 1 {
		t.Fatalf("counters %v", cnt.Snapshot())
	}
}

// associate opens a UDP association and returns the control connection and the relay address.
func associate(t *testing.T, s *SOCKS5) (net.Conn, *net.UDPAddr) {
	t.Helper()
	c := dial(t, s.Addr())
	_, _ = c.Write([]byte{5, 1, 0})
	readN(t, c, 2)
	_, _ = c.Write(appendAddr([]byte{5, cmdUDPAssociate, 0}, Addr{IP: netip.IPv4Unspecified()}))
	h := readN(t, c, 4)
	if h[1] != repSucceeded || h[3] != atypIPv4 {
		t.Fatalf("associate reply %v", h)
	}
	b := readN(t, c, 6)
	relay := netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[:4])), binary.BigEndian.Uint16(b[4:]))
	return c, net.UDPAddrFromAddrPort(relay)
}

func TestSOCKS5_UDPAssociate(t *testing.T) {
	port := testkit.UDPEcho(t).Port()
	s, cnt := startSOCKS(t, "", "", Limits{})
	_, relay := associate(t, s)
	uc, err := net.DialUDP("udp", nil, relay)
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	_ = uc.SetDeadline(time.Now().Add(5 * time.Second))
	dst := Addr{Name: "echo.service.weft", Port: port}
	if _, err := uc.Write(append(AppendUDPHeader(nil, dst), "ping"...)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	n, err := uc.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	h, payload, err := ParseUDPHeader(buf[:n])
	if err != nil || h.Addr != dst || string(payload) != "echo:ping" {
		t.Fatalf("reply %+v %q %v", h, payload, err)
	}

	// Hostile datagrams: a fragment, a bad header, a destination outside the overlay.
	frag := append(AppendUDPHeader(nil, dst), "frag"...)
	frag[2] = 1
	for _, d := range [][]byte{frag, {0, 0}, {1, 0, 0, 1, 127, 0, 0, 1, 0, 1},
		append(AppendUDPHeader(nil, Addr{IP: netip.MustParseAddr("192.0.2.1"), Port: 53}), "x"...)} {
		_, _ = uc.Write(d)
	}
	_ = uc.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, err := uc.Read(buf); err == nil {
		t.Fatalf("answer to a hostile datagram: %q", buf[:n])
	}
	testkit.Eventually(t, 3*time.Second, func() bool {
		c := cnt.Snapshot()
		return c["socks5_udp_fragment"] == 1 && c["socks5_udp_malformed"] == 1 && c["socks5_malformed"] == 1 && c["not_allowed"] == 1
	}, "the condition (counters %v)", testkit.Later(func() any { return cnt.Snapshot() }))

	// Another source on the same host is not the client.
	other, err := net.DialUDP("udp", nil, relay)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	_, _ = other.Write(append(AppendUDPHeader(nil, dst), "intruder"...))
	testkit.Eventually(t, 3*time.Second, func() bool { return cnt.Snapshot()["socks5_udp_foreign_source"] == 1 }, "the condition (counters %v)", testkit.Later(func() any { return cnt.Snapshot() }))
}

// TestSOCKS5_UDPAssociateEndsWithControl: closing the control connection closes the relay.
func TestSOCKS5_UDPAssociateEndsWithControl(t *testing.T) {
	port := testkit.UDPEcho(t).Port()
	s, _ := startSOCKS(t, "", "", Limits{})
	c, relay := associate(t, s)
	c.Close()
	uc, err := net.DialUDP("udp", nil, relay)
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	deadline := time.Now().Add(3 * time.Second)
	buf := make([]byte, 256)
	for time.Now().Before(deadline) {
		_, _ = uc.Write(append(AppendUDPHeader(nil, Addr{Name: "echo.service.weft", Port: port}), "x"...))
		_ = uc.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if _, err := uc.Read(buf); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				return // nobody answers any more (or the port is closed)
			}
			return
		}
	}
	t.Fatal("the relay still answers after the control connection closed")
}

func TestUDPHeader_RoundTrip(t *testing.T) {
	for _, a := range []Addr{{Name: "db.service.weft", Port: 5432}, {IP: netip.MustParseAddr("10.42.1.1"), Port: 53},
		{IP: netip.MustParseAddr("fd00::1"), Port: 1}} {
		b := append(AppendUDPHeader(nil, a), "data"...)
		h, p, err := ParseUDPHeader(b)
		if err != nil || h.Addr != a || string(p) != "data" {
			t.Fatalf("%v: %+v %q %v", a, h, p, err)
		}
	}
}

func FuzzParseUDPHeader(f *testing.F) {
	f.Add(append(AppendUDPHeader(nil, Addr{Name: "web.service.weft", Port: 80}), "x"...))
	f.Add(AppendUDPHeader(nil, Addr{IP: netip.MustParseAddr("10.42.0.1"), Port: 53}))
	f.Add(AppendUDPHeader(nil, Addr{IP: netip.MustParseAddr("fd00::1"), Port: 53}))
	f.Add([]byte{0, 0, 1, 1, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, payload, err := ParseUDPHeader(b)
		if err != nil {
			return
		}
		again := append(AppendUDPHeader(nil, h.Addr), payload...)
		h2, p2, err := ParseUDPHeader(again)
		if err != nil || h2 != h || !bytes.Equal(p2, payload) {
			t.Fatalf("not stable: %+v %q -> %+v %q %v", h, payload, h2, p2, err)
		}
	})
}

func FuzzReadAddr(f *testing.F) {
	f.Add(appendAddr(nil, Addr{Name: "web.service.weft", Port: 80}))
	f.Add(appendAddr(nil, Addr{IP: netip.MustParseAddr("10.42.0.1"), Port: 53}))
	f.Add([]byte{3, 0, 0, 80})
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := readAddr(bytes.NewReader(b))
		if err != nil {
			return
		}
		a2, err := readAddr(bytes.NewReader(appendAddr(nil, a)))
		if err != nil || a2 != a {
			t.Fatalf("not stable: %+v -> %+v %v", a, a2, err)
		}
	})
}

// refuseNet refuses every dial: the handshake fuzzer must not reach the network.
type refuseNet struct{}

func (refuseNet) DialTCP(context.Context, netip.AddrPort) (net.Conn, error) {
	return nil, fmt.Errorf("refused: %w", ErrNotAllowed)
}
func (refuseNet) DialUDP(netip.AddrPort) (net.Conn, error) { return nil, ErrNotAllowed }
func (refuseNet) ListenUDP() (net.PacketConn, error)       { return nil, ErrNotAllowed }

// FuzzSOCKS5Handshake feeds arbitrary bytes to a control connection (with and without
// authentication configured): the handler returns, and never panics.
func FuzzSOCKS5Handshake(f *testing.F) {
	f.Add([]byte{5, 1, 0, 5, 1, 0, 3, 4, 'w', 'e', 'f', 't', 0, 80}, false)
	f.Add([]byte{5, 1, 2, 1, 1, 'u', 1, 'p', 5, 3, 0, 1, 0, 0, 0, 0, 0, 0}, true)
	f.Add([]byte{5, 1, 0, 5, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 80}, false)
	f.Fuzz(func(t *testing.T, in []byte, auth bool) {
		cfg := SOCKS5Config{Network: refuseNet{}, Resolve: resolver, Limits: Limits{Handshake: time.Second}}
		if auth {
			cfg.Username, cfg.Password = "u", "p"
		}
		s := &SOCKS5{cfg: cfg, lim: cfg.Limits.withDefaults(), ip: netip.MustParseAddr("127.0.0.1")}
		s.server = newServer(nil, 1, nil, &Counters{}, s.handle)
		client, srv := net.Pipe()
		done := make(chan struct{})
		go func() { defer close(done); _, _ = io.Copy(io.Discard, client) }()
		go func() { _, _ = client.Write(in); _ = client.Close() }()
		s.handle(srv)
		srv.Close()
		<-done
	})
}
