package tunnel

import (
	"encoding/binary"
	"errors"
	"net"
	"time"

	"golang.zx2c4.com/wireguard/conn"

	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/peers"
	"github.com/weftnet/weft/policy"
	"github.com/weftnet/weft/tap"
	"github.com/weftnet/weft/vxlan"
)

/* Inbound flow (one goroutine per bind receive function, no handoff for data)
 *
 * 1. The bind's receive function fills the loop's own batch of buffers (recvmmsg; UDP GRO
 *    super-datagrams arrive split, one datagram per buffer).
 * 2. By message type: 1, 2 and 3 are copied onto the handshake worker's bounded queue;
 *    4 is looked up by receiver index (lock-free) and joins the batch's messages to open.
 * 3. runCrypto authenticates and decrypts them in place (Keypair.DecryptAt): on the loop's
 *    goroutine, or shared with helpers on machines of 4 cores or more (parallel.go).
 * 4. In the batch's order, each authenticated message moves the replay window (only
 *    now: Keypair.Accept), confirms a responder's next keypair, roams the peer's
 *    endpoint, then: empty plaintext = keepalive; otherwise the VNI must be ours,
 *    the next protocol our mode's, L3 padding is cut by the IP length, Router.Accept
 *    vets the inner packet (cryptokey routing), and Policy.Inbound judges it with the
 *    sender known (policy.go; the clock is read once per batch).
 * 5. Accepted packets go to the device in one dev.Write at offset `headroom` (the TUN, and
 *    the TAP with offload on, write their virtio header in front and GRO-coalesce).
 */

// recvScratch is an inbound loop's per-goroutine state, allocated once.
type recvScratch struct {
	bufs  [][]byte
	sizes []int
	eps   []conn.Endpoint
	out   [][]byte
	// partial[i] is where out[i]'s checksum was left partial (partial.go), or zero;
	// partialRecv counts this batch's.
	partial     []tap.Partial
	partialRecv uint64

	// run-length accounting: consecutive packets of one peer are counted once
	runPeer    *peers.Peer
	runPackets uint64
	runBytes   uint64
	runData    bool

	// crypt is the batch's transport messages to open (parallel.go); rx[k] is what the
	// ordered phase after needs of crypt.jobs[k].
	crypt *cryptoBatch
	rx    []rxMessage
}

// rxMessage is a transport message of the batch between its lookup and its opening.
type rxMessage struct {
	peer *peers.Peer
	ep   conn.Endpoint
	buf  []byte // the message's whole buffer
}

func (t *Tunnel) newRecvScratch() *recvScratch {
	rs := &recvScratch{
		bufs:    make([][]byte, t.bindBatch),
		sizes:   make([]int, t.bindBatch),
		eps:     make([]conn.Endpoint, t.bindBatch),
		out:     make([][]byte, 0, t.bindBatch),
		partial: make([]tap.Partial, 0, t.bindBatch),
		crypt:   newCryptoBatch(t.bindBatch),
		rx:      make([]rxMessage, 0, t.bindBatch),
	}
	copy(rs.bufs, t.owned.get(t.bindBatch))
	return rs
}

func (t *Tunnel) routineInbound(fn conn.ReceiveFunc) {
	defer t.wg.Done()
	rs := t.newRecvScratch()
	failures := 0
	for {
		n, err := fn(rs.bufs, rs.sizes, rs.eps)
		if t.closed.Load() || errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			// As wireguard-go: a few transient failures are waited out, a persistent one
			// ends this receive function (the others keep going).
			if failures++; failures > 10 {
				t.log.Error("bind receive keeps failing; receive loop stops", "err", err)
				return
			}
			t.log.Warn("bind receive failed", "err", err)
			select {
			case <-t.stop:
				return
			case <-time.After(time.Second / 3):
			}
			continue
		}
		failures = 0
		t.receiveBatch(rs, n)
	}
}

// receiveBatch handles rs.bufs[:n] as filled by a receive function, in three phases: in
// order, each message is looked up by its receiver index (or goes to the handshake
// worker); runCrypto authenticates and decrypts every transport message (parallel.go);
// in order again, each is judged by its replay window and delivered. No allocation in
// steady state (a roamed endpoint allocates once).
func (t *Tunnel) receiveBatch(rs *recvScratch, n int) {
	clock := time.Now()
	now, mono := clock.UnixNano(), policy.MonotonicAt(clock)
	rs.crypt.now = t.cfg.Identity.Present(clock) // the batch's one clock read, for every open
	for i := 0; i < n; i++ {
		msg := rs.bufs[i][:rs.sizes[i]]
		ep := rs.eps[i]
		rs.eps[i] = nil
		if len(msg) < 4 {
			t.drop(nil, peers.DropShortMessage, 1)
			continue
		}
		switch binary.LittleEndian.Uint32(msg[:4]) {
		case crypto.MessageTransportType:
			t.stageTransport(rs, rs.bufs[i], msg, ep, now, mono)
		case crypto.MessageInitiationType, crypto.MessageResponseType, crypto.MessageCookieReplyType:
			t.enqueueHandshake(msg, ep)
		default:
			t.drop(nil, peers.DropUnknownType, 1)
		}
	}
	t.runCrypto(rs.crypt)
	for k := range rs.crypt.jobs {
		t.receiveOpened(rs, k, now, mono)
	}
	rs.crypt.reset()
	clear(rs.rx)
	rs.rx = rs.rx[:0]
	t.flushRun(rs, now)
	if len(rs.out) > 0 {
		var err error
		if t.partialDev != nil {
			_, err = t.partialDev.WritePartial(rs.out, headroom, rs.partial)
		} else {
			_, err = t.dev.Write(rs.out, headroom)
		}
		if err != nil && !t.closed.Load() {
			t.log.Debug("device write failed", "err", err)
		}
		clear(rs.out)
		rs.out = rs.out[:0]
		rs.partial = rs.partial[:0]
	}
	if rs.partialRecv > 0 {
		t.partialRecv.Add(rs.partialRecv)
		rs.partialRecv = 0
	}
}

// stageTransport looks a transport message up by its receiver index; with one worker it
// opens and delivers it at once, otherwise it adds it to the batch's messages to open.
func (t *Tunnel) stageTransport(rs *recvScratch, buf, msg []byte, ep conn.Endpoint, now, mono int64) {
	if len(msg) < crypto.MessageTransportOverhead {
		t.drop(nil, peers.DropShortMessage, 1)
		return
	}
	e, ok := t.table.ByIndex(binary.LittleEndian.Uint32(msg[4:8]))
	if !ok || e.Keypair == nil {
		t.drop(nil, peers.DropUnknownIndex, 1)
		return
	}
	if t.workers <= 1 {
		// Run to completion: open and deliver it now, nothing to share.
		pt, err := e.Keypair.DecryptAt(msg, rs.crypt.now)
		t.receiveTransport(rs, e.Peer, e.Keypair, ep, buf, msg, pt, err, now, mono)
		return
	}
	rs.crypt.add(e.Keypair, msg, true)
	rs.rx = append(rs.rx, rxMessage{peer: e.Peer, ep: ep, buf: buf})
}

// receiveOpened takes the batch's k-th transport message after runCrypto opened it.
func (t *Tunnel) receiveOpened(rs *recvScratch, k int, now, mono int64) {
	j, m := &rs.crypt.jobs[k], &rs.rx[k]
	t.receiveTransport(rs, m.peer, j.kp, m.ep, m.buf, j.msg, j.pt, j.err, now, mono)
}

// receiveTransport takes a transport message from p, opened under kp (pt, or DecryptAt's
// openErr): the replay window (only now, in the batch's order, and only for a message that
// authenticated), the keypair's confirmation, roaming, then the plaintext.
func (t *Tunnel) receiveTransport(rs *recvScratch, p *peers.Peer, kp *crypto.Keypair, ep conn.Endpoint, buf, msg, pt []byte, openErr error, now, mono int64) {
	if openErr != nil {
		t.drop(p, openDropReason(openErr), 1)
		return
	}
	if err := kp.Accept(msg); err != nil {
		t.drop(p, openDropReason(err), 1)
		return
	}
	kps := p.Keypairs()
	if kps.Current() != kp {
		if promoted, evicted := kps.ConfirmEvicting(kp); promoted {
			if evicted != nil {
				t.table.FreeIndexes(evicted.LocalIndex())
			}
			t.requestFlush(p) // responder: the session is confirmed, queued packets may go
		}
	}
	t.roam(p, ep)
	if rs.runPeer != p {
		t.flushRun(rs, now)
		rs.runPeer = p
	}
	rs.runPackets++
	if len(pt) == 0 {
		return // keepalive
	}
	if p.WireGuardFraming() {
		t.receiveBare(rs, buf, p, pt, mono)
		return
	}
	h, err := vxlan.Parse(pt)
	if err != nil {
		t.drop(p, peers.DropMalformed, 1)
		return
	}
	if h.VNI != t.cfg.VNI {
		t.drop(p, peers.DropWrongVNI, 1)
		return
	}
	proto := h.NextProto
	inner := pt[vxlan.HeaderSize:]
	if proto == vxlan.ProtoPMTUProbe || proto == vxlan.ProtoPMTUAck {
		t.receiveProbe(p, proto, inner)
		return
	}
	if t.cfg.NextProtoL2 {
		if proto != vxlan.ProtoEthernet && proto != vxlan.ProtoNone {
			t.drop(p, peers.DropWrongProto, 1)
			return
		}
	} else {
		n, ipProto, ok := ipLen(inner)
		if !ok {
			t.drop(p, peers.DropMalformed, 1)
			return
		}
		if ipProto != proto {
			t.drop(p, peers.DropWrongProto, 1)
			return
		}
		inner = inner[:n]
	}
	// A data packet says whether its sender takes partial checksums, and whether its own
	// was left partial (partial.go): only for a receiver that said it takes them, and where
	// the receiver itself finds the checksum.
	p.SetAcceptsPartial(h.Csum&vxlan.CsumAccepted != 0)
	var pp tap.Partial
	if h.Csum&vxlan.CsumPartial != 0 {
		at, ok := partialAt(inner, t.cfg.NextProtoL2)
		if t.partialDev == nil || !ok {
			t.drop(p, peers.DropMalformed, 1)
			return
		}
		pp = at
	}
	if !t.admit(p, inner, mono) {
		return
	}
	rs.runBytes += uint64(len(inner))
	rs.runData = true
	// inner starts at buf[headroom]: the transport header is 16 bytes, the VXLAN header 8.
	rs.out = append(rs.out, buf[:headroom+len(inner)])
	rs.partial = append(rs.partial, pp)
	if pp.Field != 0 {
		rs.partialRecv++
	}
}

// admit is the judgement every inner packet from p passes before the device: cryptokey
// routing (Router.Accept), then network policy. A refusal is counted and admit is false.
func (t *Tunnel) admit(p *peers.Peer, inner []byte, mono int64) bool {
	if r := t.router.Accept(p, inner); r != peers.DropNone {
		t.drop(p, r, 1)
		return false
	}
	if r := t.pol.Inbound(inner, p, mono); r != peers.DropNone {
		t.drop(p, r, 1)
		return false
	}
	return true
}

// receiveBare takes the plaintext pt of a peer with WireGuard framing as WireGuard does:
// a bare IP packet whose length comes from its header (padding cut), cryptokey-routed by
// Router.Accept; no VXLAN header, no VNI. The packet is moved up to buf[headroom:], where
// the device write expects it.
func (t *Tunnel) receiveBare(rs *recvScratch, buf []byte, p *peers.Peer, pt []byte, mono int64) {
	if t.cfg.NextProtoL2 {
		t.drop(p, peers.DropWrongProto, 1) // the agent refuses such peers in L2
		return
	}
	n, _, ok := ipLen(pt)
	if !ok {
		t.drop(p, peers.DropMalformed, 1)
		return
	}
	inner := pt[:n]
	if !t.admit(p, inner, mono) {
		return
	}
	copy(buf[headroom:headroom+n], inner) // pt starts at buf[16]: overlapping, memmove
	rs.runBytes += uint64(n)
	rs.runData = true
	rs.out = append(rs.out, buf[:headroom+n])
	rs.partial = append(rs.partial, tap.Partial{})
}

// flushRun counts the current run of packets from one peer.
func (t *Tunnel) flushRun(rs *recvScratch, now int64) {
	if rs.runPeer != nil && rs.runPackets > 0 {
		rs.runPeer.AddRx(rs.runPackets, rs.runBytes, rs.runData, now)
	}
	rs.runPeer, rs.runPackets, rs.runBytes, rs.runData = nil, 0, 0, false
}

func openDropReason(err error) peers.DropReason {
	switch {
	case errors.Is(err, crypto.ErrReplayed):
		return peers.DropReplayed
	case errors.Is(err, crypto.ErrKeypairExpired):
		return peers.DropKeypairExpired
	case errors.Is(err, crypto.ErrShortMessage):
		return peers.DropShortMessage
	default:
		return peers.DropAuthFailed
	}
}
