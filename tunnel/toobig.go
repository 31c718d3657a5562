package tunnel

import (
	"time"

	"github.com/weftnet/weft/peers"
	"github.com/weftnet/weft/tap"
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
// path-MTU discovery shrinks its packets. In L2 the same goes for an untagged IPv4 or
// IPv6 frame (the error in a frame back to its sender's MAC, as a router on the segment
// would send it); other frames are dropped.
func (t *Tunnel) tooBig(sc *sendScratch, p *peers.Peer, b []byte, n, innerMTU int, now time.Time) {
	pkt := b[headroom : headroom+n]
	if t.cfg.NextProtoL2 {
		t.tooBigFrame(sc, p, pkt, innerMTU, now)
		return
	}
	if innerMTU < 28 {
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
				func(f []byte, fn int) { t.sealInto(sc, p, f, fn, now, tap.Partial{}) })
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
	t.writeICMP(sc, icmpTooBig(sc.icmp[headroom:], pkt, innerMTU))
}

// tooBigFrame is tooBig for an Ethernet frame (L2): maxFrame is the largest frame that
// fits the path.
func (t *Tunnel) tooBigFrame(sc *sendScratch, p *peers.Peer, frame []byte, maxFrame int, now time.Time) {
	t.drop(p, peers.DropTooBig, 1)
	const eth = EthernetHeader
	if len(frame) < eth || maxFrame-eth < 28 {
		return
	}
	if et := uint16(frame[12])<<8 | uint16(frame[13]); et != 0x0800 && et != 0x86dd {
		return // ARP, VLAN-tagged, anything else: no error to give
	}
	if !sc.icmpAllowed(now.UnixNano()) {
		t.icmpLimited.Add(1)
		return
	}
	out := sc.icmp[headroom:]
	k := icmpTooBig(out[eth:], frame[eth:], maxFrame-eth)
	if k == 0 {
		return
	}
	copy(out[0:6], frame[6:12]) // to the sender
	copy(out[6:12], frame[0:6]) // from the MAC it sent to
	copy(out[12:14], frame[12:14])
	t.writeICMP(sc, eth+k)
}

// writeICMP writes the k bytes at sc.icmp[headroom:] into the device (k 0: nothing).
func (t *Tunnel) writeICMP(sc *sendScratch, k int) {
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
