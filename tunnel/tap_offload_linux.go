//go:build linux

package tunnel

import (
	"encoding/binary"
	"errors"
	"math/bits"

	"golang.org/x/sys/unix"
)

// TCP segmentation offload on the TAP: with IFF_VNET_HDR every frame read or written is
// preceded by a 10-byte virtio-net header. With TSO enabled (TAPDevice.EnableOffload) the
// kernel hands over a TCP super-frame of up to 64 KiB, one Ethernet header, one IP and TCP
// header and gso_size bytes per segment; the device cuts it into ordinary frames with their
// own IP and TCP headers and checksums, so what travels through the overlay is exactly what
// the kernel would have put on a wire. One read then moves up to 64 frames instead of one,
// and the sender's kernel skips segmenting in software.

// vnetHdrLen is the size of struct virtio_net_hdr (without num_buffers).
const vnetHdrLen = 10

// tapMaxGSOSegs bounds the segments of one super-frame (the link's gso_max_segs), so that
// one always fits in the buffers a Read has left.
const tapMaxGSOSegs = 64

// vnetHdr is struct virtio_net_hdr.
type vnetHdr struct {
	flags      uint8
	gsoType    uint8
	hdrLen     uint16
	gsoSize    uint16
	csumStart  uint16
	csumOffset uint16
}

// parseVnetHdr decodes b[:vnetHdrLen] (native byte order: the header is the host's).
func parseVnetHdr(b []byte) vnetHdr {
	return vnetHdr{
		flags:      b[0],
		gsoType:    b[1],
		hdrLen:     binary.NativeEndian.Uint16(b[2:]),
		gsoSize:    binary.NativeEndian.Uint16(b[4:]),
		csumStart:  binary.NativeEndian.Uint16(b[6:]),
		csumOffset: binary.NativeEndian.Uint16(b[8:]),
	}
}

// Named reasons a frame read from the TAP is unusable (never expected from a kernel).
var (
	errTAPBadGSO   = errors.New("tap: malformed GSO frame")
	errTAPBadCsum  = errors.New("tap: checksum offset outside the frame")
	errTAPTooShort = errors.New("tap: frame shorter than its virtio-net header")
)

// tcpFlagFIN, tcpFlagPSH and tcpFlagCWR are the TCP flags a segmentation must not repeat.
const (
	tcpFlagFIN = 0x01
	tcpFlagPSH = 0x08
	tcpFlagCWR = 0x80
)

// tapFinishFrame makes the frame f (read after header h) ordinary: a partial checksum is
// completed; a GSO super-frame is cut into segments. f is bufs[0][offset:offset+len(f)];
// segment i goes to bufs[i][offset:] (segment 0 in place) and its length to sizes[i]. It
// returns the number of frames.
func tapFinishFrame(h vnetHdr, bufs [][]byte, sizes []int, offset, n int) (int, error) {
	f := bufs[0][offset : offset+n]
	if h.gsoType == unix.VIRTIO_NET_HDR_GSO_NONE {
		if h.flags&unix.VIRTIO_NET_HDR_F_NEEDS_CSUM != 0 {
			start, at := int(h.csumStart), int(h.csumStart)+int(h.csumOffset)
			if start > n || at+2 > n {
				return 0, errTAPBadCsum
			}
			// The field holds the pseudo-header sum; the checksum covers it and the rest. A
			// zero result is sent as 0xffff (the same in one's complement; zero means "no
			// checksum" to UDP), as the kernel's skb_checksum_help does.
			sum := ^csumFold(csumAdd(0, f[start:]))
			if sum == 0 {
				sum = 0xffff
			}
			binary.BigEndian.PutUint16(f[at:], sum)
		}
		sizes[0] = n
		return 1, nil
	}
	return tapSplitTCP(h, bufs, sizes, offset, n)
}

// tapSplitTCP cuts the TCP super-frame bufs[0][offset:offset+n] into segments.
func tapSplitTCP(h vnetHdr, bufs [][]byte, sizes []int, offset, n int) (int, error) {
	f := bufs[0][offset : offset+n]
	v6 := h.gsoType == unix.VIRTIO_NET_HDR_GSO_TCPV6
	if h.gsoType&^unix.VIRTIO_NET_HDR_GSO_ECN != unix.VIRTIO_NET_HDR_GSO_TCPV4 && !v6 {
		return 0, errTAPBadGSO
	}
	// The IP header follows the Ethernet header and its VLAN tags.
	ip := ethernetHdrLen
	for {
		if len(f) < ip {
			return 0, errTAPBadGSO
		}
		et := binary.BigEndian.Uint16(f[ip-2:])
		if et != EtherTypeVLAN && et != EtherTypeQinQ {
			break
		}
		ip += vlanTagLen
	}
	tcp := int(h.csumStart)
	switch {
	case v6 && (tcp != ip+40 || len(f) < tcp || f[ip]>>4 != 6 || f[ip+6] != unix.IPPROTO_TCP):
		return 0, errTAPBadGSO
	case !v6 && (len(f) < ip+20 || f[ip]>>4 != 4 || tcp != ip+int(f[ip]&0xf)*4 || f[ip+9] != unix.IPPROTO_TCP):
		return 0, errTAPBadGSO
	}
	// The kernel's hdrLen is not to be trusted (it can cover a whole segment): use the TCP
	// header's own length.
	if len(f) < tcp+20 {
		return 0, errTAPBadGSO
	}
	hdr := tcp + int(f[tcp+12]>>4)*4
	mss := int(h.gsoSize)
	if hdr < tcp+20 || hdr > len(f) || mss == 0 {
		return 0, errTAPBadGSO
	}
	count := (n - hdr + mss - 1) / mss
	if count <= 1 {
		count = 1
	}
	if count > len(bufs) || count > len(sizes) {
		return 0, errTAPTooManySegments
	}
	seq := binary.BigEndian.Uint32(f[tcp+4:])
	id := binary.BigEndian.Uint16(f[ip+4:])
	flags := f[tcp+13]
	var addrs []byte // source and destination addresses, for the pseudo-header
	if v6 {
		addrs = f[ip+8 : ip+40]
	} else {
		addrs = f[ip+12 : ip+20]
	}
	pseudo := csumAdd(0, addrs) + unix.IPPROTO_TCP
	// Segments 1.. are copied out first; segment 0 is the super-frame's head, cut in place.
	for i := count - 1; i >= 0; i-- {
		data := hdr + i*mss
		end := min(data+mss, n)
		seg := bufs[i][offset : offset+hdr+end-data]
		if i > 0 {
			copy(seg, f[:hdr])
			copy(seg[hdr:], f[data:end])
		}
		if v6 {
			binary.BigEndian.PutUint16(seg[ip+4:], uint16(len(seg)-ip-40))
		} else {
			binary.BigEndian.PutUint16(seg[ip+2:], uint16(len(seg)-ip))
			binary.BigEndian.PutUint16(seg[ip+4:], id+uint16(i))
			seg[ip+10], seg[ip+11] = 0, 0
			binary.BigEndian.PutUint16(seg[ip+10:], ^csumFold(csumAdd(0, seg[ip:tcp])))
		}
		binary.BigEndian.PutUint32(seg[tcp+4:], seq+uint32(i*mss))
		fl := flags
		if i > 0 {
			fl &^= tcpFlagCWR
		}
		if i < count-1 {
			fl &^= tcpFlagFIN | tcpFlagPSH
		}
		seg[tcp+13] = fl
		seg[tcp+16], seg[tcp+17] = 0, 0
		sum := csumAdd(pseudo+uint64(len(seg)-tcp), seg[tcp:])
		binary.BigEndian.PutUint16(seg[tcp+16:], ^csumFold(sum))
		sizes[i] = len(seg)
	}
	return count, nil
}

// errTAPTooManySegments: a super-frame needs more buffers than the Read was given.
var errTAPTooManySegments = errors.New("tap: GSO frame has more segments than buffers")

// csumAdd adds b, as big-endian 16-bit words, to the unfolded one's complement sum acc.
func csumAdd(acc uint64, b []byte) uint64 {
	var c uint64
	for len(b) >= 32 {
		acc, c = bits.Add64(acc, binary.BigEndian.Uint64(b), 0)
		acc, c = bits.Add64(acc, binary.BigEndian.Uint64(b[8:]), c)
		acc, c = bits.Add64(acc, binary.BigEndian.Uint64(b[16:]), c)
		acc, c = bits.Add64(acc, binary.BigEndian.Uint64(b[24:]), c)
		acc = csumCarry(acc, c)
		b = b[32:]
	}
	for len(b) >= 8 {
		acc, c = bits.Add64(acc, binary.BigEndian.Uint64(b), 0)
		acc = csumCarry(acc, c)
		b = b[8:]
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
