package netpolicy

import (
	"context"
	"fmt"
	"log/slog"
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
	"github.com/weftnet/weft/discovery/policydist"
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
//   - The Resolver (resolver) answers from snapshots rebuilt off the hot path:
//     membership gives each member's overlay subnet, node name and groups, the catalog
//     each service's instances. A membership or catalog change kicks a debounced rebuild
//     that also Rebinds the Set in force.
//   - Groups come from one seam, groupsOf(key): with a cluster CA the groups of the
//     member's verified certificate (Deps.CertGroups); without one each member's own
//     `groups` setting as it gossips it (tag "groups"), which is only as trustworthy as the
//     gossip key: any holder of the key can claim any group.
//   - The document in force: a local policy_file wins (read at start); otherwise the newest
//     CA-signed document seen (discovery/policydist), kept in STATE_DIR/policy.signed.

// Config is what the subsystem reads of the agent's configuration.
type Config struct {
	// Name is this host's member name.
	Name string
	// Groups is this host's groups setting, announced in the groups tag.
	Groups []string
	// StateDir is where the newest signed document is kept (policy.signed).
	StateDir string
	// PolicyFile is policy_file: a local document that wins over gossip ("": none).
	PolicyFile string
	// PolicyCAFile is policy_ca_file: the signers of gossiped documents.
	PolicyCAFile string
	// PKICA is pki.ca: the cluster CA, the policy's signer when PolicyCAFile is empty.
	PKICA string
	// MaxFlows and MaxFlowsPerPeer bound the flow table (policy_max_flows,
	// policy_max_flows_per_peer).
	MaxFlows, MaxFlowsPerPeer int
	// PlainL2 is mode l2 with encryption none: no authenticated sender, so no policy is
	// enforced (the status says so, and Start logs it).
	PlainL2 bool
}

// Deps is what the subsystem needs of the rest of the agent. Nil functions mean "not
// there": without Members, SetTag and UserEvent there is no gossip; without WaitCatalog no
// catalog change triggers a rebuild.
type Deps struct {
	Config Config
	// PublicKey is this host's public key.
	PublicKey crypto.PublicKey
	// Logger is the agent's logger (nil: discarded).
	Logger *slog.Logger

	// Self returns this host's overlay subnet and address; gossip may move them at run time.
	Self func() (subnet netip.Prefix, address netip.Addr)
	// Members lists the cluster's members.
	Members func() []membership.Member
	// Trusted reports whether the trust layer accepts a member's claims now (with a CA: a
	// valid certificate for its name). Any other member (a forged subnet, a certificate
	// that does not verify, a duplicate key, or never judged: another mode or VNI, no
	// certificate) names nobody, its groups tag is not read, and its policy tags (version,
	// digest) count for nothing in the distribution. Nil: every member is.
	Trusted func(member string) bool
	// CertGroups returns the groups a cluster CA vouches for (ok true whenever a CA is
	// configured, also for a member without a valid certificate: then none); ok false:
	// no CA, the gossiped groups count.
	CertGroups func(crypto.PublicKey) (groups []string, ok bool)
	// Blocklist returns pki.blocklist as last (re)loaded (nil: none).
	Blocklist func() *identity.Blocklist
	// SetTag sets one of this host's gossip tags.
	SetTag func(key, value string) error
	// UserEvent sends a gossip user event.
	UserEvent func(name string, payload []byte) error
	// StaticPeers returns the configured static peers' public keys, as written.
	StaticPeers func() []string
	// Clients returns the stock WireGuard clients this host serves.
	Clients func() []api.WGClient
	// Instances lists every instance of a service the catalog knows, passing or not
	// (policy is about who may talk to the port, health about whom to send to).
	Instances func(service string) []policy.Instance
	// WaitCatalog blocks until the catalog's index passes index (a blocking query) and
	// returns the new index; an error ends the watch.
	WaitCatalog func(ctx context.Context, index uint64) (uint64, error)
}

// Policy owns the agent's network policy.
type Policy struct {
	cfg    Config
	deps   Deps
	log    *slog.Logger
	engine *policy.Engine
	hook   *tunnel.EnginePolicy
	res    *resolver
	local  *policy.Document // policy_file, when set: wins over gossip
	dist   *policydist.Distributor

	// groupsOf is the seam for a member's groups (see the top of this file). It is called
	// off the hot path, at every snapshot rebuild.
	groupsOf func(crypto.PublicKey) []string

	// idents maps a peer's key to its identity for Inbound (read per packet, lock-free).
	idents atomic.Pointer[map[crypto.PublicKey]*ident]

	kick   chan struct{}
	wg     sync.WaitGroup
	cancel context.CancelFunc

	mu        sync.Mutex
	tagGroups map[crypto.PublicKey][]string // groups gossiped by each member
	// clientTagSeen is the last client tag refused of each member (counted once);
	// clientTagRefused counts refusals by reason (clients.go).
	clientTagSeen    map[string]string
	clientTagRefused map[string]uint64
	source           string // "none", "file" or "gossip"
}

// groupsTag is this host's gossip tag listing its groups (comma-separated).
const groupsTag = "groups"

// rebindDebounce collects a burst of membership or catalog changes into one rebuild.
const rebindDebounce = 200 * time.Millisecond

// New builds the engine, loads the signers' CAs and the local policy_file; nothing is
// in force or announced until Start.
func New(deps Deps) (*Policy, error) {
	cfg := deps.Config
	pc := policy.DefaultConfig()
	pc.MaxFlows, pc.MaxFlowsPerPeer = cfg.MaxFlows, cfg.MaxFlowsPerPeer
	e, err := policy.New(pc)
	if err != nil {
		return nil, err
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Self == nil {
		deps.Self = func() (netip.Prefix, netip.Addr) { return netip.Prefix{}, netip.Addr{} }
	}
	if deps.Trusted == nil {
		deps.Trusted = func(string) bool { return true }
	}
	p := &Policy{cfg: cfg, deps: deps, log: deps.Logger, engine: e, kick: make(chan struct{}, 1), tagGroups: map[crypto.PublicKey][]string{}, source: "none",
		clientTagSeen: map[string]string{}, clientTagRefused: map[string]uint64{}}
	p.res = &resolver{p: p}
	p.res.snap.Store(newAddrIndex())
	empty := map[crypto.PublicKey]*ident{}
	p.idents.Store(&empty)
	p.hook = &tunnel.EnginePolicy{Engine: e, Identity: p.identity}
	p.groupsOf = p.memberGroups
	var cas *identity.CAPool // trusted signers of gossiped documents; nil: none trusted
	switch {
	case cfg.PolicyCAFile != "":
		if cas, err = identity.LoadCAPoolFile(cfg.PolicyCAFile); err != nil {
			return nil, fmt.Errorf("policy_ca_file: %w", err)
		}
	case cfg.PKICA != "":
		// The cluster CA that signs host certificates also signs policies by default.
		if cas, err = identity.LoadCAPoolFile(cfg.PKICA); err != nil {
			return nil, fmt.Errorf("pki.ca (the policy's signer by default): %w", err)
		}
	}
	if cfg.PolicyFile != "" {
		b, err := os.ReadFile(cfg.PolicyFile)
		if err != nil {
			return nil, fmt.Errorf("policy_file: %w", err)
		}
		if p.local, err = policy.Parse(b); err != nil {
			return nil, fmt.Errorf("policy_file %s: %w", cfg.PolicyFile, err)
		}
	}
	p.dist = policydist.New(policydist.Deps{
		Name:      cfg.Name,
		CAs:       cas,
		Blocklist: deps.Blocklist,
		Install:   p.installSigned,
		StatePath: filepath.Join(cfg.StateDir, "policy.signed"),
		UserEvent: deps.UserEvent,
		SetTag:    deps.SetTag,
		Members:   deps.Members,
		Trusted:   deps.Trusted,
		Logger:    deps.Logger,
	})
	return p, nil
}

// Hook is the tunnel's Policy hook over this subsystem's engine.
func (p *Policy) Hook() *tunnel.EnginePolicy { return p.hook }

// identity is the tunnel's Identity callback: the sender's host and groups. A static peer
// or WireGuard client has a name only for its flow quota (see rebuild): only any, cidrs
// and services match it. A packet a member forwards from one of the WireGuard clients it
// announces is the client's (ident.of), never the member's.
func (p *Policy) identity(pkt []byte, peer *peers.Peer) *policy.Endpoint {
	if id := (*p.idents.Load())[peer.Key()]; id != nil {
		return id.of(pkt)
	}
	return nil
}

// Groups returns the groups the rules see for a member's (or this host's) key.
func (p *Policy) Groups(k crypto.PublicKey) []string { return p.groupsOf(k) }

// memberGroups is groupsOf: with a cluster CA (pki.ca) the groups of the member's verified
// certificate (this host: its own certificate's), and nothing a member merely announces;
// without a CA the gossiped groups setting.
func (p *Policy) memberGroups(k crypto.PublicKey) []string {
	if p.deps.CertGroups != nil {
		if groups, ok := p.deps.CertGroups(k); ok {
			return groups
		}
	}
	return p.gossipedGroups(k)
}

// gossipedGroups is groupsOf without a CA: what the member announces in its groups tag
// (this host: its own setting).
func (p *Policy) gossipedGroups(k crypto.PublicKey) []string {
	if k == p.deps.PublicKey {
		return p.cfg.Groups
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.tagGroups[k]
}

// Start loads the policy in force (policy_file, else the kept signed document) and
// announces this host's tags; called after gossip exists and before the datapath starts.
func (p *Policy) Start() error {
	if p.deps.SetTag != nil {
		if err := p.deps.SetTag(groupsTag, strings.Join(p.cfg.Groups, ",")); err != nil {
			return fmt.Errorf("groups: %w", err)
		}
		// Both at their full width from the start, so the tag budget the catalog is given
		// stays right when a document arrives.
		if err := p.deps.SetTag(policydist.VersionTag, policydist.FormatVersion(0)); err != nil {
			return fmt.Errorf("policy version tag: %w", err)
		}
		if err := p.deps.SetTag(policydist.DigestTag, policydist.FormatDigest([32]byte{})); err != nil {
			return fmt.Errorf("policy digest tag: %w", err)
		}
	}
	p.rebuild()
	if p.local != nil {
		if err := p.install(p.local, "file"); err != nil {
			return fmt.Errorf("policy_file %s: %w", p.cfg.PolicyFile, err)
		}
		p.log.Info("network policy from policy_file; signed documents from gossip are kept and passed on but not enforced",
			"file", p.cfg.PolicyFile, "rules", len(p.local.Rules), "default", policydist.DefaultOf(p.local))
	}
	p.dist.LoadKept()
	if p.cfg.PlainL2 {
		p.log.Warn("plain L2 (encryption: none) does not enforce network policy: it has no authenticated sender; use encryption: wireguard")
	}
	return nil
}

// install compiles doc against the resolver and puts it in force.
func (p *Policy) install(doc *policy.Document, source string) error {
	set, err := policy.Compile(doc, p.res)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.engine.Load(set)
	p.source = source
	p.mu.Unlock()
	return nil
}

// installSigned is the distributor's Install: a verified signed document is put in force
// unless policy_file wins.
func (p *Policy) installSigned(doc *policy.Document) (enforced bool, err error) {
	if p.local != nil {
		return false, nil
	}
	if err := p.install(doc, "gossip"); err != nil {
		return false, err
	}
	return true, nil
}

// Apply is POST /v1/policy: a signed envelope from `weft policy apply`. It is installed
// here and spread to every member.
func (p *Policy) Apply(env []byte) (uint64, error) { return p.dist.Apply(env) }

// Run follows membership and the catalog until ctx ends or Close: rebuilds are debounced,
// flows are swept, lagging members are sent the newest document.
func (p *Policy) Run(ctx context.Context) {
	ctx, p.cancel = context.WithCancel(ctx)
	p.wg.Add(2)
	go func() {
		defer p.wg.Done()
		sweep := time.NewTicker(10 * time.Second)
		defer sweep.Stop()
		anti := time.NewTicker(policydist.AntiEntropyInterval)
		defer anti.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-p.kick:
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
				case <-p.kick:
				default:
				}
				p.rebuild()
			case <-sweep.C:
				p.engine.Sweep(policy.Monotonic())
			case <-anti.C:
				p.dist.AntiEntropy()
			}
		}
	}()
	go func() {
		defer p.wg.Done()
		if p.deps.WaitCatalog == nil {
			return
		}
		var idx uint64
		for {
			next, err := p.deps.WaitCatalog(ctx, idx)
			if err != nil {
				return
			}
			idx = next
			p.KickRebuild()
		}
	}()
}

// Close stops what Run started and waits for it.
func (p *Policy) Close() {
	if p.cancel != nil {
		p.cancel()
	}
	p.wg.Wait()
}

// KickRebuild asks for a (debounced) rebuild of the snapshots: something they are built
// from changed (a WireGuard client added or removed).
func (p *Policy) KickRebuild() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// MemberEvent follows gossip: groups tags, policy chunks, lagging members. It is a
// subscriber of the agent's membership fan-out.
func (p *Policy) MemberEvent(ev membership.Event) {
	switch ev.Type {
	case membership.EventUser:
		p.dist.UserEvent(ev.Name, ev.Payload)
		return
	case membership.EventJoin, membership.EventUpdate:
		m := ev.Member
		// Gossip judged the member before this event reached us (the fan-out runs after
		// the peer table followed it): an untrusted member's groups tag, which may name
		// a victim's key, is not read.
		if m.InfoErr == nil && p.deps.Trusted(m.Name) {
			key := crypto.PublicKey(m.Info.PublicKey)
			groups := parseGroups(m.Tags[groupsTag])
			p.mu.Lock()
			p.tagGroups[key] = groups
			p.mu.Unlock()
		}
		p.dist.MemberVersion(m)
	case membership.EventLeave, membership.EventFailed, membership.EventReap:
	default:
		return
	}
	p.KickRebuild()
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
