package identity

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/pem"
	"net/netip"
	"testing"
	"time"

	"github.com/weftnet/weft/crypto"
)

// t0 is the tests' "now": inside every test certificate's validity.
var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// seedReader returns an endless deterministic byte stream derived from
// seed, so that keys (and, Ed25519 being deterministic, whole
// certificates) are the same on every run.
type seedReader struct {
	state [32]byte
	buf   []byte
}

func newSeedReader(seed string) *seedReader { return &seedReader{state: sha256.Sum256([]byte(seed))} }

func (r *seedReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(r.buf) == 0 {
			r.state = sha256.Sum256(r.state[:])
			r.buf = r.state[:]
		}
		c := copy(p[n:], r.buf)
		r.buf = r.buf[c:]
		n += c
	}
	return n, nil
}

type testCA struct {
	cert *Certificate
	key  ed25519.PrivateKey
	pool *CAPool
}

// newTestCA makes a deterministic CA valid a year either side of t0.
func newTestCA(tb testing.TB, seed string, prefixes []netip.Prefix, groups []string) testCA {
	tb.Helper()
	c, k, err := NewCA(CASpec{
		Name:      "ca-" + seed,
		NotBefore: t0.AddDate(-1, 0, 0),
		NotAfter:  t0.AddDate(1, 0, 0),
		Prefixes:  prefixes,
		Groups:    groups,
	}, newSeedReader(seed))
	if err != nil {
		tb.Fatal(err)
	}
	pool, err := NewCAPool(c)
	if err != nil {
		tb.Fatal(err)
	}
	return testCA{cert: c, key: k, pool: pool}
}

func testKey(seed string) crypto.PublicKey {
	var priv crypto.PrivateKey
	s := sha256.Sum256([]byte("wg:" + seed))
	copy(priv[:], s[:])
	priv[0] &= 248
	priv[31] = (priv[31] & 127) | 64
	return priv.Public()
}

// typicalSpec is the "typical" host of the size budget: a 12-character
// name, one /24 and two groups, valid for a year.
func typicalSpec() HostSpec {
	return HostSpec{
		Name:      "host-0001.eu",
		PublicKey: testKey("host-0001"),
		Prefixes:  []netip.Prefix{netip.MustParsePrefix("10.42.7.0/24")},
		Groups:    []string{"web", "prod"},
		NotBefore: t0.Add(-time.Hour),
		NotAfter:  t0.AddDate(0, 6, 0),
	}
}

func (ca testCA) sign(tb testing.TB, spec HostSpec) *Certificate {
	tb.Helper()
	c, err := Sign(ca.cert, ca.key, spec)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

func mustMarshal(tb testing.TB, c *Certificate) []byte {
	tb.Helper()
	b, err := c.MarshalBinary()
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func pfx(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

func pemEncode(typ string, b []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b})
}
