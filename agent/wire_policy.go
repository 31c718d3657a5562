package agent

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"os"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/weftnet/weft/agent/netpolicy"
	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/discovery/membership"
	"github.com/weftnet/weft/identity"
	"github.com/weftnet/weft/internal/fsutil"
	"github.com/weftnet/weft/policy"
	"github.com/weftnet/weft/tunnel"
)

// Wiring of the network-policy subsystem (agent/netpolicy, which spreads signed documents
// through discovery/policydist).

// policyGlue is the network-policy subsystem as the agent holds it (a.pol). The short
// lower-case names are the ones the rest of the root calls.
type policyGlue struct {
	*netpolicy.Policy
	hook *tunnel.EnginePolicy // the tunnel's Policy hook (datapath.go)
}

// newPolicyGlue builds the subsystem; called once gossip exists and the overlay address
// is known, before the datapath.
func newPolicyGlue(a *Agent) (*policyGlue, error) {
	p, err := netpolicy.New(policyDeps(a))
	if err != nil {
		return nil, err
	}
	return &policyGlue{Policy: p, hook: p.Hook()}, nil
}

func (g *policyGlue) start() error                    { return g.Start() }
func (g *policyGlue) run(ctx context.Context)         { g.Run(ctx) }
func (g *policyGlue) close()                          { g.Close() }
func (g *policyGlue) memberEvent(ev membership.Event) { g.MemberEvent(ev) }
func (g *policyGlue) kickRebuild()                    { g.KickRebuild() }

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
		PublicKey: a.priv.Public(),
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
		d.Refused = g.IsRefused
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
	if k == a.priv.Public() {
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

func (a *Agent) policy() *netpolicy.Policy {
	if a.pol == nil {
		return nil
	}
	return a.pol.Policy
}

// writeFileAtomic is fsutil.WriteFileAtomic for clients.go and cni.go until they call it
// themselves.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	return fsutil.WriteFileAtomic(path, data, perm)
}
