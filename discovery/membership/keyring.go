package membership

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/hashicorp/memberlist"
)

// GossipKeySize is the length of the gossip encryption key (AES-256-GCM).
const GossipKeySize = 32

// Named errors about the gossip key.
var (
	// ErrNoGossipKey: New was given no key and Insecure is not set.
	ErrNoGossipKey = errors.New("no gossip key: set gossip.key (generate one with `weft keygen --gossip`) or pass --insecure-gossip")
	// ErrGossipKeySize: the key is not GossipKeySize bytes.
	ErrGossipKeySize = fmt.Errorf("gossip key must be %d bytes (base64 of 32 random bytes; generate one with `weft keygen --gossip`)", GossipKeySize)
)

// GenerateGossipKey returns a fresh random gossip key.
func GenerateGossipKey() ([]byte, error) {
	k := make([]byte, GossipKeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("generate gossip key: %w", err)
	}
	return k, nil
}

// ParseGossipKey decodes a base64 (standard, padded) gossip key as printed by
// `weft keygen --gossip` and checks its size.
func ParseGossipKey(s string) ([]byte, error) {
	k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("gossip key is not base64: %w", err)
	}
	if len(k) != GossipKeySize {
		return nil, ErrGossipKeySize
	}
	return k, nil
}

// newKeyring checks the key policy of cfg and returns the memberlist keyring,
// or nil when gossip runs unencrypted on purpose.
func newKeyring(key []byte, insecure bool) (*memberlist.Keyring, error) {
	if len(key) == 0 {
		if insecure {
			return nil, nil
		}
		return nil, ErrNoGossipKey
	}
	if len(key) != GossipKeySize {
		return nil, ErrGossipKeySize
	}
	kr, err := memberlist.NewKeyring(nil, append([]byte(nil), key...))
	if err != nil {
		return nil, fmt.Errorf("memberlist.NewKeyring: %w", err)
	}
	return kr, nil
}
