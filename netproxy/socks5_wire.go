package netproxy

// SOCKS5's wire format (RFC 1928, RFC 1929): the protocol numbers, the parsers' errors,
// addresses (name or IP, and port) and the header of a UDP datagram.

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"strconv"
)

// SOCKS5 protocol numbers.
const (
	socksVersion = 5
	authVersion  = 1 // RFC 1929 sub-negotiation version

	methodNone     = 0x00
	methodUserPass = 0x02
	methodNoAccept = 0xff

	cmdConnect      = 1
	cmdBind         = 2
	cmdUDPAssociate = 3

	atypIPv4   = 1
	atypDomain = 3
	atypIPv6   = 4

	repSucceeded          = 0
	repGeneralFailure     = 1
	repNotAllowed         = 2
	repNetworkUnreachable = 3
	repHostUnreachable    = 4
	repRefused            = 5
	repCommandUnsupported = 7
	repAddrUnsupported    = 8
)

// maxUDPDatagram is the largest UDP payload relayed (IPv4's limit less headers).
const maxUDPDatagram = 65507

// Errors of the SOCKS5 parsers; each is also a counter name.
var (
	errBadVersion    = errors.New("socks5: bad version")
	errNoMethods     = errors.New("socks5: no methods")
	errBadAddrType   = errors.New("socks5: unsupported address type")
	errBadDomain     = errors.New("socks5: bad domain name")
	errShort         = errors.New("socks5: short message")
	errFragment      = errors.New("socks5: fragmented datagram")
	errBadReserved   = errors.New("socks5: reserved field not zero")
	errBadAuth       = errors.New("socks5: bad authentication")
	errUnknownCmd    = errors.New("socks5: unknown command")
	errNoAcceptable  = errors.New("socks5: no acceptable method")
	errBadAuthFormat = errors.New("socks5: malformed authentication")
)

// Addr is a SOCKS5 address: a name or an IP, and a port.
type Addr struct {
	Name string     // set for ATYP 3 (domain)
	IP   netip.Addr // set for ATYP 1 and 4
	Port uint16
}

// Host is the name or the address as text.
func (a Addr) Host() string {
	if a.Name != "" {
		return a.Name
	}
	return a.IP.String()
}

func (a Addr) String() string { return net.JoinHostPort(a.Host(), strconv.Itoa(int(a.Port))) }

// appendAddr appends ATYP, address and port.
func appendAddr(b []byte, a Addr) []byte {
	switch {
	case a.Name != "":
		b = append(b, atypDomain, byte(len(a.Name)))
		b = append(b, a.Name...)
	case a.IP.Is4():
		b = append(b, atypIPv4)
		b = append(b, a.IP.AsSlice()...)
	case a.IP.IsValid():
		b = append(b, atypIPv6)
		b = append(b, a.IP.AsSlice()...)
	default:
		b = append(b, atypIPv4, 0, 0, 0, 0)
	}
	return binary.BigEndian.AppendUint16(b, a.Port)
}

// validName accepts a host name of letters, digits, '-', '_' and '.' (1-255 bytes): SOCKS5
// carries raw bytes, and a name goes on into a resolver and logs.
func validName(s string) bool {
	if len(s) == 0 || len(s) > 255 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}

// parseAddr parses ATYP, address and port at the start of b and returns the rest.
func parseAddr(b []byte) (Addr, []byte, error) {
	if len(b) < 1 {
		return Addr{}, nil, errShort
	}
	var a Addr
	switch b[0] {
	case atypIPv4:
		if len(b) < 1+4+2 {
			return Addr{}, nil, errShort
		}
		a.IP = netip.AddrFrom4([4]byte(b[1:5]))
		b = b[5:]
	case atypIPv6:
		if len(b) < 1+16+2 {
			return Addr{}, nil, errShort
		}
		a.IP = netip.AddrFrom16([16]byte(b[1:17]))
		b = b[17:]
	case atypDomain:
		if len(b) < 2 {
			return Addr{}, nil, errShort
		}
		n := int(b[1])
		if len(b) < 2+n+2 {
			return Addr{}, nil, errShort
		}
		a.Name = string(b[2 : 2+n])
		if !validName(a.Name) {
			return Addr{}, nil, errBadDomain
		}
		b = b[2+n:]
	default:
		return Addr{}, nil, errBadAddrType
	}
	a.Port = binary.BigEndian.Uint16(b)
	return a, b[2:], nil
}

// readAddr reads ATYP, address and port from r.
func readAddr(r io.Reader) (Addr, error) {
	var buf [2 + 255 + 2]byte
	if _, err := io.ReadFull(r, buf[:1]); err != nil {
		return Addr{}, errShort
	}
	var need int
	switch buf[0] {
	case atypIPv4:
		need = 4 + 2
	case atypIPv6:
		need = 16 + 2
	case atypDomain:
		if _, err := io.ReadFull(r, buf[1:2]); err != nil {
			return Addr{}, errShort
		}
		if buf[1] == 0 {
			return Addr{}, errBadDomain
		}
		if _, err := io.ReadFull(r, buf[2:2+int(buf[1])+2]); err != nil {
			return Addr{}, errShort
		}
		a, _, err := parseAddr(buf[:2+int(buf[1])+2])
		return a, err
	default:
		return Addr{}, errBadAddrType
	}
	if _, err := io.ReadFull(r, buf[1:1+need]); err != nil {
		return Addr{}, errShort
	}
	a, _, err := parseAddr(buf[:1+need])
	return a, err
}

// UDPHeader is the header of a SOCKS5 UDP datagram (RFC 1928 section 7).
type UDPHeader struct {
	Frag byte
	Addr Addr
}

// ParseUDPHeader parses a SOCKS5 UDP datagram into its header and payload (borrowed from b).
// A fragment number other than 0 is errFragment: fragmentation is optional in RFC 1928 and
// this relay drops such datagrams, as the RFC allows.
func ParseUDPHeader(b []byte) (UDPHeader, []byte, error) {
	if len(b) < 3 {
		return UDPHeader{}, nil, errShort
	}
	if b[0] != 0 || b[1] != 0 {
		return UDPHeader{}, nil, errBadReserved
	}
	h := UDPHeader{Frag: b[2]}
	if h.Frag != 0 {
		return h, nil, errFragment
	}
	a, rest, err := parseAddr(b[3:])
	if err != nil {
		return UDPHeader{}, nil, err
	}
	h.Addr = a
	return h, rest, nil
}

// AppendUDPHeader appends the header of a datagram from or to a.
func AppendUDPHeader(b []byte, a Addr) []byte {
	return appendAddr(append(b, 0, 0, 0), a)
}
