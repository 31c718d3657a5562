package trust

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/discovery/membership"
	"github.com/weftnet/weft/identity"
)

// Verdict is the outcome of the checks for one member.
type Verdict struct {
	Claims identity.Claims // its verified certificate's claims (zero without a CA)
	Err    *ClaimError     // nil: accepted
}

// Refusal is a member's current refusal as shown and logged.
type Refusal struct {
	Reason, Detail string
}

// Ledger keeps the verdicts on members' claims: who is refused and why (logged and counted
// once per change), the claims of verified certificates, and the candidates (members that
// pass every check but the duplicate-key one) with their public keys. Safe for concurrent use.
type Ledger struct {
	log *slog.Logger

	mu           sync.Mutex
	refused      map[string]Refusal            // member name → why its claims are refused
	claims       map[string]identity.Claims    // member name → its verified certificate (CA only)
	cands        map[string]crypto.PublicKey   // members passing every check but the duplicate key one
	candsByKey   map[crypto.PublicKey][]string // the same, by key (a duplicate is found without a scan)
	candMembers  map[string]membership.Member  // their last state, to re-apply them
	refusedCount map[string]uint64             // weft_gossip_claims_refused_total by reason

	inc *Incumbency // who holds each /24 and name without a CA
}

// NewLedger returns an empty ledger that logs refusals and their end to log.
func NewLedger(log *slog.Logger) *Ledger {
	return &Ledger{log: log, refused: map[string]Refusal{}, claims: map[string]identity.Claims{},
		cands: map[string]crypto.PublicKey{}, candsByKey: map[crypto.PublicKey][]string{}, candMembers: map[string]membership.Member{}, refusedCount: map[string]uint64{},
		inc: NewIncumbency()}
}

// Incumbency is the memory of who holds each /24 and node name, for shared-key mode.
func (l *Ledger) Incumbency() *Incumbency { return l.inc }

// Note records a member's verdict; a refusal is logged and counted once per change of
// reason or detail, and its end is logged too.
func (l *Ledger) Note(name string, v Verdict) {
	l.mu.Lock()
	old, had := l.refused[name]
	if v.Err == nil {
		delete(l.refused, name)
		if v.Claims.Name != "" {
			l.claims[name] = v.Claims
		} else {
			delete(l.claims, name)
		}
		l.mu.Unlock()
		if had {
			l.log.Info("member's claims are accepted again", "member", name, "was", old.Reason)
		}
		return
	}
	delete(l.claims, name)
	detail := v.Err.Detail
	if len(detail) > maxRefusalDetailBytes {
		detail = detail[:maxRefusalDetailBytes] + "…"
	}
	r := Refusal{Reason: v.Err.Reason, Detail: detail}
	changed := !had || old != r
	if changed {
		l.refused[name] = r
		l.refusedCount[r.Reason]++
	}
	l.mu.Unlock()
	if changed {
		l.log.Warn("member's claims refused; not peering", "member", name, "reason", r.Reason, "detail", r.Detail)
	}
}

// Forget drops a member's verdict (gone, or not a candidate: no subnet, another mode).
func (l *Ledger) Forget(name string) {
	l.mu.Lock()
	delete(l.refused, name)
	delete(l.claims, name)
	if key, ok := l.cands[name]; ok {
		l.dropCandLocked(name, key)
	}
	delete(l.cands, name)
	delete(l.candMembers, name)
	l.mu.Unlock()
}

// Refused is a member's current refusal; ok is false when none.
func (l *Ledger) Refused(name string) (r Refusal, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r, ok = l.refused[name]
	return r, ok
}

// Claims is what the member's verified certificate claims; ok is false without one.
func (l *Ledger) Claims(name string) (c identity.Claims, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c, ok = l.claims[name]
	return c, ok
}

// Candidate records that m's claims pass every check but the duplicate one (ok) or not,
// and returns the other candidates that announce its key, before and after, so that the
// caller re-applies them: their duplicate status may have changed.
func (l *Ledger) Candidate(m membership.Member, ok bool) (others []string, dup bool) {
	name, key := m.Name, crypto.PublicKey(m.Info.PublicKey)
	l.mu.Lock()
	defer l.mu.Unlock()
	prev, had := l.cands[name]
	if had {
		l.dropCandLocked(name, prev)
	}
	if ok {
		l.cands[name], l.candMembers[name] = key, m
		l.candsByKey[key] = append(l.candsByKey[key], name)
		for _, n := range l.candsByKey[key] {
			if n != name {
				dup = true
				others = append(others, n)
			}
		}
	} else {
		delete(l.cands, name)
		delete(l.candMembers, name)
	}
	if had && (!ok || prev != key) {
		others = append(others, l.candsByKey[prev]...)
	}
	return others, dup
}

// dropCandLocked takes name out of the names that announce key.
func (l *Ledger) dropCandLocked(name string, key crypto.PublicKey) {
	names := slices.DeleteFunc(l.candsByKey[key], func(n string) bool { return n == name })
	if len(names) == 0 {
		delete(l.candsByKey, key)
	} else {
		l.candsByKey[key] = names
	}
}

// CandidateMembers returns the last state of the named candidates (those that are none are
// left out), to re-apply them.
func (l *Ledger) CandidateMembers(names []string) []membership.Member {
	l.mu.Lock()
	defer l.mu.Unlock()
	var ms []membership.Member
	for _, n := range names {
		if m, ok := l.candMembers[n]; ok {
			ms = append(ms, m)
		}
	}
	return ms
}

// Known returns the names of the members with a refusal or a candidacy.
func (l *Ledger) Known() map[string]bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]bool, len(l.refused)+len(l.cands))
	for n := range l.refused {
		out[n] = true
	}
	for n := range l.cands {
		out[n] = true
	}
	return out
}

// Duplicates lists the public keys that several live members announce (for `weft status`).
func (l *Ledger) Duplicates() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	byKey := map[crypto.PublicKey][]string{}
	for n, k := range l.cands {
		byKey[k] = append(byKey[k], n)
	}
	var out []string
	for k, names := range byKey {
		if len(names) > 1 {
			slices.Sort(names)
			out = append(out, fmt.Sprintf("public key %s is announced by members %s: peered with neither", k, strings.Join(names, ", ")))
		}
	}
	slices.Sort(out)
	return out
}

// RefusedCounts returns weft_gossip_claims_refused_total by reason, every label present.
func (l *Ledger) RefusedCounts() map[string]uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]uint64{}
	for _, r := range RefusalReasons() {
		out[r] = l.refusedCount[r]
	}
	return out
}
