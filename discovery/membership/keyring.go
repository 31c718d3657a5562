package membership

import (
	"crypto/cipher"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/weftnet/weft/internal/fsutil"
)

// GossipKeySize is the length of the gossip encryption key (XChaCha20-Poly1305, transport.go).
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

// Keyring holds this host's gossip keys: the primary seals everything sent, every key is
// tried on receive (transport.go). It changes only through this host's own calls (Install,
// Use, Remove: `weft keyring` over the local control socket); no gossip message reaches
// it, and Serf itself runs without a keyring, so it refuses every keyring query. With a
// file, every change is written there (0600) before it takes effect in memory.
type Keyring struct {
	path string

	mu    sync.RWMutex
	keys  [][]byte      // primary first
	aeads []cipher.AEAD // one per key, same order
}

// Named keyring errors.
var (
	// ErrKeyNotInstalled: Use or Remove of a key this host does not hold.
	ErrKeyNotInstalled = errors.New("key is not installed on this host: `weft keyring list` shows its keys")
	// ErrRemovePrimary: Remove of the key this host sends with.
	ErrRemovePrimary = errors.New("key is the one this host sends with: `weft keyring use` another key first")
)

// NewKeyring returns a keyring of keys (the first is the primary) persisted at path (empty:
// not persisted).
func NewKeyring(keys [][]byte, path string) (*Keyring, error) {
	if len(keys) == 0 {
		return nil, ErrNoGossipKey
	}
	kr := &Keyring{path: path}
	for _, k := range keys {
		if len(k) != GossipKeySize {
			return nil, ErrGossipKeySize
		}
		if kr.index(k) >= 0 {
			continue
		}
		a, err := chacha20poly1305.NewX(k)
		if err != nil {
			return nil, fmt.Errorf("gossip key: %w", err)
		}
		kr.keys = append(kr.keys, slices.Clone(k))
		kr.aeads = append(kr.aeads, a)
	}
	return kr, nil
}

func (kr *Keyring) index(k []byte) int {
	return slices.IndexFunc(kr.keys, func(x []byte) bool { return subtle.ConstantTimeCompare(x, k) == 1 })
}

// Keys returns the installed keys in base64, the primary first.
func (kr *Keyring) Keys() []string {
	kr.mu.RLock()
	defer kr.mu.RUnlock()
	out := make([]string, len(kr.keys))
	for i, k := range kr.keys {
		out[i] = base64.StdEncoding.EncodeToString(k)
	}
	return out
}

// primary returns the AEAD that seals; all the AEADs to try on receive.
func (kr *Keyring) snapshot() (primary cipher.AEAD, all []cipher.AEAD) {
	kr.mu.RLock()
	defer kr.mu.RUnlock()
	return kr.aeads[0], kr.aeads
}

// Install adds key (base64) to the keys accepted on receive; the primary does not change.
// Installing a key twice is no error.
func (kr *Keyring) Install(key string) error {
	k, err := ParseGossipKey(key)
	if err != nil {
		return err
	}
	a, err := chacha20poly1305.NewX(k)
	if err != nil {
		return fmt.Errorf("gossip key: %w", err)
	}
	kr.mu.Lock()
	defer kr.mu.Unlock()
	if kr.index(k) >= 0 {
		return nil
	}
	return kr.commit(append(slices.Clone(kr.keys), k), append(slices.Clone(kr.aeads), a))
}

// Use makes an installed key the primary: this host seals with it from now on.
func (kr *Keyring) Use(key string) error {
	k, err := ParseGossipKey(key)
	if err != nil {
		return err
	}
	kr.mu.Lock()
	defer kr.mu.Unlock()
	i := kr.index(k)
	if i < 0 {
		return ErrKeyNotInstalled
	}
	keys, aeads := slices.Clone(kr.keys), slices.Clone(kr.aeads)
	keys[0], keys[i] = keys[i], keys[0]
	aeads[0], aeads[i] = aeads[i], aeads[0]
	return kr.commit(keys, aeads)
}

// Remove drops an installed key that is not the primary: what is sealed with it is no
// longer accepted.
func (kr *Keyring) Remove(key string) error {
	k, err := ParseGossipKey(key)
	if err != nil {
		return err
	}
	kr.mu.Lock()
	defer kr.mu.Unlock()
	i := kr.index(k)
	switch {
	case i < 0:
		return ErrKeyNotInstalled
	case i == 0:
		return ErrRemovePrimary
	}
	return kr.commit(slices.Delete(slices.Clone(kr.keys), i, i+1), slices.Delete(slices.Clone(kr.aeads), i, i+1))
}

// commit persists keys, then makes them current. kr.mu is held.
func (kr *Keyring) commit(keys [][]byte, aeads []cipher.AEAD) error {
	if err := saveKeyringFile(kr.path, keys); err != nil {
		return err
	}
	kr.keys, kr.aeads = keys, aeads
	return nil
}

// saveKeyringFile writes keys (a JSON list of base64 keys, the primary first) to path, 0600.
func saveKeyringFile(path string, keys [][]byte) error {
	if path == "" {
		return nil
	}
	enc := make([]string, len(keys))
	for i, k := range keys {
		enc[i] = base64.StdEncoding.EncodeToString(k)
	}
	data, err := json.Marshal(enc)
	if err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(path, data, 0o600); err != nil {
		return fmt.Errorf("keyring file: %w (the keyring is unchanged)", err)
	}
	return nil
}

// loadKeyringFile reads a keyring file (a JSON list of base64 keys, the primary first, the
// format of Serf's serf.keyring too); ok is false when the file does not exist.
func loadKeyringFile(path string) (keys [][]byte, ok bool, err error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("keyring file: %w", err)
	}
	var encoded []string
	if err := json.Unmarshal(data, &encoded); err != nil {
		return nil, false, fmt.Errorf("keyring file %s: not a JSON list of keys: %w", path, err)
	}
	if len(encoded) == 0 {
		return nil, false, fmt.Errorf("keyring file %s holds no key: remove it to start from the configured gossip key", path)
	}
	for i, e := range encoded {
		k, err := ParseGossipKey(e)
		if err != nil {
			return nil, false, fmt.Errorf("keyring file %s, key %d: %w", path, i+1, err)
		}
		keys = append(keys, k)
	}
	return keys, true, nil
}

// openKeyring builds this host's keyring from cfg: its keyring file when there is one (it
// wins over GossipKey, which may be the key rotated out), else a keyring migrated once from
// Serf's serf.keyring of an older weft, else GossipKey. Nil with Insecure and no key.
func openKeyring(cfg *Config) (*Keyring, error) {
	if len(cfg.GossipKey) == 0 {
		if cfg.Insecure {
			return nil, nil
		}
		return nil, ErrNoGossipKey
	}
	if len(cfg.GossipKey) != GossipKeySize {
		return nil, ErrGossipKeySize
	}
	if cfg.KeyringFile == "" {
		return NewKeyring([][]byte{cfg.GossipKey}, "")
	}
	keys, ok, err := loadKeyringFile(cfg.KeyringFile)
	if err != nil {
		return nil, err
	}
	if ok {
		kr, err := NewKeyring(keys, cfg.KeyringFile)
		if err != nil {
			return nil, err
		}
		if kr.index(cfg.GossipKey) < 0 {
			cfg.Logger.Warn("the configured gossip.key is not in this host's keyring file, which wins: put the cluster's current key into the configuration",
				"file", cfg.KeyringFile)
		}
		cfg.Logger.Info("gossip keys from the keyring file (it wins over the configured key)", "file", cfg.KeyringFile, "keys", len(keys))
		return kr, nil
	}
	if cfg.LegacyKeyringFile != "" {
		legacy, ok, err := loadKeyringFile(cfg.LegacyKeyringFile)
		if err != nil {
			return nil, fmt.Errorf("migrating an older weft's keyring: %w", err)
		}
		if ok {
			kr, err := NewKeyring(legacy, cfg.KeyringFile)
			if err == nil {
				err = saveKeyringFile(cfg.KeyringFile, kr.keys)
			}
			if err != nil {
				return nil, fmt.Errorf("migrating %s to %s: %w", cfg.LegacyKeyringFile, cfg.KeyringFile, err)
			}
			if err := os.Remove(cfg.LegacyKeyringFile); err != nil {
				return nil, fmt.Errorf("migrated %s to %s but cannot remove it: %w (remove it by hand)", cfg.LegacyKeyringFile, cfg.KeyringFile, err)
			}
			cfg.Logger.Warn("gossip keys migrated from an older weft's Serf keyring: any gossip member could change that file, check the keys with `weft keyring list`",
				"from", cfg.LegacyKeyringFile, "to", cfg.KeyringFile, "keys", len(kr.keys))
			return kr, nil
		}
	}
	// The file is written at the first change only: until then gossip.key is the truth.
	return NewKeyring([][]byte{cfg.GossipKey}, cfg.KeyringFile)
}
