package membership

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"net/netip"
	"strings"
)

// TagNodeInfo is the Serf tag key that carries a member's encoded NodeInfo.
// It is reserved: SetTag refuses it, SetNodeInfo writes it.
const TagNodeInfo = "n"

// NodeInfoVersion is the version byte of the NodeInfo wire format.
const NodeInfoVersion = 1

// MaxVNI is the largest VXLAN network identifier (24 bits).
const MaxVNI = 1<<24 - 1

// Named errors of the NodeInfo codec (compare with errors.Is).
var (
	ErrNodeInfoEncoding = errors.New("nodeinfo: tag is not unpadded base64url")
	ErrNodeInfoShort    = errors.New("nodeinfo: too short")
	ErrNodeInfoLength   = errors.New("nodeinfo: trailing bytes")
	ErrNodeInfoVersion  = errors.New("nodeinfo: unknown version")
	ErrNodeInfoFlags    = errors.New("nodeinfo: unknown flags")
	ErrNodeInfoSubnet   = errors.New("nodeinfo: invalid subnet")
	ErrNodeInfoVNI      = errors.New("nodeinfo: VNI exceeds 24 bits")
	ErrNoNodeInfo       = errors.New("nodeinfo: member has no " + TagNodeInfo + " tag")
)

// NodeInfo is what a host tells the cluster about its datapath. It travels in
// the single Serf tag TagNodeInfo.
type NodeInfo struct {
	// PublicKey is the host's static WireGuard-style public key.
	PublicKey [32]byte
	// DataPort is the UDP port of the encrypted datapath (default 51820).
	DataPort uint16
	// Subnet is the host's overlay subnet. The Cluster fills it in (static or
	// allocated); the zero Prefix means "none announced".
	Subnet netip.Prefix
	// VNI is the VXLAN network identifier (24 bits).
	VNI uint32
	// Proto is the datapath protocol version.
	Proto uint8
	// Mode is the datapath mode (the agent's constant, e.g. L3 or L2).
	Mode byte
	// MAC is the host's TAP address in L2 mode; all zero means absent
	// (and costs no bytes on the wire).
	MAC [6]byte
	// Static reports that Subnet was configured, not allocated. Set by the Cluster.
	Static bool
	// StaticSince is when the host started claiming its static subnet, in Unix
	// milliseconds; of two hosts with the same static subnet the later one is
	// in conflict. Only carried when Static is set. Set by the Cluster.
	StaticSince int64
}

// Wire format, version 1 (then unpadded base64url so that the tag stays text):
//
//	[0]      version (1)
//	[1]      flags: bit0 MAC present, bit1 static subnet; other bits must be 0
//	[2:34]   public key
//	[34:36]  data port, big endian
//	[36:39]  VNI, 24 bits big endian
//	[39]     protocol version
//	[40]     mode
//	[41]     subnet family: 0 none, 4 IPv4, 6 IPv6
//	         then the address (4 or 16 bytes) and the prefix length (1 byte)
//	[..+6]   MAC, if flag bit0
//	[..+8]   static-since, Unix ms big endian, if flag bit1
//
// An IPv4 node without MAC is 47 bytes, 63 characters in the tag.
const (
	flagMAC    = 1 << 0
	flagStatic = 1 << 1
	flagsKnown = flagMAC | flagStatic

	nodeInfoFixed = 42
)

var tagEncoding = base64.RawURLEncoding.Strict()

// AppendBinary appends the binary form of n to b.
func (n NodeInfo) AppendBinary(b []byte) ([]byte, error) {
	if n.VNI > MaxVNI {
		return b, ErrNodeInfoVNI
	}
	if n.Subnet != (netip.Prefix{}) && (!n.Subnet.IsValid() || n.Subnet.Masked() != n.Subnet) {
		return b, ErrNodeInfoSubnet
	}
	var flags byte
	if n.MAC != ([6]byte{}) {
		flags |= flagMAC
	}
	if n.Static {
		flags |= flagStatic
	}
	b = append(b, NodeInfoVersion, flags)
	b = append(b, n.PublicKey[:]...)
	b = binary.BigEndian.AppendUint16(b, n.DataPort)
	b = append(b, byte(n.VNI>>16), byte(n.VNI>>8), byte(n.VNI), n.Proto, n.Mode)
	switch {
	case !n.Subnet.IsValid():
		b = append(b, 0)
	case n.Subnet.Addr().Is4():
		a := n.Subnet.Addr().As4()
		b = append(b, 4)
		b = append(b, a[:]...)
		b = append(b, byte(n.Subnet.Bits()))
	default:
		a := n.Subnet.Addr().As16()
		b = append(b, 6)
		b = append(b, a[:]...)
		b = append(b, byte(n.Subnet.Bits()))
	}
	if flags&flagMAC != 0 {
		b = append(b, n.MAC[:]...)
	}
	if flags&flagStatic != 0 {
		b = binary.BigEndian.AppendUint64(b, uint64(n.StaticSince))
	}
	return b, nil
}

// MarshalBinary returns the binary form of n.
func (n NodeInfo) MarshalBinary() ([]byte, error) {
	return n.AppendBinary(make([]byte, 0, nodeInfoFixed+17+6+8))
}

// UnmarshalBinary decodes the binary form strictly: the exact length, a known
// version and flags, a canonical (masked) subnet. On error n is unchanged.
func (n *NodeInfo) UnmarshalBinary(b []byte) error {
	if len(b) < nodeInfoFixed {
		return ErrNodeInfoShort
	}
	if b[0] != NodeInfoVersion {
		return ErrNodeInfoVersion
	}
	flags := b[1]
	if flags&^flagsKnown != 0 {
		return ErrNodeInfoFlags
	}
	var out NodeInfo
	copy(out.PublicKey[:], b[2:34])
	out.DataPort = binary.BigEndian.Uint16(b[34:36])
	out.VNI = uint32(b[36])<<16 | uint32(b[37])<<8 | uint32(b[38])
	out.Proto = b[39]
	out.Mode = b[40]
	rest := b[nodeInfoFixed:]
	switch b[41] {
	case 0:
	case 4, 6:
		size := 4
		if b[41] == 6 {
			size = 16
		}
		if len(rest) < size+1 {
			return ErrNodeInfoShort
		}
		addr, _ := netip.AddrFromSlice(rest[:size])
		bits := int(rest[size])
		if bits > size*8 {
			return ErrNodeInfoSubnet
		}
		p := netip.PrefixFrom(addr, bits)
		if p.Masked() != p {
			return ErrNodeInfoSubnet
		}
		out.Subnet = p
		rest = rest[size+1:]
	default:
		return ErrNodeInfoSubnet
	}
	if flags&flagMAC != 0 {
		if len(rest) < 6 {
			return ErrNodeInfoShort
		}
		copy(out.MAC[:], rest[:6])
		if out.MAC == ([6]byte{}) {
			return ErrNodeInfoFlags // an all-zero MAC is encoded as absent
		}
		rest = rest[6:]
	}
	if flags&flagStatic != 0 {
		if len(rest) < 8 {
			return ErrNodeInfoShort
		}
		out.Static = true
		out.StaticSince = int64(binary.BigEndian.Uint64(rest[:8]))
		rest = rest[8:]
	}
	if len(rest) != 0 {
		return ErrNodeInfoLength
	}
	*n = out
	return nil
}

// EncodeTag returns the tag value of n: its binary form in unpadded base64url.
// Serf would carry raw bytes, but tags also leave the process as JSON and log
// fields, where invalid UTF-8 is mangled; text costs 16 bytes for an IPv4 node.
func (n NodeInfo) EncodeTag() (string, error) {
	var scratch [nodeInfoFixed + 17 + 6 + 8]byte
	b, err := n.AppendBinary(scratch[:0])
	if err != nil {
		return "", err
	}
	return tagEncoding.EncodeToString(b), nil
}

// DecodeNodeInfo parses a TagNodeInfo value strictly.
func DecodeNodeInfo(tag string) (NodeInfo, error) {
	var scratch [(nodeInfoFixed + 17 + 6 + 8 + 1)]byte
	if tagEncoding.DecodedLen(len(tag)) > len(scratch) {
		return NodeInfo{}, ErrNodeInfoLength
	}
	if strings.ContainsAny(tag, "\r\n") { // the decoder skips them; one tag, one spelling
		return NodeInfo{}, ErrNodeInfoEncoding
	}
	nb, err := tagEncoding.Decode(scratch[:], []byte(tag))
	if err != nil {
		return NodeInfo{}, ErrNodeInfoEncoding
	}
	var n NodeInfo
	if err := n.UnmarshalBinary(scratch[:nb]); err != nil {
		return NodeInfo{}, err
	}
	return n, nil
}
