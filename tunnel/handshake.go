package tunnel

import (
	"bytes"
	"encoding/binary"
	"errors"
	"time"

	"golang.zx2c4.com/wireguard/conn"

	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/peers"
)

/* Handshake worker (one goroutine)
 *
 * Receives copies of handshake messages (types 1–3) from the inbound loops over a bounded
 * queue, and requests (initiate, flush pending) from the loops, plus the timer tick
 * (timers.go). Everything that costs a Diffie-Hellman or touches session state runs
 * here, so the data loops never block on it.
 *
 * Initiator: initiate → type 1 (new receiver index) → type 2 arrives → ConsumeResponse →
 * index names the keypair, Keypairs.Install (current at once), evicted indexes freed →
 * pending queue flushed (or a keepalive so the responder can confirm).
 * Responder: type 1 → Admit (cookie under load) → ConsumeInitiation → CreateResponse →
 * Install (next until confirmed) → the first transport packet confirms it (receive.go)
 * and asks for a flush.
 */

type hsMessage struct {
	buf [crypto.MessageInitiationSize]byte
	n   int
	src conn.Endpoint
}

type reqKind uint8

const (
	reqInitiate reqKind = iota
	reqFlush
	reqPathICMP   // arg: the MTU an ICMP error or EMSGSIZE reported; verified: it quoted us
	reqRouteMTU   // a send failed with EMSGSIZE: read the route MTU again
	reqProbeAck   // the peer probed us: acknowledge arg (size, id)
	reqProbeAcked // the peer acknowledged our probe arg (size, id)
)

type hsRequest struct {
	peer     *peers.Peer
	kind     reqKind
	arg      uint32
	verified bool
}

// hsScratch is the worker's per-goroutine state.
type hsScratch struct {
	out    []byte   // a handshake message or keepalive being built
	msgs   [][]byte // a flush's sealed packets
	taken  [][]byte // pool buffers to return after a flush
	single [][]byte // one-message batch for bind.Send
	// probe holds a path-MTU probe and its control probe (pool buffers), probeMsgs
	// the two sealed messages.
	probe     [2][]byte
	probeMsgs [][]byte
}

// enqueueHandshake copies a handshake message onto the worker's queue (inbound loops).
func (t *Tunnel) enqueueHandshake(msg []byte, src conn.Endpoint) {
	if len(msg) > crypto.MessageInitiationSize {
		t.drop(nil, peers.DropMalformed, 1)
		return
	}
	m := hsMessage{n: len(msg), src: src}
	copy(m.buf[:], msg)
	select {
	case t.hsMsgs <- m:
	default:
		t.drop(nil, peers.DropHandshakeQueueFull, 1)
	}
}

// requestFlush asks the worker to send p's pending packets.
func (t *Tunnel) requestFlush(p *peers.Peer) {
	select {
	case t.hsReqs <- hsRequest{peer: p, kind: reqFlush}:
	default:
	}
}

func (t *Tunnel) newHSScratch() *hsScratch {
	return &hsScratch{
		out:    make([]byte, 256),
		msgs:   make([][]byte, 0, t.cfg.QueueLen),
		taken:  make([][]byte, 0, t.cfg.QueueLen),
		single: make([][]byte, 1),

		probe:     [2][]byte(t.owned.get(2)),
		probeMsgs: make([][]byte, 0, 2),
	}
}

func (t *Tunnel) routineHandshake() {
	defer t.wg.Done()
	hs := t.newHSScratch()
	tick := time.NewTicker(t.cfg.TimerInterval)
	defer tick.Stop()
	for {
		select {
		case <-t.stop:
			return
		case m := <-t.hsMsgs:
			t.handleHandshake(hs, &m)
		case r := <-t.hsReqs:
			t.handleRequest(hs, r)
		case now := <-tick.C:
			t.tick(hs, now)
		}
	}
}

// handleRequest acts on one request of the loops (worker only).
func (t *Tunnel) handleRequest(hs *hsScratch, r hsRequest) {
	switch r.kind {
	case reqInitiate:
		r.peer.Session().ClearRequested()
		t.initiate(hs, r.peer, false)
	case reqFlush:
		t.sessionUp(r.peer)
		t.flushPending(hs, r.peer)
	case reqPathICMP:
		t.pathICMP(hs, r.peer, int(r.arg), r.verified)
	case reqRouteMTU:
		t.routeChanged(r.peer)
	case reqProbeAck:
		t.sendProbeAck(hs, r.peer, r.arg)
	case reqProbeAcked:
		t.probeAcked(hs, r.peer, int(r.arg>>16), uint16(r.arg))
	}
}

// initiate sends a handshake initiation to p. Unless retransmit, it does nothing while
// an initiation younger than RekeyTimeout is outstanding, or while p's session is fresh.
func (t *Tunnel) initiate(hs *hsScratch, p *peers.Peer, retransmit bool) {
	if !retransmit && t.sessionFresh(p, time.Now()) {
		return // a stale request: a handshake completed since it was made
	}
	t.sendInitiation(hs, p, retransmit)
}

// sendInitiation is initiate without the fresh-session check: the no-reply timer
// (timers.go) replaces a session that looks fresh here but that the peer has lost.
func (t *Tunnel) sendInitiation(hs *hsScratch, p *peers.Peer, retransmit bool) {
	if p.Removed() {
		return
	}
	now := time.Now()
	s := p.Session()
	old, ok := s.BeginAttempt(now, retransmit, t.cfg.RekeyTimeout)
	if !ok {
		return
	}
	if old != 0 {
		t.table.FreeIndexes(old)
	}
	ep := t.endpointOf(p)
	if ep == nil {
		t.drop(p, peers.DropNoEndpoint, 1)
		s.AttemptSent(now, 0) // retried by the timer until RekeyAttemptTime
		return
	}
	idx, err := t.table.NewIndex(p)
	if err != nil {
		t.log.Error("handshake index", "peer", p.Key().String(), "err", err)
		return
	}
	n, err := p.Handshake().CreateInitiation(hs.out, idx)
	if err != nil {
		t.table.FreeIndexes(idx)
		t.log.Warn("create initiation", "peer", p.Key().String(), "err", err)
		return
	}
	s.AttemptSent(now, idx)
	t.sendOne(hs, hs.out[:n], ep)
	t.handshakesSent.Add(1)
	t.log.Debug("handshake initiation sent", "peer", p.Key().String(), "retransmit", retransmit)
}

// sessionFresh reports whether p has a current keypair that needs no rekey yet.
func (t *Tunnel) sessionFresh(p *peers.Peer, now time.Time) bool {
	kp := p.Keypairs().Current()
	return kp != nil && !kp.NeedsRekey(now) && !kp.Expired(now) &&
		!(kp.IsInitiator() && now.Sub(kp.Created()) >= t.cfg.RekeyAfterTime)
}

func (t *Tunnel) sendOne(hs *hsScratch, msg []byte, ep conn.Endpoint) bool {
	hs.single[0] = msg
	ok := t.send(hs.single, ep) == nil
	hs.single[0] = nil
	return ok
}

// UnderLoadAfterTime is how long the tunnel stays under load (asking for cookies) after
// the handshake queue last held an eighth of its capacity: wireguard-go's value. Without
// it, a flood that the worker drains in bursts flips cookie mode on and off per message,
// and every gap lets a burst of unverified initiations through to the Diffie-Hellman.
const UnderLoadAfterTime = time.Second

// underLoad reports whether handshake messages pile up (WireGuard: an eighth of the queue)
// or did so less than UnderLoadAfterTime ago. Called by the handshake worker only.
func (t *Tunnel) underLoad() bool {
	now := t.now().UnixNano()
	if len(t.hsMsgs) >= cap(t.hsMsgs)/8 {
		t.underLoadUntil = now + int64(UnderLoadAfterTime)
		return true
	}
	return now < t.underLoadUntil
}

func (t *Tunnel) handleHandshake(hs *hsScratch, m *hsMessage) {
	msg := m.buf[:m.n]
	src := addrPortOf(m.src)
	typ := binary.LittleEndian.Uint32(msg[:4])
	if typ == crypto.MessageCookieReplyType {
		t.handleCookieReply(msg)
		return
	}
	switch t.cfg.Identity.Admit(msg, src, t.underLoad()) {
	case crypto.VerdictInvalid:
		t.drop(nil, peers.DropInvalidMAC1, 1)
		return
	case crypto.VerdictDrop:
		t.drop(nil, peers.DropRateLimited, 1)
		return
	case crypto.VerdictCookie:
		if n, err := t.cfg.Identity.CreateCookieReply(hs.out, msg, src); err == nil {
			t.sendOne(hs, hs.out[:n], m.src)
		}
		t.drop(nil, peers.DropRateLimited, 1)
		return
	}
	switch typ {
	case crypto.MessageInitiationType:
		t.handleInitiation(hs, msg, m.src)
	case crypto.MessageResponseType:
		t.handleResponse(hs, msg, m.src)
	}
}

func (t *Tunnel) handleInitiation(hs *hsScratch, msg []byte, src conn.Endpoint) {
	h, err := t.cfg.Identity.ConsumeInitiation(msg, func(k crypto.PublicKey) *crypto.Handshake {
		if p := t.table.ByKey(k); p != nil && !p.Removed() {
			return p.Handshake()
		}
		return nil
	})
	if err != nil {
		t.drop(nil, peers.DropHandshakeInvalid, 1)
		t.log.Debug("initiation rejected", "endpoint", addrPortOf(src).String(), "err", err)
		return
	}
	p := t.table.ByKey(h.RemoteKey())
	if p == nil || p.Handshake() != h {
		t.drop(nil, peers.DropHandshakeInvalid, 1)
		return
	}
	idx, err := t.table.NewIndex(p)
	if err != nil {
		t.log.Error("handshake index", "peer", p.Key().String(), "err", err)
		return
	}
	n, kp, err := h.CreateResponse(hs.out, idx)
	if err != nil {
		t.table.FreeIndexes(idx)
		t.drop(p, peers.DropHandshakeInvalid, 1)
		return
	}
	t.table.SetIndexKeypair(idx, kp)
	t.freeEvicted(p.Keypairs().Install(kp))
	p.SetAcceptsPartial(false) // a new session: its first data packet says again (partial.go)
	t.roam(p, src)
	t.sendOne(hs, hs.out[:n], src)
	t.handshakesSent.Add(1)
	p.HandshakeDone(time.Now())
	t.log.Debug("handshake response sent", "peer", p.Key().String(), "endpoint", addrPortOf(src).String())
}

func (t *Tunnel) handleResponse(hs *hsScratch, msg []byte, src conn.Endpoint) {
	if len(msg) < 12 {
		t.drop(nil, peers.DropShortMessage, 1)
		return
	}
	idx := binary.LittleEndian.Uint32(msg[8:12])
	e, ok := t.table.ByIndex(idx)
	if !ok || e.Keypair != nil {
		t.drop(nil, peers.DropUnknownIndex, 1)
		return
	}
	p := e.Peer
	kp, err := p.Handshake().ConsumeResponse(msg)
	if err != nil {
		t.drop(p, peers.DropHandshakeInvalid, 1)
		t.log.Debug("response rejected", "peer", p.Key().String(), "err", err)
		if errors.Is(err, crypto.ErrNoPendingHandshake) {
			t.crossedHandshakes(p)
		}
		return
	}
	t.table.SetIndexKeypair(idx, kp)
	p.Session().CompleteAttempt(idx)
	t.freeEvicted(p.Keypairs().Install(kp))
	p.SetAcceptsPartial(false) // a new session: its first data packet says again (partial.go)
	t.roam(p, src)
	p.HandshakeDone(time.Now())
	t.log.Debug("handshake complete", "peer", p.Key().String())
	if t.flushPending(hs, p) == 0 {
		t.sendKeepalive(hs, p) // lets the responder confirm the new keypair
	}
}

// crossedHandshakes handles both sides having initiated at once: each consumed the other's
// initiation, which replaced its own, so both responses are refused. Waiting RekeyTimeout
// on both sides (WireGuard's answer) costs seconds at first contact; instead the side with
// the lower public key retries as soon as the peer's flood guard allows, and the other
// side's session comes up when that handshake's first packet confirms it (sessionUp).
func (t *Tunnel) crossedHandshakes(p *peers.Peer) {
	local, remote := t.cfg.Identity.PublicKey(), p.Key()
	if bytes.Compare(local[:], remote[:]) >= 0 {
		return
	}
	// The timer retransmits when the last initiation is RekeyTimeout old: make that happen
	// a few initiation intervals from now, past the peer's HandshakeInitiationRate.
	p.Session().RetrySoon(time.Now().Add(-t.cfg.RekeyTimeout + 3*crypto.HandshakeInitiationRate))
}

// sessionUp ends an outstanding initiation once p has a confirmed session some other way
// (we were the responder of a crossing handshake).
func (t *Tunnel) sessionUp(p *peers.Peer) {
	if !t.sessionFresh(p, time.Now()) {
		return
	}
	if idx := p.Session().AbandonAttempt(); idx != 0 {
		t.table.FreeIndexes(idx)
	}
}

func (t *Tunnel) handleCookieReply(msg []byte) {
	if len(msg) < 8 {
		t.drop(nil, peers.DropShortMessage, 1)
		return
	}
	e, ok := t.table.ByIndex(binary.LittleEndian.Uint32(msg[4:8]))
	if !ok {
		t.drop(nil, peers.DropUnknownIndex, 1)
		return
	}
	if err := e.Peer.Handshake().ConsumeCookieReply(msg); err != nil {
		t.drop(e.Peer, peers.DropHandshakeInvalid, 1)
		return
	}
	e.Peer.Session().CookieReceived() // shown by `weft peers`: the responder is under load
}

func (t *Tunnel) freeEvicted(evicted []*crypto.Keypair) {
	for _, kp := range evicted {
		if kp != nil {
			t.table.FreeIndexes(kp.LocalIndex())
		}
	}
}

// flushPending seals and sends p's queued packets on its current keypair; it returns how
// many were sent. Without a current keypair it leaves them queued.
func (t *Tunnel) flushPending(hs *hsScratch, p *peers.Peer) int {
	kp := p.Keypairs().Current()
	if kp == nil {
		return 0
	}
	hs.taken = p.Session().Drain(hs.taken)
	if len(hs.taken) == 0 {
		return 0
	}
	var bytes uint64
	now := time.Now()
	for _, b := range hs.taken {
		n := len(b) - headroom
		bare := p.WireGuardFraming()
		limit := t.maxPlain(p, bare)
		if plainLen(n, bare) > limit {
			t.drop(p, peers.DropTooBig, 1) // the path shrank while it waited
			continue
		}
		start, m, err := t.seal(kp, b[:cap(b)], n, bare, limit, now)
		if err != nil {
			t.drop(p, peers.DropKeypairExpired, 1)
			continue
		}
		hs.msgs = append(hs.msgs, b[start:start+m])
		bytes += uint64(n)
	}
	sent := len(hs.msgs)
	if sent > 0 {
		t.sendTo(p, hs.msgs, bytes, time.Now())
	}
	for _, b := range hs.taken {
		t.pool.put(b)
	}
	clear(hs.taken)
	clear(hs.msgs)
	hs.taken, hs.msgs = hs.taken[:0], hs.msgs[:0]
	return sent
}

// sendKeepalive sends an empty transport message on p's current keypair.
func (t *Tunnel) sendKeepalive(hs *hsScratch, p *peers.Peer) {
	kp := p.Keypairs().Current()
	ep := t.endpointOf(p)
	if kp == nil || ep == nil {
		return
	}
	m, err := kp.Seal(hs.out[:cap(hs.out)], 0)
	if err != nil {
		return
	}
	if t.sendOne(hs, hs.out[:m], ep) {
		t.keepalivesSent.Add(1)
		p.AddTx(1, 0, false, time.Now().UnixNano()) // no data: does not arm the no-reply timer
	}
}
