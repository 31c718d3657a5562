package identity

import (
	"bytes"
	"crypto/ed25519"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/weftnet/weft/crypto"
)

// PEM block types of the disk forms.
const (
	PEMTypeCA     = "WEFT CA CERTIFICATE"
	PEMTypeHost   = "WEFT HOST CERTIFICATE"
	PEMTypeCAKey  = "WEFT CA PRIVATE KEY" // the 32-byte Ed25519 seed
	maxPEMFileLen = 1 << 20               // a bundle of thousands of CAs; refuse more
)

func pemType(k Kind) string {
	if k == KindCA {
		return PEMTypeCA
	}
	return PEMTypeHost
}

// MarshalPEM returns c in its disk form: one PEM block of type
// PEMTypeCA or PEMTypeHost.
func (c *Certificate) MarshalPEM() ([]byte, error) {
	b, err := c.MarshalBinary()
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemType(c.Kind), Bytes: b}), nil
}

// ParseCertificatePEM decodes the first PEM block of data, which must be a
// weft certificate whose block type agrees with its kind, and returns the
// rest of data after it.
func ParseCertificatePEM(data []byte) (*Certificate, []byte, error) {
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, data, fmt.Errorf("%w: no PEM block (expected %q or %q)", ErrMalformed, PEMTypeHost, PEMTypeCA)
	}
	if block.Type != PEMTypeHost && block.Type != PEMTypeCA {
		return nil, rest, fmt.Errorf("%w: PEM block %q is no weft certificate", ErrMalformed, block.Type)
	}
	c, err := ParseCertificate(block.Bytes)
	if err != nil {
		return nil, rest, err
	}
	if pemType(c.Kind) != block.Type {
		return nil, rest, fmt.Errorf("%w: a %s certificate in a %q block", ErrWrongKind, c.Kind, block.Type)
	}
	return c, rest, nil
}

func readBounded(path, what string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", what, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxPEMFileLen+1))
	if err != nil {
		return nil, fmt.Errorf("read %s %s: %w", what, path, err)
	}
	if len(data) > maxPEMFileLen {
		return nil, fmt.Errorf("%s %s is larger than %d bytes", what, path, maxPEMFileLen)
	}
	return data, nil
}

// LoadCertificateFile reads a file holding exactly one certificate (host or
// CA) in PEM form.
func LoadCertificateFile(path string) (*Certificate, error) {
	data, err := readBounded(path, "certificate")
	if err != nil {
		return nil, err
	}
	c, rest, err := ParseCertificatePEM(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("%s: %w: data after the certificate (one certificate per file)", path, ErrMalformed)
	}
	return c, nil
}

// LoadCAPoolFile reads a file of one or more CA certificates in PEM form
// (concatenate the old and the new ca.crt during a rotation) and returns
// their pool.
func LoadCAPoolFile(path string) (*CAPool, error) {
	data, err := readBounded(path, "CA file")
	if err != nil {
		return nil, err
	}
	var cas []*Certificate
	for len(bytes.TrimSpace(data)) != 0 {
		c, rest, err := ParseCertificatePEM(data)
		if err != nil {
			return nil, fmt.Errorf("%s: CA %d: %w", path, len(cas)+1, err)
		}
		if c.Kind != KindCA {
			return nil, fmt.Errorf("%s: %w: certificate %d is a host certificate, not a CA (pass the ca.crt of `weft ca init`)", path, ErrWrongKind, len(cas)+1)
		}
		cas = append(cas, c)
		data = rest
	}
	if len(cas) == 0 {
		return nil, fmt.Errorf("%s: no CA certificate in the file (pass the ca.crt of `weft ca init`)", path)
	}
	p, err := NewCAPool(cas...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

// MarshalCAKeyPEM returns the disk form of a CA private key: its seed in a
// PEMTypeCAKey block. Write it with mode 0600 (WriteNewFile).
func MarshalCAKeyPEM(key ed25519.PrivateKey) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: PEMTypeCAKey, Bytes: key.Seed()})
}

// ParseCAKeyPEM decodes a CA private key written by MarshalCAKeyPEM.
func ParseCAKeyPEM(data []byte) (ed25519.PrivateKey, error) {
	block, rest := pem.Decode(data)
	if block == nil || block.Type != PEMTypeCAKey || len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("not a weft CA key (expected one %q PEM block, the ca.key of `weft ca init`)", PEMTypeCAKey)
	}
	if len(block.Bytes) != ed25519.SeedSize {
		return nil, fmt.Errorf("CA key has %d bytes, want %d", len(block.Bytes), ed25519.SeedSize)
	}
	key := ed25519.NewKeyFromSeed(block.Bytes)
	clear(block.Bytes)
	return key, nil
}

// LoadCAKeyFile reads a CA private key. Like the WireGuard key, it refuses a
// file that group or others may access (crypto.ErrKeyFileMode).
func LoadCAKeyFile(path string) (ed25519.PrivateKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open CA key: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat CA key: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("CA key %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %04o, accessible beyond its owner; run `chmod 600 %s`", crypto.ErrKeyFileMode, path, perm, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return nil, fmt.Errorf("read CA key %s: %w", path, err)
	}
	key, err := ParseCAKeyPEM(data)
	clear(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return key, nil
}

// WriteNewFile writes data to path with mode perm, refusing to replace an
// existing file (fs.ErrExist): a CA key or certificate overwritten by
// mistake cannot be recovered, and every host certificate would die with it.
// A partly written file is removed.
func WriteNewFile(path string, data []byte, perm fs.FileMode) (err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("refusing to overwrite %s (%w): move it away first, or choose another path", path, fs.ErrExist)
		}
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(path)
		}
	}()
	if err := f.Chmod(perm); err != nil { // the umask must not widen or narrow it
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	return f.Sync()
}
