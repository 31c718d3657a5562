package crypto

// Handshake is the Noise state with one remote static key.
type Handshake struct{ remote PublicKey }

// NewHandshake returns a Handshake.
func NewHandshake(id *Identity, remote PublicKey, psk PresharedKey) *Handshake {
	return &Handshake{remote: remote}
}

// RemoteKey returns the remote static key.
func (h *Handshake) RemoteKey() PublicKey { return h.remote }

// CreateInitiation writes a type-1 message.
func (h *Handshake) CreateInitiation(dst []byte, localIndex uint32) (int, error) {
	return 0, ErrShortMessage
}

// ConsumeResponse processes a type-2 message.
func (h *Handshake) ConsumeResponse(msg []byte) (*Keypair, error) { return nil, ErrShortMessage }

// ConsumeCookieReply processes a type-3 message.
func (h *Handshake) ConsumeCookieReply(msg []byte) error { return ErrShortMessage }

// CreateResponse writes a type-2 message.
func (h *Handshake) CreateResponse(dst []byte, localIndex uint32) (int, *Keypair, error) {
	return 0, nil, ErrShortMessage
}
