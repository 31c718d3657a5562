package identity

import (
	"fmt"
	"sort"
	"time"
)

// CAPool is the set of CAs a host trusts. It holds several during a
// rotation: certificates of the old and of the new CA both verify until the
// old one is removed. A CAPool is immutable after construction and safe for
// concurrent use; a reload builds a new pool and swaps it in.
type CAPool struct {
	cas map[IssuerID]poolEntry
}

type poolEntry struct {
	cert *Certificate
	fp   Fingerprint
}

// NewCAPool returns a pool of the given CA certificates. Each must be a
// well-formed CA certificate signed by its own key; an expired or not yet
// valid CA is accepted (Verify then refuses its certificates with ErrExpired
// or ErrNotYetValid, so the reason is visible instead of "unknown CA").
// Adding the same CA twice is harmless.
func NewCAPool(cas ...*Certificate) (*CAPool, error) {
	p := &CAPool{cas: make(map[IssuerID]poolEntry, len(cas))}
	for _, ca := range cas {
		if err := checkCA(ca); err != nil {
			return nil, err
		}
		fp, err := ca.Fingerprint()
		if err != nil {
			return nil, err
		}
		id := fp.Issuer()
		if old, ok := p.cas[id]; ok && old.fp != fp {
			// 128 bits of SHA-256 colliding means someone made it happen.
			return nil, fmt.Errorf("CA %q and CA %q share the issuer ID %s: refusing both", old.cert.Name, ca.Name, id)
		}
		c := *ca
		p.cas[id] = poolEntry{cert: &c, fp: fp}
	}
	return p, nil
}

// Len returns the number of CAs in p.
func (p *CAPool) Len() int {
	if p == nil {
		return 0
	}
	return len(p.cas)
}

// CAs returns p's CA certificates sorted by name (copies; for printing and
// for expiry warnings about the CAs themselves).
func (p *CAPool) CAs() []*Certificate {
	if p == nil {
		return nil
	}
	out := make([]*Certificate, 0, len(p.cas))
	for _, e := range p.cas {
		c := *e.cert
		out = append(out, &c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// lookup returns the CA named by id.
func (p *CAPool) lookup(id IssuerID) (poolEntry, bool) {
	if p == nil {
		return poolEntry{}, false
	}
	e, ok := p.cas[id]
	return e, ok
}

// ExpiringWithin returns the pool's CAs whose validity ends within d after
// now (also those already expired), for a warning ahead of time.
func (p *CAPool) ExpiringWithin(now time.Time, d time.Duration) []*Certificate {
	var out []*Certificate
	for _, c := range p.CAs() {
		if c.TimeLeft(now) < d {
			out = append(out, c)
		}
	}
	return out
}
