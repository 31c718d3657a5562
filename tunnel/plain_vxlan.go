package tunnel

import (
	"encoding/binary"
	"errors"
)

// A minimal, private RFC 7348 header for the plaintext VTEP. The shared VXLAN(-GPE) codec of
// the encrypted path lives in vxlan.go; the plaintext path must stay pure RFC 7348 (no GPE
// next-protocol bits on send) to interoperate with the Linux kernel vxlan driver, so it keeps
// this small helper. TODO(lead): fold into vxlan.go once that codec can emit plain headers.
//
//	 0                   1                   2                   3
//	|R|R|R|R|I|R|R|R|            Reserved                           |
//	|                VXLAN Network Identifier (VNI) |   Reserved    |

const (
	plainVXLANHdrLen = 8
	plainVXLANFlagI  = 0x08 // "VNI valid"; the only flag RFC 7348 defines
	// DefaultPlainPort is the IANA VXLAN port (RFC 7348 §5), the Linux vxlan default with
	// `dstport 4789`.
	DefaultPlainPort = 4789
	plainMaxVNI      = 1<<24 - 1 // the VNI is 24 bits
)

var (
	errPlainVXLANShort = errors.New("vxlan: packet shorter than its 8-byte header")
	errPlainVXLANNoI   = errors.New("vxlan: I flag (VNI valid) not set")
)

// putPlainVXLAN writes an RFC 7348 header for vni into b[0:8]: flags 0x08, all reserved bits
// zero.
func putPlainVXLAN(b []byte, vni uint32) {
	_ = b[7]
	binary.BigEndian.PutUint32(b[0:], uint32(plainVXLANFlagI)<<24)
	binary.BigEndian.PutUint32(b[4:], vni<<8)
}

// parsePlainVXLAN returns the VNI of an RFC 7348 header. Reserved bits are ignored on receipt
// as §5 requires; only the I flag must be set.
func parsePlainVXLAN(b []byte) (uint32, error) {
	if len(b) < plainVXLANHdrLen {
		return 0, errPlainVXLANShort
	}
	if b[0]&plainVXLANFlagI == 0 {
		return 0, errPlainVXLANNoI
	}
	return binary.BigEndian.Uint32(b[4:]) >> 8, nil
}
