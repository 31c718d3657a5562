package crypto

import (
	"crypto/hmac"
	"crypto/subtle"
	"hash"

	"golang.org/x/crypto/blake2s"
	"golang.org/x/crypto/curve25519"
)

// The Noise primitives of WireGuard: BLAKE2s hashing, HMAC-BLAKE2s based
// HKDF (RFC 5869 with one-byte counters, as in the WireGuard paper §5.4) and
// X25519. Nothing here is on the transport hot path.

const (
	noiseConstruction = "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s"
	wgIdentifier      = "WireGuard v1 zx2c4 Jason@zx2c4.com"
	labelMAC1         = "mac1----"
	labelCookie       = "cookie--"
)

var (
	// initialChainKey is HASH(construction); initialHash is
	// HASH(initialChainKey || identifier). Both are fixed per protocol.
	initialChainKey [blake2s.Size]byte
	initialHash     [blake2s.Size]byte
	zeroNonce       [12]byte
)

func init() {
	initialChainKey = blake2s.Sum256([]byte(noiseConstruction))
	mixHash(&initialHash, &initialChainKey, []byte(wgIdentifier))
}

func newBlake2s() hash.Hash {
	h, _ := blake2s.New256(nil) // cannot fail without a key
	return h
}

func hmac1(sum *[blake2s.Size]byte, key, in0 []byte) {
	mac := hmac.New(newBlake2s, key)
	mac.Write(in0)
	mac.Sum(sum[:0])
}

func hmac2(sum *[blake2s.Size]byte, key, in0, in1 []byte) {
	mac := hmac.New(newBlake2s, key)
	mac.Write(in0)
	mac.Write(in1)
	mac.Sum(sum[:0])
}

// kdf1/2/3 are HKDF with HMAC-BLAKE2s producing one, two or three 32-byte
// outputs. Outputs may alias key.
func kdf1(t0 *[blake2s.Size]byte, key, input []byte) {
	var prk [blake2s.Size]byte
	hmac1(&prk, key, input)
	hmac1(t0, prk[:], []byte{0x1})
	clear(prk[:])
}

func kdf2(t0, t1 *[blake2s.Size]byte, key, input []byte) {
	var prk [blake2s.Size]byte
	hmac1(&prk, key, input)
	hmac1(t0, prk[:], []byte{0x1})
	hmac2(t1, prk[:], t0[:], []byte{0x2})
	clear(prk[:])
}

func kdf3(t0, t1, t2 *[blake2s.Size]byte, key, input []byte) {
	var prk [blake2s.Size]byte
	hmac1(&prk, key, input)
	hmac1(t0, prk[:], []byte{0x1})
	hmac2(t1, prk[:], t0[:], []byte{0x2})
	hmac2(t2, prk[:], t1[:], []byte{0x3})
	clear(prk[:])
}

// mixHash sets dst = HASH(h || data); dst may alias h.
func mixHash(dst, h *[blake2s.Size]byte, data []byte) {
	d := newBlake2s()
	d.Write(h[:])
	d.Write(data)
	d.Sum(dst[:0])
}

// mixKey sets dst = KDF1(c, data); dst may alias c.
func mixKey(dst, c *[blake2s.Size]byte, data []byte) {
	kdf1(dst, c[:], data)
}

// labelKey returns HASH(label || pub), the key of mac1 or of the cookie
// encryption for messages sent to pub.
func labelKey(label string, pub PublicKey) (k [blake2s.Size]byte) {
	d := newBlake2s()
	d.Write([]byte(label))
	d.Write(pub[:])
	d.Sum(k[:0])
	return k
}

// mac16 sets out = MAC(key, data), keyed BLAKE2s with a 16-byte output.
func mac16(out []byte, key []byte, data []byte) {
	m, _ := blake2s.New128(key) // key is 16 or 32 bytes: never fails
	m.Write(data)
	m.Sum(out[:0])
}

// sharedSecret is X25519(priv, pub); it fails for low-order points, whose
// output is all zeros.
func sharedSecret(priv *PrivateKey, pub *PublicKey) (ss [KeySize]byte, err error) {
	curve25519.ScalarMult(&ss, (*[KeySize]byte)(priv), (*[KeySize]byte)(pub))
	if isZero(ss[:]) {
		return ss, ErrInvalidKey
	}
	return ss, nil
}

func isZero(b []byte) bool {
	var acc byte
	for _, x := range b {
		acc |= x
	}
	return subtle.ConstantTimeByteEq(acc, 0) == 1
}
