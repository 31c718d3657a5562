package tunnel

import (
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/peers"
	"github.com/weftnet/weft/vxlan"
)

/* Path MTU, per peer (DESIGN "MTU")
 *
 * Every datagram leaves with DF (the bind's job: udp.Bind) and weft never IP-fragments
 * its own datagrams, so each peer has a path MTU (peers.Peer.PathMTU): the largest IP
 * packet its endpoint's path carries. The send path bounds each message by it (maxPlain);
 * an inner packet that does not fit is answered with ICMP "fragmentation needed" /
 * "packet too big" written back into the device (L3; rate-limited), or cut into IPv4
 * fragments when it has no DF. The handshake worker owns the rest (pmtuState):
 *
 *   - the ceiling: the route MTU toward the endpoint (Config.RouteMTU), read again at each
 *     search, never above what the device MTU can fill;
 *   - ICMP errors about our datagrams (PathError, from the bind's error queue): lower the
 *     path MTU at once when they quote one of our messages to that peer (receiver index
 *     checked); an error that quotes too little to check only starts a probe of the size
 *     it claims, so an off-path forgery cannot shrink a path by itself;
 *   - EMSGSIZE from a send: the route MTU is read again;
 *   - probes: an encrypted message of the probed size (VXLAN next protocol 0xFE) that the
 *     peer acknowledges (0xFF). A search starts with the ceiling, confirms a value an ICMP
 *     error claimed, bisects when a size is lost three times while a small control probe
 *     of the same round got through (a black hole: no ICMP comes back), and starts again
 *     every Config.PathMTUInterval, so a path that widened is used again.
 *
 * Probes and acks are authenticated like data, so nobody but the peer can raise a path
 * MTU; stock WireGuard peers cannot answer probes and rely on ICMP errors and the route.
 */

// probeTries is how many times a probed size is sent before it counts as lost.
const probeTries = 3

// probeSearchStep ends a bisection: sizes closer than this are not told apart.
const probeSearchStep = 8

// pmtuState is one peer's path-MTU search, owned by the handshake worker.
type pmtuState struct {
	addr    netip.AddrPort // the endpoint this state is about
	ceiling int            // the largest size worth probing: route MTU, device MTU
	lo      int            // the largest size acknowledged in this search (0: none)
	hi      int            // the smallest size known not to pass (ceiling+1: none)
	probing int            // the size in flight (0: none)
	id      uint16         // the id of the probe in flight
	sentAt  time.Time
	tries   int       // rounds of probing lost while the control probe was answered
	silent  int       // rounds with not even the control probe answered
	ctrlAck time.Time // when the peer last acknowledged a control probe
	next    time.Time // when the next search starts (zero: searching)
}

// ipHeader is the underlay IP header size toward ap.
func ipHeader(ap netip.AddrPort) int {
	if ap.Addr().Unmap().Is4() {
		return IPv4Header
	}
	return IPv6Header
}

// framingOf is the framing of messages to p.
func (t *Tunnel) framingOf(p *peers.Peer) Framing {
	switch {
	case p.WireGuardFraming():
		return FramingWireGuard
	case t.cfg.NextProtoL2:
		return FramingL2
	default:
		return FramingL3
	}
}

// floorMTU is the smallest path MTU the tunnel assumes toward ap: what every IPv4 host
// takes (576) or IPv6's minimum link MTU (1280).
func floorMTU(ap netip.AddrPort) int {
	if ap.Addr().Unmap().Is4() {
		return minIPv4MTU
	}
	return minIPv6MTU
}

// maxPlain is the largest plaintext (VXLAN header, inner packet and padding; or the bare
// packet of a WireGuard peer) a message to p may carry: the device MTU in L3 (padding
// never goes past it), and what p's path MTU leaves after the underlay headers and the
// transport's own bytes. Hot path: no allocation.
func (t *Tunnel) maxPlain(p *peers.Peer, bare bool) int {
	limit := maxInner + vxlan.HeaderSize
	if !t.cfg.NextProtoL2 {
		limit = t.cfg.MTU
		if !bare {
			limit += vxlan.HeaderSize
		}
	}
	if pm := p.PathMTU(); pm > 0 {
		if e := p.LoadEndpoint(); e != nil {
			limit = min(limit, pm-ipHeader(e.Addr)-UDPHeader-crypto.MessageTransportOverhead)
		}
	}
	return limit
}

// PathError reports an error the kernel queued about a datagram sent to dst (the bind's
// error queue; port 0 for a local error, which names no port): mtu is the next-hop MTU an ICMP "fragmentation needed" / "packet too
// big" or a local EMSGSIZE reported (0 for other errors, which change nothing here);
// local marks an error raised by this host; quote is the start of the datagram as the
// error quoted it. Safe from any goroutine; hostile input: checked, counted, never
// trusted further than it proves.
func (t *Tunnel) PathError(dst netip.AddrPort, mtu int, local bool, quote []byte) {
	if mtu <= 0 || !dst.IsValid() {
		return
	}
	var p *peers.Peer
	for _, q := range t.table.Peers() {
		e := q.LoadEndpoint()
		if e == nil {
			continue
		}
		// A local error on an unconnected socket names the address but no port.
		if e.Addr == dst || (local && dst.Port() == 0 && e.Addr.Addr().Unmap() == dst.Addr().Unmap()) {
			p = q
			break
		}
	}
	if p == nil {
		t.pmtuIgnored.Add(1)
		return
	}
	verified := local || quotesOurMessage(p, quote)
	select {
	case t.hsReqs <- hsRequest{peer: p, kind: reqPathICMP, arg: uint32(mtu), verified: verified}:
	default:
		t.pmtuIgnored.Add(1)
	}
}

// quotesOurMessage reports whether quote starts with a transport message to p: type 4
// and the receiver index p gave one of its keypairs with us. An attacker off the path
// does not know the index.
func quotesOurMessage(p *peers.Peer, quote []byte) bool {
	if len(quote) < 8 || binary.LittleEndian.Uint32(quote[:4]) != crypto.MessageTransportType {
		return false
	}
	idx := binary.LittleEndian.Uint32(quote[4:8])
	kps := p.Keypairs()
	for _, kp := range [...]*crypto.Keypair{kps.Current(), kps.Previous(), kps.Next()} {
		if kp != nil && kp.RemoteIndex() == idx {
			return true
		}
	}
	return false
}

// requestRouteMTU asks the worker to read the route MTU toward p again (a send failed
// with EMSGSIZE).
func (t *Tunnel) requestRouteMTU(p *peers.Peer) {
	select {
	case t.hsReqs <- hsRequest{peer: p, kind: reqRouteMTU}:
	default:
	}
}

// routeCeiling is the largest path MTU worth using toward ap for p: the route MTU
// (Config.RouteMTU; unknown: assumed unlimited) bounded by what the device MTU fills.
func (t *Tunnel) routeCeiling(p *peers.Peer, ap netip.AddrPort) int {
	dev := t.cfg.MTU + Overhead(t.framingOf(p), ipHeader(ap) == IPv6Header)
	if t.cfg.RouteMTU != nil {
		if m, err := t.cfg.RouteMTU(ap.Addr()); err == nil && m > 0 {
			return max(floorMTU(ap), min(m, dev))
		}
	}
	return dev
}

// pmtuOf returns p's search state, starting it when p's endpoint changed.
func (t *Tunnel) pmtuOf(p *peers.Peer, now time.Time) *pmtuState {
	e := p.LoadEndpoint()
	if e == nil || !e.Addr.IsValid() {
		return nil
	}
	st := t.pmtu[p]
	if st == nil {
		st = &pmtuState{}
		t.pmtu[p] = st
	}
	if st.addr != e.Addr {
		*st = pmtuState{addr: e.Addr}
		st.ceiling = t.routeCeiling(p, e.Addr)
		p.SetPathMTU(st.ceiling)
		t.startSearch(st, now)
	}
	return st
}

func (t *Tunnel) startSearch(st *pmtuState, now time.Time) {
	st.lo, st.hi, st.probing, st.tries, st.silent, st.next = 0, st.ceiling+1, 0, 0, 0, time.Time{}
	_ = now
}

// tickPMTU runs p's path-MTU search from the timers (a session is up). A stock
// WireGuard peer cannot answer probes: a path MTU an ICMP error lowered goes back to the
// ceiling after PathMTUInterval (as the kernel forgets a learned PMTU), and the next
// error lowers it again if the path is still narrow.
func (t *Tunnel) tickPMTU(hs *hsScratch, p *peers.Peer, now time.Time) {
	st := t.pmtuOf(p, now)
	if st == nil || t.cfg.PathMTUInterval <= 0 {
		return
	}
	if p.WireGuardFraming() {
		if !st.next.IsZero() && !now.Before(st.next) {
			st.ceiling, st.next = t.routeCeiling(p, st.addr), time.Time{}
			t.setPathMTU(p, st.ceiling, "expired")
		}
		return
	}
	if !st.next.IsZero() {
		if now.Before(st.next) {
			return
		}
		st.ceiling = t.routeCeiling(p, st.addr)
		if p.PathMTU() > st.ceiling {
			t.setPathMTU(p, st.ceiling, "route")
		}
		t.startSearch(st, now)
	}
	if st.probing != 0 {
		if now.Sub(st.sentAt) < t.cfg.PathMTUProbeTimeout {
			return
		}
		// Lost only if the peer acknowledged the control probe sent with it: a peer that
		// is silent, or does not answer probes at all (an older weft), says nothing
		// about sizes; after probeTries rounds without any answer the search stops
		// until the next interval.
		if st.ctrlAck.After(st.sentAt) || st.ctrlAck.Equal(st.sentAt) {
			st.tries++
		} else if st.silent++; st.silent >= probeTries {
			st.probing, st.silent, st.next = 0, 0, now.Add(t.cfg.PathMTUInterval)
			return
		}
		if st.tries >= probeTries {
			t.probeLost(p, st)
		} else {
			t.sendProbe(hs, p, st, st.probing, now)
			return
		}
	}
	t.nextProbe(hs, p, st, now)
}

// nextProbe sends the next size of the search, or ends it.
func (t *Tunnel) nextProbe(hs *hsScratch, p *peers.Peer, st *pmtuState, now time.Time) {
	cur := p.PathMTU()
	lo := max(st.lo, floorMTU(st.addr))
	var size int
	switch {
	case st.lo == 0 && st.hi > st.ceiling:
		size = st.ceiling // nothing known: the best case first
	case st.lo < cur && cur < st.hi:
		size = cur // confirm what an ICMP error or a loss left us with
	case st.hi-lo > probeSearchStep:
		size = (lo + st.hi) / 2
	default:
		st.probing, st.next = 0, now.Add(t.cfg.PathMTUInterval)
		return
	}
	st.tries, st.silent = 0, 0
	t.sendProbe(hs, p, st, size, now)
}

// probeLost: size was sent probeTries times while the peer answered other packets.
func (t *Tunnel) probeLost(p *peers.Peer, st *pmtuState) {
	size := st.probing
	st.probing = 0
	st.hi = min(st.hi, size)
	if p.PathMTU() >= size {
		// A black hole: sizes believed to pass are lost and no ICMP error said so.
		t.setPathMTU(p, max(st.lo, floorMTU(st.addr)), "probe lost")
	}
}

// probeAcked handles the peer's acknowledgement of a probe of size and id.
func (t *Tunnel) probeAcked(hs *hsScratch, p *peers.Peer, size int, id uint16) {
	st := t.pmtu[p]
	if st == nil {
		return
	}
	if size == 0 && id == 0 {
		st.ctrlAck = time.Now() // the control probe: the peer answers probes
		return
	}
	if st.probing == 0 || id != st.id || size != st.probing {
		return // a late or unknown ack
	}
	st.probing = 0
	st.lo = max(st.lo, size)
	if size > p.PathMTU() {
		t.setPathMTU(p, size, "probe")
	}
	t.nextProbe(hs, p, st, time.Now())
}

// pathICMP handles a checked ICMP error (or local EMSGSIZE) about p's path.
func (t *Tunnel) pathICMP(hs *hsScratch, p *peers.Peer, mtu int, verified bool) {
	now := time.Now()
	st := t.pmtuOf(p, now)
	if st == nil {
		return
	}
	mtu = max(mtu, floorMTU(st.addr))
	if mtu >= p.PathMTU() {
		return
	}
	if verified {
		t.setPathMTU(p, mtu, "icmp")
	}
	if t.cfg.PathMTUInterval <= 0 {
		return
	}
	if p.WireGuardFraming() {
		if verified {
			st.next = now.Add(t.cfg.PathMTUInterval) // back to the ceiling then
		}
		return
	}
	if p.Keypairs().Current() == nil {
		return
	}
	// Confirm (or, unverified, test) the claim now: the bigger size in flight is lost.
	st.hi = min(st.hi, mtu+1)
	if !verified {
		st.hi = min(st.hi, p.PathMTU()) // test the current size against the claim
	}
	st.probing, st.next = 0, time.Time{}
	st.tries, st.silent = 0, 0
	size := mtu
	if !verified {
		size = p.PathMTU()
	}
	t.sendProbe(hs, p, st, size, now)
}

// routeChanged reads the route MTU toward p again (a send failed with EMSGSIZE).
func (t *Tunnel) routeChanged(p *peers.Peer) {
	e := p.LoadEndpoint()
	if e == nil || !e.Addr.IsValid() {
		return
	}
	c := t.routeCeiling(p, e.Addr)
	if st := t.pmtu[p]; st != nil && st.addr == e.Addr {
		st.ceiling = c
		st.hi = min(st.hi, c+1)
	}
	if p.PathMTU() == 0 || p.PathMTU() > c {
		t.setPathMTU(p, c, "route")
	}
}

func (t *Tunnel) setPathMTU(p *peers.Peer, mtu int, why string) {
	old := p.PathMTU()
	if old == mtu {
		return
	}
	p.SetPathMTU(mtu)
	t.pmtuChanges.Add(1)
	t.log.Info("path mtu", "peer", p.Key().String(), "from", old, "to", mtu, "by", why)
}

// sendProbe sends a probe of IP size size to p, and a small control probe with it whose
// acknowledgement tells a lost size from a silent peer.
func (t *Tunnel) sendProbe(hs *hsScratch, p *peers.Peer, st *pmtuState, size int, now time.Time) {
	kp := p.Keypairs().Current()
	ep := t.endpointOf(p)
	if kp == nil || ep == nil {
		return
	}
	if st.probing != size {
		st.id++
	}
	st.probing, st.sentAt = size, now
	overhead := ipHeader(st.addr) + UDPHeader + crypto.MessageTransportOverhead
	msgs := hs.probeMsgs[:0]
	for i, plain := range [2]int{size - overhead, vxlan.HeaderSize + 4} {
		b := hs.probe[i]
		if plain < vxlan.HeaderSize+4 || crypto.MessageTransportOverhead+plain > len(b) {
			return
		}
		clear(b[crypto.MessageTransportHeaderSize : crypto.MessageTransportHeaderSize+plain])
		vxlan.Encode(b[crypto.MessageTransportHeaderSize:headroom], t.cfg.VNI, vxlan.ProtoPMTUProbe)
		if i == 0 {
			binary.BigEndian.PutUint16(b[headroom:], uint16(size))
			binary.BigEndian.PutUint16(b[headroom+2:], st.id)
		}
		m, err := kp.SealAt(b, plain, t.cfg.Identity.Present(now))
		if err != nil {
			return
		}
		msgs = append(msgs, b[:m])
	}
	for _, m := range msgs {
		hs.single[0] = m
		_ = t.bind.Send(hs.single, ep) // a size too big for the local route fails here: lost
		hs.single[0] = nil
	}
	t.probesSent.Add(1)
	p.AddTx(uint64(len(msgs)), 0, false, now.UnixNano())
}

// sendProbeAck acknowledges a probe: its size and id back to the peer.
func (t *Tunnel) sendProbeAck(hs *hsScratch, p *peers.Peer, arg uint32) {
	kp := p.Keypairs().Current()
	ep := t.endpointOf(p)
	if kp == nil || ep == nil {
		return
	}
	b := hs.out[:cap(hs.out)]
	plain := vxlan.HeaderSize + 4
	vxlan.Encode(b[crypto.MessageTransportHeaderSize:headroom], t.cfg.VNI, vxlan.ProtoPMTUAck)
	binary.BigEndian.PutUint32(b[headroom:], arg)
	m, err := kp.SealAt(b, plain, t.cfg.Identity.Present(time.Now()))
	if err != nil {
		return
	}
	if t.sendOne(hs, b[:m], ep) {
		p.AddTx(1, 0, false, time.Now().UnixNano())
	}
}

// receiveProbe handles an authenticated probe or acknowledgement from p (inbound loop):
// the worker answers or takes it; a full queue drops it (probes are retried).
func (t *Tunnel) receiveProbe(p *peers.Peer, proto vxlan.NextProto, body []byte) {
	if len(body) < 4 {
		t.drop(p, peers.DropMalformed, 1)
		return
	}
	kind := reqProbeAck
	if proto == vxlan.ProtoPMTUAck {
		kind = reqProbeAcked
	}
	select {
	case t.hsReqs <- hsRequest{peer: p, kind: kind, arg: binary.BigEndian.Uint32(body)}:
	default:
		t.drop(p, peers.DropHandshakeQueueFull, 1) // the worker's queue: probes are retried
	}
}
