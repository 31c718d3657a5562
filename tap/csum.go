package tap

import (
	"encoding/binary"
	"math/bits"
)

// The Internet checksum (RFC 1071) and partial checksums: pure Go, on every platform (the
// tunnel completes partial checksums whatever the device).

// Partial says where a frame's transport checksum is when it is left partial
// (CHECKSUM_PARTIAL, see Device.ReadPartial): the TCP or UDP header starts at Start, the
// checksum field is Field bytes into it (16 for TCP, 6 for UDP), and the field holds the
// pseudo-header sum. The zero Partial: the checksums are complete.
type Partial struct{ Start, Field uint16 }

// Complete computes the checksum p leaves partial in the frame f, as the kernel's
// skb_checksum_help does (a zero result is written as 0xffff). It reports false, leaving f
// as it is, when p does not fit in f.
func Complete(f []byte, p Partial) bool {
	start, at := int(p.Start), int(p.Start)+int(p.Field)
	if p.Field == 0 || at+2 > len(f) {
		return false
	}
	sum := ^csumFold(csumAdd(0, f[start:]))
	if sum == 0 {
		sum = 0xffff
	}
	binary.BigEndian.PutUint16(f[at:], sum)
	return true
}

// csumAdd adds b, as big-endian 16-bit words, to the unfolded one's complement sum acc.
//
// The one's complement sum does not depend on byte order (RFC 1071, 2.B): b's 8-byte words
// are summed as the CPU loads them (no byte swap), 64 bytes per round, folded to 16 bits and
// swapped once at the end on a little-endian CPU; only the last few bytes go in big-endian.
func csumAdd(acc uint64, b []byte) uint64 {
	var ne, c uint64
	for len(b) >= 64 {
		ne, c = bits.Add64(ne, binary.NativeEndian.Uint64(b), 0)
		ne, c = bits.Add64(ne, binary.NativeEndian.Uint64(b[8:]), c)
		ne, c = bits.Add64(ne, binary.NativeEndian.Uint64(b[16:]), c)
		ne, c = bits.Add64(ne, binary.NativeEndian.Uint64(b[24:]), c)
		ne, c = bits.Add64(ne, binary.NativeEndian.Uint64(b[32:]), c)
		ne, c = bits.Add64(ne, binary.NativeEndian.Uint64(b[40:]), c)
		ne, c = bits.Add64(ne, binary.NativeEndian.Uint64(b[48:]), c)
		ne, c = bits.Add64(ne, binary.NativeEndian.Uint64(b[56:]), c)
		ne = csumCarry(ne, c)
		b = b[64:]
	}
	for len(b) >= 8 {
		ne, c = bits.Add64(ne, binary.NativeEndian.Uint64(b), 0)
		ne = csumCarry(ne, c)
		b = b[8:]
	}
	if ne != 0 {
		w := uint64(csumFold(ne))
		if littleEndian {
			w = uint64(bits.ReverseBytes16(uint16(w)))
		}
		acc, c = bits.Add64(acc, w, 0)
		acc = csumCarry(acc, c)
	}
	for len(b) >= 2 {
		acc, c = bits.Add64(acc, uint64(binary.BigEndian.Uint16(b)), 0)
		acc = csumCarry(acc, c)
		b = b[2:]
	}
	if len(b) == 1 {
		acc, c = bits.Add64(acc, uint64(b[0])<<8, 0)
		acc = csumCarry(acc, c)
	}
	return acc
}

// littleEndian reports the CPU's byte order (csumAdd swaps its native sum on it).
var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// csumCarry adds a carry out of 64 bits back in (end-around carry: 2^64 ≡ 1 modulo 2^16-1).
func csumCarry(acc, c uint64) uint64 {
	acc, c = bits.Add64(acc, c, 0)
	return acc + c // cannot carry again: acc is 0 when c is 1
}

// csumFold folds an unfolded sum to 16 bits (2^16 ≡ 1 modulo 2^16-1, so 64-bit words fold
// to the sum of their 16-bit words).
func csumFold(acc uint64) uint16 {
	hi, lo := acc>>32, acc&0xffffffff
	acc = hi + lo
	acc = (acc >> 16) + (acc & 0xffff)
	acc = (acc >> 16) + (acc & 0xffff)
	acc = (acc >> 16) + (acc & 0xffff)
	return uint16(acc)
}
