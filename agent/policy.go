package agent

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weftnet/weft/agent/api"
	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/discovery/membership"
	"github.com/weftnet/weft/identity"
	"github.com/weftnet/weft/peers"
	"github.com/weftnet/weft/policy"
	"github.com/weftnet/weft/tunnel"
)

// Network policy in the agent (package policy does the judging):
//
//   - One policy.Engine per agent, created before the datapath, handed to the tunnel as a
//     tunnel.EnginePolicy (the loop's Policy hook). Without a document it allows
//     everything and tracks nothing; plain L2 (encryption: none) never enforces, it has no
//     authenticated sender, and says so at start.
//   - The Resolver (policyResolver) answers from snapshots rebuilt off the hot path:
//     membership gives each member's overlay subnet, node name and groups, the catalog
//     each service's instances. A membership or catalog change kicks a debounced rebuild
//     that also Rebinds the Set in force.
//   - Groups come from one seam, groupsOf(key): today each member's own `groups` setting
//     as it gossips it (tag "groups"), which is only as trustworthy as the gossip key:
//     any holder of the key can claim any group. With host certificates it becomes the
//     certificate's groups.
//   - The document in force: a local policy_file wins (read at start); otherwise the newest
//     CA-signed document seen (policydist.go), kept in STATE_DIR/policy.signed.

// policyGlue owns the agent's network policy.
type policyGlue struct {
	a      *Agent
	engine *policy.Engine
	hook   *tunnel.EnginePolicy
	res    *policyResolver
	cas    *identity.CAPool // trusted signers of gossiped documents; nil: none trusted
	local  *policy.Document // policy_file, when set: wins over gossip

	// groupsOf is the seam for a member's groups (see the top of this file). It is called
	// off the hot path, at every snapshot rebuild.
	groupsOf func(crypto.PublicKey) []string

	// idents maps a peer's key to its identity for Inbound (read per packet, lock-free).
	idents atomic.Pointer[map[crypto.PublicKey]*policy.Endpoint]

	kick   chan struct{}
	wg     sync.WaitGroup
	cancel context.CancelFunc

	mu        sync.Mutex
	tagGroups map[crypto.PublicKey][]string // groups gossiped by each member
	source    string                        // "none", "file" or "gossip"
	dist      distState                     // policydist.go
}

// policyVersionTag and policyGroupsTag are this agent's gossip tags: the version of the
// newest signed policy it holds (16 hex digits, a fixed width so the tag budget the
// catalog is given at start stays right) and its groups (comma-separated).
const (
	policyVersionTag = "pv"
	policyGroupsTag  = "groups"
)

func newPolicyGlue(a *Agent) (*policyGlue, error) {
	pc := policy.DefaultConfig()
	pc.MaxFlows, pc.MaxFlowsPerPeer = a.cfg.PolicyMaxFlows, a.cfg.PolicyMaxFlowsPerPeer
	e, err := policy.New(pc)
	if err != nil {
		return nil, err
	}
	g := &policyGlue{a: a, engine: e, kick: make(chan struct{}, 1), tagGroups: map[crypto.PublicKey][]string{}, source: "none"}
	g.res = &policyResolver{g: g}
	g.res.snap.Store(&addrIndex{byNet: map[netip.Prefix]*policy.Endpoint{}})
	empty := map[crypto.PublicKey]*policy.Endpoint{}
	g.idents.Store(&empty)
	g.hook = &tunnel.EnginePolicy{Engine: e, Identity: g.identity}
	g.groupsOf = g.memberGroups
	g.dist.init()
	switch {
	case a.cfg.PolicyCAFile != "":
		if g.cas, err = identity.LoadCAPoolFile(a.cfg.PolicyCAFile); err != nil {
			return nil, fmt.Errorf("policy_ca_file: %w", err)
		}
	case a.cfg.PKI.CA != "":
		// The cluster CA that signs host certificates also signs policies by default.
		if g.cas, err = identity.LoadCAPoolFile(a.cfg.PKI.CA); err != nil {
			return nil, fmt.Errorf("pki.ca (the policy's signer by default): %w", err)
		}
	}
	if a.cfg.PolicyFile != "" {
		b, err := os.ReadFile(a.cfg.PolicyFile)
		if err != nil {
			return nil, fmt.Errorf("policy_file: %w", err)
		}
		if g.local, err = policy.Parse(b); err != nil {
			return nil, fmt.Errorf("policy_file %s: %w", a.cfg.PolicyFile, err)
		}
	}
	return g, nil
}

// identity is the tunnel's Identity callback: the sender's host and groups. A static peer
// or WireGuard client has a name only for its flow quota (see rebuild): only any, cidrs
// and services match it.
func (g *policyGlue) identity(p *peers.Peer) *policy.Endpoint {
	return (*g.idents.Load())[p.Key()]
}

// memberGroups is groupsOf: with a cluster CA (pki.ca) the groups of the member's verified
// certificate (this host: its own certificate's), and nothing a member merely announces;
// without a CA the gossiped groups setting.
func (g *policyGlue) memberGroups(k crypto.PublicKey) []string {
	a := g.a
	if st := a.pki.Load(); st != nil {
		if k == a.priv.Public() {
			if st.OwnErr != nil {
				return nil
			}
			return slices.Clone(st.OwnClaims.Groups)
		}
		return a.peerGroups(k)
	}
	return g.gossipedGroups(k)
}

// gossipedGroups is groupsOf without a CA: what the member announces in its groups tag
// (this host: its own setting).
func (g *policyGlue) gossipedGroups(k crypto.PublicKey) []string {
	if k == g.a.priv.Public() {
		return g.a.cfg.Groups
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.tagGroups[k]
}

// start loads the policy in force (policy_file, else the kept signed document) and
// announces this host's tags; called after gossip exists and before the datapath starts.
func (g *policyGlue) start() error {
	a := g.a
	if a.gsp != nil {
		if err := a.gsp.c.SetTag(policyGroupsTag, strings.Join(a.cfg.Groups, ",")); err != nil {
			return fmt.Errorf("groups: %w", err)
		}
		if err := a.gsp.c.SetTag(policyVersionTag, versionTag(0)); err != nil {
			return fmt.Errorf("policy version tag: %w", err)
		}
	}
	g.rebuild()
	if g.local != nil {
		if err := g.install(g.local, "file"); err != nil {
			return fmt.Errorf("policy_file %s: %w", a.cfg.PolicyFile, err)
		}
		a.log.Info("network policy from policy_file; signed documents from gossip are kept and passed on but not enforced",
			"file", a.cfg.PolicyFile, "rules", len(g.local.Rules), "default", defaultOf(g.local))
	}
	g.loadKept()
	if a.cfg.Mode == "l2" && a.cfg.Encryption == "none" {
		a.log.Warn("plain L2 (encryption: none) does not enforce network policy: it has no authenticated sender; use encryption: wireguard")
	}
	return nil
}

func defaultOf(d *policy.Document) string {
	if d.Default == policy.ActionDeny {
		return "deny"
	}
	return "allow"
}

// install compiles doc against the resolver and puts it in force.
func (g *policyGlue) install(doc *policy.Document, source string) error {
	set, err := policy.Compile(doc, g.res)
	if err != nil {
		return err
	}
	g.mu.Lock()
	g.engine.Load(set)
	g.source = source
	g.mu.Unlock()
	return nil
}

// run follows membership and the catalog until ctx ends: rebuilds are debounced, flows are
// swept, lagging members are sent the newest document.
func (g *policyGlue) run(ctx context.Context) {
	ctx, g.cancel = context.WithCancel(ctx)
	g.wg.Add(2)
	go func() {
		defer g.wg.Done()
		sweep := time.NewTicker(10 * time.Second)
		defer sweep.Stop()
		anti := time.NewTicker(antiEntropyInterval)
		defer anti.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-g.kick:
				// Debounce: a join brings several events at once, a catalog change several
				// index bumps; one rebuild after they settle.
				t := time.NewTimer(rebindDebounce)
				select {
				case <-ctx.Done():
					t.Stop()
					return
				case <-t.C:
				}
				select {
				case <-g.kick:
				default:
				}
				g.rebuild()
			case <-sweep.C:
				g.engine.Sweep(policy.Monotonic())
			case <-anti.C:
				g.antiEntropy()
			}
		}
	}()
	go func() {
		defer g.wg.Done()
		if g.a.cat == nil {
			return
		}
		var idx uint64
		for {
			next, err := g.a.cat.cat.Wait(ctx, idx)
			if err != nil {
				return
			}
			idx = next
			g.kickRebuild()
		}
	}()
}

// rebindDebounce collects a burst of membership or catalog changes into one rebuild.
const rebindDebounce = 200 * time.Millisecond

func (g *policyGlue) close() {
	if g.cancel != nil {
		g.cancel()
	}
	g.wg.Wait()
}

func (g *policyGlue) kickRebuild() {
	select {
	case g.kick <- struct{}{}:
	default:
	}
}

// memberEvent follows gossip: groups tags, policy chunks, lagging members.
func (g *policyGlue) memberEvent(ev membership.Event) {
	switch ev.Type {
	case membership.EventUser:
		g.userEvent(ev.Name, ev.Payload)
		return
	case membership.EventJoin, membership.EventUpdate:
		m := ev.Member
		if m.InfoErr == nil {
			key := crypto.PublicKey(m.Info.PublicKey)
			groups := parseGroups(m.Tags[policyGroupsTag])
			g.mu.Lock()
			g.tagGroups[key] = groups
			g.mu.Unlock()
		}
		g.memberVersion(m)
	case membership.EventLeave, membership.EventFailed, membership.EventReap:
	default:
		return
	}
	g.kickRebuild()
}

// parseGroups reads a groups tag; names that could not be a group are skipped (a
// member cannot smuggle a comma-joined pair into one name).
func parseGroups(s string) []string {
	var out []string
	for _, n := range strings.Split(s, ",") {
		if identity.ValidGroup(n) && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// rebuild recomputes the address and identity snapshots from membership and Rebinds the
// Set in force (services re-resolved through the catalog).
func (g *policyGlue) rebuild() {
	a := g.a
	ix := &addrIndex{byNet: map[netip.Prefix]*policy.Endpoint{}}
	ids := map[crypto.PublicKey]*policy.Endpoint{}
	a.mu.Lock()
	ownNet, ownAddr := a.subnet, a.address
	a.mu.Unlock()
	self := &policy.Endpoint{Host: a.cfg.Name, Groups: g.groupsOf(a.priv.Public())}
	if ownNet.IsValid() {
		ix.add(ownNet, self)
	}
	if ownAddr.IsValid() {
		ix.add(netip.PrefixFrom(ownAddr, ownAddr.BitLen()), self)
	}
	if a.gsp != nil {
		g.indexMembers(ix, ids, a.gsp.c.Members())
	}
	// Static peers and WireGuard clients have no member identity (no groups, no host a
	// rule can name): a name no policy document can write (validName refuses ':') gives
	// them each their own flow quota all the same.
	for _, p := range a.cfg.Peers {
		if key, err := crypto.ParsePublicKey(p.PublicKey); err == nil && ids[key] == nil {
			ids[key] = &policy.Endpoint{Host: "static:" + p.PublicKey}
		}
	}
	for _, c := range a.clientList() {
		if key, err := crypto.ParsePublicKey(c.PublicKey); err == nil && ids[key] == nil {
			ids[key] = &policy.Endpoint{Host: "client:" + c.Name}
		}
	}
	g.res.snap.Store(ix)
	g.idents.Store(&ids)
	// Under g.mu: accept and install Load new Sets under it too, so a Rebind of the old Set
	// never replaces a document installed meanwhile.
	g.mu.Lock()
	if s := g.engine.Current(); s != nil {
		g.engine.Load(s.Rebind())
	}
	g.mu.Unlock()
}

// indexMembers adds the live members whose claims are accepted to the address and key
// indexes. A member whose claims trust.go refuses (a forged subnet, a certificate that does
// not verify, a duplicate key) is left out: otherwise a gossip-key holder announcing a
// victim's /24 could take over the victim's name and groups in the rules.
func (g *policyGlue) indexMembers(ix *addrIndex, ids map[crypto.PublicKey]*policy.Endpoint, members []membership.Member) {
	a := g.a
	for _, m := range members {
		if m.Name == a.cfg.Name || m.Status != membership.StatusAlive || m.InfoErr != nil || !m.Info.Subnet.IsValid() {
			continue
		}
		if a.gsp != nil && a.gsp.isRefused(m.Name) {
			continue
		}
		key := crypto.PublicKey(m.Info.PublicKey)
		ep := &policy.Endpoint{Host: m.Name, Groups: g.groupsOf(key)}
		ix.add(m.Info.Subnet, ep)
		ids[key] = ep
	}
}

// addrIndex finds the endpoint of an address: its /24 (the usual member subnet) in a map,
// other prefix lengths by a scan.
type addrIndex struct {
	byNet map[netip.Prefix]*policy.Endpoint // masked /24s
	other []netEntry
}

type netEntry struct {
	p  netip.Prefix
	ep *policy.Endpoint
}

func (ix *addrIndex) add(p netip.Prefix, ep *policy.Endpoint) {
	p = p.Masked()
	if p.Addr().Is4() && p.Bits() == 24 {
		ix.byNet[p] = ep
		return
	}
	ix.other = append(ix.other, netEntry{p, ep})
	// Longest prefix first, so a host route wins over a wider one.
	slices.SortStableFunc(ix.other, func(x, y netEntry) int { return y.p.Bits() - x.p.Bits() })
}

func (ix *addrIndex) lookup(a netip.Addr) (*policy.Endpoint, bool) {
	for _, e := range ix.other {
		if e.p.Bits() > 24 && e.p.Contains(a) {
			return e.ep, true
		}
	}
	if a.Is4() {
		if p, err := a.Prefix(24); err == nil {
			if ep, ok := ix.byNet[p]; ok {
				return ep, true
			}
		}
	}
	for _, e := range ix.other {
		if e.p.Contains(a) {
			return e.ep, true
		}
	}
	return nil, false
}

// policyResolver is policy.Resolver over the agent's snapshots and catalog.
type policyResolver struct {
	g    *policyGlue
	snap atomic.Pointer[addrIndex]
}

var _ policy.Resolver = (*policyResolver)(nil)

// Endpoint is asked once per new flow from the datapath: a map lookup in the snapshot,
// no lock, no allocation (the Endpoint is copied, its Groups slice shared read-only).
func (r *policyResolver) Endpoint(a netip.Addr) (policy.Endpoint, bool) {
	if ep, ok := r.snap.Load().lookup(a); ok {
		return *ep, true
	}
	return policy.Endpoint{}, false
}

// Service lists every instance of name the catalog knows, passing or not (policy is about
// who may talk to the port, health about whom to send to). The catalog carries no
// protocol: an instance's port is open to TCP and UDP.
func (r *policyResolver) Service(name string) []policy.Instance {
	cat := r.g.a.cat
	if cat == nil {
		return nil
	}
	var out []policy.Instance
	for _, in := range cat.cat.Instances(name, false) {
		out = append(out, policy.Instance{Addr: in.Addr, Port: in.Service.Port})
	}
	return out
}

// lookupHost resolves `weft policy test`'s --from/--to: an address, or a member's (or this
// host's) name, meaning its overlay address.
func (g *policyGlue) lookupHost(s string) (netip.Addr, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a, nil
	}
	a := g.a
	if s == a.cfg.Name {
		a.mu.Lock()
		defer a.mu.Unlock()
		return a.address, nil
	}
	if a.gsp != nil {
		for _, m := range a.gsp.c.Members() {
			if m.Name == s && m.InfoErr == nil && m.Info.Subnet.IsValid() && !a.gsp.isRefused(m.Name) {
				return gateway(m.Info.Subnet), nil
			}
		}
	}
	return netip.Addr{}, fmt.Errorf("%q is neither an address nor a member's name (see weft members)", s)
}

func (g *policyGlue) status() api.PolicyStatus {
	g.mu.Lock()
	st := api.PolicyStatus{Source: g.source, Version: g.dist.version, Refused: maps2(g.dist.refused)}
	g.mu.Unlock()
	st.Enforced = !(g.a.cfg.Mode == "l2" && g.a.cfg.Encryption == "none")
	es := g.engine.Stats()
	st.Flows = es.Flows
	st.Drops = map[string]uint64{}
	for r, n := range es.Drops {
		if n != 0 {
			st.Drops[policy.Reason(r).String()] = n
		}
	}
	if s := g.engine.Current(); s != nil {
		st.Rules = s.Stats()
		if b, err := s.Document().Marshal(); err == nil {
			st.Document = string(b)
		}
	}
	return st
}

func maps2(m map[string]uint64) map[string]uint64 {
	out := make(map[string]uint64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func (g *policyGlue) test(from, to, port string) (api.PolicyTest, error) {
	fa, err := g.lookupHost(from)
	if err != nil {
		return api.PolicyTest{}, fmt.Errorf("--from: %w", err)
	}
	ta, err := g.lookupHost(to)
	if err != nil {
		return api.PolicyTest{}, fmt.Errorf("--to: %w", err)
	}
	pn, proto, err := policy.ParsePortProto(port)
	if err != nil {
		return api.PolicyTest{}, fmt.Errorf("--port: %w", err)
	}
	v := g.engine.Test(fa, ta, pn, proto)
	res := api.PolicyTest{From: fa.String(), To: ta.String(), Port: port, Allowed: v.Allowed(), Decision: v.Decision.String(), Rule: int(v.Rule)}
	if s := g.engine.Current(); s != nil {
		res.Explain = s.Explain(v)
		if v.Rule >= 0 && int(v.Rule) < len(s.Document().Rules) {
			res.RuleName = s.Document().Rules[v.Rule].Name
		}
	} else {
		res.Explain = "allow: no policy"
	}
	return res, nil
}

// statePath is where the newest signed document is kept.
func (g *policyGlue) statePath() string { return filepath.Join(g.a.cfg.StateDir, "policy.signed") }

// writeFileAtomic writes data to path through a temporary file and a rename.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, perm); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return nil
}

var errNoCA = errors.New("no policy_ca_file: signed policies cannot be verified; set policy_ca_file (or pki.ca) to the cluster's ca.crt and restart the agent")
