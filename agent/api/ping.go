package api

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// `weft ping PEER|ADDR`: ICMP echo over the overlay, sent by this host itself, with what the
// agent knows about the path: the peer that carries the address, its endpoint, and whether
// a handshake had to complete before the reply (the peer's last handshake moved).

// ResolvePing finds the overlay address and the peer of target: an overlay address, or a
// peer's name or public key (then the first address of its first allowed prefix: a gossip
// member's own overlay address).
func ResolvePing(peers []Peer, target string) (PingTarget, error) {
	if addr, err := netip.ParseAddr(target); err == nil {
		best, bits := Peer{}, -1
		for _, p := range peers {
			for _, s := range p.AllowedIPs {
				if pfx, err := netip.ParsePrefix(s); err == nil && pfx.Contains(addr) && pfx.Bits() > bits {
					best, bits = p, pfx.Bits()
				}
			}
		}
		if bits < 0 {
			return PingTarget{}, fmt.Errorf("no peer carries %s: it is not in any peer's allowed IPs (weft peers)", addr)
		}
		return PingTarget{Addr: addr, Peer: best}, nil
	}
	for _, p := range peers {
		if p.Name != target && p.PublicKey != target {
			continue
		}
		if len(p.AllowedIPs) == 0 {
			return PingTarget{}, fmt.Errorf("peer %s has no allowed IPs to ping", target)
		}
		pfx, err := netip.ParsePrefix(p.AllowedIPs[0])
		if err != nil {
			return PingTarget{}, err
		}
		addr := pfx.Masked().Addr()
		if !pfx.IsSingleIP() {
			addr = addr.Next()
		}
		return PingTarget{Addr: addr, Peer: p}, nil
	}
	return PingTarget{}, fmt.Errorf("no peer named %q (give a name or public key from weft peers, or an overlay address)", target)
}

// Pinger sends ICMP echo requests and reads their replies.
type Pinger struct {
	c    *icmp.PacketConn
	v6   bool
	id   int
	priv bool // a raw socket (root): replies are matched by our id
}

// NewPinger opens an ICMP socket for the family of dst: raw when the process may
// (root, CAP_NET_RAW), else an unprivileged datagram socket (net.ipv4.ping_group_range).
func NewPinger(dst netip.Addr) (*Pinger, error) {
	network, raw, addr := "ip4:icmp", "udp4", "0.0.0.0"
	if dst.Is6() {
		network, raw, addr = "ip6:ipv6-icmp", "udp6", "::"
	}
	c, err := icmp.ListenPacket(network, addr)
	priv := err == nil
	if err != nil {
		if c, err = icmp.ListenPacket(raw, addr); err != nil {
			return nil, fmt.Errorf("icmp socket: %w (run as root)", err)
		}
	}
	return &Pinger{c: c, v6: dst.Is6(), id: os.Getpid() & 0xffff, priv: priv}, nil
}

// Close closes the socket.
func (p *Pinger) Close() error { return p.c.Close() }

// Echo sends one echo request with seq and waits up to timeout for its reply.
func (p *Pinger) Echo(dst netip.Addr, seq int, timeout time.Duration) (time.Duration, error) {
	var typ icmp.Type = ipv4.ICMPTypeEcho
	proto := 1
	if p.v6 {
		typ, proto = ipv6.ICMPTypeEchoRequest, 58
	}
	msg := icmp.Message{Type: typ, Body: &icmp.Echo{ID: p.id, Seq: seq, Data: []byte("weft ping")}}
	b, err := msg.Marshal(nil)
	if err != nil {
		return 0, err
	}
	var to net.Addr = &net.IPAddr{IP: dst.AsSlice()}
	if !p.priv {
		to = &net.UDPAddr{IP: dst.AsSlice()}
	}
	start := time.Now()
	if _, err := p.c.WriteTo(b, to); err != nil {
		return 0, fmt.Errorf("send: %w", err)
	}
	deadline := start.Add(timeout)
	buf := make([]byte, 1500)
	for {
		if err := p.c.SetReadDeadline(deadline); err != nil {
			return 0, err
		}
		n, from, err := p.c.ReadFrom(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return 0, fmt.Errorf("no reply within %s", timeout)
			}
			return 0, err
		}
		rm, err := icmp.ParseMessage(proto, buf[:n])
		if err != nil {
			continue // not ICMP we understand: not our reply
		}
		echo, ok := rm.Body.(*icmp.Echo)
		if !ok || (rm.Type != ipv4.ICMPTypeEchoReply && rm.Type != ipv6.ICMPTypeEchoReply) || echo.Seq != seq || (p.priv && echo.ID != p.id) {
			continue
		}
		if fa := addrOf(from); fa != dst {
			continue
		}
		return time.Since(start), nil
	}
}

func addrOf(a net.Addr) netip.Addr {
	var ip net.IP
	switch v := a.(type) {
	case *net.IPAddr:
		ip = v.IP
	case *net.UDPAddr:
		ip = v.IP
	}
	addr, _ := netip.AddrFromSlice(ip)
	return addr.Unmap()
}
