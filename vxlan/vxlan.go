package vxlan

import (
	"encoding/binary"
	"errors"
)

// VXLAN(-GPE) header, RFC 7348 with the next-protocol byte of VXLAN-GPE:
//
//	0               1               2               3
//	| flags (I=0x08, P=0x04) | reserved (16) | next protocol |
//	| VNI (24)                               | reserved (8)  |
//
// In weft's transport messages the header sits inside the AEAD, so the VNI is
// authenticated. Plain RFC 7348 (L2 plaintext mode) sets only the I flag and leaves the
// next-protocol byte zero.

// HeaderSize is the size of a VXLAN header.
const HeaderSize = 8

// NextProto is the VXLAN-GPE next-protocol byte.
type NextProto uint8

// Next protocols carried after the VXLAN header.
const (
	ProtoNone     NextProto = 0x00 // plain RFC 7348 (no P flag): Ethernet implied
	ProtoIPv4     NextProto = 0x01
	ProtoIPv6     NextProto = 0x02
	ProtoEthernet NextProto = 0x03
	// ProtoPMTUProbe and ProtoPMTUAck carry weft's path-MTU probes inside the encrypted
	// transport (tunnel/pmtu.go); never on a plain VTEP. They take the two values the
	// VXLAN-GPE registry leaves for experiments (0xFE, 0xFF).
	ProtoPMTUProbe NextProto = 0xFE
	ProtoPMTUAck   NextProto = 0xFF
)

const (
	vxlanFlagI = 0x08 // VNI valid
	vxlanFlagP = 0x04 // next protocol present (GPE)
	// MaxVNI is the largest 24-bit VNI.
	MaxVNI = 1<<24 - 1
)

// Named VXLAN codec errors.
var (
	ErrShort = errors.New("vxlan: header shorter than 8 bytes")
	ErrFlags = errors.New("vxlan: I flag not set")
	ErrVNI   = errors.New("vxlan: VNI does not fit in 24 bits")
)

// weft's inner-checksum bits, in the header's first reserved byte (byte 1). They are set
// only inside weft's encrypted transport, never on a plain VTEP, and a receiver that does
// not know them ignores them (reserved bits are ignored on receipt).
const (
	// CsumAccepted: the sender takes packets whose inner TCP or UDP checksum is left
	// partial (its device delivers them as CHECKSUM_PARTIAL). Set on every data packet of
	// a sender that does.
	CsumAccepted = 0x01
	// CsumPartial: this packet's inner TCP or UDP checksum is left partial: the field holds
	// the pseudo-header sum, as the kernel hands such packets over. Sent only to a peer
	// whose own packets carry CsumAccepted.
	CsumPartial = 0x02
)

// Header is a decoded VXLAN(-GPE) header.
type Header struct {
	VNI       uint32
	NextProto NextProto // ProtoNone: plain RFC 7348 (no P flag)
	Csum      byte      // weft's inner-checksum bits (CsumAccepted, CsumPartial)
}

// Put writes h into b[:8]. NextProto ProtoNone writes a plain RFC 7348 header (and a plain
// VTEP leaves Csum zero).
func (h Header) Put(b []byte) error {
	if len(b) < HeaderSize {
		return ErrShort
	}
	if h.VNI > MaxVNI {
		return ErrVNI
	}
	Encode(b, h.VNI, h.NextProto)
	b[1] = h.Csum
	return nil
}

// Encode is Put without checks, for the hot path: b has at least 8 bytes and vni fits in
// 24 bits (the caller validated its configuration once).
func Encode(b []byte, vni uint32, proto NextProto) {
	_ = b[7]
	flags := byte(vxlanFlagI)
	if proto != ProtoNone {
		flags |= vxlanFlagP
	}
	binary.BigEndian.PutUint32(b[0:4], uint32(flags)<<24|uint32(proto))
	binary.BigEndian.PutUint32(b[4:8], vni<<8)
}

// Parse decodes the header at the start of b. Reserved bits are ignored on receipt,
// as RFC 7348 asks. It does not allocate (its errors are package variables) and is small
// enough to inline, so the receive paths call it per packet.
func Parse(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, ErrShort
	}
	if b[0]&vxlanFlagI == 0 {
		return Header{}, ErrFlags
	}
	h := Header{VNI: binary.BigEndian.Uint32(b[4:8]) >> 8, Csum: b[1]}
	if b[0]&vxlanFlagP != 0 {
		h.NextProto = NextProto(b[3])
	}
	return h, nil
}
