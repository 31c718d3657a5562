package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/weftnet/weft/agent/api"
	"github.com/weftnet/weft/agent/config"
	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/discovery/membership"
	"github.com/weftnet/weft/identity"
	"github.com/weftnet/weft/l2"
	"github.com/weftnet/weft/peers"
)

// gossip turns Serf membership into the peer table: a member that joins (or updates its
// tags) becomes a peer with its subnet as allowed prefix; one that leaves or fails is removed,
// its session torn down; a rejoin restores it.
type gossip struct {
	a *Agent
	c *membership.Cluster

	mu    sync.Mutex
	names map[crypto.PublicKey]string // peer key → member name
	keys  map[string]memberPeer       // member name → what it was applied as

	// Trust (trust.go): verdicts of the claim checks.
	refused      map[string]refusal           // member name → why its claims are refused
	claims       map[string]identity.Claims   // member name → its verified certificate (CA only)
	cands        map[string]crypto.PublicKey  // members passing every check but the duplicate key one
	candMembers  map[string]membership.Member // their last state, to re-apply them
	refusedCount map[string]uint64            // weft_gossip_claims_refused_total by reason
	revalidate   chan struct{}                // reloadPKI asks the event loop to re-apply every member
	expiryState  string                       // warnExpiry: the warning state last logged (event loop only)

	wg sync.WaitGroup
}

// memberPeer is what a member was applied as, so that it can be withdrawn.
type memberPeer struct {
	key  crypto.PublicKey
	ep   netip.AddrPort // data endpoint (the plain VXLAN remote)
	mac  l2.MAC
	addr netip.Addr // overlay address: .1 of its subnet

}

// startGossip creates the Serf member and joins the configured seeds; events are not
// consumed until start, so the datapath exists before the first peer arrives.
func startGossip(ctx context.Context, a *Agent) (*gossip, error) {
	key, err := config.GossipKey(a.cfg.Gossip)
	if err != nil {
		return nil, err
	}
	if key == nil && !a.cfg.Gossip.Insecure {
		return nil, errors.New("no gossip key: set gossip.key (generate one with `weft keygen --gossip`) or pass --insecure-gossip on a trusted network")
	}
	dc := membership.DefaultConfig()
	if a.cfg.Gossip.Fast {
		dc = membership.DefaultLocalConfig()
	}
	dc.NodeName = a.cfg.Name
	if dc.BindAddr, dc.BindPort, err = config.SplitHostPort(a.cfg.Gossip.Bind, membership.DefaultGossipPort); err != nil {
		return nil, fmt.Errorf("gossip bind %w", err)
	}
	if dc.AdvertiseAddr, dc.AdvertisePort, err = config.SplitHostPort(a.cfg.Gossip.Advertise, dc.BindPort); err != nil {
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
	a.log.Info("gossip advertise address", "addr", adv.addr, "chosen_by", adv.why)
	dc.GossipKey = key
	dc.Insecure = a.cfg.Gossip.Insecure
	dc.Logger = a.log
	dc.ClusterCIDR = a.cfg.ClusterCIDR.Prefix
	dc.StaticSubnet = a.cfg.Subnet.Prefix
	if st := a.pki.Load(); st != nil && !dc.StaticSubnet.IsValid() {
		// A certificate that pins a /24 of the cluster CIDR is this host's subnet: the
		// others refuse any other.
		dc.StaticSubnet = st.pinnedSubnet(a.cfg.ClusterCIDR.Prefix)
	}
	dc.StateDir = a.cfg.StateDir
	dc.AcceptClaim = (&allocationFilter{a: a}).accept
	dc.SnapshotPath = filepath.Join(a.cfg.StateDir, "serf.snapshot")
	if key != nil {
		dc.KeyringFile = filepath.Join(a.cfg.StateDir, "serf.keyring") // weft keyring (keyring.go)
	}
	pub := a.priv.Public()
	dc.Node = membership.NodeInfo{
		PublicKey: pub,
		DataPort:  uint16(a.cfg.ListenPort),
		VNI:       a.cfg.VNI,
		Proto:     ProtocolVersion,
		Mode:      modeByte(a.cfg.Mode, a.cfg.Encryption),
	}
	if a.cfg.Mode == "l2" {
		dc.Node.MAC = a.tapMAC()
	}
	c, err := membership.New(dc)
	if err != nil {
		return nil, err
	}
	g := newGossip(a, c)
	if err := g.announceCertificate(); err != nil {
		_ = c.Shutdown()
		return nil, err
	}
	if len(a.cfg.Gossip.Join) > 0 {
		if _, err := c.Join(a.cfg.Gossip.Join); err != nil {
			// Not fatal: the seed may come later; `weft join` retries by hand.
			a.log.Warn("could not join every seed at start", "err", err)
			a.problem("join at start: " + err.Error())
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

func newGossip(a *Agent, c *membership.Cluster) *gossip {
	return &gossip{a: a, c: c, names: map[crypto.PublicKey]string{}, keys: map[string]memberPeer{},
		refused: map[string]refusal{}, claims: map[string]identity.Claims{}, cands: map[string]crypto.PublicKey{}, candMembers: map[string]membership.Member{},
		refusedCount: map[string]uint64{}, revalidate: make(chan struct{}, 1)}
}

// modeByte is the datapath mode gossiped in the node info: hosts only peer with hosts of the
// same mode (an L3 host cannot carry an L2 host's frames, a plain VTEP cannot talk to an
// encrypted one).
func modeByte(mode, encryption string) byte {
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

func (g *gossip) subnet() netip.Prefix { return g.c.Subnet() }
func (g *gossip) addr() string         { return g.c.LocalMember().Addr.String() }

// start syncs the current members into the peer table and follows the events.
func (g *gossip) start(ctx context.Context) error {
	for _, m := range g.c.Members() {
		g.apply(m)
		if g.a.cat != nil {
			g.a.cat.syncMember(m)
		}
	}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		// The event queue drops its oldest event rather than stall Serf; a dropped leave or
		// failure would leave a stale peer. When drops are seen, resync from the member list.
		tick := time.NewTicker(resyncCheckInterval)
		defer tick.Stop()
		// With a CA, certificates expire while members stay: re-verify them now and then.
		recheck := time.NewTicker(trustRecheckInterval)
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
				if n := g.c.DroppedEvents(); n != dropped {
					dropped = n
					g.a.log.Warn("membership events were dropped; resyncing peers from the member list", "dropped", n)
					g.resyncAll()
				}
			case <-recheck.C:
				if g.a.pki.Load() != nil {
					g.resyncAll()
					g.warnExpiry(time.Now())
				}
			case <-g.revalidate:
				g.resyncAll()
			}
		}
	}()
	return nil
}

// resyncCheckInterval is how often the event loop looks for dropped events.
const resyncCheckInterval = 5 * time.Second

// resyncAll applies every member and withdraws peers of members that are gone entirely.
func (g *gossip) resyncAll() {
	present := map[string]bool{}
	for _, m := range g.c.Members() {
		present[m.Name] = true
		g.apply(m)
		if g.a.cat != nil {
			g.a.cat.syncMember(m)
		}
	}
	g.mu.Lock()
	var gone []string
	for _, known := range []map[string]bool{keysOf(g.keys), keysOf(g.refused), keysOf(g.cands)} {
		for name := range known {
			if !present[name] && !slices.Contains(gone, name) {
				gone = append(gone, name)
			}
		}
	}
	g.mu.Unlock()
	for _, name := range gone {
		g.forget(name)
		g.remove(name)
		if g.a.cat != nil {
			g.a.cat.cat.RemoveNode(name)
		}
	}
}

func keysOf[V any](m map[string]V) map[string]bool {
	out := make(map[string]bool, len(m))
	for k := range m {
		out[k] = true
	}
	return out
}

func (g *gossip) handle(ev membership.Event) {
	log := g.a.log
	switch ev.Type {
	case membership.EventJoin, membership.EventUpdate, membership.EventLeave, membership.EventFailed, membership.EventReap:
		log.Info("member "+ev.Type.String(), "member", ev.Member.Name, "addr", ev.Member.Addr, "subnet", ev.Member.Info.Subnet)
		if g.apply(ev.Member) {
			g.resync(ev.Member.Name)
		}
	case membership.EventSubnetChanged:
		log.Info("subnet changed", "subnet", ev.Subnet)
		g.a.onSubnetChanged(ev.Subnet)
		g.resyncAll() // a claim refused for overlapping the old subnet may be fine now
	case membership.EventSubnetConflict:
		log.Error("subnet conflict", "err", ev.Err)
		g.a.problem(ev.Err.Error())
	}
	g.a.onMembersChanged(ev)
}

// resync re-applies every live member but one. After a member's prefixes are withdrawn, a
// prefix it had taken over from another member (two claims in flight, last writer wins)
// returns to the member that still announces it.
func (g *gossip) resync(except string) {
	for _, m := range g.c.Members() {
		if m.Name != except && m.Status == membership.StatusAlive {
			g.apply(m)
		}
	}
}

// apply makes the peer table agree with one member's state, after checking its claims
// (trust.go). It reports whether prefixes were withdrawn (the caller then resyncs the others).
func (g *gossip) apply(m membership.Member) (withdrew bool) {
	return g.applyMember(m, true)
}

// applyMember is apply; with cascade, the other members announcing the same public key (or
// the one m announced before) are re-applied, since their duplicate-key status may change.
func (g *gossip) applyMember(m membership.Member, cascade bool) (withdrew bool) {
	if m.Name == g.a.cfg.Name {
		return false
	}
	if m.Status != membership.StatusAlive || m.InfoErr != nil || !m.Info.Subnet.IsValid() {
		if m.InfoErr != nil && m.Status == membership.StatusAlive {
			g.a.log.Warn("member has unusable tags", "member", m.Name, "err", m.InfoErr)
		}
		return g.withhold(m, cascade)
	}
	if own := modeByte(g.a.cfg.Mode, g.a.cfg.Encryption); m.Info.Mode != own {
		g.a.log.Warn("member runs another datapath mode; not peering", "member", m.Name,
			"its_mode", modeName(m.Info.Mode), "our_mode", modeName(own))
		return g.withhold(m, cascade)
	}
	if m.Info.VNI != g.a.cfg.VNI {
		g.a.log.Warn("member is on another VNI; not peering", "member", m.Name, "vni", m.Info.VNI)
		return g.withhold(m, cascade)
	}
	key := crypto.PublicKey(m.Info.PublicKey)
	claims, cerr := checkClaim(g.a.claimPolicy(time.Now()), memberClaim{name: m.Name, info: m.Info, cert: m.Tags[identity.TagKey]})
	others, dup := g.candidate(m, cerr == nil)
	if cerr == nil && dup {
		cerr = refuse(reasonDuplicateKey, "public key %s is also announced by %s: peered with neither", key, strings.Join(others, ", "))
	}
	g.noteVerdict(m.Name, verdict{claims: claims, err: cerr})
	if cascade {
		defer g.reapply(others)
	}
	if cerr != nil {
		return g.remove(m.Name)
	}
	mp := memberPeer{key: key, ep: netip.AddrPortFrom(m.Addr.Addr(), m.Info.DataPort), mac: l2.MAC(m.Info.MAC),
		addr: m.Info.Subnet.Masked().Addr().Next()}
	g.mu.Lock()
	old, had := g.keys[m.Name]
	g.mu.Unlock()
	if had && old != mp {
		withdrew = g.remove(m.Name)
	}
	g.mu.Lock()
	g.keys[m.Name], g.names[key] = mp, m.Name
	g.mu.Unlock()
	switch err := g.a.dp.addMember(mp, m.Info.Subnet); {
	case errors.Is(err, peers.ErrPrefixMoved):
		// Applied: a subnet moved between members (a conflict resolved); say so.
		g.a.log.Info("peer from gossip took over a prefix", "member", m.Name, "err", err)
	case err != nil:
		g.a.log.Warn("peer from gossip", "member", m.Name, "err", err)
	}
	return withdrew
}

// withhold withdraws a member that is no candidate for peering (gone, no subnet yet, another
// mode or VNI): it claims nothing, so it is no refusal.
func (g *gossip) withhold(m membership.Member, cascade bool) bool {
	others, _ := g.candidate(m, false)
	g.forget(m.Name)
	withdrew := g.remove(m.Name)
	if cascade {
		g.reapply(others)
	}
	return withdrew
}

// reapply applies the named members again, without cascading further.
func (g *gossip) reapply(names []string) {
	if len(names) == 0 {
		return
	}
	g.mu.Lock()
	var ms []membership.Member
	for _, n := range names {
		if m, ok := g.candMembers[n]; ok {
			ms = append(ms, m)
		}
	}
	g.mu.Unlock()
	for _, m := range ms {
		g.applyMember(m, false)
	}
}

// remove withdraws a member's peer; it reports whether there was one.
func (g *gossip) remove(name string) bool {
	g.mu.Lock()
	mp, ok := g.keys[name]
	if ok {
		delete(g.keys, name)
		if g.names[mp.key] == name {
			delete(g.names, mp.key)
		}
	}
	g.mu.Unlock()
	if !ok {
		return false
	}
	g.a.dp.removeMember(mp)
	return true
}

func (g *gossip) nameOf(k crypto.PublicKey) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.names[k]
}

func (g *gossip) join(addrs []string) (int, error) {
	for i, a := range addrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			addrs[i] = net.JoinHostPort(a, strconv.Itoa(membership.DefaultGossipPort))
		}
	}
	return g.c.Join(addrs)
}

func (g *gossip) leave() error { return g.c.Leave() }

// shutdown stops gossip and waits for the event goroutine; safe to call twice.
func (g *gossip) shutdown() {
	_ = g.c.Shutdown()
	g.wg.Wait()
}

func (g *gossip) members() []api.Member {
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
		if m.Name != g.a.cfg.Name {
			g.trustMember(&am)
		}
		out = append(out, am)
	}
	return out
}
