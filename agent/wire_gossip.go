package agent

import (
	"net/netip"

	"github.com/weftnet/weft/agent/api"
	"github.com/weftnet/weft/agent/gossip"
	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/discovery/membership"
	"github.com/weftnet/weft/l2"
)

// The gossip subsystem (agent/gossip) as the agent wires it: it gets this host's settings,
// the datapath's add/remove of a member's peer, the CA configuration and the claim policy;
// the catalog and the policy follow members through its one fan-out (Subscribe).

// gossipGlue is the gossip subsystem with the names the rest of the agent root calls it by
// (a.gsp.c, a.gsp.isRefused, …), so that those callers need not change while they move to
// their own packages; a caller that takes a Deps struct gets the exported methods instead.
type gossipGlue struct {
	*gossip.Gossip
	c *membership.Cluster // the Serf cluster: tags of the catalog and policy, user events
}

func newGossipGlue(g *gossip.Gossip) *gossipGlue { return &gossipGlue{Gossip: g, c: g.Cluster()} }

func (g *gossipGlue) isRefused(name string) bool       { return g.IsRefused(name) }
func (g *gossipGlue) nameOf(k crypto.PublicKey) string { return g.NameOf(k) }
func (g *gossipGlue) members() []api.Member            { return g.APIMembers() }
func (g *gossipGlue) subnet() netip.Prefix             { return g.Subnet() }
func (g *gossipGlue) addr() string                     { return g.Addr() }
func (g *gossipGlue) join(addrs []string) (int, error) { return g.Join(addrs) }
func (g *gossipGlue) leave() error                     { return g.Leave() }

// retryJoin is the progress of gossip.retry_join, shown by `weft status`.
type retryJoin = gossip.RetryJoin

// memberPeer is what a member was applied as in the datapath, so that it can be withdrawn.
type memberPeer struct {
	key  crypto.PublicKey
	ep   netip.AddrPort // data endpoint (the plain VXLAN remote)
	mac  l2.MAC
	addr netip.Addr // overlay address: .1 of its subnet
}

func memberPeerOf(p gossip.Peer) memberPeer {
	return memberPeer{key: p.Key, ep: p.Endpoint, mac: l2.MAC(p.MAC), addr: p.Addr}
}

// gossipConfig is this host's part of the gossip subsystem's configuration.
func (a *Agent) gossipConfig() gossip.Config {
	cfg := gossip.Config{
		Name:        a.cfg.Name,
		Gossip:      a.cfg.Gossip,
		ClusterCIDR: a.cfg.ClusterCIDR.Prefix,
		Subnet:      a.cfg.Subnet.Prefix,
		StateDir:    a.cfg.StateDir,
		Node: membership.NodeInfo{
			PublicKey: a.priv.Public(),
			DataPort:  uint16(a.cfg.ListenPort),
			VNI:       a.cfg.VNI,
			Proto:     ProtocolVersion,
			Mode:      gossip.ModeByte(a.cfg.Mode, a.cfg.Encryption),
		},
	}
	if a.cfg.Mode == "l2" {
		cfg.Node.MAC = a.tapMAC()
	}
	return cfg
}

// gossipDeps is what the gossip subsystem gets of the agent.
func (a *Agent) gossipDeps() gossip.Deps {
	return gossip.Deps{
		Log:           a.log,
		PKI:           a.pki.Load,
		Policy:        a.claimPolicy, // wire_trust.go
		AddPeer:       func(p gossip.Peer, sn netip.Prefix) error { return a.dp.addMember(memberPeerOf(p), sn) },
		RemovePeer:    func(p gossip.Peer) { a.dp.removeMember(memberPeerOf(p)) },
		SubnetChanged: a.onSubnetChanged,
		Problem:       a.problem,
	}
}

// startGossip creates the Serf member and joins the configured seeds, and subscribes the
// catalog and the policy to member changes; events flow from (*gossip.Gossip).Start.
func (a *Agent) startGossip() (*gossipGlue, error) {
	g, err := gossip.New(a.gossipConfig(), a.gossipDeps())
	if err != nil {
		return nil, err
	}
	a.subscribeMembers(g)
	return newGossipGlue(g), nil
}

// subscribeMembers has the catalog and the policy follow member changes. Both are built
// after gossip (a nil glue ignores the event); the policy acts on news only.
func (a *Agent) subscribeMembers(g *gossip.Gossip) {
	g.Subscribe(func(ev gossip.Event) {
		if a.cat != nil {
			a.cat.memberEvent(ev.Event)
		}
	})
	g.Subscribe(func(ev gossip.Event) {
		if a.pol != nil && !ev.Replay {
			a.pol.memberEvent(ev.Event)
		}
	})
}

// startRetryJoin starts gossip.retry_join; giving up stops the agent (a.fatal).
func (a *Agent) startRetryJoin() (stop func()) {
	return a.gsp.StartRetryJoin(&a.rj, func(err error) {
		select {
		case a.fatal <- err:
		default:
		}
	})
}
