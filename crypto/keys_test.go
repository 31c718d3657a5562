package crypto

import (
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A vector from RFC 7748 §6.1 (Alice's key pair).
const (
	rfcPriv = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"
	rfcPub  = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
)

func TestPrivateKey_Public(t *testing.T) {
	var priv PrivateKey
	hex.Decode(priv[:], []byte(rfcPriv))
	pub := priv.Public()
	if hex.EncodeToString(pub[:]) != rfcPub {
		t.Fatalf("public key %x, want %s", pub, rfcPub)
	}
}

func TestKeys_ParseString(t *testing.T) {
	k := mustKey(t)
	if k[0]&7 != 0 || k[31]&0x80 != 0 || k[31]&0x40 == 0 {
		t.Fatalf("generated key not clamped: %x", k)
	}
	back, err := ParsePrivateKey(k.String())
	if err != nil || back != k {
		t.Fatalf("private round trip: %v", err)
	}
	pub, err := ParsePublicKey(" " + k.Public().String() + "\n")
	if err != nil || pub != k.Public() {
		t.Fatalf("public round trip: %v", err)
	}
	if len(k.String()) != 44 {
		t.Fatalf("base64 form %q is not 44 characters", k.String())
	}
	for _, bad := range []string{"", "not base64!", "AAAA", strings.Repeat("A", 43) + "=" + "A"} {
		if _, err := ParsePublicKey(bad); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("ParsePublicKey(%q): %v", bad, err)
		}
		if _, err := ParsePresharedKey(bad); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("ParsePresharedKey(%q): %v", bad, err)
		}
	}
}

func TestKeys_File(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "sub")
	path := filepath.Join(dir, "private.key")
	k := mustKey(t)
	if err := SavePrivateKeyFile(path, k); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v err %v, want 0600", fi.Mode(), err)
	}
	di, err := os.Stat(dir)
	if err != nil || di.Mode().Perm() != 0o700 {
		t.Fatalf("key dir mode %v err %v, want 0700", di.Mode(), err)
	}
	got, err := LoadPrivateKeyFile(path)
	if err != nil || got != k {
		t.Fatalf("load: %v", err)
	}
	// Overwrite atomically; no temporary file is left behind.
	k2 := mustKey(t)
	if err := SavePrivateKeyFile(path, k2); err != nil {
		t.Fatal(err)
	}
	if got, _ := LoadPrivateKeyFile(path); got != k2 {
		t.Fatal("second save not visible")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("directory holds %d entries, want 1", len(entries))
	}

	for _, mode := range []os.FileMode{0o640, 0o604, 0o644, 0o660} {
		os.Chmod(path, mode)
		_, err := LoadPrivateKeyFile(path)
		if !errors.Is(err, ErrKeyFileMode) || !strings.Contains(err.Error(), "chmod 600 "+path) {
			t.Errorf("mode %04o: %v, want ErrKeyFileMode telling to chmod 600", mode, err)
		}
	}
	os.Chmod(path, 0o400)
	if _, err := LoadPrivateKeyFile(path); err != nil {
		t.Errorf("mode 0400: %v", err)
	}
	// The agent generates a key when the file is missing: it tests with
	// errors.Is(err, fs.ErrNotExist).
	if _, err := LoadPrivateKeyFile(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v, want fs.ErrNotExist", err)
	}
	bad := filepath.Join(dir, "bad.key")
	for _, content := range []string{"garbage\n", "", "AAAA\n"} {
		os.WriteFile(bad, []byte(content), 0o600)
		_, err := LoadPrivateKeyFile(bad)
		if !errors.Is(err, ErrInvalidKey) || !strings.Contains(err.Error(), "weft keygen > "+bad) {
			t.Errorf("key file %q: %v, want ErrInvalidKey saying how to write a new key", content, err)
		}
	}
	sub := filepath.Join(dir, "dir.key")
	os.Mkdir(sub, 0o700)
	if _, err := LoadPrivateKeyFile(sub); err == nil || !strings.Contains(err.Error(), "not a regular file") ||
		!strings.Contains(err.Error(), "weft keygen") {
		t.Errorf("directory as key file: %v, want an error saying what the file must hold", err)
	}
}
