package crypto

import "errors"

// Named errors returned by this package; compare with errors.Is. They are
// sentinel values so that the datapath can count drops per reason without
// formatting anything per packet.
var (
	// ErrShortMessage: the message is shorter than its type requires (or
	// the destination buffer is too small).
	ErrShortMessage = errors.New("crypto: message too short")
	// ErrWrongType: the message type field is not the one expected.
	ErrWrongType = errors.New("crypto: wrong message type")
	// ErrInvalidMAC1: mac1 does not authenticate the message to our key.
	ErrInvalidMAC1 = errors.New("crypto: invalid mac1")
	// ErrInvalidMAC2: mac2 is missing or does not match our cookie. Admit
	// reports this case as VerdictCookie; the sentinel names it for the
	// datapath's drop counters.
	ErrInvalidMAC2 = errors.New("crypto: invalid mac2")
	// ErrAuthFailed: an AEAD tag did not verify (tampering or wrong key).
	ErrAuthFailed = errors.New("crypto: authentication failed")
	// ErrUnknownPeer: the initiator's static key is not a known peer.
	ErrUnknownPeer = errors.New("crypto: unknown peer")
	// ErrReplayedInitiation: the initiation's timestamp is not newer than
	// the last accepted one from that peer.
	ErrReplayedInitiation = errors.New("crypto: replayed handshake initiation")
	// ErrInitiationFlood: initiations from one peer arrive faster than
	// HandshakeInitiationRate.
	ErrInitiationFlood = errors.New("crypto: handshake initiation flood")
	// ErrReplayed: the transport counter was already seen or is outside
	// the replay window.
	ErrReplayed = errors.New("crypto: replayed transport counter")
	// ErrKeypairExpired: the keypair has reached RejectAfterMessages or
	// RejectAfterTime and must not be used.
	ErrKeypairExpired = errors.New("crypto: keypair expired")
	// ErrNoPendingHandshake: a response or cookie reply arrived but no
	// matching initiation is outstanding, or a response is requested
	// without a consumed initiation.
	ErrNoPendingHandshake = errors.New("crypto: no pending handshake")
)

// Errors of the control path (keys and key files).
var (
	// ErrInvalidKey: a key's text form does not decode to 32 bytes, or a
	// public key is one Curve25519 refuses (low order).
	ErrInvalidKey = errors.New("crypto: invalid key")
	// ErrKeyFileMode: a private key file is accessible by group or others.
	ErrKeyFileMode = errors.New("crypto: private key file permissions too open")
)
