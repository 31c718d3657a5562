package crypto

import (
	"crypto/cipher"
	"encoding/binary"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
	"golang.zx2c4.com/wireguard/replay"
)

// Keypair holds the two transport keys of one session, the send counter and
// the receive replay window. Seal and Open are safe for concurrent use and
// allocate nothing: the AEAD instances are created once, and the nonce is
// built inside the caller's buffer (see Seal). Keypairs come from
// ConsumeResponse and CreateResponse; a zero Keypair (for tests of other
// packages) refuses to seal or open with ErrKeypairExpired.
type Keypair struct {
	send    cipher.AEAD
	receive cipher.AEAD

	sendCounter atomic.Uint64 // next counter to seal with

	replayMu sync.Mutex
	replay   replay.Filter

	created     time.Time
	isInitiator bool
	localIndex  uint32
	remoteIndex uint32
	now         func() time.Time // the Identity's test clock; nil: the real one
}

func newKeypair(send, recv *[chacha20poly1305.KeySize]byte, initiator bool, local, remote uint32, id *Identity) *Keypair {
	kp := &Keypair{
		isInitiator: initiator,
		localIndex:  local,
		remoteIndex: remote,
		now:         id.now,
		created:     id.clock(),
	}
	kp.send, _ = chacha20poly1305.New(send[:]) // 32-byte key: cannot fail
	kp.receive, _ = chacha20poly1305.New(recv[:])
	return kp
}

// LocalIndex is the receiver index peers send to us.
func (kp *Keypair) LocalIndex() uint32 { return kp.localIndex }

// RemoteIndex is the receiver index we write into our messages.
func (kp *Keypair) RemoteIndex() uint32 { return kp.remoteIndex }

// IsInitiator reports whether this side initiated the handshake.
func (kp *Keypair) IsInitiator() bool { return kp.isInitiator }

// Created returns when the handshake that made the keypair completed.
func (kp *Keypair) Created() time.Time { return kp.created }

// expired is Expired at the present, checked by Seal and Open on every
// packet. On the real clock it is time.Since, which reads only the
// monotonic clock (about half the cost of time.Now; created carries a
// monotonic reading).
func (kp *Keypair) expired() bool {
	if kp.now == nil {
		return time.Since(kp.created) >= RejectAfterTime
	}
	return kp.Expired(kp.now())
}

// SendCounter returns the number of counters used for sealing so far.
func (kp *Keypair) SendCounter() uint64 { return kp.sendCounter.Load() }

// Expired reports whether the keypair is RejectAfterTime old at now; it
// must then neither seal nor open.
func (kp *Keypair) Expired(now time.Time) bool {
	return now.Sub(kp.created) >= RejectAfterTime
}

// Seal turns a plaintext into a transport message in place: buf[0:16] is
// headroom for the header, the plaintext is buf[16:16+n], and cap(buf) must
// be at least 16+n+16. Seal writes the header, encrypts in place, appends the
// tag and returns the message length 16+n+16 (ErrShortMessage when buf is too
// small). ErrKeypairExpired once RejectAfterMessages counters are used or the
// keypair is RejectAfterTime old. Does not retain buf. No allocation.
func (kp *Keypair) Seal(buf []byte, n int) (int, error) {
	return kp.seal(buf, n, kp.send == nil || kp.expired())
}

// SealAt is Seal with the keypair's age judged at now instead of a clock read of its own:
// a loop that seals a batch reads the clock once for all of it (Identity.Present gives the
// now that matches the keypair's clock). Expiry and counters are exactly Seal's.
func (kp *Keypair) SealAt(buf []byte, n int, now time.Time) (int, error) {
	return kp.seal(buf, n, kp.send == nil || kp.Expired(now))
}

// seal is Seal and SealAt: reserve, then finish. expired is the age check's verdict.
func (kp *Keypair) seal(buf []byte, n int, expired bool) (int, error) {
	m, err := kp.reserve(buf, n, expired)
	if err != nil {
		return 0, err
	}
	kp.Finish(buf[:m])
	return m, nil
}

// ReserveAt is the ordered half of SealAt, for a loop that seals a batch in parallel: it
// checks buf and n as Seal does and the keypair's age at now, takes the next send counter
// and writes the message header into buf[0:16] (with the receiver field still zero). It
// returns the message length 16+n+16; Finish(buf[:m]) then encrypts. Counters are taken in
// the order of the ReserveAt calls, so a batch keeps its order on the wire whichever
// goroutine finishes each message. A reserved message that is never finished costs its
// counter (the receiver sees a gap, which its replay window tolerates). Errors are
// SealAt's. No allocation.
func (kp *Keypair) ReserveAt(buf []byte, n int, now time.Time) (int, error) {
	return kp.reserve(buf, n, kp.send == nil || kp.Expired(now))
}

// reserve checks buf and n, then expired (the age check's verdict), and takes a counter.
func (kp *Keypair) reserve(buf []byte, n int, expired bool) (int, error) {
	if n < 0 || len(buf) < MessageTransportHeaderSize+n || cap(buf) < MessageTransportOverhead+n {
		return 0, ErrShortMessage
	}
	if expired {
		return 0, ErrKeypairExpired
	}
	counter := kp.sendCounter.Add(1) - 1
	if counter >= RejectAfterMessages {
		kp.sendCounter.Store(RejectAfterMessages) // do not wrap around
		return 0, ErrKeypairExpired
	}
	// The nonce is 4 zero bytes then the little-endian counter: exactly
	// buf[4:16] while the receiver field is still zero. Building it there
	// instead of in a local array keeps it from escaping through the
	// cipher.AEAD interface, which would allocate per call.
	putTransportHeader(buf, 0, counter)
	return MessageTransportOverhead + n, nil
}

// Finish encrypts in place the message ReserveAt prepared in msg (its whole length, as
// ReserveAt returned it), appends the tag and writes the receiver index. Safe for
// concurrent use on distinct messages, in any order. No allocation.
func (kp *Keypair) Finish(msg []byte) {
	n := len(msg) - MessageTransportOverhead
	kp.send.Seal(msg[MessageTransportHeaderSize:MessageTransportHeaderSize], msg[4:MessageTransportHeaderSize],
		msg[MessageTransportHeaderSize:MessageTransportHeaderSize+n], nil)
	binary.LittleEndian.PutUint32(msg[4:], kp.remoteIndex)
}

// Open authenticates and decrypts one whole transport message in place and
// returns the plaintext, aliasing msg[16:len(msg)-16]. The caller routes msg
// to kp by its receiver index. The replay window is updated only after
// authentication. Errors: ErrShortMessage, ErrWrongType, ErrAuthFailed,
// ErrReplayed (seen before or behind the window), ErrKeypairExpired. After
// an error msg[16:] holds unspecified bytes. No allocation.
func (kp *Keypair) Open(msg []byte) ([]byte, error) {
	return kp.open(msg, kp.receive == nil || kp.expired())
}

// OpenAt is Open with the keypair's age judged at now (see SealAt). Authentication, replay
// window and expiry are exactly Open's.
func (kp *Keypair) OpenAt(msg []byte, now time.Time) ([]byte, error) {
	return kp.open(msg, kp.receive == nil || kp.Expired(now))
}

// open is Open and OpenAt: decrypt, then accept. expired is the age check's verdict.
func (kp *Keypair) open(msg []byte, expired bool) ([]byte, error) {
	pt, err := kp.decrypt(msg, expired)
	if err != nil {
		return nil, err
	}
	if err := kp.Accept(msg); err != nil {
		return nil, err
	}
	return pt, nil
}

// DecryptAt is the half of OpenAt that may run in parallel: the same checks, then it
// authenticates and decrypts msg in place, without touching the replay window. Its
// plaintext must not be used until Accept(msg), called in the batch's order, accepted the
// message's counter: a message that authenticates may still be a replay. Safe for
// concurrent use on distinct messages. Errors: ErrShortMessage, ErrWrongType,
// ErrKeypairExpired, ErrAuthFailed. No allocation.
func (kp *Keypair) DecryptAt(msg []byte, now time.Time) ([]byte, error) {
	return kp.decrypt(msg, kp.receive == nil || kp.Expired(now))
}

// decrypt checks msg's length and type, then expired (the age check's verdict), and
// authenticates and decrypts it in place.
func (kp *Keypair) decrypt(msg []byte, expired bool) ([]byte, error) {
	if len(msg) < MessageTransportOverhead {
		return nil, ErrShortMessage
	}
	if binary.LittleEndian.Uint32(msg) != MessageTransportType {
		return nil, ErrWrongType
	}
	if expired {
		return nil, ErrKeypairExpired
	}
	// Build the nonce in msg[4:16] (see Seal) and restore the receiver.
	receiver := binary.LittleEndian.Uint32(msg[4:])
	binary.LittleEndian.PutUint32(msg[4:], 0)
	pt, err := kp.receive.Open(msg[MessageTransportHeaderSize:MessageTransportHeaderSize],
		msg[4:MessageTransportHeaderSize], msg[MessageTransportHeaderSize:], nil)
	binary.LittleEndian.PutUint32(msg[4:], receiver)
	if err != nil {
		return nil, ErrAuthFailed
	}
	return pt, nil
}

// Accept is the ordered half of OpenAt: it judges the counter of a message DecryptAt
// authenticated, and moves the replay window. Errors: ErrKeypairExpired (a counter past
// the limit, checked only after authentication so that a forged counter cannot make the
// caller retire a good keypair), ErrReplayed. Calling it for a message that did not
// authenticate would let a forger move the window: never do.
func (kp *Keypair) Accept(msg []byte) error {
	counter := binary.LittleEndian.Uint64(msg[8:])
	if counter >= RejectAfterMessages {
		return ErrKeypairExpired
	}
	kp.replayMu.Lock()
	ok := kp.replay.ValidateCounter(counter, RejectAfterMessages)
	kp.replayMu.Unlock()
	if !ok {
		return ErrReplayed
	}
	return nil
}

// NeedsRekey reports whether the sender should start a new handshake, as
// WireGuard does: more than RekeyAfterMessages sealed, or, for the
// initiator of the session, older than RekeyAfterTime at now.
func (kp *Keypair) NeedsRekey(now time.Time) bool {
	return kp.sendCounter.Load() > RekeyAfterMessages ||
		(kp.isInitiator && now.Sub(kp.created) > RekeyAfterTime)
}
