package agent

import (
	"testing"

	"github.com/weftnet/weft/agent/config"
	"github.com/weftnet/weft/discovery/membership"
)

// TestPolicyWiring_RefusedMember: a gossip-key holder announcing this host's /24 is refused
// by the claim checks, and the network-policy subsystem is told so through Deps.Trusted
// (which leaves it out of the address index: netpolicy's
// TestPolicyGlue_RefusedMemberNamesNobody); an honest member is not refused.
func TestPolicyWiring_RefusedMember(t *testing.T) {
	a, g := trustAgent(t, config.DefaultConfig())
	a.gsp = g.Gossip
	a.subnet = pfx("10.42.6.0/24")
	info := func(sn string) membership.NodeInfo {
		return membership.NodeInfo{PublicKey: newKey(t).Public(), Subnet: pfx(sn), DataPort: 51820, VNI: 1, Mode: modeByte("l3", "wireguard")}
	}
	evil, honest := liveMember("evil", info("10.42.6.0/24")), liveMember("db", info("10.42.7.0/24"))
	g.apply(evil)
	g.apply(honest)
	if _, ok := g.refusedReason("evil"); !ok {
		t.Fatal("the claim of this host's subnet was not refused")
	}
	d := policyDeps(a)
	if d.Trusted == nil || d.Trusted("evil") {
		t.Fatal("the policy subsystem is not told the member is refused")
	}
	if !d.Trusted("db") {
		t.Fatal("the honest member is not trusted")
	}
	if _, err := newPolicy(a); err != nil {
		t.Fatal(err)
	}
}
