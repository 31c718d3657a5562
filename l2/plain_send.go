package l2

// The plaintext VTEP's send side: tapLoop reads frames from the device, routes them by the
// FDB (or floods them) and sends runs of VXLAN packets to one remote in one UDP_SEGMENT
// sendmsg. The whole flow is described in plain.go.

import (
	"errors"
	"net/netip"
	"time"

	"github.com/weftnet/weft/peers"
	"github.com/weftnet/weft/vxlan"
)

// plainTryReader is a device that can read a queued frame without blocking (tap.Device,
// tap.FrameDevice); the VTEP then gathers a burst of frames into one GSO send.
type plainTryReader interface {
	// TryRead reads one frame into b if one is queued; (0, nil) when none is.
	TryRead(b []byte) (int, error)
}

// plainMaxGSOBytes keeps a coalesced send under the largest UDP payload.
const plainMaxGSOBytes = 65000

// plainTx is the run of VXLAN packets gathered for one GSO send: contiguous in the buffer,
// one remote, all seg bytes long except possibly the last (which closes the run).
type plainTx struct {
	to         netip.AddrPort
	start, end int
	seg, count int
	closed     bool
}

// tapLoop: frames from the device out to the remote VTEPs. Each frame is read at an offset
// that leaves room for its VXLAN header, right after the previous packet, so a burst of
// frames to one remote is one contiguous buffer that leaves in one UDP_SEGMENT sendmsg.
func (v *PlainVTEP) tapLoop() {
	defer v.wg.Done()
	const hdr = vxlan.HeaderSize
	buf := make([]byte, plainBufSize+hdr)
	reply := make([]byte, hdr+64)
	oob := make([]byte, 64)
	bufs, sizes := [][]byte{buf}, []int{0}
	replyBufs := [][]byte{nil}
	var lastLog time.Time
	arp := v.fdb.Config().ARPSuppression
	tr, _ := v.dev.(plainTryReader)
	maxFrame := plainBufSize
	if mtu, err := v.dev.MTU(); err == nil && mtu > 0 && mtu+EthernetHeaderLen+2*vlanTagLen < plainBufSize {
		maxFrame = mtu + EthernetHeaderLen + 2*vlanTagLen
	}
	var tx plainTx
	// route remembers the unicast route of the last frame of this batch: the segments of a
	// super-frame share their destination, and one FDB lookup (lock, map, clock read) for
	// the batch replaces one per segment. Reset at every read, so it is never older than
	// the batch.
	var route struct {
		dst MAC
		to  netip.AddrPort
		ok  bool
	}
	var rbufs [][]byte // with tapOffload: the batch Read fills, each frame copied into buf after
	var rsizes []int
	if v.tapOffload {
		rbufs, rsizes = make([][]byte, v.dev.BatchSize()), make([]int, v.dev.BatchSize())
		for i := range rbufs {
			rbufs[i] = make([]byte, plainBufSize+hdr)
		}
	}

	// handle routes the frame read at buf[pos+hdr:pos+hdr+n]: drop, answer, flood or add to tx.
	handle := func(pos, n int) {
		frame := buf[pos+hdr : pos+hdr+n]
		v.txFrames.Add(1)
		if n < EthernetHeaderLen {
			v.drops.Add(peers.DropMalformed, 1)
			return
		}
		if arp {
			if m := v.fdb.ARPReply(reply[hdr:], frame); m > 0 {
				replyBufs[0] = reply[:hdr+m]
				if _, err := v.dev.Write(replyBufs, hdr); err != nil {
					v.devWriteErrs.Add(1)
				}
				v.arpSuppressed.Add(1)
				return
			}
		}
		dst := MAC(frame[0:6])
		to, flood, err := route.to, []netip.AddrPort(nil), error(nil)
		if !route.ok || route.dst != dst {
			to, flood, err = v.fdb.Route(dst)
			route.dst, route.to, route.ok = dst, to, err == nil && flood == nil
		}
		if err != nil {
			if errors.Is(err, ErrFloodBudget) {
				v.drops.Add(peers.DropFloodCapped, 1)
			} else {
				v.drops.Add(peers.DropNoRoute, 1)
			}
			return
		}
		pkt := buf[pos : pos+hdr+n]
		vxlan.Encode(pkt, v.cfg.VNI, vxlan.ProtoNone) // pure RFC 7348: I flag only, no GPE bits
		if flood != nil {
			v.flush(&tx, buf, oob) // keep frame order
			for _, r := range flood {
				v.send(pkt, r)
			}
			return
		}
		if tx.count > 0 && (tx.to != to || tx.closed || len(pkt) > tx.seg || tx.count == plainMaxSegments ||
			tx.end != pos || pos+len(pkt)-tx.start > plainMaxGSOBytes) {
			v.flush(&tx, buf, oob)
		}
		if tx.count == 0 {
			tx = plainTx{to: to, start: pos, seg: len(pkt)}
		}
		tx.end = pos + len(pkt)
		tx.count++
		tx.closed = len(pkt) < tx.seg
	}

	for v.tapOffload {
		k, err := v.dev.Read(rbufs, rsizes, hdr)
		route.ok = false
		if err != nil {
			if !v.readFailed("device", err, &lastLog) {
				return
			}
			continue
		}
		// The frames (a super-frame's segments among them) are gathered one after the other
		// into buf, each behind room for its header, so that a run to one remote is one
		// contiguous UDP_SEGMENT send; a full buf is sent first.
		pos := 0
		for i := range k {
			n := rsizes[i]
			if pos+hdr+n > len(buf) {
				v.flush(&tx, buf, oob)
				pos = 0
			}
			copy(buf[pos+hdr:], rbufs[i][hdr:hdr+n])
			handle(pos, n)
			pos += hdr + n
		}
		v.flush(&tx, buf, oob)
	}
	for {
		_, err := v.dev.Read(bufs, sizes, hdr)
		route.ok = false
		if err != nil {
			if !v.readFailed("device", err, &lastLog) {
				return
			}
			continue
		}
		handle(0, sizes[0])
		pos := hdr + sizes[0]
		for tr != nil && v.gso.Load() && pos+hdr+maxFrame <= len(buf) {
			n, err := tr.TryRead(buf[pos+hdr : pos+hdr+maxFrame])
			if err != nil || n == 0 {
				break // a real error shows again on the next blocking Read
			}
			handle(pos, n)
			pos += hdr + n
		}
		v.flush(&tx, buf, oob)
	}
}

// flush sends the gathered run: one datagram plainly, several with UDP_SEGMENT; when the
// kernel refuses segmentation, it turns GSO off for good and sends them one by one.
func (v *PlainVTEP) flush(tx *plainTx, buf, oob []byte) {
	if tx.count == 0 {
		return
	}
	defer func() { tx.count = 0 }()
	run := buf[tx.start:tx.end]
	if tx.count == 1 {
		v.send(run, tx.to)
		return
	}
	if v.gso.Load() {
		_, _, err := v.conn.WriteMsgUDPAddrPort(run, plainPutSegment(oob, tx.seg), tx.to)
		v.txSends.Add(1)
		if err == nil {
			v.txPackets.Add(uint64(tx.count))
			v.txBytes.Add(uint64(len(run)))
			return
		}
		if !plainGSOUnsupported(err) {
			v.drops.Add(peers.DropSendFailed, uint64(tx.count))
			return
		}
		v.gso.Store(false)
		v.log.Info("plain vxlan: UDP segmentation offload refused; sending datagrams one by one", "err", err)
	}
	for off := 0; off < len(run); off += tx.seg {
		v.send(run[off:min(off+tx.seg, len(run))], tx.to)
	}
}

func (v *PlainVTEP) send(pkt []byte, to netip.AddrPort) {
	_, err := v.conn.WriteToUDPAddrPort(pkt, to)
	v.txSends.Add(1)
	if err != nil {
		v.drops.Add(peers.DropSendFailed, 1)
		return
	}
	v.txPackets.Add(1)
	v.txBytes.Add(uint64(len(pkt)))
}
