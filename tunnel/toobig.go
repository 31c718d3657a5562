package tunnel

import (
	"time"

	"github.com/weftnet/weft/peers"
)

// The ICMP errors written into the device for packets too big for their peer's path
// are rate-limited as the kernel limits its own (net.ipv4.icmp_msgs_per_sec, burst):
// at most icmpBurst at once and icmpPerSecond on average. TCP needs one per flow.
const (
	icmpPerSecond = 200
	icmpBurst     = 20
)

// tooBig handles the inner packet of n bytes at b[headroom:] that does not fit p's path;
// innerMTU is the largest inner packet that does. An IPv4 packet without DF is cut into
// fragments that fit, each sealed on its own (they take pool buffers, bounded like
// flood copies). Any other IP packet is dropped (too_big) and answered with ICMP
// "fragmentation needed" / "packet too big" written into the device, so the sender's
// path-MTU discovery shrinks its packets. An L2 frame is dropped (too_big): the TAP's
// MTU follows the underlay, and a narrower peer path is left to the inner hosts' own
// PMTU discovery.
func (t *Tunnel) tooBig(sc *sendScratch, p *peers.Peer, b []byte, n, innerMTU int, now time.Time) {
	pkt := b[headroom : headroom+n]
	if t.cfg.NextProtoL2 || innerMTU < 28 {
		t.drop(p, peers.DropTooBig, 1)
		return
	}
	if pkt[0]>>4 == 4 && len(pkt) >= 20 && !ipv4DF(pkt) {
		if k := ipv4Fragments(pkt, innerMTU); k > 0 && len(sc.copies)+k <= t.cfg.MaxFloodCopies {
			fragmentIPv4(pkt, innerMTU,
				func() []byte {
					f := t.pool.get()
					sc.copies = append(sc.copies, f)
					return f
				},
				func(f []byte, fn int) { t.sealInto(sc, p, f, fn, now) })
			return
		}
		t.drop(p, peers.DropTooBig, 1)
		return
	}
	t.drop(p, peers.DropTooBig, 1)
	if !sc.icmpAllowed(now.UnixNano()) {
		t.icmpLimited.Add(1)
		return
	}
	k := icmpTooBig(sc.icmp[headroom:], pkt, innerMTU)
	if k == 0 {
		return
	}
	sc.icmpOut[0] = sc.icmp[:headroom+k]
	if _, err := t.dev.Write(sc.icmpOut, headroom); err == nil {
		t.icmpSent.Add(1)
	}
	sc.icmpOut[0] = nil
}

// icmpAllowed takes a token of the ICMP rate limit.
func (sc *sendScratch) icmpAllowed(now int64) bool {
	const every = int64(time.Second) / icmpPerSecond
	if sc.icmpRefill == 0 {
		sc.icmpRefill, sc.icmpTokens = now, icmpBurst
	}
	if add := (now - sc.icmpRefill) / every; add > 0 {
		sc.icmpTokens = int(min(int64(icmpBurst), int64(sc.icmpTokens)+add))
		sc.icmpRefill += add * every
	}
	if sc.icmpTokens == 0 {
		return false
	}
	sc.icmpTokens--
	return true
}
