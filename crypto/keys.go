package crypto

// PrivateKey is a Curve25519 static private key.
type PrivateKey [32]byte

// PublicKey is a Curve25519 public key.
type PublicKey [32]byte

// PresharedKey is WireGuard's optional symmetric key mixed into the handshake.
type PresharedKey [32]byte

// GeneratePrivateKey returns a new clamped random private key.
func GeneratePrivateKey() (PrivateKey, error) { return PrivateKey{}, ErrShortMessage }

// ParsePrivateKey parses WireGuard's base64 form.
func ParsePrivateKey(s string) (PrivateKey, error) { return PrivateKey{}, ErrShortMessage }

// ParsePublicKey parses WireGuard's base64 form.
func ParsePublicKey(s string) (PublicKey, error) { return PublicKey{}, ErrShortMessage }

// ParsePresharedKey parses WireGuard's base64 form.
func ParsePresharedKey(s string) (PresharedKey, error) { return PresharedKey{}, ErrShortMessage }

// LoadPrivateKeyFile reads a private key file.
func LoadPrivateKeyFile(path string) (PrivateKey, error) { return PrivateKey{}, ErrShortMessage }

// SavePrivateKeyFile writes a private key file.
func SavePrivateKeyFile(path string, k PrivateKey) error { return ErrShortMessage }

// Public returns the public key.
func (k PrivateKey) Public() PublicKey { return PublicKey{} }

// String returns WireGuard's base64 form.
func (k PrivateKey) String() string { return "" }

// String returns WireGuard's base64 form.
func (k PublicKey) String() string { return "" }
