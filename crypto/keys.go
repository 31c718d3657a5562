package crypto

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/curve25519"
)

// KeySize is the length of every key of this package in bytes.
const KeySize = 32

// PrivateKey is a Curve25519 static private key. Its text form is WireGuard's
// base64 (the output of `wg genkey`).
type PrivateKey [KeySize]byte

// PublicKey is a Curve25519 public key in WireGuard's base64 text form
// (the output of `wg pubkey`).
type PublicKey [KeySize]byte

// PresharedKey is WireGuard's optional symmetric key mixed into the
// handshake for post-quantum resistance. The zero value means "none".
type PresharedKey [KeySize]byte

// GeneratePrivateKey returns a new random private key, clamped as Curve25519
// requires (WireGuard's `wg genkey` does the same).
func GeneratePrivateKey() (PrivateKey, error) {
	var k PrivateKey
	if _, err := rand.Read(k[:]); err != nil {
		return PrivateKey{}, fmt.Errorf("crypto/rand: %w", err)
	}
	k.clamp()
	return k, nil
}

func (k *PrivateKey) clamp() {
	k[0] &= 248
	k[31] = (k[31] & 127) | 64
}

// Public returns the public key of k.
func (k PrivateKey) Public() PublicKey {
	var pub PublicKey
	curve25519.ScalarBaseMult((*[KeySize]byte)(&pub), (*[KeySize]byte)(&k))
	return pub
}

// String returns k in WireGuard's base64 form. It is the secret itself: never
// log it.
func (k PrivateKey) String() string { return base64.StdEncoding.EncodeToString(k[:]) }

// IsZero reports whether k is all zeros (unset).
func (k PrivateKey) IsZero() bool { return k == PrivateKey{} }

// String returns k in WireGuard's base64 form.
func (k PublicKey) String() string { return base64.StdEncoding.EncodeToString(k[:]) }

// IsZero reports whether k is all zeros (unset).
func (k PublicKey) IsZero() bool { return k == PublicKey{} }

// ParsePrivateKey parses WireGuard's base64 form of a private key.
func ParsePrivateKey(s string) (PrivateKey, error) {
	var k PrivateKey
	err := parseKey((*[KeySize]byte)(&k), s, "private")
	return k, err
}

// ParsePublicKey parses WireGuard's base64 form of a public key.
func ParsePublicKey(s string) (PublicKey, error) {
	var k PublicKey
	err := parseKey((*[KeySize]byte)(&k), s, "public")
	return k, err
}

// ParsePresharedKey parses WireGuard's base64 form of a preshared key
// (the output of `wg genpsk`).
func ParsePresharedKey(s string) (PresharedKey, error) {
	var k PresharedKey
	err := parseKey((*[KeySize]byte)(&k), s, "preshared")
	return k, err
}

func parseKey(dst *[KeySize]byte, s, kind string) error {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("%w: %s key is not base64: %v", ErrInvalidKey, kind, err)
	}
	if len(b) != KeySize {
		return fmt.Errorf("%w: %s key has %d bytes, want %d", ErrInvalidKey, kind, len(b), KeySize)
	}
	copy(dst[:], b)
	return nil
}

// keyFileHint ends the errors of a key file that exists but cannot be
// used: it says what the file must hold and how to make one.
const keyFileHint = "it must hold one base64 private key: write a new one with `weft keygen > %s && chmod 600 %s` (or `wg genkey`)"

// LoadPrivateKeyFile reads a private key in base64 text form from path. It
// refuses a file that any group or other user may access (ErrKeyFileMode),
// telling the user to run `chmod 600 PATH`. A missing file is an error
// wrapping fs.ErrNotExist (callers generate a key then); every other error
// says what to do.
func LoadPrivateKeyFile(path string) (PrivateKey, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return PrivateKey{}, fmt.Errorf("open private key: %w (run weft as the key file's owner, usually root)", err)
		}
		return PrivateKey{}, fmt.Errorf("open private key: %w", err)
	}
	defer f.Close()
	// Stat the open file, not the path, so the checked file is the read one.
	fi, err := f.Stat()
	if err != nil {
		return PrivateKey{}, fmt.Errorf("stat private key: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return PrivateKey{}, fmt.Errorf("private key %s is not a regular file; "+keyFileHint, path, path, path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return PrivateKey{}, fmt.Errorf("%w: %s has mode %04o, accessible beyond its owner; run `chmod 600 %s`",
			ErrKeyFileMode, path, perm, path)
	}
	buf, err := io.ReadAll(io.LimitReader(f, 1024))
	if err != nil {
		return PrivateKey{}, fmt.Errorf("read private key %s: %w", path, err)
	}
	k, err := ParsePrivateKey(string(buf))
	clear(buf)
	if err != nil {
		return PrivateKey{}, fmt.Errorf("private key %s: %w; "+keyFileHint, path, err, path, path)
	}
	return k, nil
}

// SavePrivateKeyFile writes k in base64 text form to path with mode 0600,
// atomically: a temporary file in the same directory is written, synced and
// renamed over path. A missing directory is created with mode 0700.
func SavePrivateKeyFile(path string, k PrivateKey) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create key directory: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("create temporary key file: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("chmod temporary key file: %w", err)
	}
	if _, err := tmp.WriteString(k.String() + "\n"); err != nil {
		return fmt.Errorf("write temporary key file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("sync temporary key file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close temporary key file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("rename key file into place: %w", err)
	}
	// Make the rename durable; failure here does not undo a complete write.
	if d, derr := os.Open(dir); derr == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
