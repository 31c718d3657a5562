package crypto

import (
	"encoding/binary"
	"sync"
	"time"

	"golang.org/x/crypto/blake2s"
	"golang.org/x/crypto/chacha20poly1305"
	"golang.zx2c4.com/wireguard/tai64n"
)

// The handshake is WireGuard's Noise_IKpsk2 (WireGuard paper §5.4), byte for
// byte, so weft and WireGuard peers interoperate:
//
//	initiator                                responder
//	CreateInitiation  ── type 1 (148 B) ──▶  Admit, Identity.ConsumeInitiation
//	ConsumeResponse   ◀── type 2 (92 B) ───  CreateResponse
//	   ▲ keypair (initiator)                    ▲ keypair (responder)
//	ConsumeCookieReply ◀─ type 3 (64 B) ───  CreateCookieReply (under load)
//
// Handshake holds the state with one remote static key; Identity holds what
// all handshakes of the host share. The caller owns index allocation: it
// passes the local (receiver) index in and routes type-2 and type-3
// messages to the Handshake by their receiver index.

type handshakeState int

const (
	stateZeroed handshakeState = iota
	stateInitiationCreated
	stateInitiationConsumed
)

// Handshake is the Noise state with one remote static key. Safe for
// concurrent use.
type Handshake struct {
	id     *Identity
	remote PublicKey
	psk    PresharedKey

	// Fixed at creation: keys for the macs and cookies of messages we send
	// to remote, and the static-static Diffie-Hellman (zero when remote is
	// an invalid point).
	remoteMAC1Key   [blake2s.Size]byte
	remoteCookieKey [chacha20poly1305.KeySize]byte
	staticStatic    [KeySize]byte

	mu              sync.Mutex
	state           handshakeState
	hash            [blake2s.Size]byte
	chainKey        [blake2s.Size]byte
	localEphemeral  PrivateKey
	remoteEphemeral PublicKey
	localIndex      uint32
	remoteIndex     uint32

	// Replay and flood protection of consumed initiations.
	lastTimestamp  tai64n.Timestamp
	lastInitiation time.Time

	// Cookie state for the messages we send (the "cookie generator").
	cookie      [blake2s.Size128]byte
	cookieSet   time.Time
	hasLastMAC1 bool
	lastMAC1    [blake2s.Size128]byte
}

// NewHandshake returns the handshake state of id with the peer whose static
// key is remote; psk is the optional preshared key (zero for none).
func NewHandshake(id *Identity, remote PublicKey, psk PresharedKey) *Handshake {
	h := &Handshake{id: id, remote: remote, psk: psk}
	h.remoteMAC1Key = labelKey(labelMAC1, remote)
	h.remoteCookieKey = labelKey(labelCookie, remote)
	if ss, err := sharedSecret(&id.priv, &remote); err == nil {
		h.staticStatic = ss
	}
	return h
}

// RemoteKey returns the peer's static public key.
func (h *Handshake) RemoteKey() PublicKey { return h.remote }

func seal(dst []byte, key *[chacha20poly1305.KeySize]byte, plaintext, ad []byte) {
	aead, _ := chacha20poly1305.New(key[:])
	aead.Seal(dst[:0], zeroNonce[:], plaintext, ad)
}

func open(dst []byte, key *[chacha20poly1305.KeySize]byte, ciphertext, ad []byte) error {
	aead, _ := chacha20poly1305.New(key[:])
	_, err := aead.Open(dst[:0], zeroNonce[:], ciphertext, ad)
	return err
}

// CreateInitiation writes a handshake initiation (type 1) into dst, which
// must hold MessageInitiationSize bytes, with localIndex as its sender index,
// mac1, and mac2 when a fresh cookie is held. It returns the length written.
// A previous pending initiation of h is forgotten.
func (h *Handshake) CreateInitiation(dst []byte, localIndex uint32) (int, error) {
	if len(dst) < MessageInitiationSize {
		return 0, ErrShortMessage
	}
	if isZero(h.staticStatic[:]) {
		return 0, ErrInvalidKey
	}
	eph, err := GeneratePrivateKey()
	if err != nil {
		return 0, err
	}
	msg := dst[:MessageInitiationSize]

	h.mu.Lock()
	defer h.mu.Unlock()
	h.clearLocked()
	h.hash = initialHash
	h.chainKey = initialChainKey
	h.localEphemeral = eph
	clear(eph[:])
	h.mixHash(h.remote[:])

	binary.LittleEndian.PutUint32(msg, MessageInitiationType)
	binary.LittleEndian.PutUint32(msg[initSender:], localIndex)
	ephPub := h.localEphemeral.Public()
	copy(msg[initEphemeral:initStatic], ephPub[:])
	h.mixKey(ephPub[:])
	h.mixHash(ephPub[:])

	// es: encrypt our static key
	ss, err := sharedSecret(&h.localEphemeral, &h.remote)
	if err != nil {
		h.clearLocked()
		return 0, ErrInvalidKey
	}
	var key [chacha20poly1305.KeySize]byte
	kdf2(&h.chainKey, &key, h.chainKey[:], ss[:])
	clear(ss[:])
	seal(msg[initStatic:initTimestamp], &key, h.id.pub[:], h.hash[:])
	h.mixHash(msg[initStatic:initTimestamp])

	// ss: encrypt the timestamp
	kdf2(&h.chainKey, &key, h.chainKey[:], h.staticStatic[:])
	ts := timestamp(h.id.clock())
	seal(msg[initTimestamp:initMAC1], &key, ts[:], h.hash[:])
	h.mixHash(msg[initTimestamp:initMAC1])
	clear(key[:])

	h.localIndex = localIndex
	h.state = stateInitiationCreated
	h.addMACs(msg, initMAC1, initMAC2)
	return MessageInitiationSize, nil
}

// ConsumeInitiation authenticates a handshake initiation (type 1) sent to id,
// finds the sender's Handshake with lookup (nil: ErrUnknownPeer), rejects a
// timestamp not newer than the last accepted one (ErrReplayedInitiation) and
// initiations closer than HandshakeInitiationRate (ErrInitiationFlood), and
// leaves the Handshake ready for CreateResponse. mac1 is checked here too, so
// the function is safe without Admit; mac2 is Admit's business.
func (id *Identity) ConsumeInitiation(msg []byte, lookup func(PublicKey) *Handshake) (*Handshake, error) {
	if len(msg) != MessageInitiationSize {
		return nil, ErrShortMessage
	}
	if messageType(msg) != MessageInitiationType {
		return nil, ErrWrongType
	}
	if !id.checkMAC1(msg, initMAC1, initMAC2) {
		return nil, ErrInvalidMAC1
	}

	var (
		hash      [blake2s.Size]byte
		chainKey  [blake2s.Size]byte
		key       [chacha20poly1305.KeySize]byte
		remoteEph PublicKey
		peerPK    PublicKey
		ts        tai64n.Timestamp
	)
	defer func() {
		clear(hash[:])
		clear(chainKey[:])
		clear(key[:])
	}()
	copy(remoteEph[:], msg[initEphemeral:initStatic])
	mixHash(&hash, &initialHash, id.pub[:])
	mixHash(&hash, &hash, remoteEph[:])
	mixKey(&chainKey, &initialChainKey, remoteEph[:])

	// es: decrypt the initiator's static key
	ss, err := sharedSecret(&id.priv, &remoteEph)
	if err != nil {
		return nil, ErrAuthFailed
	}
	kdf2(&chainKey, &key, chainKey[:], ss[:])
	clear(ss[:])
	if open(peerPK[:], &key, msg[initStatic:initTimestamp], hash[:]) != nil {
		return nil, ErrAuthFailed
	}
	mixHash(&hash, &hash, msg[initStatic:initTimestamp])

	h := lookup(peerPK)
	if h == nil {
		return nil, ErrUnknownPeer
	}
	if h.remote != peerPK || isZero(h.staticStatic[:]) {
		return nil, ErrUnknownPeer
	}

	// ss: decrypt the timestamp
	kdf2(&chainKey, &key, chainKey[:], h.staticStatic[:])
	if open(ts[:], &key, msg[initTimestamp:initMAC1], hash[:]) != nil {
		return nil, ErrAuthFailed
	}
	mixHash(&hash, &hash, msg[initTimestamp:initMAC1])

	now := id.clock()
	h.mu.Lock()
	defer h.mu.Unlock()
	if !ts.After(h.lastTimestamp) {
		return nil, ErrReplayedInitiation
	}
	if !h.lastInitiation.IsZero() && now.Sub(h.lastInitiation) <= HandshakeInitiationRate {
		return nil, ErrInitiationFlood
	}
	h.clearLocked()
	h.lastTimestamp = ts
	h.lastInitiation = now
	h.hash = hash
	h.chainKey = chainKey
	h.remoteEphemeral = remoteEph
	h.remoteIndex = binary.LittleEndian.Uint32(msg[initSender:])
	h.state = stateInitiationConsumed
	return h, nil
}

// CreateResponse writes the handshake response (type 2) to the initiation
// last consumed by h into dst (MessageResponseSize bytes), with localIndex as
// its sender index, and returns its length and the session's keypair
// (IsInitiator false). ErrNoPendingHandshake without a consumed initiation.
// The handshake state, ephemeral keys included, is zeroed afterwards.
func (h *Handshake) CreateResponse(dst []byte, localIndex uint32) (int, *Keypair, error) {
	if len(dst) < MessageResponseSize {
		return 0, nil, ErrShortMessage
	}
	eph, err := GeneratePrivateKey()
	if err != nil {
		return 0, nil, err
	}
	msg := dst[:MessageResponseSize]

	h.mu.Lock()
	defer h.mu.Unlock()
	if h.state != stateInitiationConsumed {
		clear(eph[:])
		return 0, nil, ErrNoPendingHandshake
	}
	h.localEphemeral = eph
	clear(eph[:])
	h.localIndex = localIndex

	binary.LittleEndian.PutUint32(msg, MessageResponseType)
	binary.LittleEndian.PutUint32(msg[respSender:], localIndex)
	binary.LittleEndian.PutUint32(msg[respReceiver:], h.remoteIndex)
	ephPub := h.localEphemeral.Public()
	copy(msg[respEphemeral:respEmpty], ephPub[:])
	h.mixHash(ephPub[:])
	h.mixKey(ephPub[:])

	// ee and se
	ss, err := sharedSecret(&h.localEphemeral, &h.remoteEphemeral)
	if err != nil {
		h.clearLocked()
		return 0, nil, ErrAuthFailed
	}
	h.mixKey(ss[:])
	ss, err = sharedSecret(&h.localEphemeral, &h.remote)
	if err != nil {
		h.clearLocked()
		return 0, nil, ErrInvalidKey
	}
	h.mixKey(ss[:])
	clear(ss[:])

	// psk
	var tau [blake2s.Size]byte
	var key [chacha20poly1305.KeySize]byte
	kdf3(&h.chainKey, &tau, &key, h.chainKey[:], h.psk[:])
	h.mixHash(tau[:])
	seal(msg[respEmpty:respMAC1], &key, nil, h.hash[:])
	h.mixHash(msg[respEmpty:respMAC1])
	clear(tau[:])
	clear(key[:])

	h.addMACs(msg, respMAC1, respMAC2)
	kp := h.deriveKeypairLocked(false)
	return MessageResponseSize, kp, nil
}

// ConsumeResponse authenticates the handshake response (type 2) to h's
// pending initiation and returns the session's keypair (IsInitiator true).
// ErrNoPendingHandshake when no initiation is pending or the response's
// receiver index is not the pending initiation's sender index. mac1 is
// checked here too.
func (h *Handshake) ConsumeResponse(msg []byte) (*Keypair, error) {
	if len(msg) != MessageResponseSize {
		return nil, ErrShortMessage
	}
	if messageType(msg) != MessageResponseType {
		return nil, ErrWrongType
	}
	if !h.id.checkMAC1(msg, respMAC1, respMAC2) {
		return nil, ErrInvalidMAC1
	}
	var remoteEph PublicKey
	copy(remoteEph[:], msg[respEphemeral:respEmpty])

	h.mu.Lock()
	defer h.mu.Unlock()
	if h.state != stateInitiationCreated || binary.LittleEndian.Uint32(msg[respReceiver:]) != h.localIndex {
		return nil, ErrNoPendingHandshake
	}

	var (
		hash     [blake2s.Size]byte
		chainKey [blake2s.Size]byte
		tau      [blake2s.Size]byte
		key      [chacha20poly1305.KeySize]byte
	)
	defer func() {
		clear(hash[:])
		clear(chainKey[:])
		clear(tau[:])
		clear(key[:])
	}()
	mixHash(&hash, &h.hash, remoteEph[:])
	mixKey(&chainKey, &h.chainKey, remoteEph[:])

	// ee and se
	ss, err := sharedSecret(&h.localEphemeral, &remoteEph)
	if err != nil {
		return nil, ErrAuthFailed
	}
	mixKey(&chainKey, &chainKey, ss[:])
	ss, err = sharedSecret(&h.id.priv, &remoteEph)
	if err != nil {
		return nil, ErrAuthFailed
	}
	mixKey(&chainKey, &chainKey, ss[:])
	clear(ss[:])

	// psk, then authenticate the transcript
	kdf3(&chainKey, &tau, &key, chainKey[:], h.psk[:])
	mixHash(&hash, &hash, tau[:])
	if open(nil, &key, msg[respEmpty:respMAC1], hash[:]) != nil {
		return nil, ErrAuthFailed
	}
	mixHash(&hash, &hash, msg[respEmpty:respMAC1])

	h.hash = hash
	h.chainKey = chainKey
	h.remoteIndex = binary.LittleEndian.Uint32(msg[respSender:])
	return h.deriveKeypairLocked(true), nil
}

// deriveKeypairLocked splits the chaining key into the two transport keys
// and zeroes the handshake state. h.mu must be held.
func (h *Handshake) deriveKeypairLocked(initiator bool) *Keypair {
	var send, recv [chacha20poly1305.KeySize]byte
	if initiator {
		kdf2(&send, &recv, h.chainKey[:], nil)
	} else {
		kdf2(&recv, &send, h.chainKey[:], nil)
	}
	kp := newKeypair(&send, &recv, initiator, h.localIndex, h.remoteIndex, h.id)
	clear(send[:])
	clear(recv[:])
	h.clearLocked()
	return kp
}

// clearLocked zeroes the ephemeral secrets and the transcript; replay,
// flood and cookie state survive. h.mu must be held.
func (h *Handshake) clearLocked() {
	clear(h.localEphemeral[:])
	clear(h.remoteEphemeral[:])
	clear(h.chainKey[:])
	clear(h.hash[:])
	h.localIndex = 0
	h.remoteIndex = 0
	h.state = stateZeroed
}

func (h *Handshake) mixHash(data []byte) { mixHash(&h.hash, &h.hash, data) }
func (h *Handshake) mixKey(data []byte)  { mixKey(&h.chainKey, &h.chainKey, data) }
