package identity

import (
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/weftnet/weft/crypto"
)

// Claims is what a verified host certificate lets its holder claim. Only
// Verify makes one; the gossip layer compares a member's announcements
// against it.
type Claims struct {
	// Name is the node name the certificate was issued to.
	Name string
	// PublicKey is the host's WireGuard public key.
	PublicKey crypto.PublicKey
	// Prefixes the host may announce, sorted.
	Prefixes []netip.Prefix
	// Groups of the host, sorted.
	Groups []string
	// NotBefore and NotAfter of the certificate (inclusive).
	NotBefore, NotAfter time.Time
	// Fingerprint of the host certificate (what a blocklist names).
	Fingerprint Fingerprint
	// CA is the fingerprint of the issuing CA certificate, CAName its name.
	CA     Fingerprint
	CAName string
}

// Verify checks the host certificate cert against the trusted CAs of pool
// at time now, with blocklist bl (nil: none), and returns what it lets the
// holder claim. Every refusal wraps one named error, checked in this order
// so that a forged certificate is counted as forged and not by whatever it
// pretends to be:
//
//	ErrMalformed / ErrWrongKind   not a well-formed host certificate
//	ErrUnknownCA                  issuer not in pool
//	ErrBadSignature               not signed by that CA
//	ErrBlocklisted                its fingerprint or its CA's is listed
//	ErrCAConstraint               a prefix, group or validity beyond the CA's
//	ErrNotYetValid / ErrExpired   now outside its, or its CA's, validity
//
// Verify reads only cert's fields and re-encodes them, so what it checks the
// signature over is exactly what the Claims report. It does not retain cert.
func Verify(cert *Certificate, pool *CAPool, now time.Time, bl *Blocklist) (Claims, error) {
	if cert == nil {
		return Claims{}, fmt.Errorf("%w: no certificate", ErrMalformed)
	}
	if cert.Kind != KindHost {
		return Claims{}, fmt.Errorf("%w: %s certificate where a host certificate is required", ErrWrongKind, cert.Kind)
	}
	body, err := cert.appendBody([]byte(signContext))
	if err != nil {
		return Claims{}, err
	}
	ca, ok := pool.lookup(cert.Issuer)
	if !ok {
		return Claims{}, fmt.Errorf("%w: issuer %s (trusted: %d CAs)", ErrUnknownCA, cert.Issuer, pool.Len())
	}
	if !ed25519.Verify(ed25519.PublicKey(ca.cert.PublicKey[:]), body, cert.Signature[:]) {
		return Claims{}, fmt.Errorf("%w: not signed by CA %q", ErrBadSignature, ca.cert.Name)
	}
	fp := Fingerprint(sha256.Sum256(body[len(signContext):]))
	if bl.Contains(fp) {
		return Claims{}, fmt.Errorf("%w: certificate %s", ErrBlocklisted, fp)
	}
	if bl.Contains(ca.fp) {
		return Claims{}, fmt.Errorf("%w: its CA %q (%s)", ErrBlocklisted, ca.cert.Name, ca.fp)
	}
	if err := checkConstraints(cert, ca.cert); err != nil {
		return Claims{}, err
	}
	if err := checkValidity("CA certificate "+quote(ca.cert.Name), ca.cert, now); err != nil {
		return Claims{}, err
	}
	if err := checkValidity("certificate", cert, now); err != nil {
		return Claims{}, err
	}
	return Claims{
		Name:        cert.Name,
		PublicKey:   crypto.PublicKey(cert.PublicKey),
		Prefixes:    slices.Clone(cert.Prefixes),
		Groups:      slices.Clone(cert.Groups),
		NotBefore:   cert.NotBefore,
		NotAfter:    cert.NotAfter,
		Fingerprint: fp,
		CA:          ca.fp,
		CAName:      ca.cert.Name,
	}, nil
}

func quote(s string) string { return fmt.Sprintf("%q", s) }

func checkValidity(what string, c *Certificate, now time.Time) error {
	if now.Before(c.NotBefore) {
		return fmt.Errorf("%w: %s valid from %s (check the clock)", ErrNotYetValid, what, c.NotBefore.Format(time.RFC3339))
	}
	if now.After(c.NotAfter) {
		return fmt.Errorf("%w: %s expired at %s", ErrExpired, what, c.NotAfter.Format(time.RFC3339))
	}
	return nil
}

// AllowsPrefix reports whether p lies within one of the certificate's
// prefixes (same family, at least as long). An IPv4-mapped IPv6 prefix
// never matches an IPv4 one.
func (c Claims) AllowsPrefix(p netip.Prefix) bool {
	return p.IsValid() && prefixWithin(p.Masked(), c.Prefixes)
}

// AllowsAddr reports whether a lies within one of the certificate's
// prefixes (for inner source addresses in L2). An IPv4-mapped IPv6
// address never matches an IPv4 prefix.
func (c Claims) AllowsAddr(a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	return prefixWithin(netip.PrefixFrom(a.WithZone(""), a.BitLen()), c.Prefixes)
}

// HasGroup reports whether the certificate lists group g.
func (c Claims) HasGroup(g string) bool {
	_, ok := slices.BinarySearch(c.Groups, g)
	return ok
}

// MatchesName reports whether name is the certificate's node name (exact,
// case-sensitive, as gossip compares names).
func (c Claims) MatchesName(name string) bool { return name == c.Name }

// MatchesKey reports whether k is the certificate's public key.
func (c Claims) MatchesKey(k crypto.PublicKey) bool { return k == c.PublicKey }

// Check compares a member's announcement with the claims: its node name,
// its public key and its subnet (the zero Prefix: none announced). It
// returns ErrNameMismatch, ErrKeyMismatch or ErrPrefixNotAllowed (wrapped
// with the details), or nil.
func (c Claims) Check(name string, key crypto.PublicKey, subnet netip.Prefix) error {
	if !c.MatchesName(name) {
		return fmt.Errorf("%w: member %q, certificate %q", ErrNameMismatch, name, c.Name)
	}
	if !c.MatchesKey(key) {
		return fmt.Errorf("%w: member %q announces %s, certificate holds %s", ErrKeyMismatch, name, key, c.PublicKey)
	}
	if subnet != (netip.Prefix{}) && !c.AllowsPrefix(subnet) {
		return fmt.Errorf("%w: member %q announces %s, certificate allows %v", ErrPrefixNotAllowed, name, subnet, c.Prefixes)
	}
	return nil
}

// TimeLeft returns how long the certificate stays valid after now
// (negative once expired).
func (c Claims) TimeLeft(now time.Time) time.Duration { return c.NotAfter.Sub(now) }

// ExpiresWithin reports whether the certificate expires within d after now,
// the test for an expiry warning ahead of time.
func (c Claims) ExpiresWithin(now time.Time, d time.Duration) bool { return c.TimeLeft(now) < d }
