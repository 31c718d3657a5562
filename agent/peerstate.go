package agent

import (
	"fmt"
	"time"

	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/peers"
)

// Peer states shown by `weft peers`, derived from what the tunnel already keeps: the
// endpoint, the last completed handshake and the session's attempt (peers.SessionView).
// A wrong key on either side cannot be told apart from a lost packet here (the responder
// drops an initiation whose mac1 is wrong without a word), so both read "no response".
const (
	PeerUp          = "up"                // a handshake completed within RejectAfterTime
	PeerHandshaking = "handshaking"       // an initiation is out, for less than RekeyTimeout
	PeerFailing     = "handshake failing" // initiations went unanswered (see the reason)
	PeerNoEndpoint  = "no endpoint"       // nowhere to send: waiting for the peer to reach us
	PeerIdle        = "idle"              // no session and no attempt (no traffic yet, or expired)
)

// peerState derives a peer's state and, when failing, the reason.
func peerState(now time.Time, hasEndpoint bool, lastHandshake time.Time, v peers.SessionView) (state, reason string) {
	up := !lastHandshake.IsZero() && now.Sub(lastHandshake) < crypto.RejectAfterTime
	failingReason := func() string {
		if v.Cookie {
			return "cookie required: the peer is under load and answered with a cookie; the next initiation carries it"
		}
		return "no response"
	}
	switch {
	case !hasEndpoint:
		return PeerNoEndpoint, ""
	case v.InFlight && now.Sub(v.Started) >= crypto.RekeyTimeout:
		return PeerFailing, fmt.Sprintf("%s (%d initiation(s) since %s)", failingReason(), v.Sent, v.Started.UTC().Format(time.TimeOnly))
	case v.InFlight && !up:
		return PeerHandshaking, ""
	case up:
		return PeerUp, ""
	case v.GaveUp > 0 && v.LastGaveUp.After(lastHandshake):
		return PeerFailing, fmt.Sprintf("%s (gave up at %s)", failingReason(), v.LastGaveUp.UTC().Format(time.TimeOnly))
	}
	return PeerIdle, ""
}
