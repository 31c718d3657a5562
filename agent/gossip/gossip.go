package gossip

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/weftnet/weft/agent/api"
	"github.com/weftnet/weft/agent/config"
	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/discovery/membership"
	"github.com/weftnet/weft/discovery/trust"
)

// Config is what the gossip glue is built from: this host's settings.
type Config struct {
	// Name is this host's node name; its own member is never peered.
	Name string
	// Gossip is the gossip section of the configuration (bind, key, seeds, retry_join…).
	Gossip config.GossipConfig
	// ClusterCIDR is cut into per-host subnets by the allocator.
	ClusterCIDR netip.Prefix
	// SubnetBits is a host's prefix length (subnet_len; 0: 24); SubnetMin and SubnetMax
	// bound the allocatable subnets (zero: the whole CIDR but its first).
	SubnetBits           int
	SubnetMin, SubnetMax netip.Prefix
	// Subnet is the static subnet (zero: allocated, or pinned by the certificate).
	Subnet netip.Prefix
	// StateDir keeps the allocated subnet, the Serf snapshot and the keyring.
	StateDir string
	// Node is this host's node info (public key, data port, VNI, protocol, mode, MAC); its
	// subnet is the allocator's. Members of another Mode or VNI are not peered.
	Node membership.NodeInfo
}

// Peer is a member as the datapath is to peer with it (Deps.AddPeer), and how it is
// withdrawn (Deps.RemovePeer).
type Peer struct {
	Key      crypto.PublicKey
	Endpoint netip.AddrPort // data endpoint (the plain VXLAN remote)
	MAC      [6]byte        // its TAP MAC (L2), zero when it announces none
	Addr     netip.Addr     // overlay address: .1 of its subnet
}

// Deps is what the glue needs of the rest of the agent. Every field must be set.
type Deps struct {
	// Log receives the glue's and Serf's logs.
	Log *slog.Logger
	// PKI returns the CA configuration in force; nil without pki.ca.
	PKI func() *trust.PKI
	// Policy returns the claim policy of this host at now (its subnet, static peers, CA).
	Policy func(now time.Time) *trust.Policy
	// AddPeer peers with an accepted member, its subnet as allowed prefix; an error that
	// wraps peers.ErrPrefixMoved means it was applied (a prefix moved between members).
	AddPeer func(p Peer, subnet netip.Prefix) error
	// RemovePeer withdraws a member's peer as it was added.
	RemovePeer func(p Peer)
	// SubnetChanged is called when the allocator moved this host's subnet.
	SubnetChanged func(sn netip.Prefix)
	// Problem records a condition for `weft status`.
	Problem func(msg string)
}

// Gossip turns Serf membership into the peer table: a member that joins (or updates its
// tags) becomes a peer with its subnet as allowed prefix; one that leaves or fails is removed,
// its session torn down; a rejoin restores it.
type Gossip struct {
	cfg    Config
	deps   Deps
	log    *slog.Logger
	c      *membership.Cluster
	ledger *trust.Ledger // verdicts of the claim checks
	bus    bus
	events *eventLog // member events at Info while few, then summarised

	mu    sync.Mutex
	names map[crypto.PublicKey]string // peer key → member name
	keys  map[string]Peer             // member name → what it was applied as

	revalidate  chan struct{} // Revalidate asks the event loop to re-apply every member
	expiryState string        // warnExpiry: the warning state last logged (event loop only)

	wg sync.WaitGroup
}

// New creates the Serf member, announces this host's certificate and joins the configured
// seeds; events are not consumed until Start, so the datapath exists before the first peer
// arrives.
func New(cfg Config, deps Deps) (*Gossip, error) {
	key, err := config.GossipKey(cfg.Gossip)
	if err != nil {
		return nil, err
	}
	if key == nil && !cfg.Gossip.Insecure {
		return nil, errors.New("no gossip key: set gossip.key (generate one with `weft keygen --gossip`) or pass --insecure-gossip on a trusted network")
	}
	log := deps.Log
	dc := membership.DefaultConfig()
	if cfg.Gossip.Fast {
		dc = membership.DefaultLocalConfig()
	}
	dc.NodeName = cfg.Name
	if dc.BindAddr, dc.BindPort, err = config.SplitHostPort(cfg.Gossip.Bind, membership.DefaultGossipPort); err != nil {
		return nil, fmt.Errorf("gossip bind %w", err)
	}
	if dc.AdvertiseAddr, dc.AdvertisePort, err = config.SplitHostPort(cfg.Gossip.Advertise, dc.BindPort); err != nil {
		return nil, fmt.Errorf("gossip advertise %w", err)
	}
	adv, err := chooseAdvertise(dc.BindAddr, dc.AdvertiseAddr) // advertise.go
	if err != nil {
		return nil, err
	}
	dc.AdvertiseAddr = adv.addr.String()
	if dc.AdvertisePort == 0 {
		dc.AdvertisePort = dc.BindPort // 0 too when memberlist picks the port: it then sets both
	}
	log.Info("gossip advertise address", "addr", adv.addr, "chosen_by", adv.why)
	dc.GossipKey = key
	dc.Insecure = cfg.Gossip.Insecure
	dc.Logger = log
	dc.ClusterCIDR = cfg.ClusterCIDR
	dc.SubnetBits, dc.SubnetMin, dc.SubnetMax = cfg.SubnetBits, cfg.SubnetMin, cfg.SubnetMax
	dc.StaticSubnet = cfg.Subnet
	if st := deps.PKI(); st != nil && !dc.StaticSubnet.IsValid() {
		// A certificate that pins a /24 of the cluster CIDR is this host's subnet: the
		// others refuse any other.
		dc.StaticSubnet = st.PinnedSubnet(cfg.ClusterCIDR, cfg.SubnetBits)
	}
	dc.StateDir = cfg.StateDir
	dc.AcceptClaim = trust.NewAllocationFilter(deps.PKI).Accept
	dc.StaticWins = staticWins(cfg.Gossip.AllowedStatic) // trust.go
	dc.SnapshotPath = filepath.Join(cfg.StateDir, "serf.snapshot")
	if key != nil {
		// This host's keyring, changed only by `weft keyring` over the control socket
		// (agent/keyring.go); an older weft's serf.keyring is migrated once.
		dc.KeyringFile = filepath.Join(cfg.StateDir, "gossip.keyring")
		dc.LegacyKeyringFile = filepath.Join(cfg.StateDir, "serf.keyring")
	}
	dc.Node = cfg.Node
	c, err := membership.New(dc)
	if err != nil {
		return nil, err
	}
	g := Attach(c, cfg, deps)
	if err := g.announceCertificate(); err != nil {
		_ = c.Shutdown()
		return nil, err
	}
	if len(cfg.Gossip.Join) > 0 {
		if _, err := c.Join(cfg.Gossip.Join); err != nil {
			// Not fatal: the seed may come later; `weft join` retries by hand.
			log.Warn("could not join every seed at start", "err", err)
			deps.Problem("join at start: " + err.Error())
		}
		// The subnet proposed before the join may be held by a member we just learned of:
		// give the allocator (kicked by Join) a moment to move off it before the device is
		// addressed, so a joining host rarely has to renumber.
		deadline := time.Now().Add(3 * time.Second)
		for time.Now().Before(deadline) && subnetContested(c) {
			time.Sleep(50 * time.Millisecond)
		}
	}
	return g, nil
}

// Attach builds the glue over a cluster that exists (nil: none, for tests that Apply members
// by hand); it joins nobody and announces nothing. New is Attach over the cluster it creates.
func Attach(c *membership.Cluster, cfg Config, deps Deps) *Gossip {
	return &Gossip{cfg: cfg, deps: deps, log: deps.Log, c: c, ledger: trust.NewLedger(deps.Log), events: newEventLog(deps.Log),
		names: map[crypto.PublicKey]string{}, keys: map[string]Peer{}, revalidate: make(chan struct{}, 1)}
}

// ModeByte is the datapath mode gossiped in the node info: hosts only peer with hosts of the
// same mode (an L3 host cannot carry an L2 host's frames, a plain VTEP cannot talk to an
// encrypted one).
func ModeByte(mode, encryption string) byte {
	switch {
	case mode == "l2" && encryption == "none":
		return 4
	case mode == "l2":
		return 2
	}
	return 3
}

func modeName(b byte) string {
	switch b {
	case 2:
		return "l2"
	case 3:
		return "l3"
	case 4:
		return "l2 (encryption: none)"
	}
	return fmt.Sprintf("unknown (%d)", b)
}

// subnetContested reports whether this host has no subnet yet or another live member
// announces the same one.
func subnetContested(c *membership.Cluster) bool {
	own := c.Subnet()
	if !own.IsValid() {
		return c.Err() == nil // still deciding; a conflict or exhaustion will not resolve by waiting
	}
	self := c.LocalMember().Name
	for _, m := range c.Members() {
		if m.Name != self && m.Status == membership.StatusAlive && m.InfoErr == nil && m.Info.Subnet == own {
			return true
		}
	}
	return false
}

// Cluster is the Serf cluster, for the glue that sets its own tags (catalog, policy) or
// sends user events, and for the keyring.
func (g *Gossip) Cluster() *membership.Cluster { return g.c }

// Members is the member list as Serf has it now (refused and untrusted members included:
// see Trusted).
func (g *Gossip) Members() []membership.Member { return g.c.Members() }

// Trusted reports whether this host accepts the member's claims now: it passed every trust
// check and is a peer (with a CA: its certificate verified for its name, key and subnet).
// Ask it before acting on anything a member announces (services, groups, policy tags):
// unlike !IsRefused it is false for a member that was never judged (gone, no subnet yet,
// another mode or VNI), which may be a gossip-key holder without a certificate.
func (g *Gossip) Trusted(name string) bool {
	if _, refused := g.ledger.Refused(name); refused {
		return false
	}
	if g.deps.PKI() != nil {
		if _, certified := g.ledger.Claims(name); !certified {
			return false
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	_, ok := g.keys[name]
	return ok
}

// Subnet is this host's subnet as the allocator has it (zero while undecided).
func (g *Gossip) Subnet() netip.Prefix { return g.c.Subnet() }

// Addr is this host's gossip address.
func (g *Gossip) Addr() string { return g.c.LocalMember().Addr.String() }

// Subscribe adds f to the subscribers of member changes: every event after the peer table
// followed it, and the member list replayed (Event.Replay). f runs on the event goroutine;
// subscribe before Start.
func (g *Gossip) Subscribe(f func(Event)) { g.bus.subscribe(f) }

// Start applies the current members and follows the events.
func (g *Gossip) Start() {
	ms := g.c.Members()
	g.round(ms) // claims first seen together: a tie is held by none (trust.Incumbency)
	for _, m := range ms {
		g.Apply(m)
		g.bus.publish(Event{Event: membership.Event{Type: membership.EventUpdate, Member: m}, Replay: true})
	}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		// The event queue drops its oldest event rather than stall Serf; a dropped leave or
		// failure would leave a stale peer. When drops are seen, resync from the member list.
		tick := time.NewTicker(resyncCheckInterval)
		defer tick.Stop()
		// With a CA, certificates expire while members stay: re-verify them now and then.
		recheck := time.NewTicker(trust.RecheckInterval)
		defer recheck.Stop()
		var dropped uint64
		for {
			select {
			case ev, ok := <-g.c.Events():
				if !ok {
					return
				}
				g.handle(ev)
			case <-tick.C:
				g.events.flush()
				if n := g.c.DroppedEvents(); n != dropped {
					dropped = n
					g.log.Warn("membership events were dropped; resyncing peers from the member list", "dropped", n)
					g.Resync()
				}
			case <-recheck.C:
				if g.deps.PKI() != nil {
					g.Resync()
					g.warnExpiry(time.Now())
				}
			case <-g.revalidate:
				g.Resync()
			}
		}
	}()
}

// resyncCheckInterval is how often the event loop looks for dropped events.
const resyncCheckInterval = 5 * time.Second

// Revalidate has the event loop re-apply every member soon (the CA configuration changed:
// a newly blocklisted member is withdrawn, a newly valid one peered). It does not wait.
func (g *Gossip) Revalidate() {
	select {
	case g.revalidate <- struct{}{}:
	default: // a re-validation is pending already
	}
}

// NameOf is the name of the member peered with key k, "" when none.
func (g *Gossip) NameOf(k crypto.PublicKey) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.names[k]
}

// Join joins the cluster through addrs (host or host:port; the gossip port by default).
func (g *Gossip) Join(addrs []string) (int, error) {
	for i, a := range addrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			addrs[i] = net.JoinHostPort(a, strconv.Itoa(membership.DefaultGossipPort))
		}
	}
	return g.c.Join(addrs)
}

// Leave announces a graceful leave.
func (g *Gossip) Leave() error { return g.c.Leave() }

// Shutdown stops gossip and waits for the event goroutine; safe to call twice.
func (g *Gossip) Shutdown() {
	_ = g.c.Shutdown()
	g.wg.Wait()
}

// APIMembers lists the members as `weft members` shows them, with the trust verdicts.
func (g *Gossip) APIMembers() []api.Member {
	var out []api.Member
	for _, m := range g.c.Members() {
		am := api.Member{Name: m.Name, Addr: m.Addr.String(), Status: m.Status.String()}
		if m.InfoErr != nil {
			am.Error = m.InfoErr.Error()
		} else {
			am.PublicKey = crypto.PublicKey(m.Info.PublicKey).String()
			if m.Info.Subnet.IsValid() {
				am.Subnet = m.Info.Subnet.String()
			}
			am.DataPort = int(m.Info.DataPort)
			am.VNI = m.Info.VNI
			am.Protocol = int(m.Info.Proto)
		}
		if m.Name != g.cfg.Name {
			g.trustMember(&am)
		}
		out = append(out, am)
	}
	return out
}
