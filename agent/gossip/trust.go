package gossip

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/weftnet/weft/agent/api"
	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/discovery/membership"
	"github.com/weftnet/weft/discovery/trust"
	"github.com/weftnet/weft/identity"
)

// reapAfter is how long a node name stays bound to its key after its member went away:
// Serf's reap time (membership.Config ReconnectTimeout, TombstoneTimeout) as New sets it.
func (g *Gossip) reapAfter() time.Duration {
	dc := membership.DefaultConfig()
	if g.cfg.Gossip.Fast {
		dc = membership.DefaultLocalConfig()
	}
	return max(dc.ReconnectTimeout, dc.TombstoneTimeout)
}

// staticWins is membership.Config.StaticWins: a member's static claim makes this host give
// up a /24 it holds only inside gossip.allowed_static (config.Resolve checked the prefixes).
func staticWins(allowed []string) func(netip.Prefix) bool {
	var ps []netip.Prefix
	for _, s := range allowed {
		if p, err := netip.ParsePrefix(s); err == nil {
			ps = append(ps, p.Masked())
		}
	}
	return func(sn netip.Prefix) bool {
		return slices.ContainsFunc(ps, func(a netip.Prefix) bool { return trust.PrefixWithin(sn, a) })
	}
}

// IsRefused reports whether the member's claims are refused now.
func (g *Gossip) IsRefused(name string) bool {
	_, ok := g.ledger.Refused(name)
	return ok
}

// Refused is the member's current refusal; ok is false when none.
func (g *Gossip) Refused(name string) (r trust.Refusal, ok bool) { return g.ledger.Refused(name) }

// Duplicates lists the public keys that several live members announce (for `weft status`).
func (g *Gossip) Duplicates() []string { return g.ledger.Duplicates() }

// RefusedCounts returns weft_gossip_claims_refused_total by reason, every label present.
func (g *Gossip) RefusedCounts() map[string]uint64 { return g.ledger.RefusedCounts() }

// PeerGroups returns the groups of the verified certificate of the member with public key
// key, for policy: nil without a CA, for an unknown key, or for a member that is refused.
// Safe for concurrent use.
func (g *Gossip) PeerGroups(key crypto.PublicKey) []string {
	if g.deps.PKI() == nil {
		return nil
	}
	name, ok := g.nameOfKnown(key)
	if !ok {
		return nil
	}
	c, ok := g.ledger.Claims(name)
	if !ok || len(c.Groups) == 0 {
		return nil
	}
	return slices.Clone(c.Groups)
}

func (g *Gossip) nameOfKnown(k crypto.PublicKey) (string, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	n, ok := g.names[k]
	return n, ok
}

// trustMember fills the trust part of one `weft members` row.
func (g *Gossip) trustMember(am *api.Member) {
	if r, ok := g.ledger.Refused(am.Name); ok {
		am.Refused, am.RefusedDetail = r.Reason, r.Detail
	}
	if c, ok := g.ledger.Claims(am.Name); ok {
		am.Groups = slices.Clone(c.Groups)
		am.CertNotAfter = c.NotAfter
	}
}

// announceCertificate sets this host's certificate tag before gossip joins anyone.
func (g *Gossip) announceCertificate() error {
	st := g.deps.PKI()
	if st == nil {
		return nil
	}
	if err := g.c.SetTag(identity.TagKey, st.Tag); err != nil {
		return fmt.Errorf("announce the certificate (tag %q, %d bytes): %w", identity.TagKey, len(st.Tag), err)
	}
	return nil
}

// warnExpiry logs the certificate warnings when they change state (entering the warning
// window, expiring, a CA nearing its end), not at every check. Event loop only.
func (g *Gossip) warnExpiry(now time.Time) {
	st := g.deps.PKI()
	if st == nil {
		return
	}
	state := st.WarningState(now)
	if state == g.expiryState {
		return
	}
	g.expiryState = state
	for _, w := range st.Warnings(now) {
		g.log.Warn(w)
	}
}
