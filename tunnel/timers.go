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
//   - keepalive when data was received and nothing sent for KeepaliveTimeout;
//   - persistent keepalive when nothing was sent for the peer's interval;
//   - sessions erased after 3×RejectAfterTime of silence.
func (t *Tunnel) tick(hs *hsScratch, now time.Time) {
	for _, p := range t.table.Peers() {
		t.tickPeer(hs, p, now)
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
	}
	if pending > 0 {
		t.flushPending(hs, p)
	}

	lastSent := p.LastSent()
	lastRxData := p.LastReceivedData()
	nowNs := now.UnixNano()
	if lastRxData > lastSent && nowNs-lastRxData >= int64(t.cfg.KeepaliveTimeout) {
		t.sendKeepalive(hs, p)
	} else if pk := p.PersistentKeepalive(); pk > 0 && nowNs-lastSent >= int64(pk) {
		t.sendKeepalive(hs, p)
	}
	if lastRx := p.LastReceived(); now.Sub(kp.Created()) >= 3*crypto.RejectAfterTime &&
		(lastRx == 0 || nowNs-lastRx >= int64(3*crypto.RejectAfterTime)) {
		t.log.Info("session erased after silence", "peer", p.Key().String())
		for _, b := range t.table.Teardown(p) {
			t.pool.put(b)
		}
	}
}
