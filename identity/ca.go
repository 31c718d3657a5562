package identity

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"time"

	"github.com/weftnet/weft/crypto"
)

// CASpec is what NewCA puts into a CA certificate.
type CASpec struct {
	// Name of the CA, shown in `weft ca print` and in refusals.
	Name string
	// NotBefore and NotAfter bound the CA's validity and therefore that of
	// every certificate it signs.
	NotBefore, NotAfter time.Time
	// Prefixes, if any, are the only prefixes (and their sub-prefixes) the
	// CA's host certificates may hold.
	Prefixes []netip.Prefix
	// Groups, if any, are the only groups the CA's host certificates may hold.
	Groups []string
}

// NewCA generates an Ed25519 key pair from rand (crypto/rand when nil) and
// returns the self-signed CA certificate and its private key.
func NewCA(spec CASpec, random io.Reader) (*Certificate, ed25519.PrivateKey, error) {
	if random == nil {
		random = rand.Reader
	}
	ps, gs, err := normalize(spec.Prefixes, spec.Groups)
	if err != nil {
		return nil, nil, err
	}
	pub, priv, err := ed25519.GenerateKey(random)
	if err != nil {
		return nil, nil, fmt.Errorf("generate CA key: %w", err)
	}
	c := &Certificate{
		Kind:      KindCA,
		Name:      spec.Name,
		NotBefore: spec.NotBefore.Truncate(time.Second).UTC(),
		NotAfter:  spec.NotAfter.Truncate(time.Second).UTC(),
		Prefixes:  ps,
		Groups:    gs,
	}
	copy(c.PublicKey[:], pub)
	if err := c.sign(priv); err != nil {
		return nil, nil, err
	}
	return c, priv, nil
}

// HostSpec is what Sign puts into a host certificate.
type HostSpec struct {
	// Name is the host's node name in gossip.
	Name string
	// PublicKey is the host's WireGuard public key.
	PublicKey crypto.PublicKey
	// Prefixes the host may announce (its subnet, static prefixes).
	Prefixes []netip.Prefix
	// Groups the host belongs to (for policy).
	Groups []string
	// NotBefore and NotAfter bound the validity; both must lie within the
	// CA's (cap NotAfter with the CA's NotAfter to sign "as long as the CA").
	NotBefore, NotAfter time.Time
}

// Sign issues a host certificate for spec with the CA ca and its key. It
// refuses a key that is not ca's, a CA certificate that does not verify,
// and anything Verify would refuse as outside the CA's constraints, so it
// never hands out a certificate that cannot verify.
func Sign(ca *Certificate, caKey ed25519.PrivateKey, spec HostSpec) (*Certificate, error) {
	if err := checkCA(ca); err != nil {
		return nil, err
	}
	if len(caKey) != ed25519.PrivateKeySize || !slices.Equal([]byte(caKey.Public().(ed25519.PublicKey)), ca.PublicKey[:]) {
		return nil, errors.New("the CA key does not belong to the CA certificate: pass the ca.key written with this ca.crt by `weft ca init`")
	}
	if spec.PublicKey.IsZero() {
		return nil, fmt.Errorf("%w: the host's public key is all zeros", ErrMalformed)
	}
	ps, gs, err := normalize(spec.Prefixes, spec.Groups)
	if err != nil {
		return nil, err
	}
	fp, err := ca.Fingerprint()
	if err != nil {
		return nil, err
	}
	c := &Certificate{
		Kind:      KindHost,
		Name:      spec.Name,
		PublicKey: spec.PublicKey,
		NotBefore: spec.NotBefore.Truncate(time.Second).UTC(),
		NotAfter:  spec.NotAfter.Truncate(time.Second).UTC(),
		Prefixes:  ps,
		Groups:    gs,
		Issuer:    fp.Issuer(),
	}
	if err := checkConstraints(c, ca); err != nil {
		return nil, err
	}
	if err := c.sign(caKey); err != nil {
		return nil, err
	}
	return c, nil
}

// sign fills c.Signature with key over signContext || body.
func (c *Certificate) sign(key ed25519.PrivateKey) error {
	msg, err := c.appendBody([]byte(signContext))
	if err != nil {
		return err
	}
	copy(c.Signature[:], ed25519.Sign(key, msg))
	return nil
}

// checkSignature verifies c's signature under the Ed25519 key pub.
// crypto/ed25519 refuses non-canonical signatures (S >= L), so a valid
// signature cannot be rewritten into a second valid one by a third party.
func (c *Certificate) checkSignature(pub *[KeySize]byte) error {
	msg, err := c.appendBody([]byte(signContext))
	if err != nil {
		return err
	}
	if !ed25519.Verify(ed25519.PublicKey(pub[:]), msg, c.Signature[:]) {
		return ErrBadSignature
	}
	return nil
}

// checkCA verifies that ca is a well-formed, correctly self-signed CA
// certificate.
func checkCA(ca *Certificate) error {
	if ca == nil || ca.Kind != KindCA {
		return fmt.Errorf("%w: not a CA certificate", ErrWrongKind)
	}
	if err := ca.checkSignature(&ca.PublicKey); err != nil {
		return fmt.Errorf("CA certificate %q: %w (it is not signed by its own key)", ca.Name, err)
	}
	return nil
}

// checkConstraints refuses a host certificate that claims more than its CA
// may sign: a prefix outside the CA's prefixes, a group outside its
// groups, or validity outside its validity.
func checkConstraints(c, ca *Certificate) error {
	if c.NotBefore.Before(ca.NotBefore) || c.NotAfter.After(ca.NotAfter) {
		return fmt.Errorf("%w: validity %s..%s outside the CA %q's %s..%s", ErrCAConstraint,
			c.NotBefore.Format(time.RFC3339), c.NotAfter.Format(time.RFC3339), ca.Name,
			ca.NotBefore.Format(time.RFC3339), ca.NotAfter.Format(time.RFC3339))
	}
	if len(ca.Prefixes) > 0 {
		for _, p := range c.Prefixes {
			if !prefixWithin(p, ca.Prefixes) {
				return fmt.Errorf("%w: prefix %s is outside the CA %q's prefixes %v", ErrCAConstraint, p, ca.Name, ca.Prefixes)
			}
		}
	}
	if len(ca.Groups) > 0 {
		for _, g := range c.Groups {
			if _, ok := slices.BinarySearch(ca.Groups, g); !ok {
				return fmt.Errorf("%w: group %q is not one of the CA %q's groups %v", ErrCAConstraint, g, ca.Name, ca.Groups)
			}
		}
	}
	return nil
}

// prefixWithin reports whether p lies inside one of outer (same family, at
// least as long, its address covered). An IPv6 prefix is never within an
// IPv4 one, nor the reverse.
func prefixWithin(p netip.Prefix, outer []netip.Prefix) bool {
	for _, o := range outer {
		if o.Addr().BitLen() == p.Addr().BitLen() && o.Bits() <= p.Bits() && o.Contains(p.Addr()) {
			return true
		}
	}
	return false
}
