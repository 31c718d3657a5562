package tunnel

import (
	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/vxlan"
)

// Framing is how an inner packet travels inside a UDP datagram; it decides the bytes
// weft adds around it, and so the largest inner packet an underlay MTU carries.
type Framing int

const (
	// FramingL3: an encrypted transport message (header 16, tag 16) around a VXLAN header
	// (8) and an IP packet. Padding never takes a packet past the MTU, so it adds nothing.
	FramingL3 Framing = iota
	// FramingL2: as FramingL3 with an Ethernet frame inside; the frame's 14-byte header is
	// counted, so the result is the TAP's MTU (an IP packet's largest size).
	FramingL2
	// FramingWireGuard: a stock WireGuard peer's transport message (header 16, tag 16)
	// around a bare IP packet: no VXLAN header.
	FramingWireGuard
	// FramingPlainL2: plain RFC 7348 VXLAN (8) around an Ethernet frame, no encryption.
	FramingPlainL2
)

// Header sizes of the underlay.
const (
	IPv4Header     = 20
	IPv6Header     = 40
	UDPHeader      = 8
	EthernetHeader = 14
)

// Overhead is what weft adds between an inner IP packet of MTU size and the underlay's
// MTU: the underlay's IP and UDP headers and the framing's own bytes (ipv6: an IPv6
// underlay). InnerMTU(u, f, v6) == u - Overhead(f, v6).
func Overhead(f Framing, ipv6 bool) int {
	ip := IPv4Header
	if ipv6 {
		ip = IPv6Header
	}
	return ip + UDPHeader + FramingOverhead(f)
}

// FramingOverhead is the framing's part of Overhead: the bytes inside the UDP payload
// that are not the inner IP packet.
func FramingOverhead(f Framing) int {
	transport := crypto.MessageTransportOverhead // header 16 + tag 16
	switch f {
	case FramingL2:
		return transport + vxlan.HeaderSize + EthernetHeader
	case FramingWireGuard:
		return transport
	case FramingPlainL2:
		return vxlan.HeaderSize + EthernetHeader
	default:
		return transport + vxlan.HeaderSize
	}
}

// InnerMTU is the largest inner IP packet (the device MTU) that an underlay of MTU
// underlay carries in framing f without IP fragmentation; below 0 it returns 0.
func InnerMTU(underlay int, f Framing, ipv6 bool) int {
	return max(0, underlay-Overhead(f, ipv6))
}
