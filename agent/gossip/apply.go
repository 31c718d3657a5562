package gossip

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/discovery/membership"
	"github.com/weftnet/weft/discovery/trust"
	"github.com/weftnet/weft/identity"
	"github.com/weftnet/weft/peers"
)

// Members are applied by the event goroutine alone (one writer of the peer table):
//
//	Serf event ──▶ handle ──▶ Apply (trust checks, Deps.AddPeer / RemovePeer) ──▶ bus
//	                  │ a peer withdrawn: resync the others (a prefix returns to its holder)
//	                  └ subnet changed: Deps.SubnetChanged, then Resync (replayed on the bus)

// Resync applies every member and withdraws the peers of members that are gone entirely;
// each member's state is replayed to the subscribers (Event.Replay). The event loop calls it
// after dropped events, every trust.RecheckInterval with a CA and on Revalidate; call it
// yourself only while the loop does not run (tests).
func (g *Gossip) Resync() {
	present := map[string]bool{}
	ms := g.c.Members()
	g.round(ms)
	for _, m := range ms {
		present[m.Name] = true
		g.Apply(m)
		g.bus.publish(Event{Event: membership.Event{Type: membership.EventUpdate, Member: m}, Replay: true})
	}
	g.mu.Lock()
	applied := make(map[string]bool, len(g.keys))
	for name := range g.keys {
		applied[name] = true
	}
	g.mu.Unlock()
	var gone []string
	for _, known := range []map[string]bool{applied, g.ledger.Known()} {
		for name := range known {
			if !present[name] && !slices.Contains(gone, name) {
				gone = append(gone, name)
			}
		}
	}
	for _, name := range gone {
		g.ledger.Incumbency().Reaped(name)
		g.ledger.Forget(name)
		g.remove(name)
		g.bus.publish(Event{Event: membership.Event{Type: membership.EventReap, Member: membership.Member{Name: name}}, Replay: true})
	}
}

// HandleEvent is the event loop's handling of one membership event: the member applied,
// the others resynced where a prefix was withdrawn, then the event published to the
// subscribers. Call it only while the loop does not run (the scale harness, tests).
func (g *Gossip) HandleEvent(ev membership.Event) { g.handle(ev) }

func (g *Gossip) handle(ev membership.Event) {
	switch ev.Type {
	case membership.EventJoin, membership.EventUpdate, membership.EventLeave, membership.EventFailed, membership.EventReap:
		g.events.member(ev)
		withdrew := g.Apply(ev.Member)
		if ev.Type == membership.EventReap && g.ledger.Incumbency().Reaped(ev.Member.Name) {
			withdrew = true // its /24 is free: a member refused on it may hold it now
		}
		if withdrew {
			g.resync(ev.Member.Name)
		}
	case membership.EventSubnetChanged:
		g.log.Info("subnet changed", "subnet", ev.Subnet)
		g.deps.SubnetChanged(ev.Subnet)
		g.Resync() // a claim refused for overlapping the old subnet may be fine now
	case membership.EventSubnetConflict:
		g.log.Error("subnet conflict", "err", ev.Err)
		g.deps.Problem(ev.Err.Error())
	}
	g.bus.publish(Event{Event: ev})
}

// resync re-applies every live member but one. After a member's prefixes are withdrawn, a
// prefix it had taken over from another member (two claims in flight, last writer wins)
// returns to the member that still announces it.
func (g *Gossip) resync(except string) {
	if g.c == nil {
		return // tests that apply members by hand
	}
	for _, m := range g.c.Members() {
		if m.Name != except && m.Status == membership.StatusAlive {
			g.Apply(m)
		}
	}
}

// ApplyRound applies members first seen together (Start, Resync): without a CA, a free /24
// that several of them claim is held by none of them (trust.Incumbency.Round), so the order
// of the member list decides nothing. Call it only while the event loop does not run (tests).
func (g *Gossip) ApplyRound(ms []membership.Member) {
	g.round(ms)
	for _, m := range ms {
		g.Apply(m)
	}
}

// round records, without a CA, the /24 claims of ms that pass the member checks as first
// seen together.
func (g *Gossip) round(ms []membership.Member) {
	if g.deps.PKI() != nil {
		return
	}
	pol := g.deps.Policy(time.Now())
	var hs []trust.Holding
	for _, m := range ms {
		if !g.peerable(m) {
			continue
		}
		if _, err := trust.CheckClaim(pol, trust.MemberClaim{Name: m.Name, Info: m.Info}); err != nil {
			continue
		}
		hs = append(hs, trust.Holding{Name: m.Name, Subnet: m.Info.Subnet})
	}
	g.ledger.Incumbency().Round(hs)
}

// peerable reports whether m is a candidate for peering: alive, another host, its tags
// usable, with a subnet, of this host's mode and VNI.
func (g *Gossip) peerable(m membership.Member) bool {
	return m.Name != g.cfg.Name && m.Status == membership.StatusAlive && m.InfoErr == nil && m.Info.Subnet.IsValid() &&
		m.Info.Mode == g.cfg.Node.Mode && m.Info.VNI == g.cfg.Node.VNI
}

// Apply makes the peer table agree with one member's state, after checking its claims
// (discovery/trust). It reports whether prefixes were withdrawn (the caller then resyncs the
// others). The event loop calls it; call it yourself only while the loop does not run
// (tests that drive the glue with forged members).
func (g *Gossip) Apply(m membership.Member) (withdrew bool) {
	return g.applyMember(m, true)
}

// applyMember is Apply; with cascade, the other members announcing the same public key (or
// the one m announced before) are re-applied, since their duplicate-key status may change.
func (g *Gossip) applyMember(m membership.Member, cascade bool) (withdrew bool) {
	if m.Name == g.cfg.Name {
		return false
	}
	if m.Status != membership.StatusAlive || m.InfoErr != nil || !m.Info.Subnet.IsValid() {
		if m.InfoErr != nil && m.Status == membership.StatusAlive {
			g.log.Warn("member has unusable tags", "member", m.Name, "err", m.InfoErr)
		}
		return g.withhold(m, cascade)
	}
	if own := g.cfg.Node.Mode; m.Info.Mode != own {
		g.log.Warn("member runs another datapath mode; not peering", "member", m.Name,
			"its_mode", modeName(m.Info.Mode), "our_mode", modeName(own))
		return g.withhold(m, cascade)
	}
	if m.Info.VNI != g.cfg.Node.VNI {
		g.log.Warn("member is on another VNI; not peering", "member", m.Name, "vni", m.Info.VNI)
		return g.withhold(m, cascade)
	}
	key := crypto.PublicKey(m.Info.PublicKey)
	now := time.Now()
	pol := g.deps.Policy(now)
	claims, cerr := trust.CheckClaim(pol, trust.MemberClaim{Name: m.Name, Info: m.Info, Cert: m.Tags[identity.TagKey]})
	others, dup := g.ledger.Candidate(m, cerr == nil)
	if cerr == nil && dup {
		cerr = trust.Refuse(trust.ReasonDuplicateKey, "public key %s is also announced by %s: peered with neither", key, strings.Join(others, ", "))
	}
	if g.deps.PKI() == nil {
		// Shared-key mode: nothing but who came first binds a name or a /24 to a key.
		var freed bool
		if cerr == nil {
			cerr = g.ledger.Incumbency().BindName(m.Name, key, now, g.reapAfter())
		}
		if cerr == nil {
			wins := m.Info.Static && slices.ContainsFunc(pol.AllowedStatic, func(a netip.Prefix) bool { return trust.PrefixWithin(m.Info.Subnet, a) })
			freed, cerr = g.ledger.Incumbency().Claim(m.Name, m.Info.Subnet, wins)
		} else {
			freed = g.ledger.Incumbency().Keep(m.Name, m.Info.Subnet)
		}
		withdrew = freed
	}
	g.ledger.Note(m.Name, trust.Verdict{Claims: claims, Err: cerr})
	if cascade {
		defer g.reapply(others)
	}
	if cerr != nil {
		return g.remove(m.Name) || withdrew
	}
	p := Peer{Key: key, Endpoint: netip.AddrPortFrom(m.Addr.Addr(), m.Info.DataPort), MAC: m.Info.MAC,
		Addr: m.Info.Subnet.Masked().Addr().Next()}
	g.mu.Lock()
	old, had := g.keys[m.Name]
	g.mu.Unlock()
	if had && old != p {
		withdrew = g.remove(m.Name) || withdrew
	}
	g.mu.Lock()
	g.keys[m.Name], g.names[key] = p, m.Name
	g.mu.Unlock()
	switch err := g.deps.AddPeer(p, m.Info.Subnet); {
	case errors.Is(err, peers.ErrPrefixMoved):
		// Applied: a subnet moved between members (a conflict resolved); say so.
		g.log.Info("peer from gossip took over a prefix", "member", m.Name, "err", err)
	case err != nil:
		g.log.Warn("peer from gossip", "member", m.Name, "err", err)
	}
	return withdrew
}

// withhold withdraws a member that is no candidate for peering (gone, no subnet yet, another
// mode or VNI): it claims nothing, so it is no refusal.
func (g *Gossip) withhold(m membership.Member, cascade bool) bool {
	others, _ := g.ledger.Candidate(m, false)
	g.ledger.Forget(m.Name)
	if m.Status != membership.StatusAlive {
		g.ledger.Incumbency().Away(m.Name, time.Now())
	}
	freed := g.ledger.Incumbency().Release(m.Name) // a failed or left member holds nothing (the allocator's rule)
	withdrew := g.remove(m.Name) || freed
	if cascade {
		g.reapply(others)
	}
	return withdrew
}

// reapply applies the named members again, without cascading further.
func (g *Gossip) reapply(names []string) {
	if len(names) == 0 {
		return
	}
	for _, m := range g.ledger.CandidateMembers(names) {
		g.applyMember(m, false)
	}
}

// remove withdraws a member's peer; it reports whether there was one.
func (g *Gossip) remove(name string) bool {
	g.mu.Lock()
	p, ok := g.keys[name]
	if ok {
		delete(g.keys, name)
		if g.names[p.Key] == name {
			delete(g.names, p.Key)
		}
	}
	g.mu.Unlock()
	if !ok {
		return false
	}
	g.deps.RemovePeer(p)
	return true
}
