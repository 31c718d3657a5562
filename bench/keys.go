package bench

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"

	"golang.org/x/crypto/curve25519"
)

// keyPair is a Curve25519 static key pair for the lab's encrypted systems, generated per
// session and never stored outside the session's scratch directory.
type keyPair struct {
	private, public [32]byte
}

// newKeyPair generates a clamped Curve25519 private key and its public key, as `wg genkey`.
func newKeyPair() (keyPair, error) {
	var k keyPair
	if _, err := rand.Read(k.private[:]); err != nil {
		return k, fmt.Errorf("generating key: %w", err)
	}
	k.private[0] &= 248
	k.private[31] = (k.private[31] & 127) | 64
	pub, err := curve25519.X25519(k.private[:], curve25519.Basepoint)
	if err != nil {
		return k, fmt.Errorf("deriving public key: %w", err)
	}
	copy(k.public[:], pub)
	return k, nil
}

// b64 is WireGuard's text form of a key (as in wg(8) and weft's config).
func b64(k [32]byte) string { return base64.StdEncoding.EncodeToString(k[:]) }

// parseKey reads the base64 form; the error does not echo the input (it may be a secret).
func parseKey(s string) ([32]byte, error) {
	var k [32]byte
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != 32 {
		return k, fmt.Errorf("%w: a key is 32 bytes in base64 (44 characters)", ErrOptions)
	}
	copy(k[:], b)
	return k, nil
}

// hexKey is the form of wireguard-go's configuration protocol (IpcSet).
func hexKey(k [32]byte) string { return hex.EncodeToString(k[:]) }
