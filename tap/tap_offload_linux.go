//go:build linux

package tap

import (
	"bytes"
	"encoding/binary"
	"errors"

	"golang.org/x/sys/unix"
)

// TCP segmentation offload on the TAP: with IFF_VNET_HDR every frame read or written is
// preceded by a 10-byte virtio-net header. With TSO enabled (Device.EnableOffload) the
// kernel hands over a TCP super-frame of up to 64 KiB, one Ethernet header, one IP and TCP
// header and gso_size bytes per segment; the device cuts it into ordinary frames with their
// own IP and TCP headers and checksums, so what travels through the overlay is exactly what
// the kernel would have put on a wire. One read then moves up to 64 frames instead of one,
// and the sender's kernel skips segmenting in software.

// The few Ethernet facts the offload code needs to find the IP and TCP headers of a frame.
// The Ethernet codec itself is package l2's, which imports tap (not the other way round).
const (
	ethHdrLen     = 14
	vlanTagLen    = 4
	etherTypeIPv4 = 0x0800
	etherTypeIPv6 = 0x86dd
	etherTypeVLAN = 0x8100 // IEEE 802.1Q
	etherTypeQinQ = 0x88a8 // IEEE 802.1ad
)

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
// With l3 the frames are IP packets (a TUN), without a link-layer header.
func tapFinishFrame(h vnetHdr, bufs [][]byte, sizes []int, offset, n int, l3 bool) (int, error) {
	return tapFinish(h, bufs, sizes, nil, offset, n, l3)
}

// tapFinish is tapFinishFrame, leaving checksums partial where partial is not nil: a
// partial checksum stays as the kernel handed it, a super-frame's segments get only their
// pseudo-header sums, and partial[i] says where each segment's checksum is (Partial{} for
// a frame whose checksums are complete).
func tapFinish(h vnetHdr, bufs [][]byte, sizes []int, partial []Partial, offset, n int, l3 bool) (int, error) {
	f := bufs[0][offset : offset+n]
	if h.gsoType == unix.VIRTIO_NET_HDR_GSO_NONE {
		if partial != nil {
			partial[0] = Partial{}
		}
		if h.flags&unix.VIRTIO_NET_HDR_F_NEEDS_CSUM != 0 {
			p := Partial{Start: h.csumStart, Field: h.csumOffset}
			if p.Field == 0 || int(p.Start)+int(p.Field)+2 > n {
				return 0, errTAPBadCsum
			}
			if partial != nil {
				partial[0] = p // left as the kernel handed it: the pseudo-header sum
			} else {
				Complete(f, p)
			}
		}
		sizes[0] = n
		return 1, nil
	}
	return tapSplitTCP(h, bufs, sizes, partial, offset, n, l3)
}

// tapSplitTCP cuts the TCP super-frame bufs[0][offset:offset+n] into segments (IP packets
// with l3).
func tapSplitTCP(h vnetHdr, bufs [][]byte, sizes []int, partial []Partial, offset, n int, l3 bool) (int, error) {
	f := bufs[0][offset : offset+n]
	v6 := h.gsoType == unix.VIRTIO_NET_HDR_GSO_TCPV6
	if h.gsoType&^unix.VIRTIO_NET_HDR_GSO_ECN != unix.VIRTIO_NET_HDR_GSO_TCPV4 && !v6 {
		return 0, errTAPBadGSO
	}
	// The IP header follows the Ethernet header and its VLAN tags (a TAP), or starts the
	// packet (a TUN).
	ip := ethHdrLen
	for !l3 {
		if len(f) < ip {
			return 0, errTAPBadGSO
		}
		et := binary.BigEndian.Uint16(f[ip-2:])
		if et != etherTypeVLAN && et != etherTypeQinQ {
			break
		}
		ip += vlanTagLen
	}
	if l3 {
		ip = 0
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
	if count > len(bufs) || count > len(sizes) || partial != nil && count > len(partial) {
		return 0, errTooManySegments
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
		if partial != nil {
			// Left partial: the pseudo-header sum, as the kernel hands such segments over.
			binary.BigEndian.PutUint16(seg[tcp+16:], csumFold(pseudo+uint64(len(seg)-tcp)))
			partial[i] = Partial{Start: uint16(tcp), Field: 16}
		} else {
			seg[tcp+16], seg[tcp+17] = 0, 0
			sum := csumAdd(pseudo+uint64(len(seg)-tcp), seg[tcp:])
			binary.BigEndian.PutUint16(seg[tcp+16:], ^csumFold(sum))
		}
		sizes[i] = len(seg)
	}
	return count, nil
}

// errTooManySegments: a super-frame needs more buffers than the Read was given.
var errTooManySegments = errors.New("tap: GSO frame has more segments than buffers")

// tcpSeg is a parsed TCP segment in an untagged Ethernet frame or an IP packet, as
// tapCoalesce needs it.
type tcpSeg struct {
	v6       bool
	ip, tcp  int // offsets of the IP and TCP headers
	data     int // offset of the payload
	seq      uint32
	flags    byte
	checksum bool // the TCP (and IPv4 header) checksums are valid
}

// parseTCPSeg parses f as a coalescable TCP segment: untagged, IPv4 without options and
// not fragmented or IPv6 without extension headers, with a payload, flags ACK or ACK|PSH,
// lengths consistent with the frame. ok is false for anything else. With l3, f is an IP
// packet.
func parseTCPSeg(f []byte, l3 bool) (s tcpSeg, ok bool) {
	if !l3 {
		s.ip = ethHdrLen
	}
	if len(f) < s.ip+40 {
		return s, false
	}
	var family uint16
	switch {
	case !l3:
		family = binary.BigEndian.Uint16(f[12:])
	case f[0]>>4 == 4:
		family = etherTypeIPv4
	case f[0]>>4 == 6:
		family = etherTypeIPv6
	}
	switch family {
	case etherTypeIPv4:
		ip := f[s.ip:]
		if ip[0] != 0x45 || ip[9] != unix.IPPROTO_TCP || binary.BigEndian.Uint16(ip[6:])&0x3fff != 0 ||
			int(binary.BigEndian.Uint16(ip[2:])) != len(ip) {
			return s, false
		}
		s.tcp = s.ip + 20
	case etherTypeIPv6:
		ip := f[s.ip:]
		if len(ip) < 60 || ip[0]>>4 != 6 || ip[6] != unix.IPPROTO_TCP || int(binary.BigEndian.Uint16(ip[4:])) != len(ip)-40 {
			return s, false
		}
		s.v6, s.tcp = true, s.ip+40
	default:
		return s, false
	}
	s.data = s.tcp + int(f[s.tcp+12]>>4)*4
	s.flags = f[s.tcp+13]
	if s.data < s.tcp+20 || s.data >= len(f) || s.flags&^tcpFlagPSH != 0x10 {
		return s, false
	}
	s.seq = binary.BigEndian.Uint32(f[s.tcp+4:])
	return s, true
}

// tcpSegChecksumOK verifies the TCP checksum of the segment s in f (and the IPv4 header's).
func tcpSegChecksumOK(f []byte, s tcpSeg) bool {
	var addrs []byte
	if s.v6 {
		addrs = f[s.ip+8 : s.ip+40]
	} else {
		if csumFold(csumAdd(0, f[s.ip:s.tcp])) != 0xffff {
			return false
		}
		addrs = f[s.ip+12 : s.ip+20]
	}
	return csumFold(csumAdd(csumAdd(0, addrs)+unix.IPPROTO_TCP+uint64(len(f)-s.tcp), f[s.tcp:])) == 0xffff
}

// tcpSameFlow reports whether b (parsed as sb) may follow a (parsed as sa) in one super-frame:
// same Ethernet header (none in IP packets), IP header fields that GRO keeps equal, ports, acknowledgment, header
// length, window and options, no flags but ACK (PSH on the last).
func tcpSameFlow(a []byte, sa tcpSeg, b []byte, sb tcpSeg) bool {
	if sa.v6 != sb.v6 || sa.data != sb.data || sa.flags&tcpFlagPSH != 0 {
		return false
	}
	if !bytes.Equal(a[:sa.ip], b[:sb.ip]) {
		return false
	}
	if sa.v6 {
		// version, traffic class, flow label; next header, hop limit; addresses
		if !bytes.Equal(a[sa.ip:sa.ip+4], b[sb.ip:sb.ip+4]) || !bytes.Equal(a[sa.ip+6:sa.tcp], b[sb.ip+6:sb.tcp]) {
			return false
		}
	} else {
		// version/IHL, TOS; flags; TTL, protocol; addresses (not length, ID, checksum)
		if a[sa.ip+1] != b[sb.ip+1] || a[sa.ip+6] != b[sb.ip+6] || !bytes.Equal(a[sa.ip+8:sa.ip+10], b[sb.ip+8:sb.ip+10]) ||
			!bytes.Equal(a[sa.ip+12:sa.tcp], b[sb.ip+12:sb.tcp]) {
			return false
		}
	}
	// ports; acknowledgment; data offset and window (flags compared by the caller); options
	return bytes.Equal(a[sa.tcp:sa.tcp+4], b[sb.tcp:sb.tcp+4]) &&
		bytes.Equal(a[sa.tcp+8:sa.tcp+13], b[sb.tcp+8:sb.tcp+13]) &&
		bytes.Equal(a[sa.tcp+14:sa.tcp+16], b[sb.tcp+14:sb.tcp+16]) &&
		bytes.Equal(a[sa.tcp+20:sa.data], b[sb.tcp+20:sb.data])
}

// tapCoalesce merges bufs[i] with the segments of the same TCP flow that directly follow it
// in bufs (each a frame at offset), as the kernel's GRO would, without copying: it returns
// the parts of one super-frame for a single writev, parts[0] the virtio-net header (written
// into bufs[i][offset-vnetHdrLen:offset]) and bufs[i]'s frame with its IP length and TCP
// checksum rewritten for the whole, then the payloads of the merged segments in order
// (slices of their buffers, which stay the caller's). It appends them to parts[:0] and
// returns the index of the first buffer not consumed. A frame that cannot be merged is
// returned alone, with a zero header (the kernel then checks its checksums as usual) or,
// without verify, one that marks its checksums valid. Merged segments must carry valid
// checksums: the super-frame goes up as CHECKSUM_PARTIAL, which the kernel trusts. With
// verify each segment's checksum is checked before it is merged (plaintext: nothing else
// protects it); without, the writer vouches for them (they were authenticated, so a wrong
// checksum is what the authenticated sender sent, which it could as well have sent with a
// right one). With l3 the frames are IP packets. parts needs room for tapMaxGSOSegs
// entries for this to allocate nothing. partial (nil: none) marks frames whose transport
// checksum the writer left partial (a trusted writer only: with verify it is ignored); one
// written alone goes up as CHECKSUM_PARTIAL, and merged runs always do.
func tapCoalesce(bufs [][]byte, i, offset int, verify, l3 bool, parts [][]byte, partial []Partial) ([][]byte, int) {
	first := bufs[i]
	f := first[offset:]
	hdr := first[offset-vnetHdrLen : offset]
	clear(hdr)
	switch {
	case !verify && partial != nil && partial[i].Field != 0:
		// Alone, the frame goes up with its checksum to be completed (CHECKSUM_PARTIAL):
		// local delivery trusts it, forwarding computes it.
		hdr[0] = unix.VIRTIO_NET_HDR_F_NEEDS_CSUM
		binary.NativeEndian.PutUint16(hdr[6:], partial[i].Start)
		binary.NativeEndian.PutUint16(hdr[8:], partial[i].Field)
	case !verify:
		// Alone, the frame goes up with its checksums marked valid (CHECKSUM_UNNECESSARY):
		// the writer authenticated it, so the kernel need not read it again to check them.
		hdr[0] = unix.VIRTIO_NET_HDR_F_DATA_VALID
	}
	parts = append(parts[:0], first[offset-vnetHdrLen:])
	s, ok := parseTCPSeg(f, l3)
	if !ok || i+1 == len(bufs) || s.flags&tcpFlagPSH != 0 || verify && !tcpSegChecksumOK(f, s) {
		return parts, i + 1
	}
	mss := len(f) - s.data
	total := len(f)
	next := s.seq + uint32(mss)
	last := s
	j := i + 1
	for ; j < len(bufs) && j-i < tapMaxGSOSegs; j++ {
		g := bufs[j][offset:]
		sg, ok := parseTCPSeg(g, l3)
		if !ok || sg.seq != next || !tcpSameFlow(f, s, g, sg) {
			break
		}
		n := len(g) - sg.data
		if n > mss || total+n-s.ip > 65535 || verify && !tcpSegChecksumOK(g, sg) {
			break
		}
		parts = append(parts, g[sg.data:])
		total += n
		next += uint32(n)
		last = sg
		if n < mss || sg.flags&tcpFlagPSH != 0 {
			j++
			break // a short or pushed segment ends the run
		}
	}
	if j == i+1 {
		return parts, j
	}
	// The headers live in f (bufs[i]'s frame); the lengths and sums cover the whole.
	if s.v6 {
		binary.BigEndian.PutUint16(f[s.ip+4:], uint16(total-s.tcp))
	} else {
		binary.BigEndian.PutUint16(f[s.ip+2:], uint16(total-s.ip))
		f[s.ip+10], f[s.ip+11] = 0, 0
		binary.BigEndian.PutUint16(f[s.ip+10:], ^csumFold(csumAdd(0, f[s.ip:s.tcp])))
	}
	f[s.tcp+13] |= last.flags & tcpFlagPSH
	// CHECKSUM_PARTIAL: the field holds the pseudo-header sum, the kernel does the rest if
	// it ever needs the checksum (forwarding); local delivery trusts it.
	var addrs []byte
	if s.v6 {
		addrs = f[s.ip+8 : s.ip+40]
	} else {
		addrs = f[s.ip+12 : s.ip+20]
	}
	binary.BigEndian.PutUint16(f[s.tcp+16:], csumFold(csumAdd(0, addrs)+unix.IPPROTO_TCP+uint64(total-s.tcp)))
	hdr[0] = unix.VIRTIO_NET_HDR_F_NEEDS_CSUM
	hdr[1] = unix.VIRTIO_NET_HDR_GSO_TCPV4
	if s.v6 {
		hdr[1] = unix.VIRTIO_NET_HDR_GSO_TCPV6
	}
	binary.NativeEndian.PutUint16(hdr[2:], uint16(s.data))
	binary.NativeEndian.PutUint16(hdr[4:], uint16(mss))
	binary.NativeEndian.PutUint16(hdr[6:], uint16(s.tcp))
	binary.NativeEndian.PutUint16(hdr[8:], 16)
	return parts, j
}
