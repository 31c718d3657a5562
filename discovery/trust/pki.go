package trust

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/identity"
)

// Files names the CA configuration's files (the pki section: pki.ca, pki.cert, pki.blocklist).
type Files struct {
	CA        string // PEM file of the trusted CA certificate(s); empty: no CA
	Cert      string // this host's certificate
	Blocklist string // revoked fingerprints, one per line (optional)
}

// PKI is the loaded CA configuration: immutable once loaded, swapped whole on reload.
type PKI struct {
	Pool      *identity.CAPool
	Blocklist *identity.Blocklist // nil: none
	Own       *identity.Certificate
	OwnClaims identity.Claims
	OwnErr    error  // expired or not yet valid: the agent runs, the others refuse it
	Tag       string // Own encoded for the identity.TagKey gossip tag
}

// LoadPKI reads pki.ca, pki.cert and pki.blocklist and checks the certificate against this
// host: signed by a configured CA, not blocklisted, issued to its name and public key. It
// returns nil, nil without pki.ca. An expired or not yet valid certificate is kept (OwnErr):
// the agent still serves its static peers, and `weft status` says to renew.
func LoadPKI(cfg Files, name string, key crypto.PublicKey, now time.Time) (*PKI, error) {
	if cfg.CA == "" {
		if cfg.Cert != "" || cfg.Blocklist != "" {
			return nil, errors.New("pki.cert / pki.blocklist without pki.ca: set pki.ca to the CA certificate (weft ca init writes ca.crt)")
		}
		return nil, nil
	}
	if cfg.Cert == "" {
		return nil, errors.New("pki.ca is set but pki.cert is not: sign this host's certificate with `weft ca sign --name NAME --public-key KEY` and set pki.cert")
	}
	pool, err := identity.LoadCAPoolFile(cfg.CA)
	if err != nil {
		return nil, fmt.Errorf("pki.ca: %w", err)
	}
	st := &PKI{Pool: pool}
	if cfg.Blocklist != "" {
		if st.Blocklist, err = identity.LoadBlocklistFile(cfg.Blocklist); err != nil {
			return nil, fmt.Errorf("pki.blocklist: %w", err)
		}
	}
	if st.Own, err = identity.LoadCertificateFile(cfg.Cert); err != nil {
		return nil, fmt.Errorf("pki.cert: %w", err)
	}
	st.OwnClaims, err = identity.Verify(st.Own, pool, now, st.Blocklist)
	switch {
	case errors.Is(err, identity.ErrExpired), errors.Is(err, identity.ErrNotYetValid):
		st.OwnErr = err
		st.OwnClaims = ClaimsOf(st.Own)
	case err != nil:
		return nil, fmt.Errorf("pki.cert %s: %w: sign this host's key with the CA of pki.ca (`weft ca sign --name %s --public-key %s`)", cfg.Cert, err, name, key)
	}
	if !st.OwnClaims.MatchesKey(key) {
		return nil, fmt.Errorf("pki.cert %s is for public key %s, this host's is %s: sign this host's key (`weft ca sign --name %s --public-key %s`)", cfg.Cert, st.OwnClaims.PublicKey, key, name, key)
	}
	if !st.OwnClaims.MatchesName(name) {
		return nil, fmt.Errorf("pki.cert %s is for node name %q, this host's is %q: set name, or sign a certificate for %q", cfg.Cert, st.OwnClaims.Name, name, name)
	}
	if st.Tag, err = st.Own.EncodeTag(); err != nil {
		return nil, fmt.Errorf("pki.cert: %w", err)
	}
	return st, nil
}

// ClaimsOf is what an (expired) certificate would claim, for display and the subnet choice.
func ClaimsOf(c *identity.Certificate) identity.Claims {
	return identity.Claims{Name: c.Name, PublicKey: crypto.PublicKey(c.PublicKey), Prefixes: c.Prefixes,
		Groups: c.Groups, NotBefore: c.NotBefore, NotAfter: c.NotAfter}
}

// PinnedSubnet is the subnet this host's certificate pins: its first /bits prefix of the
// cluster CIDR (a host's subnet_len; 0: 24), zero when it pins none.
func (st *PKI) PinnedSubnet(cluster netip.Prefix, bits int) netip.Prefix {
	if bits == 0 {
		bits = 24
	}
	for _, p := range st.OwnClaims.Prefixes {
		if p.Addr().Is4() && p.Bits() == bits && PrefixWithin(p, cluster) {
			return p
		}
	}
	return netip.Prefix{}
}

// Warnings lists what an operator should act on about the certificates, now.
func (st *PKI) Warnings(now time.Time) []string {
	var out []string
	switch {
	case st.OwnErr != nil:
		out = append(out, fmt.Sprintf("this host's certificate is not valid (%v): the other hosts refuse it; renew it with `weft ca sign` and `weft reload`", st.OwnErr))
	case now.After(st.OwnClaims.NotAfter):
		out = append(out, fmt.Sprintf("this host's certificate expired at %s: the other hosts refuse it; renew it with `weft ca sign` and `weft reload`",
			st.OwnClaims.NotAfter.Format(time.RFC3339)))
	case st.OwnClaims.ExpiresWithin(now, certExpiryWarning):
		out = append(out, fmt.Sprintf("this host's certificate expires in %s (%s): renew it with `weft ca sign`, then `weft reload`",
			st.OwnClaims.TimeLeft(now).Round(time.Minute), st.OwnClaims.NotAfter.Format(time.RFC3339)))
	}
	for _, ca := range st.Pool.ExpiringWithin(now, certExpiryWarning) {
		out = append(out, fmt.Sprintf("CA %q expires %s: rotate it (add the new CA to pki.ca, re-sign the hosts)", ca.Name, ca.NotAfter.Format(time.RFC3339)))
	}
	return out
}

// WarningState summarizes the state of Warnings at now: it changes when a warning starts or
// ends (entering the warning window, expiring, a CA nearing its end), not as time passes, so
// that the warnings are logged once per change.
func (st *PKI) WarningState(now time.Time) string {
	return fmt.Sprint(len(st.Warnings(now)), st.OwnErr != nil, now.After(st.OwnClaims.NotAfter), len(st.Pool.ExpiringWithin(now, certExpiryWarning)))
}
