package crypto

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"net/netip"

	"golang.org/x/crypto/blake2s"
	"golang.org/x/crypto/chacha20poly1305"
)

// Cookies (WireGuard paper §5.3 and §5.4.7). A responder under load answers a
// handshake message without a valid mac2 with a cookie reply instead of doing
// any Diffie-Hellman: the cookie is MAC(secret, source address), encrypted
// to the initiator with XChaCha20-Poly1305 under HASH("cookie--" || our
// public key) and bound to the message by using its mac1 as additional data.
// The initiator stores it and adds mac2 = MAC(cookie, message) to its next
// handshake messages, proving it can receive at its source address.

// Verdict is Admit's decision on a handshake message.
type Verdict int

// Verdicts of Identity.Admit.
const (
	// VerdictAccept: process the message (ConsumeInitiation or
	// ConsumeResponse).
	VerdictAccept Verdict = iota
	// VerdictDrop: drop silently, rate limited (under load, per source address).
	VerdictDrop
	// VerdictCookie: under load without a valid mac2; answer with
	// CreateCookieReply and do not process the message.
	VerdictCookie
	// VerdictInvalid: drop silently, malformed or with a mac1 that is not for our public
	// key (a sender configured with the wrong key for us, or a damaged message).
	VerdictInvalid
)

// String returns the verdict's name for logs and metrics labels.
func (v Verdict) String() string {
	switch v {
	case VerdictAccept:
		return "accept"
	case VerdictDrop:
		return "drop"
	case VerdictCookie:
		return "cookie"
	case VerdictInvalid:
		return "invalid"
	}
	return "unknown"
}

// Admit is the denial-of-service guard for type-1 and type-2 messages, run
// before any Diffie-Hellman; src is the UDP source. A malformed message or
// one with a bad mac1 is VerdictInvalid. When not under load everything else is
// accepted; under load a message without a valid mac2 gets VerdictCookie,
// and one with a valid mac2 passes through the per-source-address rate
// limiter (VerdictDrop when it refuses). This is wireguard-go's order.
func (id *Identity) Admit(msg []byte, src netip.AddrPort, underLoad bool) Verdict {
	mac1, mac2, ok := handshakeMACOffsets(msg)
	if !ok || !id.checkMAC1(msg, mac1, mac2) {
		return VerdictInvalid
	}
	if !underLoad {
		return VerdictAccept
	}
	if !id.checkMAC2(msg, mac2, src) {
		return VerdictCookie
	}
	if !id.allow(src.Addr()) {
		return VerdictDrop
	}
	return VerdictAccept
}

func (id *Identity) checkMAC1(msg []byte, mac1, mac2 int) bool {
	var want [blake2s.Size128]byte
	mac16(want[:], id.mac1Key[:], msg[:mac1])
	return subtle.ConstantTimeCompare(want[:], msg[mac1:mac2]) == 1
}

func (id *Identity) checkMAC2(msg []byte, mac2 int, src netip.AddrPort) bool {
	var cookie, want [blake2s.Size128]byte
	id.cookieMu.RLock()
	fresh := !id.secretSet.IsZero() && id.clock().Sub(id.secretSet) <= CookieRefreshTime
	if fresh {
		id.cookieOf(&cookie, src)
	}
	id.cookieMu.RUnlock()
	if !fresh {
		return false
	}
	mac16(want[:], cookie[:], msg[:mac2])
	return subtle.ConstantTimeCompare(want[:], msg[mac2:]) == 1
}

// cookieOf computes MAC(secret, src) with src as wireguard-go's endpoint
// bytes (address, then port little-endian). cookieMu must be held.
func (id *Identity) cookieOf(cookie *[blake2s.Size128]byte, src netip.AddrPort) {
	var buf [18]byte
	b := buf[:0]
	if a := src.Addr().Unmap(); a.Is4() {
		a4 := a.As4()
		b = append(b, a4[:]...)
	} else {
		a16 := a.As16()
		b = append(b, a16[:]...)
	}
	b = binary.LittleEndian.AppendUint16(b, src.Port())
	mac16(cookie[:], id.secret[:], b)
}

// CreateCookieReply writes into dst (at least MessageCookieReplySize bytes)
// the type-3 reply to msg, a type-1 or type-2 message that arrived from src,
// and returns its length. The cookie secret is redrawn first when older than
// CookieRefreshTime.
func (id *Identity) CreateCookieReply(dst []byte, msg []byte, src netip.AddrPort) (int, error) {
	if len(dst) < MessageCookieReplySize {
		return 0, ErrShortMessage
	}
	mac1, mac2, ok := handshakeMACOffsets(msg)
	if !ok {
		if t := messageType(msg); t == MessageInitiationType || t == MessageResponseType {
			return 0, ErrShortMessage
		}
		return 0, ErrWrongType
	}

	var cookie [blake2s.Size128]byte
	now := id.clock()
	id.cookieMu.Lock()
	if id.secretSet.IsZero() || now.Sub(id.secretSet) > CookieRefreshTime {
		rand.Read(id.secret[:])
		id.secretSet = now
	}
	id.cookieOf(&cookie, src)
	id.cookieMu.Unlock()

	out := dst[:MessageCookieReplySize]
	binary.LittleEndian.PutUint32(out, MessageCookieReplyType)
	// Both type 1 and type 2 carry their sender index at offset 4.
	copy(out[cookieReceiver:cookieNonce], msg[initSender:initSender+4])
	rand.Read(out[cookieNonce:cookieSealed])
	aead, _ := chacha20poly1305.NewX(id.cookieKey[:])
	aead.Seal(out[cookieSealed:cookieSealed], out[cookieNonce:cookieSealed], cookie[:], msg[mac1:mac2])
	clear(cookie[:])
	return MessageCookieReplySize, nil
}

// ConsumeCookieReply decrypts a type-3 message answering the last handshake
// message h sent and stores the cookie, so that the next CreateInitiation or
// CreateResponse carries mac2 (for CookieRefreshTime). ErrNoPendingHandshake
// when h has sent nothing yet.
func (h *Handshake) ConsumeCookieReply(msg []byte) error {
	if len(msg) != MessageCookieReplySize {
		return ErrShortMessage
	}
	if messageType(msg) != MessageCookieReplyType {
		return ErrWrongType
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.hasLastMAC1 {
		return ErrNoPendingHandshake
	}
	var cookie [blake2s.Size128]byte
	aead, _ := chacha20poly1305.NewX(h.remoteCookieKey[:])
	if _, err := aead.Open(cookie[:0], msg[cookieNonce:cookieSealed], msg[cookieSealed:], h.lastMAC1[:]); err != nil {
		return ErrAuthFailed
	}
	h.cookie = cookie
	h.cookieSet = h.id.clock()
	return nil
}

// addMACs writes mac1 (keyed to the remote static key) and, when a cookie
// younger than CookieRefreshTime is held, mac2 into a type-1 or type-2
// message. h.mu must be held.
func (h *Handshake) addMACs(msg []byte, mac1, mac2 int) {
	mac16(msg[mac1:mac2], h.remoteMAC1Key[:], msg[:mac1])
	copy(h.lastMAC1[:], msg[mac1:mac2])
	h.hasLastMAC1 = true
	if h.cookieSet.IsZero() || h.id.clock().Sub(h.cookieSet) > CookieRefreshTime {
		clear(msg[mac2:])
		return
	}
	mac16(msg[mac2:], h.cookie[:], msg[:mac2])
}
