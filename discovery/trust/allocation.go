package trust

import (
	"sync"
	"time"

	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/discovery/membership"
	"github.com/weftnet/weft/identity"
)

// AllocationFilter is membership.Config.AcceptClaim with a CA: a member's subnet claim counts
// for this host's subnet allocation only when its certificate verifies and covers it, so a
// member without one cannot make this host move (a static claim of its /24) or withdraw.
// The verdicts are cached per certificate, name and subnet (the allocator asks every
// ReconcileInterval) and forgotten with each pki reload and every RecheckInterval.
type AllocationFilter struct {
	pki func() *PKI // the CA configuration in force; nil: no CA, every claim counts

	mu    sync.Mutex
	st    *PKI
	since time.Time
	seen  map[string]bool
}

// NewAllocationFilter returns a filter that checks against what pki returns at each call.
func NewAllocationFilter(pki func() *PKI) *AllocationFilter {
	return &AllocationFilter{pki: pki}
}

// Accept reports whether m's subnet claim counts for allocation. Safe for concurrent use.
func (f *AllocationFilter) Accept(m membership.Member) bool {
	st := f.pki()
	if st == nil {
		return true
	}
	now := time.Now()
	id := m.Name + "\x00" + m.Info.Subnet.String() + "\x00" + m.Tags[identity.TagKey]
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.st != st || now.Sub(f.since) > RecheckInterval || len(f.seen) > 4096 {
		f.st, f.since, f.seen = st, now, map[string]bool{}
	}
	if ok, cached := f.seen[id]; cached {
		return ok
	}
	cert, err := identity.DecodeTag(m.Tags[identity.TagKey])
	var claims identity.Claims
	if err == nil {
		claims, err = identity.Verify(cert, st.Pool, now, st.Blocklist)
	}
	if err == nil {
		err = claims.Check(m.Name, crypto.PublicKey(m.Info.PublicKey), m.Info.Subnet)
	}
	f.seen[id] = err == nil
	return err == nil
}
