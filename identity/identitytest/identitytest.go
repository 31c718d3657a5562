// Package identitytest holds test doubles for packages that use identity, after
// wireguard-go's tun/tuntest: a throwaway cluster CA that signs host certificates.
//
// It is for tests only: _test.go files of any package but identity's own may import it. It
// imports identity, crypto and the standard library.
package identitytest

import (
	"crypto/ed25519"
	"crypto/rand"
	"net/netip"
	"testing"
	"time"

	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/identity"
)

// CA is a cluster CA made for a test: its certificate, private key and a pool trusting it.
type CA struct {
	Cert *identity.Certificate
	Key  ed25519.PrivateKey
	Pool *identity.CAPool
}

// NewCA creates a CA named name, valid from 30 days ago for two years, so a test's one-year
// host certificate signed a second later (the clock may tick in between) still lies inside
// the CA's validity.
func NewCA(tb testing.TB, name string) CA {
	tb.Helper()
	c, k, err := identity.NewCA(identity.CASpec{Name: name, NotBefore: time.Now().AddDate(0, 0, -30), NotAfter: time.Now().AddDate(2, 0, 0)}, rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	pool, err := identity.NewCAPool(c)
	if err != nil {
		tb.Fatal(err)
	}
	return CA{Cert: c, Key: k, Pool: pool}
}

// Sign issues a host certificate for name and key, valid from from to to, in group "web",
// for prefixes (CIDR strings).
func (ca CA) Sign(tb testing.TB, name string, key crypto.PublicKey, from, to time.Time, prefixes ...string) *identity.Certificate {
	tb.Helper()
	spec := identity.HostSpec{Name: name, PublicKey: key, NotBefore: from, NotAfter: to, Groups: []string{"web"}}
	for _, p := range prefixes {
		spec.Prefixes = append(spec.Prefixes, netip.MustParsePrefix(p))
	}
	c, err := identity.Sign(ca.Cert, ca.Key, spec)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// Tag is c's gossip tag (EncodeTag); a failure fails tb.
func Tag(tb testing.TB, c *identity.Certificate) string {
	tb.Helper()
	s, err := c.EncodeTag()
	if err != nil {
		tb.Fatal(err)
	}
	return s
}
