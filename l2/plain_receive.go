package l2

// The plaintext VTEP's receive side: udpLoop reads runs of VXLAN datagrams (UDP_GRO), checks
// the sender, header and VNI of each, learns source MACs and writes the frames to the device.
// The whole flow is described in plain.go.

import (
	"net/netip"
	"time"

	"github.com/weftnet/weft/peers"
	"github.com/weftnet/weft/vxlan"
)

// plainRxHeadroom is the room a UDP read leaves in front of the packets, so that every
// frame of a GRO run has vnetHdrRoom bytes before it (the 8 of its own VXLAN header and the
// last 2 of the packet before, which is written by then) for the device's virtio-net header.
const (
	plainRxHeadroom = 2
	plainVnetRoom   = plainRxHeadroom + vxlan.HeaderSize // ≥ the 10-byte virtio_net_hdr
)

// udpLoop: VXLAN packets from remote VTEPs into the device. With UDP_GRO one read returns a
// run of datagrams of one sender, each seg bytes (the last maybe fewer); the frames of the
// run that pass the checks go to the device in one Write, which (with tapOffload) merges
// consecutive segments of a TCP flow into super-frames in place, after verifying their
// checksums (plain VXLAN has no AEAD: a forged segment must not ride on a merged frame
// the kernel trusts as checksummed).
func (v *PlainVTEP) udpLoop() {
	defer v.wg.Done()
	buf := make([]byte, plainRxHeadroom+plainBufSize)
	oob := make([]byte, 64)
	wbufs := make([][]byte, 0, plainMaxSegments)
	var lastLog time.Time
	for {
		n, oobn, _, src, err := v.conn.ReadMsgUDPAddrPort(buf[plainRxHeadroom:], oob)
		if err != nil {
			if !v.readFailed("udp", err, &lastLog) {
				return
			}
			continue
		}
		seg := n
		if v.gro {
			if s := plainGROSize(oob[:oobn]); s > 0 {
				seg = s
			}
		}
		// One read is one sender (a UDP_GRO run): map it to its VTEP once, and learn a source
		// MAC once per run rather than once per frame.
		sender, known := v.senderVTEP(src)
		if !known && !v.cfg.LearnUnknownVTEPs {
			k := uint64((n + seg - 1) / max(seg, 1))
			v.rxDatagrams.Add(k)
			v.drops.Add(peers.DropUnknownVTEP, k)
			continue
		}
		var learned plainLearned
		wbufs = wbufs[:0]
		for off := 0; off < n; off += seg {
			// buf[off:] keeps its capacity to the end of buf: the device appends merged
			// payloads into it (over the later packets it has consumed).
			pkt := buf[off : plainRxHeadroom+min(off+seg, n)]
			if v.accept(pkt[plainRxHeadroom:], sender, &learned) {
				if len(wbufs) == cap(wbufs) {
					v.write(wbufs)
					wbufs = wbufs[:0]
				}
				wbufs = append(wbufs, pkt)
			}
		}
		v.write(wbufs)
	}
}

// write writes the accepted frames (each bufs[i][plainVnetRoom:]) to the device.
func (v *PlainVTEP) write(bufs [][]byte) {
	if len(bufs) == 0 {
		return
	}
	k, err := v.dev.Write(bufs, plainVnetRoom)
	if err != nil {
		v.devWriteErrs.Add(uint64(len(bufs) - k))
	}
	for _, b := range bufs[:k] {
		v.rxPackets.Add(1)
		v.rxBytes.Add(uint64(len(b) - plainVnetRoom))
	}
}

// plainLearned is the source MAC an earlier frame of the same read taught the FDB.
type plainLearned struct {
	mac MAC
	ok  bool
}

// accept checks one VXLAN packet from the VTEP sender and learns its source MAC (unless an
// earlier frame of this read already did): true when its frame is to be written to the
// device.
func (v *PlainVTEP) accept(pkt []byte, sender netip.AddrPort, learned *plainLearned) bool {
	v.rxDatagrams.Add(1)
	// RFC 7348 receive rules: the I flag must be set, reserved bits (GPE's P flag and
	// next-protocol byte included) are ignored.
	h, err := vxlan.Parse(pkt)
	if err != nil {
		v.drops.Add(peers.DropMalformed, 1)
		return false
	}
	if h.VNI != v.cfg.VNI {
		v.drops.Add(peers.DropWrongVNI, 1)
		return false
	}
	frame := pkt[vxlan.HeaderSize:]
	if len(frame) < EthernetHeaderLen {
		v.drops.Add(peers.DropMalformed, 1)
		return false
	}
	src := MAC(frame[6:12])
	if !learned.ok || src != learned.mac {
		// Invalid and refused MACs are not remembered: each such frame is counted.
		learned.mac, learned.ok = src, v.fdb.Learn(src, sender)
	}
	if !learned.ok {
		// A multicast or zero source, or a MAC that gossip pins to another VTEP: the frame
		// would let the sender speak for it, so it is not delivered.
		if src.IsMulticast() || src.IsZero() {
			v.drops.Add(peers.DropMalformed, 1)
		} else {
			v.drops.Add(peers.DropNotAllowedSource, 1)
		}
		return false
	}
	return true
}

// senderVTEP maps a UDP source to the VTEP key replies go to: a remote of the flood list with
// that IP (whatever its port; known), else the IP at the configured VXLAN port (not known).
func (v *PlainVTEP) senderVTEP(src netip.AddrPort) (netip.AddrPort, bool) {
	a := src.Addr().Unmap()
	for _, r := range v.fdb.Remotes() {
		if r.Addr() == a {
			return r, true
		}
	}
	return netip.AddrPortFrom(a, v.cfg.Port), false
}
