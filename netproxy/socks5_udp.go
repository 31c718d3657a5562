package netproxy

// UDP ASSOCIATE: the association's client socket on loopback and its overlay socket, and
// the two goroutines that relay between them (the flow is described in socks5.go).

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"time"
)

// associate runs a UDP association until the control connection closes or goes idle.
// want is the client's announced source (zero: unknown, learned from the first datagram).
func (s *SOCKS5) associate(c net.Conn, want Addr) {
	clientIP := netip.Addr{}
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		clientIP = ta.AddrPort().Addr().Unmap()
	}
	local, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(s.ip, 0)))
	if err != nil {
		s.count(err)
		writeReply(c, repGeneralFailure, Addr{})
		return
	}
	defer local.Close()
	overlay, err := s.cfg.Network.ListenUDP()
	if err != nil {
		s.count(err)
		writeReply(c, repGeneralFailure, Addr{})
		return
	}
	defer overlay.Close()
	la := local.LocalAddr().(*net.UDPAddr).AddrPort()
	writeReply(c, repSucceeded, Addr{IP: la.Addr().Unmap(), Port: la.Port()})
	_ = c.SetDeadline(time.Time{})
	s.cnt.add("socks5_udp_associate")

	a := &association{s: s, local: local, overlay: overlay, clientIP: clientIP,
		peers: map[netip.AddrPort]Addr{}}
	if want.Name == "" && want.IP.IsValid() && !want.IP.IsUnspecified() {
		a.clientIP = want.IP.Unmap()
	}
	if want.Port != 0 && want.Name == "" {
		a.wantPort = want.Port
	}
	a.touch()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); a.fromClient() }()
	go func() { defer wg.Done(); a.fromOverlay() }()
	go func() {
		defer wg.Done()
		// The association lives as long as its control connection (RFC 1928 section 7):
		// any byte or EOF ends it; so does idleness.
		var b [1]byte
		go func() {
			t := time.NewTicker(s.lim.UDPIdle / 4)
			defer t.Stop()
			for {
				select {
				case <-done:
					return
				case <-t.C:
					if a.idle() > s.lim.UDPIdle {
						c.Close()
						return
					}
				}
			}
		}()
		_, _ = c.Read(b[:])
		close(done)
		local.Close()
		overlay.Close()
	}()
	wg.Wait()
}

// association is one UDP ASSOCIATE: a client socket, an overlay socket and the overlay
// peers the client has sent to (replies come only from those).
type association struct {
	s        *SOCKS5
	local    *net.UDPConn
	overlay  net.PacketConn
	clientIP netip.Addr
	wantPort uint16

	mu     sync.Mutex
	client netip.AddrPort // learned from the first valid datagram
	peers  map[netip.AddrPort]Addr

	lastUse
}

func (a *association) fromClient() {
	buf := make([]byte, 65535)
	for {
		n, src, err := a.local.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
		if a.clientIP.IsValid() && src.Addr() != a.clientIP || a.wantPort != 0 && src.Port() != a.wantPort {
			a.s.cnt.add("socks5_udp_foreign_source")
			continue
		}
		a.mu.Lock()
		if !a.client.IsValid() {
			a.client = src
		}
		fixed := a.client
		a.mu.Unlock()
		if src != fixed {
			a.s.cnt.add("socks5_udp_foreign_source")
			continue
		}
		h, payload, err := ParseUDPHeader(buf[:n])
		if err != nil {
			a.s.count(err)
			continue
		}
		ctx, cancel := context.WithTimeout(a.s.server.ctx, a.s.lim.DialTimeout)
		ip, err := a.s.cfg.Resolve(ctx, h.Addr.Host())
		cancel()
		if err != nil {
			a.s.count(err)
			continue
		}
		dst := netip.AddrPortFrom(ip, h.Addr.Port)
		a.mu.Lock()
		_, known := a.peers[dst]
		if !known && len(a.peers) >= a.s.lim.MaxUDPSessions {
			a.mu.Unlock()
			a.s.cnt.add("udp_session_limit")
			continue
		}
		a.peers[dst] = h.Addr
		a.mu.Unlock()
		a.touch()
		if _, err := a.overlay.WriteTo(payload, net.UDPAddrFromAddrPort(dst)); err != nil {
			a.s.cnt.add("udp_send_error")
			continue
		}
		a.s.cnt.add("socks5_udp_out")
	}
}

func (a *association) fromOverlay() {
	buf := make([]byte, 65535)
	out := make([]byte, 0, 65535+262)
	for {
		n, from, err := a.overlay.ReadFrom(buf)
		if err != nil {
			return
		}
		ua, ok := from.(*net.UDPAddr)
		if !ok {
			continue
		}
		src := netip.AddrPortFrom(ua.AddrPort().Addr().Unmap(), ua.AddrPort().Port())
		a.mu.Lock()
		name, known := a.peers[src]
		client := a.client
		a.mu.Unlock()
		if !known || !client.IsValid() {
			// Not touched: unsolicited datagrams must not keep the association alive.
			a.s.cnt.add("socks5_udp_unsolicited")
			continue
		}
		a.touch()
		// Answer with the address the client asked for, so that a client that sent to a
		// name matches the reply.
		if name.Name == "" {
			name = Addr{IP: src.Addr(), Port: src.Port()}
		}
		out = AppendUDPHeader(out[:0], name)
		if len(out)+n > maxUDPDatagram {
			a.s.cnt.add("socks5_udp_too_big")
			continue
		}
		out = append(out, buf[:n]...)
		if _, err := a.local.WriteToUDPAddrPort(out, client); err != nil {
			a.s.cnt.add("udp_send_error")
			continue
		}
		a.s.cnt.add("socks5_udp_in")
	}
}
