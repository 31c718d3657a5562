package trust

// Incumbency: without a CA nothing binds a /24 or a node name to a key, so every host
// remembers who had them first and refuses a later claim on them.
//
//	claim passes CheckClaim ──▶ BindName (name → first key) ──▶ Claim (/24 → first holder) ──▶ peer
//	                                   │ name_key_changed            │ subnet_held, subnet_contested
//	                                   └──────────────▶ refused: not peered, no services, no DNS name
//
// A /24 is held by the first member whose claim this host accepted; it is freed when the
// holder stops announcing it: it moves, it is no longer alive (left or failed: the allocator's
// rule, a failed member holds nothing), or it is reaped. Claims first seen together (Round:
// this host's start, a resync) on a free /24 make a tie that nobody holds while more than one
// of them announces it: a member cannot win a tie by choosing a key that sorts low. The
// allocators of the tied members move them (discovery/membership), so the tie ends.
//
// A node name stays bound to the first public key accepted under it until the member is
// reaped (Serf forgets it after ReconnectTimeout or TombstoneTimeout) or has been away that
// long: a host that takes a dead host's name (Serf frees it after DeadNodeReclaimTime) with
// another key does not get its `host:` rules, services or NAME.node.weft.
//
// With a CA the certificates bind both, and the gossip glue does not consult this.

import (
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/weftnet/weft/crypto"
)

// Holding is one member's announced /24, as Round sees it.
type Holding struct {
	Name   string
	Subnet netip.Prefix
}

// Incumbency remembers who holds each /24 and each node name. Safe for concurrent use.
type Incumbency struct {
	mu      sync.Mutex
	slots   map[netip.Prefix]*slot
	claimOf map[string]netip.Prefix // member → the /24 it holds or is tied on
	names   map[string]*binding     // member name → the key first accepted under it
}

// slot is one /24: a holder, or (holder "") the members tied on it.
type slot struct {
	holder string
	wins   bool // the holder's claim is static inside gossip.allowed_static
	tied   []string
}

// binding is a name's key and since when the member is away (zero while alive).
type binding struct {
	key  crypto.PublicKey
	away time.Time
}

// NewIncumbency returns an empty memory.
func NewIncumbency() *Incumbency {
	return &Incumbency{slots: map[netip.Prefix]*slot{}, claimOf: map[string]netip.Prefix{}, names: map[string]*binding{}}
}

// Round records claims first seen together (members that already hold or are tied on what
// they announce are left as they are): a free /24 claimed by several of them is tied, held by
// none. The caller then applies each member (Claim).
func (in *Incumbency) Round(hs []Holding) {
	in.mu.Lock()
	defer in.mu.Unlock()
	fresh := map[netip.Prefix][]string{}
	for _, h := range hs {
		if in.claimOf[h.Name] == h.Subnet || in.slots[h.Subnet] != nil {
			continue
		}
		if !slices.Contains(fresh[h.Subnet], h.Name) {
			fresh[h.Subnet] = append(fresh[h.Subnet], h.Name)
		}
	}
	for sn, names := range fresh {
		if len(names) < 2 {
			continue // one claimant: Claim gives it the /24
		}
		for _, n := range names {
			in.releaseLocked(n)
			in.claimOf[n] = sn
		}
		slices.Sort(names)
		in.slots[sn] = &slot{tied: names}
	}
}

// Claim checks member name's claim of sn: it holds sn when sn is free (or it is the last of
// a tie), and is refused when another member holds it or several are tied on it. wins marks
// a static claim inside gossip.allowed_static, which the operator lets displace a holder
// whose claim is not such (the displaced member is refused from then on, and its allocator
// moves it). The member's previous /24 is released, or a holder displaced; freed reports it
// (the caller re-applies the others: a member refused on it may hold it now, a displaced one
// is withdrawn).
func (in *Incumbency) Claim(name string, sn netip.Prefix, wins bool) (freed bool, err *ClaimError) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if prev, ok := in.claimOf[name]; ok && prev != sn {
		freed = in.releaseLocked(name)
	}
	s := in.slots[sn]
	switch {
	case s == nil:
		in.slots[sn] = &slot{holder: name, wins: wins}
		in.claimOf[name] = sn
		return freed, nil
	case s.holder == name:
		s.wins = wins
		return freed, nil
	case wins && !s.wins:
		for _, n := range append([]string{s.holder}, s.tied...) {
			if n != "" {
				delete(in.claimOf, n)
			}
		}
		in.slots[sn] = &slot{holder: name, wins: true}
		in.claimOf[name] = sn
		return true, nil
	case s.holder != "":
		return freed, Refuse(ReasonSubnetHeld, "announces %s, which member %q holds: a claim on a /24 that an alive member holds is refused (it is accepted once %q moves, leaves or fails)", sn, s.holder, s.holder)
	case slices.Equal(s.tied, []string{name}):
		s.holder, s.tied = name, nil
		return freed, nil
	case slices.Contains(s.tied, name):
		return freed, Refuse(ReasonSubnetContested, "announces %s, which members %s claimed at the same time: neither holds it until the others move", sn, strings.Join(s.tied, ", "))
	}
	return freed, Refuse(ReasonSubnetHeld, "announces %s, which members %s claimed first (a tie that is not settled yet)", sn, strings.Join(s.tied, ", "))
}

// Keep releases what member name holds unless it is sn (the member, refused for another
// reason, may still announce the /24 it holds); it reports whether something was released.
func (in *Incumbency) Keep(name string, sn netip.Prefix) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	if prev, ok := in.claimOf[name]; ok && prev != sn {
		return in.releaseLocked(name)
	}
	return false
}

// Release frees what member name holds or is tied on (it is gone, no longer alive, or
// announces nothing); it reports whether there was something.
func (in *Incumbency) Release(name string) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.releaseLocked(name)
}

func (in *Incumbency) releaseLocked(name string) bool {
	sn, ok := in.claimOf[name]
	if !ok {
		return false
	}
	delete(in.claimOf, name)
	if s := in.slots[sn]; s != nil {
		if s.holder == name {
			delete(in.slots, sn)
		} else if s.tied = slices.DeleteFunc(s.tied, func(n string) bool { return n == name }); len(s.tied) == 0 && s.holder == "" {
			delete(in.slots, sn)
		}
	}
	return true
}

// Holder is the member that holds sn ("" when none: free or tied).
func (in *Incumbency) Holder(sn netip.Prefix) string {
	in.mu.Lock()
	defer in.mu.Unlock()
	if s := in.slots[sn]; s != nil {
		return s.holder
	}
	return ""
}

// BindName checks that name is announced with the key first accepted under it. A different
// key is refused until the member that held the name has been away for reapAfter (Serf's
// reap time); a free name is bound to key.
func (in *Incumbency) BindName(name string, key crypto.PublicKey, now time.Time, reapAfter time.Duration) *ClaimError {
	in.mu.Lock()
	defer in.mu.Unlock()
	b := in.names[name]
	switch {
	case b == nil:
		in.names[name] = &binding{key: key}
	case b.key == key:
		b.away = time.Time{}
	case !b.away.IsZero() && now.Sub(b.away) >= reapAfter:
		in.names[name] = &binding{key: key}
	default:
		return Refuse(ReasonNameKeyChanged, "member name %q was announced with public key %s and now with %s: the new key gets neither the name's peering, services, DNS name nor host: rules until the old member is reaped (or, for a host rebuilt with a new key: restart the other agents, or give it a new name)", name, b.key, key)
	}
	return nil
}

// Away notes that the member holding name is no longer alive (left, failed): its name
// binding ages from now.
func (in *Incumbency) Away(name string, now time.Time) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if b := in.names[name]; b != nil && b.away.IsZero() {
		b.away = now
	}
}

// Reaped forgets everything about a member Serf forgot: its /24 and its name.
func (in *Incumbency) Reaped(name string) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	delete(in.names, name)
	return in.releaseLocked(name)
}
