package testkit

import (
	"io"
	"net"
	"net/netip"
	"testing"
)

// TCPEcho listens on a free TCP port of 127.0.0.1 and echoes every connection back to
// itself until the test ends; it returns the address it listens on.
func TCPEcho(t testing.TB) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

// UDPEcho listens on a free UDP port of 127.0.0.1 and serves it with ServeUDPEcho; it
// returns the address it listens on.
func UDPEcho(t testing.TB) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ServeUDPEcho(t, pc)
	return pc.LocalAddr().(*net.UDPAddr).AddrPort()
}

// ServeUDPEcho answers every datagram on pc with "echo:" and the datagram until the test
// ends, then closes pc.
func ServeUDPEcho(t testing.TB, pc net.PacketConn) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		b := make([]byte, 65535)
		for {
			n, from, err := pc.ReadFrom(b)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(append([]byte("echo:"), b[:n]...), from)
		}
	}()
	t.Cleanup(func() { pc.Close(); <-done })
}
