package crypto

import "time"

// WireGuard's timers and limits (WireGuard paper §6.1, wireguard-go
// device/constants.go). The peers package drives its timers from these.
const (
	// RekeyAfterMessages: a sender starts a new handshake once a keypair
	// has sealed this many messages.
	RekeyAfterMessages = 1 << 60
	// RejectAfterMessages: a keypair never seals or accepts a counter at
	// or above this; 2^13 below 2^64 keeps the replay window meaningful.
	RejectAfterMessages = 1<<64 - 1<<13 - 1
	// RekeyAfterTime: the initiator of a session rekeys once its keypair
	// is this old.
	RekeyAfterTime = 120 * time.Second
	// RejectAfterTime: a keypair this old is not used for sending or
	// receiving any more.
	RejectAfterTime = 180 * time.Second
	// RekeyAttemptTime: retries of a handshake stop after this long.
	RekeyAttemptTime = 90 * time.Second
	// RekeyTimeout: an unanswered initiation is retried after this long
	// (plus jitter).
	RekeyTimeout = 5 * time.Second
	// RekeyTimeoutJitterMax: the random extra added to RekeyTimeout.
	RekeyTimeoutJitterMax = 333 * time.Millisecond
	// KeepaliveTimeout: a peer that received data and sent nothing for
	// this long sends a keepalive.
	KeepaliveTimeout = 10 * time.Second
	// CookieRefreshTime: the responder's cookie secret rotates, and a
	// received cookie expires, after this long.
	CookieRefreshTime = 120 * time.Second
	// HandshakeInitiationRate: initiations from one peer closer together
	// than this are dropped as a flood.
	HandshakeInitiationRate = time.Second / 50
	// MaxTimerHandshakes: a handshake is abandoned after this many
	// retries (RekeyAttemptTime / RekeyTimeout).
	MaxTimerHandshakes = int(RekeyAttemptTime / RekeyTimeout)
	// NewHandshakeTime: after sending data with no authenticated packet
	// received for KeepaliveTimeout+RekeyTimeout, the sender starts a new
	// handshake.
	NewHandshakeTime = KeepaliveTimeout + RekeyTimeout
)
