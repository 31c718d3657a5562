package tunnel

import (
	"errors"
	"os"
	"syscall"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/tun"

	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/peers"
	"github.com/weftnet/weft/policy"
	"github.com/weftnet/weft/tap"
	"github.com/weftnet/weft/vxlan"
)

/* Outbound flow (one goroutine, no handoff)
 *
 * 1. dev.Read fills the loop's own batch of buffers at offset `headroom` (a GSO
 *    super-packet arrives split into segments, one per buffer; a TAP also returns the
 *    frames already queued behind the first).
 * 2. Router.Route picks the peer(s) for each packet, Policy.Outbound may refuse it
 *    (policy.go); a flood copies into pool buffers.
 * 3. With a current keypair: VXLAN header into buf[16:24], zero padding (L3, to a
 *    multiple of 16, never past the MTU), Keypair.ReserveAt (the send counter, in batch
 *    order, and buf[0:16]). Without one: the packet is copied into the peer's bounded pending
 *    queue and the handshake worker is asked for an initiation; the worker flushes the
 *    queue when the session is up. NeedsRekey only asks for a new handshake: sending
 *    continues on the current keypair meanwhile.
 * 4. Prepared packets are grouped by peer, in order. runCrypto then seals every one in
 *    place (Keypair.Finish: encrypts, appends the tag): on the loop's goroutine, or shared
 *    with helpers on machines of 4 cores or more (parallel.go).
 * 5. Each group goes out with one bind.Send (sendmmsg; UDP GSO coalesces equal-sized runs).
 *
 * Reading, sealing and sending inline on one goroutine trades wireguard-go's parallel
 * encryption for zero handoffs, which wins on small machines where the other core is
 * busy with the receiver and the application; on larger ones the AEAD of a batch is
 * shared (fork-join inside the batch), the rest stays on the loop.
 */

// sendScratch is the outbound loop's per-goroutine state, allocated once.
type sendScratch struct {
	dsts   []*peers.Peer
	groups []sendGroup
	copies [][]byte // pool buffers of flood copies and fragments in this batch
	// crypt is the batch's messages reserved for sealing (parallel.go): sealed all at once
	// before the groups are sent.
	crypt *cryptoBatch
	// partial is the device's word on each packet of the batch being sent (ReadPartial;
	// empty when the device completes every checksum itself), partialSent the packets
	// sent with their checksum left partial.
	partial     []tap.Partial
	partialSent uint64

	// icmp holds an ICMP error for the device at headroom (icmp.go); icmpOut is its
	// one-buffer batch. icmpTokens and icmpRefill are the errors' token bucket.
	icmp       []byte
	icmpOut    [][]byte
	icmpTokens int
	icmpRefill int64
}

type sendGroup struct {
	peer  *peers.Peer
	bufs  [][]byte
	bytes uint64
}

func (t *Tunnel) newSendScratch() *sendScratch {
	return &sendScratch{
		dsts:    make([]*peers.Peer, 0, 8),
		groups:  make([]sendGroup, 0, 8),
		copies:  make([][]byte, 0, t.cfg.MaxFloodCopies),
		crypt:   newCryptoBatch(t.devBatch + t.cfg.MaxFloodCopies),
		icmp:    make([]byte, headroom+icmpBufSize),
		icmpOut: make([][]byte, 1),
	}
}

func (t *Tunnel) routineOutbound() {
	defer t.wg.Done()
	bufs := t.owned.get(t.devBatch)
	sizes := make([]int, t.devBatch)
	sc := t.newSendScratch()
	var partial []tap.Partial
	if t.partialDev != nil {
		partial = make([]tap.Partial, t.devBatch)
	}
	for {
		var n int
		var err error
		if partial != nil {
			n, err = t.partialDev.ReadPartial(bufs, sizes, partial, headroom)
			sc.partial = partial[:max(n, 0)]
		} else {
			n, err = t.dev.Read(bufs, sizes, headroom)
		}
		if t.closed.Load() {
			return
		}
		if n > 0 {
			t.sendBatch(sc, bufs[:n], sizes[:n])
		}
		if err != nil {
			if errors.Is(err, tun.ErrTooManySegments) {
				t.drop(nil, peers.DropMalformed, 1)
				continue
			}
			if errors.Is(err, os.ErrClosed) {
				return
			}
			t.log.Error("device read failed; outbound loop stops", "err", err)
			return
		}
	}
}

// sendBatch routes, seals and sends one batch read from the device. bufs are the loop's
// own full-size buffers (inner packets at headroom, sizes[i] long); they are borrowed
// and reusable when sendBatch returns. No allocation in steady state.
func (t *Tunnel) sendBatch(sc *sendScratch, bufs [][]byte, sizes []int) {
	now := time.Now()
	mono := policy.MonotonicAt(now)
	for i, buf := range bufs {
		n := sizes[i]
		if n <= 0 {
			continue
		}
		if n > maxInner {
			t.drop(nil, peers.DropTooBig, 1)
			continue
		}
		pkt := buf[headroom : headroom+n]
		var pp tap.Partial // where the device left the checksum partial, if it did
		if i < len(sc.partial) {
			pp = sc.partial[i]
		}
		dsts, reason := t.router.Route(pkt, sc.dsts[:0])
		if len(dsts) == 0 {
			if reason == peers.DropNone {
				reason = peers.DropNoRoute
			}
			t.drop(nil, reason, 1)
			continue
		}
		if r := t.pol.Outbound(pkt, mono); r != peers.DropNone {
			var to *peers.Peer // counted for the peer, unless a flood
			if len(dsts) == 1 {
				to = dsts[0]
			}
			t.drop(to, r, 1)
			clear(dsts)
			sc.dsts = dsts[:0]
			continue
		}
		if pp.Field != 0 && (len(dsts) != 1 || !t.leavePartial(dsts[0], pkt, pp)) {
			tap.Complete(pkt, pp) // for every peer that does not take it partial (partial.go)
			pp = tap.Partial{}
		}
		// Copies first: sealing the original encrypts pkt in place.
		for j := len(dsts) - 1; j >= 0; j-- {
			p := dsts[j]
			if p == nil { // a Router's bug must not crash the loop: l2 once returned the host itself
				t.drop(nil, peers.DropNoRoute, 1)
				continue
			}
			b := buf
			if j > 0 {
				if len(sc.copies) >= t.cfg.MaxFloodCopies {
					t.drop(p, peers.DropFloodCapped, 1)
					continue
				}
				b = t.pool.get()
				copy(b[headroom:], pkt)
				sc.copies = append(sc.copies, b)
			}
			t.sealInto(sc, p, b, n, now, pp)
		}
		// dsts may have outgrown sc.dsts (a flood to more peers than its capacity): keep the
		// grown slice, so the next flood of that size does not allocate again.
		clear(dsts)
		sc.dsts = dsts[:0]
	}
	t.runCrypto(sc.crypt) // every reserved message sealed: the groups hold wire messages
	sc.crypt.reset()
	t.flushGroups(sc, now)
	sc.partial = sc.partial[:0]
	if sc.partialSent > 0 {
		t.partialSent.Add(sc.partialSent)
		sc.partialSent = 0
	}
	for i, b := range sc.copies {
		t.pool.put(b)
		sc.copies[i] = nil
	}
	sc.copies = sc.copies[:0]
}

// sealInto prepares the inner packet at b[headroom:headroom+n] for p (header, padding,
// send counter), appends it to p's group and to the batch's messages to seal (runCrypto
// seals them before the groups are sent), or queues it for p's handshake. pp, when set,
// is where the packet's checksum was left partial for p (leavePartial); it is completed
// if the packet takes another way.
func (t *Tunnel) sealInto(sc *sendScratch, p *peers.Peer, b []byte, n int, now time.Time, pp tap.Partial) {
	if p.Removed() {
		t.drop(p, peers.DropNoRoute, 1)
		return
	}
	kp := p.Keypairs().Current()
	if kp == nil {
		if pp.Field != 0 {
			tap.Complete(b[headroom:headroom+n], pp) // the flush seals it for whoever p is then
		}
		t.enqueuePending(p, b[headroom:headroom+n])
		return
	}
	if kp.NeedsRekey(now) {
		t.requestHandshake(p)
	}
	bare := p.WireGuardFraming()
	limit := t.maxPlain(p, bare)
	if need := plainLen(n, bare); need > limit {
		if pp.Field != 0 {
			tap.Complete(b[headroom:headroom+n], pp) // fragments or an ICMP quote
		}
		t.tooBig(sc, p, b, n, limit-(need-n), now)
		return
	}
	csum := t.csumBits
	if pp.Field != 0 {
		csum |= vxlan.CsumPartial
	}
	start, m, err := t.prepare(kp, b, n, bare, limit, now, csum)
	if err != nil {
		if errors.Is(err, crypto.ErrKeypairExpired) {
			if pp.Field != 0 {
				tap.Complete(b[headroom:headroom+n], pp)
			}
			t.enqueuePending(p, b[headroom:headroom+n]) // prepare left the packet where it was
			return
		}
		t.drop(p, peers.DropMalformed, 1)
		return
	}
	if pp.Field != 0 {
		sc.partialSent++
	}
	msg := b[start : start+m]
	if t.workers > 1 {
		sc.crypt.add(kp, msg, false) // sealed with the batch's others by runCrypto
	} else {
		kp.Finish(msg) // run to completion: nothing to share
	}
	g := sc.group(p)
	g.bufs = append(g.bufs, msg)
	g.bytes += uint64(n)
}

// plainLen is the plaintext an inner packet of n bytes needs before padding.
func plainLen(n int, bare bool) int {
	if bare {
		return n
	}
	return vxlan.HeaderSize + n
}

// seal prepares (see prepare) and seals at once: for messages sent on their own, outside
// a batch (the pending queue's flush).
func (t *Tunnel) seal(kp *crypto.Keypair, b []byte, n int, bare bool, limit int, now time.Time) (start, m int, err error) {
	start, m, err = t.prepare(kp, b, n, bare, limit, now, t.csumBits)
	if err == nil {
		kp.Finish(b[start : start+m])
	}
	return start, m, err
}

// prepare writes the VXLAN header and padding around the inner packet at b[headroom:] and
// reserves its send counter (Keypair.ReserveAt: the transport header is written, the
// payload not yet encrypted); the message to Finish is b[start:start+m]. bare (a peer with
// WireGuard framing, L3 only): no VXLAN header, the message starts at b[headroom-16:] so
// that the packet is sealed where it lies, padded as WireGuard pads (to a multiple of 16).
// Padding never takes the plaintext past limit (maxPlain: the MTU and the peer's path),
// which the caller checked the packet fits. csum is the VXLAN header's inner-checksum bits
// (partial.go). On an error the packet at b[headroom:headroom+n] is as it was (it may be
// queued).
func (t *Tunnel) prepare(kp *crypto.Keypair, b []byte, n int, bare bool, limit int, now time.Time, csum byte) (start, m int, err error) {
	now = t.cfg.Identity.Present(now) // the batch's clock read, on the keypair's clock
	if bare {
		start = headroom - crypto.MessageTransportHeaderSize
		padded := (n + 15) &^ 15
		if padded > limit {
			padded = max(n, limit)
		}
		msg := b[start:]
		clear(msg[crypto.MessageTransportHeaderSize+n : crypto.MessageTransportHeaderSize+padded])
		m, err = kp.ReserveAt(msg, padded, now)
		return start, m, err
	}
	proto := vxlan.ProtoEthernet
	plain := vxlan.HeaderSize + n
	if !t.cfg.NextProtoL2 {
		proto = vxlan.ProtoIPv4
		if b[headroom]>>4 == 6 {
			proto = vxlan.ProtoIPv6
		}
		// Pad to a multiple of 16 (hides exact lengths, as WireGuard), never past the MTU.
		padded := (plain + 15) &^ 15
		if padded > limit {
			padded = max(plain, limit)
		}
		clear(b[headroom+n : crypto.MessageTransportHeaderSize+padded])
		plain = padded
	}
	vxlan.Encode(b[crypto.MessageTransportHeaderSize:headroom], t.cfg.VNI, proto)
	b[crypto.MessageTransportHeaderSize+1] = csum
	m, err = kp.ReserveAt(b, plain, now)
	return 0, m, err
}

func (sc *sendScratch) group(p *peers.Peer) *sendGroup {
	for i := range sc.groups {
		if sc.groups[i].peer == p {
			return &sc.groups[i]
		}
	}
	if len(sc.groups) == cap(sc.groups) {
		sc.groups = append(sc.groups, sendGroup{}) // grows once per new high-water mark
	} else {
		sc.groups = sc.groups[:len(sc.groups)+1]
	}
	g := &sc.groups[len(sc.groups)-1]
	g.peer = p
	if g.bufs == nil {
		g.bufs = make([][]byte, 0, 128)
	}
	return g
}

// flushGroups sends every group and counts it; groups keep their slices for reuse.
func (t *Tunnel) flushGroups(sc *sendScratch, now time.Time) {
	for i := range sc.groups {
		g := &sc.groups[i]
		if len(g.bufs) > 0 {
			t.sendTo(g.peer, g.bufs, g.bytes, now)
		}
		clear(g.bufs)
		g.bufs = g.bufs[:0]
		g.bytes = 0
		g.peer = nil
	}
	sc.groups = sc.groups[:0]
}

// sendTo sends sealed messages to p in chunks of the bind's batch size and counts them
// (innerBytes: the inner bytes they carry).
func (t *Tunnel) sendTo(p *peers.Peer, msgs [][]byte, innerBytes uint64, now time.Time) {
	ep := t.endpointOf(p)
	if ep == nil {
		t.drop(p, peers.DropNoEndpoint, uint64(len(msgs)))
		return
	}
	if err := t.send(msgs, ep); err != nil {
		if errors.Is(err, syscall.EMSGSIZE) {
			// The route toward p is narrower than its path MTU said: read it again.
			t.drop(p, peers.DropTooBig, uint64(len(msgs)))
			t.requestRouteMTU(p)
			return
		}
		t.drop(p, peers.DropSendFailed, uint64(len(msgs)))
		return
	}
	p.AddTx(uint64(len(msgs)), innerBytes, true, now.UnixNano()) // data: arms the no-reply timer
}

// send writes msgs to ep in chunks of at most bindBatch; it stops at the first failure.
func (t *Tunnel) send(msgs [][]byte, ep conn.Endpoint) error {
	for len(msgs) > 0 {
		k := min(len(msgs), t.bindBatch)
		if err := t.bind.Send(msgs[:k], ep); err != nil {
			if !t.closed.Load() {
				t.log.Debug("bind send failed", "endpoint", ep.DstToString(), "err", err)
			}
			return err
		}
		msgs = msgs[k:]
	}
	return nil
}

// enqueuePending copies pkt into a pool buffer on p's pending queue (dropping the oldest
// when full) and asks for a handshake.
func (t *Tunnel) enqueuePending(p *peers.Peer, pkt []byte) {
	b := t.pool.get()
	copy(b[headroom:], pkt)
	b = b[:headroom+len(pkt)]
	if old, evicted := p.Session().Enqueue(b, t.cfg.QueueLen); evicted {
		t.pool.put(old)
		t.drop(p, peers.DropQueueFull, 1)
	}
	t.requestHandshake(p)
}

// requestHandshake asks the worker for an initiation, at most once until it acts.
func (t *Tunnel) requestHandshake(p *peers.Peer) {
	s := p.Session()
	if !s.MarkRequested() {
		return
	}
	select {
	case t.hsReqs <- hsRequest{peer: p, kind: reqInitiate}:
	default:
		s.ClearRequested() // worker busy; the next packet asks again
	}
}
