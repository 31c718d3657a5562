//go:build linux

package tap

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"
)

// naiveCsum is the RFC 1071 sum, 16 bits at a time, as the reference for csumAdd.
func naiveCsum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

func TestCsumAdd_MatchesRFC1071(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 2, 7, 8, 31, 32, 33, 63, 1400, 1401, 65535} {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.UintN(256))
		}
		if got, want := csumFold(csumAdd(0, b)), naiveCsum(b); got != want {
			t.Errorf("len %d: csum %#04x, want %#04x", n, got, want)
		}
		all := bytes.Repeat([]byte{0xff}, n) // end-around carries at every step
		if got, want := csumFold(csumAdd(^uint64(0), all)), naiveCsum(append(all, bytes.Repeat([]byte{0xff}, 8)...)); n%2 == 0 && got != want {
			t.Errorf("len %d of 0xff: csum %#04x, want %#04x", n, got, want)
		}
	}
}

// Two locally administered MACs for the frames below.
var (
	testMACA = [6]byte{0x02, 0, 0, 0, 0, 0x0a}
	testMACB = [6]byte{0x02, 0, 0, 0, 0, 0x0b}
)

// tcpSuperFrame builds an Ethernet frame carrying one TCP packet with payload, as the kernel
// hands it with TSO: checksum field holding the pseudo-header sum (CHECKSUM_PARTIAL).
func tcpSuperFrame(v6 bool, vlan bool, payload []byte, flags byte) ([]byte, vnetHdr) {
	src, dst := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	et := uint16(etherTypeIPv4)
	if v6 {
		src, dst, et = netip.MustParseAddr("fd00::1"), netip.MustParseAddr("fd00::2"), etherTypeIPv6
	}
	f := append([]byte{}, testMACB[:]...)
	f = append(f, testMACA[:]...)
	if vlan {
		f = binary.BigEndian.AppendUint16(f, etherTypeVLAN)
		f = binary.BigEndian.AppendUint16(f, 42)
	}
	f = binary.BigEndian.AppendUint16(f, et)
	ip := len(f)
	tcpLen := 32 + len(payload) // 12 bytes of options (timestamps)
	if v6 {
		f = append(f, 0x60, 0, 0, 0)
		f = binary.BigEndian.AppendUint16(f, uint16(tcpLen))
		f = append(f, unix.IPPROTO_TCP, 64)
		f = append(f, src.AsSlice()...)
		f = append(f, dst.AsSlice()...)
	} else {
		f = append(f, 0x45, 0)
		f = binary.BigEndian.AppendUint16(f, uint16(20+tcpLen))
		f = append(f, 0x12, 0x34, 0x40, 0, 64, unix.IPPROTO_TCP, 0, 0)
		f = append(f, src.AsSlice()...)
		f = append(f, dst.AsSlice()...)
	}
	tcp := len(f)
	f = binary.BigEndian.AppendUint16(f, 40000)
	f = binary.BigEndian.AppendUint16(f, 5201)
	f = binary.BigEndian.AppendUint32(f, 0xfffff000) // wraps during the split
	f = binary.BigEndian.AppendUint32(f, 77)
	f = append(f, 8<<4, flags, 0xff, 0xff, 0, 0, 0, 0)
	f = append(f, 1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2)
	f = append(f, payload...)
	var addrs []byte
	if v6 {
		addrs = f[ip+8 : ip+40]
	} else {
		addrs = f[ip+12 : ip+20]
	}
	pseudo := csumFold(csumAdd(0, addrs) + unix.IPPROTO_TCP + uint64(tcpLen))
	binary.BigEndian.PutUint16(f[tcp+16:], pseudo)
	h := vnetHdr{flags: unix.VIRTIO_NET_HDR_F_NEEDS_CSUM, gsoType: unix.VIRTIO_NET_HDR_GSO_TCPV4,
		hdrLen: uint16(tcp + 32), gsoSize: 1400, csumStart: uint16(tcp), csumOffset: 16}
	if v6 {
		h.gsoType = unix.VIRTIO_NET_HDR_GSO_TCPV6
	}
	return f, h
}

func TestTapSplitTCP_Segments(t *testing.T) {
	for _, tc := range []struct {
		name      string
		v6, vlan  bool
		payload   int
		wantSegs  int
		wantFlags byte
	}{
		{"ipv4", false, false, 5000, 4, 0x18 | tcpFlagFIN},
		{"ipv6", true, false, 2800, 2, 0x18},
		{"ipv4 vlan", false, true, 1400*45 + 1, 46, 0x18},
		{"ipv6 one segment", true, false, 100, 1, 0x18},
	} {
		t.Run(tc.name, func(t *testing.T) {
			payload := make([]byte, tc.payload)
			for i := range payload {
				payload[i] = byte(i * 7)
			}
			frame, h := tcpSuperFrame(tc.v6, tc.vlan, payload, tc.wantFlags|tcpFlagCWR)
			bufs, sizes, n, err := finishSplit(h, frame)
			if err != nil || n != tc.wantSegs {
				t.Fatalf("split = %d, %v; want %d segments", n, err, tc.wantSegs)
			}
			ip := int(h.csumStart) - 20
			if tc.v6 {
				ip = int(h.csumStart) - 40
			}
			tcp := int(h.csumStart)
			var got []byte
			for i := range n {
				seg := bufs[i][splitOff : splitOff+sizes[i]]
				if len(seg) > tcp+32+1400 {
					t.Fatalf("segment %d is %d bytes", i, len(seg))
				}
				var addrs []byte
				if tc.v6 {
					addrs = seg[ip+8 : ip+40]
					if l := int(binary.BigEndian.Uint16(seg[ip+4:])); l != len(seg)-ip-40 {
						t.Errorf("segment %d: payload length %d", i, l)
					}
				} else {
					addrs = seg[ip+12 : ip+20]
					if l := int(binary.BigEndian.Uint16(seg[ip+2:])); l != len(seg)-ip {
						t.Errorf("segment %d: total length %d", i, l)
					}
					if id := binary.BigEndian.Uint16(seg[ip+4:]); id != 0x1234+uint16(i) {
						t.Errorf("segment %d: IP ID %#x", i, id)
					}
					if s := csumFold(csumAdd(0, seg[ip:tcp])); s != 0xffff {
						t.Errorf("segment %d: bad IPv4 header checksum", i)
					}
				}
				if s := csumFold(csumAdd(csumAdd(0, addrs)+unix.IPPROTO_TCP+uint64(len(seg)-tcp), seg[tcp:])); s != 0xffff {
					t.Errorf("segment %d: bad TCP checksum", i)
				}
				if seq := binary.BigEndian.Uint32(seg[tcp+4:]); seq != 0xfffff000+uint32(i*1400) {
					t.Errorf("segment %d: seq %#x", i, seq)
				}
				fl := seg[tcp+13]
				want := tc.wantFlags
				if i < n-1 {
					want &^= tcpFlagFIN | tcpFlagPSH
				}
				if i == 0 {
					want |= tcpFlagCWR
				}
				if fl != want {
					t.Errorf("segment %d: flags %#x, want %#x", i, fl, want)
				}
				if !bytes.Equal(seg[:ip-2], frame[:ip-2]) {
					t.Errorf("segment %d: Ethernet header changed", i)
				}
				got = append(got, seg[tcp+32:]...)
			}
			if !bytes.Equal(got, payload) {
				t.Error("payload not preserved in order")
			}
		})
	}
}

func TestTapFinishFrame_Rejects(t *testing.T) {
	frame, h := tcpSuperFrame(false, false, make([]byte, 3000), 0x10)
	bufs, sizes := [][]byte{make([]byte, 4000), make([]byte, 4000)}, make([]int, 2)
	copy(bufs[0], frame)
	if _, err := tapFinishFrame(h, bufs, sizes, 0, len(frame), false); err != errTooManySegments {
		t.Errorf("3 segments into 2 buffers: %v", err)
	}
	bad := h
	bad.csumStart = 30
	if _, err := tapFinishFrame(bad, bufs, sizes, 0, len(frame), false); err != errTAPBadGSO {
		t.Errorf("csumStart inside the IP header: %v", err)
	}
	bad = h
	bad.gsoType = unix.VIRTIO_NET_HDR_GSO_UDP
	if _, err := tapFinishFrame(bad, bufs, sizes, 0, len(frame), false); err != errTAPBadGSO {
		t.Errorf("UFO: %v", err)
	}
	none := vnetHdr{flags: unix.VIRTIO_NET_HDR_F_NEEDS_CSUM, csumStart: 60000}
	if _, err := tapFinishFrame(none, bufs, sizes, 0, len(frame), false); err != errTAPBadCsum {
		t.Errorf("checksum start past the frame: %v", err)
	}
}

// A partial checksum (no GSO) is completed in place.
func TestTapFinishFrame_CompletesChecksum(t *testing.T) {
	frame, h := tcpSuperFrame(false, false, []byte("hello, partial checksum"), 0x18)
	h.gsoType = unix.VIRTIO_NET_HDR_GSO_NONE
	bufs, sizes := [][]byte{append(make([]byte, 8), frame...)}, make([]int, 1)
	n, err := tapFinishFrame(h, bufs, sizes, 8, len(frame), false)
	if err != nil || n != 1 || sizes[0] != len(frame) {
		t.Fatalf("= %d, %v", n, err)
	}
	f := bufs[0][8:]
	tcp := int(h.csumStart)
	if s := csumFold(csumAdd(csumAdd(0, f[26:34])+unix.IPPROTO_TCP+uint64(len(f)-tcp), f[tcp:])); s != 0xffff {
		t.Error("TCP checksum not completed")
	}
}

func TestTapSplitTCP_ZeroAlloc(t *testing.T) {
	frame, h := tcpSuperFrame(false, false, make([]byte, 60000), 0x10)
	bufs, sizes := make([][]byte, BatchSize), make([]int, BatchSize)
	for i := range bufs {
		bufs[i] = make([]byte, 65600)
	}
	allocs := testing.AllocsPerRun(20, func() {
		copy(bufs[0], frame)
		if _, err := tapFinishFrame(h, bufs, sizes, 0, len(frame), false); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per split", allocs)
	}
}

func BenchmarkTapSplitTCP(b *testing.B) {
	frame, h := tcpSuperFrame(false, false, make([]byte, 63000), 0x10)
	bufs, sizes := make([][]byte, BatchSize), make([]int, BatchSize)
	for i := range bufs {
		bufs[i] = make([]byte, 65600)
	}
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		copy(bufs[0], frame)
		if _, err := tapFinishFrame(h, bufs, sizes, 0, len(frame), false); err != nil {
			b.Fatal(err)
		}
	}
}

// splitOff is the headroom before the frame in the tests' split buffers, as the TAP's Read
// leaves it.
const splitOff = 24

// finishSplit copies frame into the first of a batch of buffers at splitOff and splits it as
// the TAP's Read would: the first n buffers then hold sizes[i] bytes from splitOff.
func finishSplit(h vnetHdr, frame []byte) (bufs [][]byte, sizes []int, n int, err error) {
	bufs, sizes = make([][]byte, BatchSize), make([]int, BatchSize)
	for i := range bufs {
		bufs[i] = make([]byte, 65600)
	}
	copy(bufs[0][splitOff:], frame)
	n, err = tapFinishFrame(h, bufs, sizes, splitOff, len(frame), false)
	return bufs, sizes, n, err
}

// splitForTest cuts a super-frame as the TAP's Read would, into buffers with room behind.
func splitForTest(t testing.TB, v6 bool, payload []byte, flags byte) (frame []byte, segs [][]byte) {
	t.Helper()
	frame, h := tcpSuperFrame(v6, false, payload, flags)
	bufs, sizes, n, err := finishSplit(h, frame)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		segs = append(segs, bufs[i][:splitOff+sizes[i]])
	}
	return frame, segs
}

func TestTapCoalesce_RoundTrip(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		payload := make([]byte, 1400*10+300)
		for i := range payload {
			payload[i] = byte(i * 13)
		}
		frame, segs := splitForTest(t, v6, payload, 0x18)
		if len(segs) != 11 {
			t.Fatalf("%d segments", len(segs))
		}
		out, next := coalesceFlat(segs, 0, 24, true, false)
		if next != len(segs) {
			t.Fatalf("v6=%v: merged up to %d of %d", v6, next, len(segs))
		}
		h := parseVnetHdr(out)
		f := out[vnetHdrLen:]
		wantType := uint8(unix.VIRTIO_NET_HDR_GSO_TCPV4)
		if v6 {
			wantType = unix.VIRTIO_NET_HDR_GSO_TCPV6
		}
		if h.gsoType != wantType || h.gsoSize != 1400 || h.flags != unix.VIRTIO_NET_HDR_F_NEEDS_CSUM ||
			h.csumOffset != 16 || int(h.hdrLen) != len(frame)-len(payload) {
			t.Fatalf("v6=%v: header %+v", v6, h)
		}
		// The merged frame is the original super-frame (IPv4 ID and checksum aside), with the
		// pseudo-header sum in the TCP checksum field, as the kernel hands it with TSO.
		if v6 {
			if !bytes.Equal(f, frame) {
				t.Errorf("v6: merged frame differs from the super-frame")
			}
		} else {
			g := append([]byte{}, f...)
			w := append([]byte{}, frame...)
			if csumFold(csumAdd(0, g[14:34])) != 0xffff {
				t.Error("v4: bad IP header checksum")
			}
			for _, b := range [][]byte{g, w} {
				b[18], b[19], b[24], b[25] = 0, 0, 0, 0 // ID, header checksum
			}
			if !bytes.Equal(g, w) {
				t.Errorf("v4: merged frame differs from the super-frame")
			}
		}
	}
}

// tunSuperPacket is tcpSuperFrame without its Ethernet header: what a TUN hands over.
func tunSuperPacket(v6 bool, payload []byte, flags byte) ([]byte, vnetHdr) {
	f, h := tcpSuperFrame(v6, false, payload, flags)
	h.csumStart -= ethHdrLen
	h.hdrLen -= ethHdrLen
	return f[ethHdrLen:], h
}

// TestTUN_SplitCoalesceRoundTrip: in TUN mode (IP packets, no link header) a TSO
// super-packet is cut into valid segments and merged back into the same super-packet,
// IPv4 and IPv6; each segment is an ordinary packet (checksums verify).
func TestTUN_SplitCoalesceRoundTrip(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		payload := make([]byte, 1400*7+99)
		for i := range payload {
			payload[i] = byte(i * 11)
		}
		pkt, h := tunSuperPacket(v6, payload, 0x18)
		bufs, sizes := make([][]byte, BatchSize), make([]int, BatchSize)
		for i := range bufs {
			bufs[i] = make([]byte, 65600)
		}
		copy(bufs[0][splitOff:], pkt)
		n, err := tapFinishFrame(h, bufs, sizes, splitOff, len(pkt), true)
		if err != nil || n != 8 {
			t.Fatalf("v6=%v: split = %d, %v", v6, n, err)
		}
		var segs [][]byte
		for i := range n {
			seg := bufs[i][splitOff : splitOff+sizes[i]]
			s, ok := parseTCPSeg(seg, true)
			if !ok && i < n-1 || ok && !tcpSegChecksumOK(seg, s) {
				t.Fatalf("v6=%v: segment %d does not parse or verify (ok %v)", v6, i, ok)
			}
			if _, ok := parseTCPSeg(seg, false); ok {
				t.Fatalf("v6=%v: an IP packet parsed as an Ethernet frame", v6)
			}
			segs = append(segs, bufs[i][:splitOff+sizes[i]])
		}
		out, next := coalesceFlat(segs, 0, splitOff, true, true)
		if next != n {
			t.Fatalf("v6=%v: merged %d of %d", v6, next, n)
		}
		got := parseVnetHdr(out)
		if got.gsoSize != 1400 || int(got.csumStart) != int(h.csumStart) || got.flags != unix.VIRTIO_NET_HDR_F_NEEDS_CSUM {
			t.Fatalf("v6=%v: header %+v, split from %+v", v6, got, h)
		}
		f, w := append([]byte{}, out[vnetHdrLen:]...), append([]byte{}, pkt...)
		if !v6 {
			for _, b := range [][]byte{f, w} {
				b[4], b[5], b[10], b[11] = 0, 0, 0, 0 // ID, header checksum
			}
		}
		if !bytes.Equal(f, w) {
			t.Fatalf("v6=%v: merged packet differs from the super-packet", v6)
		}
		// A packet of another flow (another source port) ends the run.
		copy(bufs[0][splitOff:], pkt)
		if n, err = tapFinishFrame(h, bufs, sizes, splitOff, len(pkt), true); err != nil {
			t.Fatal(err)
		}
		segs = segs[:0]
		for i := range n {
			segs = append(segs, bufs[i][:splitOff+sizes[i]])
		}
		tcp := splitOff + int(h.csumStart)
		segs[3][tcp+1]++ // source port: the trusted path does not look at checksums
		if _, next := coalesceFlat(segs, 0, splitOff, false, true); next != 3 {
			t.Fatalf("v6=%v: a segment of another flow merged (run up to %d)", v6, next)
		}
	}
}

func TestTapCoalesce_Boundaries(t *testing.T) {
	payload := make([]byte, 1400*4)
	mutate := map[string]struct {
		fn       func(segs [][]byte)
		wantNext int // of the run starting at segment 0
	}{
		"all merge":         {func([][]byte) {}, 4},
		"sequence gap":      {func(s [][]byte) { s[2] = s[3] }, 2},
		"bad checksum":      {func(s [][]byte) { s[1][24+60] ^= 1 }, 1},
		"other port":        {func(s [][]byte) { s[2][24+34]++ }, 2},
		"push ends the run": {func(s [][]byte) { setPSH(s[1]) }, 2},
		"push first":        {func(s [][]byte) { setPSH(s[0]) }, 1},
		"not tcp":           {func(s [][]byte) { s[0][24+12] = 0x86; s[0][24+13] = 0xdd }, 1},
	}
	for name, tc := range mutate {
		t.Run(name, func(t *testing.T) {
			_, segs := splitForTest(t, false, payload, 0x10)
			tc.fn(segs)
			out, next := coalesceFlat(segs, 0, 24, true, false)
			if next != tc.wantNext {
				t.Fatalf("next = %d, want %d", next, tc.wantNext)
			}
			if h := parseVnetHdr(out); (next > 1) != (h.gsoType != 0) {
				t.Errorf("header %+v for a run of %d", h, next)
			}
			if next == 1 && len(out) != len(segs[0])-24+vnetHdrLen {
				t.Errorf("a lone frame grew to %d bytes", len(out))
			}
		})
	}
}

// setPSH sets PSH on the IPv4 TCP segment at offset 24 and fixes its checksum.
func setPSH(b []byte) {
	f := b[24:]
	f[34+13] |= tcpFlagPSH
	f[34+16], f[34+17] = 0, 0
	sum := csumAdd(csumAdd(0, f[26:34])+unix.IPPROTO_TCP+uint64(len(f)-34), f[34:])
	binary.BigEndian.PutUint16(f[34+16:], ^csumFold(sum))
}

func TestTapCoalesce_ZeroAlloc(t *testing.T) {
	_, segs := splitForTest(t, false, make([]byte, 1400*40), 0x10)
	saved := make([][]byte, len(segs))
	for i, s := range segs {
		saved[i] = append([]byte{}, s...)
	}
	parts, next := make([][]byte, 0, tapMaxGSOSegs), 0
	allocs := testing.AllocsPerRun(20, func() {
		for i := range segs {
			copy(segs[i], saved[i])
		}
		if parts, next = tapCoalesce(segs, 0, 24, true, false, parts, nil); next != len(segs) {
			t.Fatal("not merged")
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per merge", allocs)
	}
}

// FuzzTapCoalesce feeds two frames (as an authenticated but hostile peer could send them)
// to the GRO of the TAP's write path: no panic, and a merge only of valid segments.
func FuzzTapCoalesce(f *testing.F) {
	_, segs := splitForTest(f, false, make([]byte, 2800), 0x10)
	f.Add(segs[0][24:], segs[1][24:])
	_, segs6 := splitForTest(f, true, make([]byte, 2000), 0x18)
	f.Add(segs6[0][24:], segs6[1][24:])
	// TUN mode: the same segments as IP packets.
	f.Add(segs[0][24+ethHdrLen:], segs[1][24+ethHdrLen:])
	f.Add(segs6[0][24+ethHdrLen:], segs6[1][24+ethHdrLen:])
	f.Fuzz(func(t *testing.T, a, b []byte) {
		if len(a) > 9000 || len(b) > 9000 {
			return
		}
		// Both framings, verified (plaintext) and trusted (authenticated, possibly with a
		// forged checksum): no panic, a merge only of segments that parse.
		for _, mode := range [][2]bool{{true, false}, {false, false}, {true, true}, {false, true}} {
			verify, l3 := mode[0], mode[1]
			bufs := [][]byte{make([]byte, 24+len(a), 24+len(a)+len(b)), make([]byte, 24+len(b))}
			copy(bufs[0][24:], a)
			copy(bufs[1][24:], b)
			parts, next := tapCoalesce(bufs, 0, 24, verify, l3, nil, nil)
			var out []byte
			for _, p := range parts {
				out = append(out, p...)
			}
			if next < 1 || next > 2 || len(out) < vnetHdrLen {
				t.Fatalf("next %d, %d bytes", next, len(out))
			}
			if next == 2 {
				h := parseVnetHdr(out)
				if h.gsoType == 0 || int(h.csumStart) >= len(out)-vnetHdrLen || int(h.hdrLen) > len(out)-vnetHdrLen {
					t.Fatalf("merged with header %+v", h)
				}
				sa, ok := parseTCPSeg(a, l3)
				if !ok {
					t.Fatal("merged a first segment that does not parse")
				}
				sb, ok := parseTCPSeg(b, l3)
				if !ok {
					t.Fatal("merged a second segment that does not parse")
				}
				// Lossless and without a copy: the second part is b's payload in b's own
				// buffer, and the super-frame cut again (as the kernel's TSO would) gives
				// back both payloads, in order, under their sequence numbers.
				if len(parts) != 2 || &parts[1][0] != &bufs[1][24+sb.data] {
					t.Fatalf("%d parts, the second not b's payload in place", len(parts))
				}
				split := make([][]byte, tapMaxGSOSegs)
				for i := range split {
					split[i] = make([]byte, 24+len(out))
				}
				copy(split[0][24:], out[vnetHdrLen:])
				sizes := make([]int, tapMaxGSOSegs)
				k, err := tapFinishFrame(h, split, sizes, 24, len(out)-vnetHdrLen, l3)
				if err != nil || k != 2 {
					t.Fatalf("the merged frame cuts into %d segments (%v)", k, err)
				}
				for i, w := range [][]byte{a[sa.data:], b[sb.data:]} {
					seg := split[i][24 : 24+sizes[i]]
					s, ok := parseTCPSeg(seg, l3)
					if !ok || !bytes.Equal(seg[s.data:], w) || s.seq != sa.seq+uint32(i*(len(a)-sa.data)) {
						t.Fatalf("segment %d cut from the merge differs from what was merged", i)
					}
				}
			}
		}
		// Reading: any packet under any header, cut in TUN mode, never panics.
		bufs, sizes := make([][]byte, tapMaxGSOSegs), make([]int, tapMaxGSOSegs)
		for i := range bufs {
			bufs[i] = make([]byte, 24+len(a)+64)
		}
		copy(bufs[0][24:], a)
		var h vnetHdr
		if len(b) >= vnetHdrLen {
			h = parseVnetHdr(b)
		}
		if n, err := tapFinishFrame(h, bufs, sizes, 24, len(a), true); err == nil {
			for i := range n {
				if sizes[i] > len(bufs[i])-24 {
					t.Fatalf("segment %d of %d bytes in a %d-byte buffer", i, sizes[i], len(bufs[i])-24)
				}
			}
		}
	})
}

// BenchmarkTapCoalesce merges 40 segments of 1400 bytes into one super-frame, verifying
// every segment's checksum (plaintext writers) or not (a writer that authenticated them).
func BenchmarkTapCoalesce(b *testing.B) {
	for _, verify := range []bool{true, false} {
		name := "verify"
		if !verify {
			name = "trusted"
		}
		b.Run(name, func(b *testing.B) {
			_, segs := splitForTest(b, false, make([]byte, 1400*40), 0x10)
			saved := make([][]byte, len(segs))
			for i, s := range segs {
				saved[i] = append([]byte{}, s...)
			}
			b.SetBytes(1400 * 40)
			b.ReportAllocs()
			parts, next := make([][]byte, 0, tapMaxGSOSegs), 0
			for b.Loop() {
				for i := range segs {
					copy(segs[i], saved[i])
				}
				if parts, next = tapCoalesce(segs, 0, 24, verify, false, parts, nil); next != len(segs) {
					b.Fatal("not merged")
				}
			}
		})
	}
}

// coalesceFlat is tapCoalesce with its parts joined into the one frame writev writes.
func coalesceFlat(bufs [][]byte, i, offset int, verify, l3 bool) ([]byte, int) {
	parts, next := tapCoalesce(bufs, i, offset, verify, l3, nil, nil)
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out, next
}

// TestTapCoalesce_Trusted: a writer that authenticated its frames merges them without the
// checksum check (a bad checksum no longer ends the run); the merged frame is the same.
func TestTapCoalesce_Trusted(t *testing.T) {
	payload := make([]byte, 1400*4)
	_, segs := splitForTest(t, false, payload, 0x10)
	_, segs2 := splitForTest(t, false, payload, 0x10)
	good, next := coalesceFlat(segs, 0, 24, true, false)
	if next != 4 {
		t.Fatalf("verified: merged %d", next)
	}
	trusted, next := coalesceFlat(segs2, 0, 24, false, false)
	if next != 4 || !bytes.Equal(good, trusted) {
		t.Fatalf("trusted: merged %d, same frame %v", next, bytes.Equal(good, trusted))
	}
	_, segs3 := splitForTest(t, false, payload, 0x10)
	segs3[1][24+100] ^= 1 // a payload byte
	if _, next := coalesceFlat(segs3, 0, 24, false, false); next != 4 {
		t.Fatalf("trusted with a bad checksum: merged %d, want 4 (not verified)", next)
	}
}

// TestCsumAdd_Differential checks csumAdd against the RFC 1071 reference for every length
// up to 300 at every alignment, with a running sum carried in.
func TestCsumAdd_Differential(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	buf := make([]byte, 320)
	for i := range buf {
		buf[i] = byte(r.UintN(256))
	}
	for off := range 8 {
		for n := 0; n <= 300; n++ {
			b := buf[off : off+n]
			if got, want := csumFold(csumAdd(0, b)), naiveCsum(b); got != want {
				t.Fatalf("off %d len %d: %#04x, want %#04x", off, n, got, want)
			}
			// A running sum (a pseudo-header) added before.
			if n%2 == 0 {
				pre := []byte{0x12, 0x34, 0xab, 0xcd}
				if got, want := csumFold(csumAdd(csumAdd(0, pre), b)), naiveCsum(append(append([]byte{}, pre...), b...)); got != want {
					t.Fatalf("off %d len %d after a pseudo-header: %#04x, want %#04x", off, n, got, want)
				}
			}
		}
	}
}

// BenchmarkCsumAdd is the checksum of one 1400-byte segment.
func BenchmarkCsumAdd(b *testing.B) {
	buf := make([]byte, 1400)
	b.SetBytes(int64(len(buf)))
	var s uint64
	for b.Loop() {
		s += csumAdd(0, buf)
	}
	_ = s
}

// FuzzTapCoalesceBatch feeds a whole written batch of up to 8 frames, cut from one input
// (as an authenticated but hostile peer could send them: wrong lengths, mixed flows,
// segments out of order, forged checksums), to the gathering GRO of the write path, in
// both framings, trusted and verified. Every run it makes is checked: the parts are the
// frames' own bytes (no copy), every frame is written exactly once and in order, and a
// merged super-frame cut again (as the kernel's TSO would) gives back exactly the payloads
// it merged.
func FuzzTapCoalesceBatch(f *testing.F) {
	_, segs := splitForTest(f, false, make([]byte, 1400*3+200), 0x10)
	_, segs6 := splitForTest(f, true, make([]byte, 1400*2+7), 0x18)
	join := func(frames ...[]byte) []byte {
		var b []byte
		for _, fr := range frames {
			b = binary.BigEndian.AppendUint16(b, uint16(len(fr)))
			b = append(b, fr...)
		}
		return b
	}
	f.Add(join(segs[0][24:], segs[1][24:], segs[2][24:], segs[3][24:]), byte(0))
	f.Add(join(segs[0][24:], segs6[0][24:], segs[1][24:], segs6[1][24:], segs6[2][24:]), byte(1))
	f.Add(join(segs[0][24+ethHdrLen:], segs[1][24+ethHdrLen:], segs[3][24+ethHdrLen:], segs[2][24+ethHdrLen:]), byte(2))
	f.Add(join(segs6[0][24+ethHdrLen:], segs6[1][24+ethHdrLen:], segs6[1][24+ethHdrLen:]), byte(3))
	f.Fuzz(checkCoalesceBatch)
}

// checkCoalesceBatch is FuzzTapCoalesceBatch's check of one input.
func checkCoalesceBatch(t *testing.T, in []byte, mode byte) {
	verify, l3 := mode&1 != 0, mode&2 != 0
	var frames [][]byte
	for len(in) >= 2 && len(frames) < 8 {
		n := min(int(binary.BigEndian.Uint16(in)), len(in)-2, 9000)
		frames = append(frames, in[2:2+n])
		in = in[2+n:]
	}
	if len(frames) == 0 {
		return
	}
	bufs := make([][]byte, len(frames))
	for i, fr := range frames {
		bufs[i] = make([]byte, 24+len(fr))
		copy(bufs[i][24:], fr)
	}
	var parts [][]byte
	for i := 0; i < len(bufs); {
		var next int
		parts, next = tapCoalesce(bufs, i, 24, verify, l3, parts, nil)
		if next <= i || next > len(bufs) || len(parts) != next-i {
			t.Fatalf("run from %d: next %d with %d parts", i, next, len(parts))
		}
		if &parts[0][0] != &bufs[i][24-vnetHdrLen] || len(parts[0]) != len(bufs[i])-24+vnetHdrLen {
			t.Fatalf("run from %d: the first part is not frame %d behind its header", i, i)
		}
		if next == i+1 {
			i = next
			continue
		}
		s0, ok := parseTCPSeg(frames[i], l3)
		if !ok {
			t.Fatalf("merged from frame %d, which does not parse", i)
		}
		var whole []byte
		for _, p := range parts {
			whole = append(whole, p...)
		}
		h := parseVnetHdr(whole)
		split := make([][]byte, len(frames)+1) // a run never cuts into more than it merged
		for k := range split {
			split[k] = make([]byte, 24+len(whole))
		}
		copy(split[0][24:], whole[vnetHdrLen:])
		sizes := make([]int, len(split))
		k, err := tapFinishFrame(h, split, sizes, 24, len(whole)-vnetHdrLen, l3)
		if err != nil || k != next-i {
			t.Fatalf("run %d..%d cuts into %d segments (%v)", i, next, k, err)
		}
		mss := len(frames[i]) - s0.data
		for j := range k {
			want := frames[i+j]
			sw, ok := parseTCPSeg(want, l3)
			if !ok {
				t.Fatalf("frame %d merged without parsing", i+j)
			}
			if j > 0 && &parts[j][0] != &bufs[i+j][24+sw.data] {
				t.Fatalf("part %d is not frame %d's payload in place", j, i+j)
			}
			seg := split[j][24 : 24+sizes[j]]
			sg, ok := parseTCPSeg(seg, l3)
			if !ok || !bytes.Equal(seg[sg.data:], want[sw.data:]) || sg.seq != s0.seq+uint32(j*mss) || sw.seq != sg.seq {
				t.Fatalf("segment %d of the run %d..%d differs from the frame merged", j, i, next)
			}
		}
		i = next
	}
}

// TestTapSplit_Partial: a super-frame cut with its checksums left partial gives the same
// segments as the ordinary cut once each is completed (Complete), with the pseudo-header
// sum in the field before; Ethernet with and without a VLAN tag and IP packets, v4 and v6.
// A single frame with a partial checksum keeps it and says where it is; one without gets
// Partial{}.
func TestTapSplit_Partial(t *testing.T) {
	payload := make([]byte, 1400*5+321)
	for i := range payload {
		payload[i] = byte(i*7 + 3)
	}
	for _, v6 := range []bool{false, true} {
		for _, mode := range []string{"ethernet", "vlan", "ip"} {
			frame, h := tcpSuperFrame(v6, mode == "vlan", payload, 0x18)
			l3 := mode == "ip"
			if l3 {
				frame = frame[ethHdrLen:]
				h.csumStart -= ethHdrLen
				h.hdrLen -= ethHdrLen
			}
			full, fullSizes := make([][]byte, 8), make([]int, 8)
			part, partSizes, partial := make([][]byte, 8), make([]int, 8), make([]Partial, 8)
			for i := range full {
				full[i], part[i] = make([]byte, 24+9000), make([]byte, 24+9000)
			}
			copy(full[0][24:], frame)
			copy(part[0][24:], frame)
			n, err := tapFinish(h, full, fullSizes, nil, 24, len(frame), l3)
			if err != nil {
				t.Fatal(err)
			}
			m, err := tapFinish(h, part, partSizes, partial, 24, len(frame), l3)
			if err != nil || m != n {
				t.Fatalf("%s v6=%v: %d partial segments (%v), %d complete", mode, v6, m, err, n)
			}
			for i := range n {
				want, got := full[i][24:24+fullSizes[i]], part[i][24:24+partSizes[i]]
				p := partial[i]
				if p.Field != 16 || int(p.Start) != int(h.csumStart) {
					t.Fatalf("%s v6=%v segment %d: %+v, want the TCP checksum at %d", mode, v6, i, p, h.csumStart)
				}
				if bytes.Equal(got, want) {
					t.Fatalf("%s v6=%v segment %d: the partial cut computed the checksum", mode, v6, i)
				}
				if !Complete(got, p) || !bytes.Equal(got, want) {
					t.Fatalf("%s v6=%v segment %d differs from the ordinary cut once completed", mode, v6, i)
				}
			}
		}
	}
	// A single frame: partial kept, or none.
	frame, _ := tcpSuperFrame(false, false, payload[:100], 0x18)
	bufs, sizes, partial := [][]byte{append(make([]byte, 24), frame...)}, []int{0}, []Partial{{Start: 1, Field: 1}}
	if n, err := tapFinish(vnetHdr{}, bufs, sizes, partial, 24, len(frame), false); n != 1 || err != nil || partial[0] != (Partial{}) {
		t.Fatalf("plain frame: %d %v %+v", n, err, partial[0])
	}
	h := vnetHdr{flags: unix.VIRTIO_NET_HDR_F_NEEDS_CSUM, csumStart: 34, csumOffset: 16}
	before := bytes.Clone(bufs[0])
	if n, err := tapFinish(h, bufs, sizes, partial, 24, len(frame), false); n != 1 || err != nil || partial[0] != (Partial{Start: 34, Field: 16}) || !bytes.Equal(bufs[0], before) {
		t.Fatalf("partial frame: %d %v %+v (changed %v)", n, err, partial[0], !bytes.Equal(bufs[0], before))
	}
	for _, bad := range []vnetHdr{{flags: unix.VIRTIO_NET_HDR_F_NEEDS_CSUM, csumStart: 34}, {flags: unix.VIRTIO_NET_HDR_F_NEEDS_CSUM, csumStart: uint16(len(frame)), csumOffset: 16}} {
		if _, err := tapFinish(bad, bufs, sizes, partial, 24, len(frame), false); err == nil {
			t.Fatalf("a partial checksum at %d+%d of a %d-byte frame was accepted", bad.csumStart, bad.csumOffset, len(frame))
		}
	}
	if Complete(frame, Partial{Start: uint16(len(frame) - 1), Field: 16}) || Complete(frame, Partial{}) {
		t.Fatal("Complete wrote past the frame or without a field")
	}
}

// TestTapCoalesce_PartialAlone: a trusted writer's frame marked partial and written alone
// goes up as CHECKSUM_PARTIAL at its checksum; unmarked, as DATA_VALID; a verifying
// writer's marks are ignored.
func TestTapCoalesce_PartialAlone(t *testing.T) {
	_, segs := splitForTest(t, false, make([]byte, 1000), 0x18)
	p := []Partial{{Start: 34, Field: 16}}
	parts, _ := tapCoalesce(segs[:1], 0, 24, false, false, nil, p)
	h := parseVnetHdr(parts[0])
	if h.flags != unix.VIRTIO_NET_HDR_F_NEEDS_CSUM || h.csumStart != 34 || h.csumOffset != 16 || h.gsoType != 0 {
		t.Fatalf("partial alone: %+v", h)
	}
	parts, _ = tapCoalesce(segs[:1], 0, 24, false, false, nil, []Partial{{}})
	if h := parseVnetHdr(parts[0]); h.flags != unix.VIRTIO_NET_HDR_F_DATA_VALID {
		t.Fatalf("complete alone: %+v", h)
	}
	parts, _ = tapCoalesce(segs[:1], 0, 24, true, false, nil, p)
	if h := parseVnetHdr(parts[0]); h.flags != 0 {
		t.Fatalf("verifying writer: %+v", h)
	}
}
