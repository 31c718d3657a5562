package agent

import (
	"net/netip"

	"github.com/weftnet/weft/agent/datapath"
	"github.com/weftnet/weft/agent/gossip"
	"github.com/weftnet/weft/discovery/membership"
	"github.com/weftnet/weft/l2"
)

// The gossip subsystem (agent/gossip) as the agent wires it: it gets this host's settings,
// the datapath's add/remove of a member's peer, the CA configuration and the claim policy;
// the catalog and the policy follow members through its one fan-out (Subscribe).

// member is the datapath's view of a gossip member's peer.
func member(p gossip.Peer) datapath.Member {
	return datapath.Member{Key: p.Key, Endpoint: p.Endpoint, MAC: l2.MAC(p.MAC), Addr: p.Addr}
}

// gossipConfig is this host's part of the gossip subsystem's configuration.
func (a *Agent) gossipConfig() gossip.Config {
	cfg := gossip.Config{
		Name:        a.cfg.Name,
		Gossip:      a.cfg.Gossip,
		ClusterCIDR: a.cfg.ClusterCIDR.Prefix,
		SubnetBits:  a.cfg.SubnetLen,
		SubnetMin:   a.cfg.SubnetMin.Prefix,
		SubnetMax:   a.cfg.SubnetMax.Prefix,
		Subnet:      a.cfg.Subnet.Prefix,
		StateDir:    a.cfg.StateDir,
		Node: membership.NodeInfo{
			PublicKey: a.publicKey(),
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
		AddPeer:       func(p gossip.Peer, sn netip.Prefix) error { return a.dp.AddMember(member(p), sn) },
		RemovePeer:    func(p gossip.Peer) { a.dp.RemoveMember(member(p)) },
		SubnetChanged: a.onSubnetChanged,
		Problem:       a.problem,
	}
}

// startGossip creates the Serf member and joins the configured seeds, and subscribes the
// catalog and the policy to member changes; events flow from (*gossip.Gossip).Start.
func (a *Agent) startGossip() (*gossip.Gossip, error) {
	g, err := gossip.New(a.gossipConfig(), a.gossipDeps())
	if err != nil {
		return nil, err
	}
	a.subscribeMembers(g)
	return g, nil
}

// subscribeMembers has the catalog and the policy follow member changes. Both are built
// after gossip (a nil glue ignores the event); the policy acts on news only.
func (a *Agent) subscribeMembers(g *gossip.Gossip) {
	g.Subscribe(func(ev gossip.Event) {
		if a.cat != nil {
			a.cat.svc.MemberEvent(ev.Event)
		}
	})
	g.Subscribe(func(ev gossip.Event) {
		if a.pol != nil && !ev.Replay {
			a.pol.MemberEvent(ev.Event)
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
