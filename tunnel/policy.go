package tunnel

import (
	"github.com/weftnet/weft/l2"
	"github.com/weftnet/weft/peers"
	"github.com/weftnet/weft/policy"
)

// Policy is the seam to network policy. The loop asks it about every inner packet:
// Outbound after Route and before sealing, Inbound after opening, the VNI check and
// Router.Accept (cryptokey routing: the source address is bound to from), so the sender's
// identity is known. peers.DropNone passes the packet; any other reason drops it and is
// counted under that reason. Both are called concurrently by the loops, must not allocate
// and must not retain pkt or from. now is policy's monotonic clock (policy.MonotonicAt of
// the batch's one clock reading).
//
// In L2 mode (Config.NextProtoL2) the loop hands the policy the IP packet inside the
// Ethernet frame (one 802.1Q tag skipped); ARP, IPv6 neighbour discovery and other
// non-IP frames pass without asking. Config.Policy nil: no check at all (allowAll,
// chosen once in New; the loop makes the same interface call either way).
type Policy interface {
	Outbound(pkt []byte, now int64) peers.DropReason
	Inbound(pkt []byte, from *peers.Peer, now int64) peers.DropReason
}

// allowAll is the Policy of a tunnel without one.
type allowAll struct{}

func (allowAll) Outbound([]byte, int64) peers.DropReason             { return peers.DropNone }
func (allowAll) Inbound([]byte, *peers.Peer, int64) peers.DropReason { return peers.DropNone }

// EnginePolicy enforces a policy.Engine. Identity returns the identity of the sender of
// pkt, an inbound packet from a peer (host name and groups, from its certificate or,
// without a CA, from gossip; a peer that forwards for others, as a host does for its
// WireGuard clients, may stand for several, told apart by pkt's source address); it is
// called for every inbound packet, must not allocate, block or retain pkt, and may return
// nil for a sender it does not know (then only any, cidrs and services selectors match it). The Engine's own
// reasons map onto the loop's: policy_denied and policy_fragment_unknown count as
// DropPolicyDenied, policy_malformed as DropMalformed (Engine.Stats keeps them apart,
// Set.Stats counts per rule).
type EnginePolicy struct {
	Engine   *policy.Engine
	Identity func(pkt []byte, from *peers.Peer) *policy.Endpoint
}

var _ Policy = (*EnginePolicy)(nil)

// Outbound judges a packet this host sends.
func (e *EnginePolicy) Outbound(pkt []byte, now int64) peers.DropReason {
	return dropOf(e.Engine.Outbound(pkt, now))
}

// Inbound judges a packet from a peer.
func (e *EnginePolicy) Inbound(pkt []byte, from *peers.Peer, now int64) peers.DropReason {
	return dropOf(e.Engine.Inbound(pkt, e.Identity(pkt, from), now))
}

func dropOf(v policy.Verdict) peers.DropReason {
	switch {
	case v.Decision != policy.Denied:
		return peers.DropNone
	case v.Reason == policy.ReasonMalformed:
		return peers.DropMalformed
	case v.Reason == policy.ReasonFlowQuota:
		return peers.DropPolicyFlowQuota
	}
	return peers.DropPolicyDenied
}

// l2Policy hands a Policy the IP packet inside an Ethernet frame.
type l2Policy struct{ p Policy }

func (l l2Policy) Outbound(frame []byte, now int64) peers.DropReason {
	switch ip, judge, bad := ipInFrame(frame); {
	case bad:
		return peers.DropMalformed
	case judge:
		return l.p.Outbound(ip, now)
	}
	return peers.DropNone
}

func (l l2Policy) Inbound(frame []byte, from *peers.Peer, now int64) peers.DropReason {
	switch ip, judge, bad := ipInFrame(frame); {
	case bad:
		return peers.DropMalformed
	case judge:
		return l.p.Inbound(ip, from, now)
	}
	return peers.DropNone
}

// ipInFrame returns the IP packet of an Ethernet frame that the policy judges, behind any
// VLAN tags the l2 router accepts (it reads the frame with the same l2.ParseEthernet, so
// the two never disagree about what is IP); judge is false for ARP, neighbour discovery
// (ICMPv6 133-136 right after the IPv6 header, as NDP is sent; redirects, 137, are judged)
// and every other non-IP frame, which pass. bad: a frame l2 cannot parse (runt, more VLAN
// tags than it reads), refused, never passed unjudged.
func ipInFrame(f []byte) (ip []byte, judge, bad bool) {
	eth, err := l2.ParseEthernet(f)
	if err != nil {
		return nil, false, true
	}
	ip = f[eth.PayloadOffset:]
	switch eth.EtherType {
	case l2.EtherTypeIPv4:
		return ip, true, false
	case l2.EtherTypeIPv6:
		if len(ip) >= 41 && ip[6] == 58 && ip[40] >= 133 && ip[40] <= 136 {
			return nil, false, false
		}
		return ip, true, false
	}
	return nil, false, false
}
