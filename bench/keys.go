package bench

import (
	"encoding/hex"

	"github.com/weftnet/weft/crypto"
)

// keyPair is a static key pair of one lab host for the encrypted systems, generated per
// session; the private key only ever lands in the session's scratch directory.
type keyPair struct {
	private crypto.PrivateKey
	public  crypto.PublicKey
}

func newKeyPair() (keyPair, error) {
	priv, err := crypto.GeneratePrivateKey()
	if err != nil {
		return keyPair{}, err
	}
	return keyPair{private: priv, public: priv.Public()}, nil
}

// newKeyPairs returns fresh key pairs for the lab's hosts a and b.
func newKeyPairs() (a, b keyPair, err error) {
	if a, err = newKeyPair(); err != nil {
		return a, b, err
	}
	b, err = newKeyPair()
	return a, b, err
}

// hexKey is the form of wireguard-go's configuration protocol (IpcSet).
func hexKey(k [32]byte) string { return hex.EncodeToString(k[:]) }
