package identity

import (
	"bytes"
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/weftnet/weft/crypto"
)

var update = flag.Bool("update", false, "rewrite testdata/ golden files")

// TestGolden pins the wire format: the deterministic CA and host
// certificate must encode to the bytes in testdata/, and those files must
// parse and verify. A format change shows up here first (and needs a new
// Version, since deployed certificates would otherwise stop verifying).
// Regenerate with `go test ./identity -run Golden -update`.
func TestGolden(t *testing.T) {
	ca := newTestCA(t, "golden", pfx("10.42.0.0/16", "fd42::/32"), []string{"db", "prod", "web"})
	host := ca.sign(t, typicalSpec())
	for file, c := range map[string]*Certificate{"ca.crt": ca.cert, "host.crt": host} {
		path := filepath.Join("testdata", file)
		pemBytes, err := c.MarshalPEM()
		if err != nil {
			t.Fatal(err)
		}
		if *update {
			if err := os.WriteFile(path, pemBytes, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		disk, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(disk, pemBytes) {
			t.Errorf("%s: the encoding changed (run with -update only if the format change is intended and versioned)", path)
		}
	}
	pool, err := LoadCAPoolFile(filepath.Join("testdata", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := LoadCertificateFile(filepath.Join("testdata", "host.crt"))
	if err != nil {
		t.Fatal(err)
	}
	cl, err := Verify(c, pool, t0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cl.Name != "host-0001.eu" || !cl.AllowsPrefix(pfx("10.42.7.0/24")[0]) || !cl.HasGroup("web") {
		t.Fatalf("golden claims %+v", cl)
	}
}

func TestPEM_RoundTripAndKinds(t *testing.T) {
	ca := newTestCA(t, "pem", nil, nil)
	host := ca.sign(t, typicalSpec())
	for _, c := range []*Certificate{ca.cert, host} {
		p, err := c.MarshalPEM()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(p), "-----BEGIN "+pemType(c.Kind)+"-----\n") {
			t.Fatalf("PEM header: %q", p[:40])
		}
		got, rest, err := ParseCertificatePEM(append([]byte("comment before the block\n"), p...))
		if err != nil || len(rest) != 0 || !reflect.DeepEqual(got, c) {
			t.Fatalf("round trip: %v, rest %q", err, rest)
		}
	}
	// A host body in a CA block (or the reverse) is refused.
	b := mustMarshal(t, host)
	mislabelled := pemEncode(PEMTypeCA, b)
	if _, _, err := ParseCertificatePEM(mislabelled); !errors.Is(err, ErrWrongKind) {
		t.Fatalf("host in CA block: %v", err)
	}
	if _, _, err := ParseCertificatePEM(pemEncode("CERTIFICATE", b)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("foreign block type: %v", err)
	}
	if _, _, err := ParseCertificatePEM([]byte("no pem here")); !errors.Is(err, ErrMalformed) {
		t.Fatalf("no block: %v", err)
	}
	if _, _, err := ParseCertificatePEM(pemEncode(PEMTypeHost, append(b, 0))); !errors.Is(err, ErrMalformed) {
		t.Fatalf("trailing byte inside the block: %v", err)
	}
}

func TestLoadFiles(t *testing.T) {
	dir := t.TempDir()
	old := newTestCA(t, "files-old", nil, nil)
	next := newTestCA(t, "files-new", nil, nil)
	host := old.sign(t, typicalSpec())
	write := func(name string, parts ...*Certificate) string {
		var buf bytes.Buffer
		for _, c := range parts {
			p, err := c.MarshalPEM()
			if err != nil {
				t.Fatal(err)
			}
			buf.Write(p)
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	bundle := write("bundle.crt", old.cert, next.cert)
	pool, err := LoadCAPoolFile(bundle)
	if err != nil || pool.Len() != 2 {
		t.Fatalf("bundle: %v, %d CAs", err, pool.Len())
	}
	if _, err := LoadCAPoolFile(write("mixed.crt", old.cert, host)); !errors.Is(err, ErrWrongKind) {
		t.Fatalf("host certificate in the CA file: %v", err)
	}
	empty := filepath.Join(dir, "empty.crt")
	os.WriteFile(empty, nil, 0o644)
	if _, err := LoadCAPoolFile(empty); err == nil || !strings.Contains(err.Error(), "no CA certificate") {
		t.Fatalf("empty CA file: %v", err)
	}
	if _, err := LoadCertificateFile(write("two.crt", host, host)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("two certificates in one host file: %v", err)
	}
	if _, err := LoadCertificateFile(filepath.Join(dir, "missing.crt")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing: %v", err)
	}
	big := filepath.Join(dir, "big.crt")
	os.WriteFile(big, bytes.Repeat([]byte("x"), maxPEMFileLen+1), 0o644)
	if _, err := LoadCertificateFile(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("oversize file: %v", err)
	}
}

func TestCAKeyFile(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, "keyfile", nil, nil)
	path := filepath.Join(dir, "ca.key")
	if err := WriteNewFile(path, MarshalCAKeyPEM(ca.key), 0o600); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v", fi.Mode(), err)
	}
	key, err := LoadCAKeyFile(path)
	if err != nil || !key.Equal(ca.key) {
		t.Fatalf("load: %v", err)
	}
	if err := WriteNewFile(path, []byte("other"), 0o600); !errors.Is(err, fs.ErrExist) || !strings.Contains(err.Error(), "refusing to overwrite") {
		t.Fatalf("overwrite: %v", err)
	}
	if k, _ := LoadCAKeyFile(path); !k.Equal(ca.key) {
		t.Fatal("the refused write changed the file")
	}
	os.Chmod(path, 0o640)
	if _, err := LoadCAKeyFile(path); !errors.Is(err, crypto.ErrKeyFileMode) || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("group-readable key: %v", err)
	}
	bad := filepath.Join(dir, "bad.key")
	WriteNewFile(bad, pemEncode(PEMTypeCAKey, []byte("short")), 0o600)
	if _, err := LoadCAKeyFile(bad); err == nil {
		t.Fatal("short seed accepted")
	}
	cert := filepath.Join(dir, "cert-as-key")
	p, _ := ca.cert.MarshalPEM()
	WriteNewFile(cert, p, 0o600)
	if _, err := LoadCAKeyFile(cert); err == nil || !strings.Contains(err.Error(), "not a weft CA key") {
		t.Fatalf("certificate as key: %v", err)
	}
}

func TestBlocklist_Parse(t *testing.T) {
	ca := newTestCA(t, "bl", nil, nil)
	fp, _ := ca.sign(t, typicalSpec()).Fingerprint()
	other := Fingerprint{1}
	text := "# revoked hosts\n\n" + fp.String() + "  # host-0001, stolen laptop\n" + strings.ToUpper(other.String()) + "\r\n   \n"
	bl, err := ParseBlocklist(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if bl.Len() != 2 || !bl.Contains(fp) || !bl.Contains(other) || bl.Contains(Fingerprint{2}) {
		t.Fatalf("blocklist %d entries", bl.Len())
	}
	for name, in := range map[string]string{
		"short":         "abcd\n",
		"not-hex":       strings.Repeat("g", 64) + "\n",
		"two-on-a-line": fp.String() + " " + other.String() + "\n",
	} {
		_, err := ParseBlocklist(strings.NewReader("# ok\n" + in))
		if err == nil || !strings.Contains(err.Error(), "line 2") {
			t.Errorf("%s: %v, want an error naming line 2", name, err)
		}
	}
	if _, err := ParseBlocklist(bytes.NewReader(bytes.Repeat([]byte("#"), MaxBlocklistSize+1))); err == nil {
		t.Error("oversize blocklist accepted")
	}
	var none *Blocklist
	if none.Contains(fp) || none.Len() != 0 {
		t.Error("nil blocklist not empty")
	}
	path := filepath.Join(t.TempDir(), "blocklist")
	os.WriteFile(path, []byte(text), 0o644)
	if bl, err := LoadBlocklistFile(path); err != nil || bl.Len() != 2 {
		t.Fatalf("file: %v", err)
	}
	if _, err := ParseFingerprint(fp.String()); err != nil {
		t.Fatal(err)
	}
}
