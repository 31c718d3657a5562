package tunnel

import (
	"math/rand/v2"
	"time"

	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/peers"
)

// tick runs WireGuard's timers for every peer, from the handshake worker, every
// Config.TimerInterval. Doing this by scanning instead of per-peer timers keeps the data
// loops free of timer resets: they only store timestamps once per batch.
//
//   - handshake retransmit every RekeyTimeout (+ up to 1/3 s jitter), given up after
//     RekeyAttemptTime, dropping the queued packets (DropHandshakeTimeout);
//   - rekey when our current keypair reaches RekeyAfterTime and we sent on it (the data
//     path also asks when Keypair.NeedsRekey), while traffic continues on the current keypair;
//   - keepalive KeepaliveTimeout after the first data received since we last sent anything
//     (WireGuard's keepalive timer: a peer that only receives answers every
//     KeepaliveTimeout, also during a continuous stream, which keeps the sender's no-reply
//     timer quiet);
//   - persistent keepalive when nothing was sent for the peer's interval;
//   - a new handshake when data was sent and no authenticated packet (transport,
//     keepalive or handshake) came back for NewHandshakeTimeout (WireGuard's
//     new-handshake timer, KeepaliveTimeout+RekeyTimeout): the peer may have lost the
//     session (restarted, re-added us) and drops all we seal on it until our own rekey, two
//     minutes later. The send path arms it by storing when the first unanswered data went
//     out (Peer.Unanswered), any authenticated receive clears that; firing disarms it, so
//     it fires once, and again only after more data is sent without reply. Keepalives do
//     not arm it. As WireGuard, the cached source address of the endpoint is dropped too,
//     in case that is what broke;
//   - sessions erased after 3×RejectAfterTime of silence.
func (t *Tunnel) tick(hs *hsScratch, now time.Time) {
	ps := t.table.Peers()
	for _, p := range ps {
		t.tickPeer(hs, p, now)
	}
	if len(t.pmtu) > len(ps) {
		for p := range t.pmtu {
			if p.Removed() {
				delete(t.pmtu, p)
			}
		}
	}
}

func (t *Tunnel) tickPeer(hs *hsScratch, p *peers.Peer, now time.Time) {
	st, giveUp := p.Session().Tick(now, t.cfg.RekeyAttemptTime, nil)
	inFlight, last, retry, pending := st.InFlight, st.LastInitiation, st.Retry, st.Pending
	if st.FreeIndex != 0 {
		t.table.FreeIndexes(st.FreeIndex)
	}
	if st.GaveUp {
		for _, b := range giveUp {
			t.pool.put(b)
		}
		t.drop(p, peers.DropHandshakeTimeout, uint64(len(giveUp)))
		t.log.Info("handshake gave up", "peer", p.Key().String(), "after", t.cfg.RekeyAttemptTime)
		return
	}
	kp := p.Keypairs().Current()
	switch {
	case inFlight:
		jitter := time.Duration(rand.Int64N(int64(time.Second / 3)))
		if t.cfg.RekeyTimeout < time.Second || retry {
			jitter = 0
		}
		if now.Sub(last) >= t.cfg.RekeyTimeout+jitter {
			t.initiate(hs, p, true)
		}
		return
	case kp == nil:
		// Packets wait, or a persistent keepalive asks for a session to keep NAT open.
		if pending > 0 || p.PersistentKeepalive() > 0 {
			t.initiate(hs, p, false)
		}
		return
	case kp.IsInitiator() && now.Sub(kp.Created()) >= t.cfg.RekeyAfterTime && p.LastSent() > kp.Created().UnixNano():
		// Only while we send (as WireGuard, whose rekey rides on the send path): an idle
		// session is left to expire.
		t.initiate(hs, p, false)
	default:
		t.checkNoReply(hs, p, now)
	}
	if pending > 0 {
		t.flushPending(hs, p)
	}

	lastSent := p.LastSent()
	lastRxData := p.LastReceivedData()
	nowNs := now.UnixNano()
	if t.keepaliveDue(p, lastSent, lastRxData, nowNs) {
		t.sendKeepalive(hs, p)
	} else if pk := p.PersistentKeepalive(); pk > 0 && nowNs-lastSent >= int64(pk) {
		t.sendKeepalive(hs, p)
	}
	t.tickPMTU(hs, p, now)
	if lastRx := p.LastReceived(); now.Sub(kp.Created()) >= 3*crypto.RejectAfterTime &&
		(lastRx == 0 || nowNs-lastRx >= int64(3*crypto.RejectAfterTime)) {
		t.log.Info("session erased after silence", "peer", p.Key().String())
		for _, b := range t.table.Teardown(p) {
			t.pool.put(b)
		}
	}
}

// checkNoReply starts a new handshake with p when data sent NewHandshakeTimeout ago (plus
// WireGuard's jitter of up to RekeyTimeoutJitterMax, taken from the arming timestamp's
// low bits; none with a RekeyTimeout under a second, as for retransmits) has had no
// authenticated reply. Called with a current keypair and no attempt in flight.
func (t *Tunnel) checkNoReply(hs *hsScratch, p *peers.Peer, now time.Time) {
	since := p.Unanswered()
	if since == 0 {
		return
	}
	wait := t.cfg.NewHandshakeTimeout
	if t.cfg.RekeyTimeout >= time.Second {
		wait += time.Duration(uint64(since) % uint64(crypto.RekeyTimeoutJitterMax))
	}
	if now.UnixNano()-since < int64(wait) || !p.ClaimUnanswered(since) {
		return
	}
	t.noReplyHandshakes.Add(1)
	t.log.Info("no reply to data; new handshake", "peer", p.Key().String(), "after", t.cfg.NewHandshakeTimeout)
	if e := p.LoadEndpoint(); e != nil && e.Handle != nil {
		// The handle of a received packet pins our source address; a fresh one lets the
		// kernel choose again (wireguard-go clears the endpoint's source here too).
		p.CompareAndSwapEndpoint(e, &peers.Endpoint{Addr: e.Addr})
	}
	t.sendInitiation(hs, p, false)
}

// keepaliveDue is WireGuard's keepalive timer: armed by data received while not armed,
// stopped by anything we send, due KeepaliveTimeout after it was armed. The first tick that
// sees data received since our last send arms it, dated to the last data received then
// (within one TimerInterval of the first).
func (t *Tunnel) keepaliveDue(p *peers.Peer, lastSent, lastRxData, nowNs int64) bool {
	if lastRxData <= lastSent {
		return false // nothing received since we last sent: not armed
	}
	armed := p.KeepaliveArmedAt()
	if armed <= lastSent {
		armed = lastRxData
		p.ArmKeepalive(armed)
	}
	return nowNs-armed >= int64(t.cfg.KeepaliveTimeout)
}
