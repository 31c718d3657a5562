package netpolicy

import (
	"net/netip"

	"github.com/weftnet/weft/agent/internal/clienttag"
	"github.com/weftnet/weft/discovery/membership"
)

// WireGuard clients of other hosts. A host forwards for its stock WireGuard clients from
// addresses of its own /24 and announces them in its clienttag.Key tag; every host then
// judges a packet from such an address as the client (ClientIdentity, no groups), never as
// the host, both when the host's peer delivers it (ident.of) and when the address is
// resolved (the address index, a host route more specific than the host's /24).
//
// The announcement is a claim like any other: its addresses must lie in the /24 the
// announcing member holds, as accepted by the trust checks (with a cluster CA, inside the
// prefixes its certificate binds; a member whose subnet is refused is not indexed at
// all). A member cannot call another host's addresses "clients" to change how they are
// judged. A tag that does not decode or reaches outside the member's /24 is dropped whole
// and counted by reason (weft_policy_client_tags_refused_total), once per value a member
// announces, however often the snapshots are rebuilt.

// Reasons a member's client tag is refused.
const (
	clientTagMalformed     = "malformed"      // does not decode (clienttag.Decode)
	clientTagOutsideSubnet = "outside_subnet" // names a /24 other than the member's
)

// clientsOf returns the client addresses member m announces, after the checks above
// (nil when it announces none or its tag is refused). Called at every rebuild.
func (p *Policy) clientsOf(m membership.Member) []netip.Addr {
	v, ok := m.Tags[clienttag.Key]
	if !ok || v == "" {
		return nil
	}
	set, err := clienttag.Decode(v)
	reason := ""
	switch {
	case err != nil:
		reason = clientTagMalformed
	case set.Net != m.Info.Subnet.Masked():
		reason = clientTagOutsideSubnet
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if reason == "" {
		delete(p.clientTagSeen, m.Name) // a later refusal of the same value counts again
		return set.Addrs
	}
	if p.clientTagSeen[m.Name] != v {
		p.clientTagSeen[m.Name] = v
		p.clientTagRefused[reason]++
		p.log.Warn("refused a member's WireGuard client announcement: its clients are judged as the member itself",
			"member", m.Name, "subnet", m.Info.Subnet, "tag", v, "reason", reason, "err", err)
	}
	return nil
}

// ClientTagsRefused returns how many client announcements were refused, by reason.
func (p *Policy) ClientTagsRefused() map[string]uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]uint64, len(p.clientTagRefused))
	for r, n := range p.clientTagRefused {
		out[r] = n
	}
	return out
}
