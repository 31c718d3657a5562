package agent

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/weftnet/weft/agent/netpolicy"
	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/identity"
	"github.com/weftnet/weft/policy"
)

// Wiring of the network-policy subsystem (agent/netpolicy, which spreads signed documents
// through discovery/policydist).

// newPolicy builds the subsystem; called once gossip exists and the overlay address
// is known, before the datapath.
func newPolicy(a *Agent) (*netpolicy.Policy, error) { return netpolicy.New(policyDeps(a)) }

// policyDeps is what the subsystem gets of the agent. The functions read the agent when
// called: the catalog starts after the subsystem, gossip may move the subnet.
func policyDeps(a *Agent) netpolicy.Deps {
	d := netpolicy.Deps{
		Config: netpolicy.Config{
			Name:            a.cfg.Name,
			Groups:          a.cfg.Groups,
			StateDir:        a.cfg.StateDir,
			PolicyFile:      a.cfg.PolicyFile,
			PolicyCAFile:    a.cfg.PolicyCAFile,
			PKICA:           a.cfg.PKI.CA,
			MaxFlows:        a.cfg.PolicyMaxFlows,
			MaxFlowsPerPeer: a.cfg.PolicyMaxFlowsPerPeer,
			PlainL2:         a.cfg.Mode == "l2" && a.cfg.Encryption == "none",
		},
		PublicKey: a.publicKey(),
		Logger:    a.log,
		Self: func() (netip.Prefix, netip.Addr) {
			a.mu.Lock()
			defer a.mu.Unlock()
			return a.subnet, a.address
		},
		CertGroups: a.certGroups,
		Blocklist: func() *identity.Blocklist {
			if st := a.pki.Load(); st != nil {
				return st.Blocklist
			}
			return nil
		},
		StaticPeers: func() []string {
			keys := make([]string, 0, len(a.cfg.Peers))
			for _, p := range a.cfg.Peers {
				keys = append(keys, p.PublicKey)
			}
			return keys
		},
		Clients: a.clientList,
		// Every instance, passing or not: policy is about who may talk to the port,
		// health about whom to send to.
		Instances: func(name string) []policy.Instance {
			if a.cat == nil {
				return nil
			}
			var out []policy.Instance
			for _, in := range a.cat.cat.Instances(name, false) {
				out = append(out, policy.Instance{Addr: in.Addr, Port: in.Service.Port})
			}
			return out
		},
		WaitCatalog: func(ctx context.Context, idx uint64) (uint64, error) {
			if a.cat == nil {
				return 0, errNoCatalog
			}
			return a.cat.cat.Wait(ctx, idx)
		},
	}
	if g := a.gsp; g != nil {
		d.Members = g.Cluster().Members
		d.SetTag = g.Cluster().SetTag
		d.UserEvent = g.Cluster().UserEvent
		d.Trusted = g.Trusted
	}
	return d
}

var errNoCatalog = errors.New("no catalog")

// certGroups is the groups a cluster CA (pki.ca) vouches for: this host's own
// certificate's (none while it is not valid), a member's verified certificate's; ok is
// false without a CA.
func (a *Agent) certGroups(k crypto.PublicKey) ([]string, bool) {
	st := a.pki.Load()
	if st == nil {
		return nil, false
	}
	if k == a.publicKey() {
		if st.OwnErr != nil {
			return nil, true
		}
		return slices.Clone(st.OwnClaims.Groups), true
	}
	return a.peerGroups(k), true
}

// policyRoutes adds the /v1/policy routes (answering 503 until Run has built a.pol).
func (a *Agent) policyRoutes(mux *http.ServeMux) { netpolicy.Routes(mux, a.policy) }

// newPolicyCollector exports the weft_policy_* metrics.
func newPolicyCollector(a *Agent) prometheus.Collector { return netpolicy.NewCollector(a.policy) }

// policy is the subsystem, nil until Run builds it.
func (a *Agent) policy() *netpolicy.Policy { return a.pol }
