package l2

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
)

// Ethernet framing as L2 mode sees it: what a TAP device reads and writes and what a VXLAN
// packet carries after its 8-byte header (RFC 7348 §5: the inner frame has no FCS).

// MAC is an IEEE 802 MAC-48 address. An array, so it is a comparable map key without
// allocation (net.HardwareAddr is a slice).
type MAC [6]byte

// BroadcastMAC is ff:ff:ff:ff:ff:ff.
var BroadcastMAC = MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// IsMulticast reports whether the group bit is set (broadcast included).
func (m MAC) IsMulticast() bool { return m[0]&0x01 != 0 }

// IsZero reports whether m is 00:00:00:00:00:00.
func (m MAC) IsZero() bool { return m == MAC{} }

// String formats m as aa:bb:cc:dd:ee:ff (allocates; control path only).
func (m MAC) String() string {
	const hexdigits = "0123456789abcdef"
	var b [17]byte
	for i, v := range m {
		if i > 0 {
			b[i*3-1] = ':'
		}
		b[i*3] = hexdigits[v>>4]
		b[i*3+1] = hexdigits[v&0x0f]
	}
	return string(b[:])
}

// MarshalText formats m as aa:bb:cc:dd:ee:ff, so MACs read well in JSON (`weft fdb --json`).
func (m MAC) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText parses the form MarshalText writes.
func (m *MAC) UnmarshalText(b []byte) error {
	v, err := ParseMAC(string(b))
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// ParseMAC parses the aa:bb:cc:dd:ee:ff form (either case, ':' or '-' separators).
func ParseMAC(s string) (MAC, error) {
	var m MAC
	hw, err := net.ParseMAC(s)
	if err != nil || len(s) != 17 || len(hw) != len(m) {
		return m, ErrInvalidMAC
	}
	copy(m[:], hw)
	return m, nil
}

// EtherTypes weft looks at.
const (
	EtherTypeIPv4     = 0x0800
	EtherTypeARP      = 0x0806
	EtherTypeVLAN     = 0x8100 // IEEE 802.1Q customer tag
	EtherTypeQinQ     = 0x88a8 // IEEE 802.1ad service tag
	EtherTypeIPv6     = 0x86dd
	EthernetHeaderLen = 14 // destination, source, EtherType
	vlanTagLen        = 4
	maxVLANTags       = 2 // QinQ; a deeper stack is refused rather than walked
)

// Named reasons a frame is not understood. They are returned per frame, so they are values
// (no formatting, no allocation).
var (
	ErrShortFrame      = errors.New("ethernet: frame shorter than its header")
	ErrTooManyVLANTags = errors.New("ethernet: more than two VLAN tags")
	ErrInvalidMAC      = errors.New("ethernet: MAC address must look like aa:bb:cc:dd:ee:ff")
	ErrShortARP        = errors.New("arp: packet shorter than 28 bytes")
	ErrUnsupportedARP  = errors.New("arp: not Ethernet/IPv4 ARP")
)

// EthernetFrame is the parsed header of one frame; it does not retain the buffer.
type EthernetFrame struct {
	Dst, Src  MAC
	VLANs     int    // number of 802.1Q/802.1ad tags skipped (0..2)
	VLAN      uint16 // VLAN id of the innermost tag (0 when untagged)
	EtherType uint16 // of the payload, after the tags
	// PayloadOffset is where the payload starts: 14 + 4*VLANs.
	PayloadOffset int
}

// ParseEthernet parses the header of frame. Errors: ErrShortFrame, ErrTooManyVLANTags.
func ParseEthernet(frame []byte) (EthernetFrame, error) {
	var f EthernetFrame
	if len(frame) < EthernetHeaderLen {
		return f, ErrShortFrame
	}
	copy(f.Dst[:], frame[0:6])
	copy(f.Src[:], frame[6:12])
	off := 12
	et := binary.BigEndian.Uint16(frame[off:])
	for et == EtherTypeVLAN || et == EtherTypeQinQ {
		if f.VLANs == maxVLANTags {
			return f, ErrTooManyVLANTags
		}
		if len(frame) < off+vlanTagLen+2 {
			return f, ErrShortFrame
		}
		f.VLANs++
		f.VLAN = binary.BigEndian.Uint16(frame[off+2:]) & 0x0fff
		off += vlanTagLen
		et = binary.BigEndian.Uint16(frame[off:])
	}
	f.EtherType = et
	f.PayloadOffset = off + 2
	return f, nil
}

// ARP operations.
const (
	ARPRequest = 1
	ARPReply   = 2
	arpLen     = 28 // Ethernet/IPv4 ARP
)

// ARPPacket is a parsed Ethernet/IPv4 ARP packet (RFC 826).
type ARPPacket struct {
	Op        uint16
	SenderMAC MAC
	SenderIP  netip.Addr
	TargetMAC MAC
	TargetIP  netip.Addr
}

// ParseARP parses the ARP payload of a frame (frame[f.PayloadOffset:]). Only hardware type
// Ethernet with protocol IPv4 is understood. Errors: ErrShortARP, ErrUnsupportedARP.
func ParseARP(payload []byte) (ARPPacket, error) {
	var a ARPPacket
	if len(payload) < arpLen {
		return a, ErrShortARP
	}
	if binary.BigEndian.Uint16(payload[0:]) != 1 || binary.BigEndian.Uint16(payload[2:]) != EtherTypeIPv4 ||
		payload[4] != 6 || payload[5] != 4 {
		return a, ErrUnsupportedARP
	}
	a.Op = binary.BigEndian.Uint16(payload[6:])
	copy(a.SenderMAC[:], payload[8:14])
	a.SenderIP = netip.AddrFrom4([4]byte(payload[14:18]))
	copy(a.TargetMAC[:], payload[18:24])
	a.TargetIP = netip.AddrFrom4([4]byte(payload[24:28]))
	return a, nil
}

// BuildARPReply writes into dst the reply a host owning req.TargetIP at mac would send to the
// request req, which was parsed from the frame reqFrame (its VLAN tags are kept). It returns
// the reply's length, or 0 when dst is too small or reqFrame is not a parsable ARP request.
// Does not retain either buffer. No allocation.
func BuildARPReply(dst []byte, reqFrame []byte, mac MAC) int {
	f, err := ParseEthernet(reqFrame)
	if err != nil || f.EtherType != EtherTypeARP {
		return 0
	}
	req, err := ParseARP(reqFrame[f.PayloadOffset:])
	if err != nil || req.Op != ARPRequest {
		return 0
	}
	n := f.PayloadOffset + arpLen
	if len(dst) < n {
		return 0
	}
	copy(dst[0:6], req.SenderMAC[:])
	copy(dst[6:12], mac[:])
	copy(dst[12:f.PayloadOffset], reqFrame[12:f.PayloadOffset]) // VLAN tags and ethertype
	p := dst[f.PayloadOffset:n]
	binary.BigEndian.PutUint16(p[0:], 1)
	binary.BigEndian.PutUint16(p[2:], EtherTypeIPv4)
	p[4], p[5] = 6, 4
	binary.BigEndian.PutUint16(p[6:], ARPReply)
	copy(p[8:14], mac[:])
	tip := req.TargetIP.As4()
	copy(p[14:18], tip[:])
	copy(p[18:24], req.SenderMAC[:])
	sip := req.SenderIP.As4()
	copy(p[24:28], sip[:])
	return n
}
