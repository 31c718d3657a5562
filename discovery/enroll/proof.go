package enroll

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"

	"github.com/weftnet/weft/identity"
)

// The channel binding: every proof covers the TLS session's exporter value.

const (
	exporterLabel = "weft enroll"
	serverContext = "weft enroll server v1\x00"
	requestCtx    = "weft enroll request v1\x00"
	tokenInfo     = "weft enroll token v1"
	renewInfo     = "weft enroll renew v1"
)

// exporter is the session's binding value.
func exporter(cs tls.ConnectionState) ([]byte, error) {
	return cs.ExportKeyingMaterial(exporterLabel, nil, 32)
}

// serverSigned is what the CA key signs in a ServerHello.
func serverSigned(exp []byte, eph [32]byte) []byte {
	b := append([]byte(serverContext), exp...)
	return append(b, eph[:]...)
}

// signHello signs the hello with the CA key.
func signHello(caKey ed25519.PrivateKey, exp []byte, eph [32]byte) (sig [sigSize]byte) {
	copy(sig[:], ed25519.Sign(caKey, serverSigned(exp, eph)))
	return sig
}

// checkHello verifies the hello's signature under its CA certificate's key.
func checkHello(h *ServerHello, exp []byte) bool {
	return ed25519.Verify(ed25519.PublicKey(h.CA.PublicKey[:]), serverSigned(exp, h.Ephemeral), h.Sig[:])
}

// TokenKey is the MAC key of a token: what the CA host stores instead of the secret.
func TokenKey(secret [identity.TokenSecretSize]byte) [32]byte {
	k, err := hkdf.Key(sha256.New, secret[:], nil, tokenInfo, 32)
	if err != nil {
		panic(err) // only for lengths out of range
	}
	return [32]byte(k)
}

// renewKey is the MAC key of a renewal: HKDF of the X25519 secret shared by the host's key
// and the server's ephemeral key, salted with the exporter value.
func renewKey(shared, exp []byte) [32]byte {
	k, err := hkdf.Key(sha256.New, shared, exp, renewInfo, 32)
	if err != nil {
		panic(err)
	}
	return [32]byte(k)
}

// x25519 is the shared secret of priv and pub (errors on a low-order pub).
func x25519(priv, pub []byte) ([]byte, error) {
	sk, err := ecdh.X25519().NewPrivateKey(priv)
	if err != nil {
		return nil, err
	}
	pk, err := ecdh.X25519().NewPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return sk.ECDH(pk)
}

// requestMAC is the MAC of a request's unsigned encoding under key.
func requestMAC(key [32]byte, exp, unsigned []byte) [macSize]byte {
	m := hmac.New(sha256.New, key[:])
	m.Write([]byte(requestCtx))
	m.Write(exp)
	m.Write(unsigned)
	return [macSize]byte(m.Sum(nil))
}
