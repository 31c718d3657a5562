package membership

// Subnet allocation without a central store.
//
// The cluster CIDR (default 10.42.0.0/16) is cut into /24s, numbered from 0.
// The /24 number 0 (10.42.0.0/24) is never allocated: it keeps the cluster's
// network address and first host addresses out of host subnets and leaves one
// /24 for operators (static infrastructure, future service addresses).
//
// Every host decides alone, from what gossip tells it, re-deciding on every
// member event and every ReconcileInterval:
//
//   - A configured static subnet wins over allocated ones when it is a tie
//     (see below) or lies inside gossip.allowed_static (Config.StaticWins): a
//     host that allocated a subnet overlapping it moves. Two hosts configured
//     with overlapping static subnets that meet as a tie (or inside
//     allowed_static): the one that claimed it later (its
//     NodeInfo.StaticSince; ties broken by the lower public key) withdraws its
//     subnet, reports SubnetConflict, ErrSubnetConflict through Err and an
//     EventSubnetConflict, and logs an error; it takes the subnet back by
//     itself when the other host leaves.
//   - Otherwise a host proposes the /24 at sha256(public key) mod the pool, or
//     the one it persisted in StateDir/subnet at its last run.
//   - A live (alive or leaving) member that announces the same /24 makes this
//     host move only if its claim is not later than this host's: incumbency.
//     The allocator remembers when this host started announcing its subnet
//     (since) and when it first saw each member's claim; a claim first seen
//     more than claimSettle after since is later, and this host keeps its /24
//     however the claimant's key sorts, dynamic or static: a static claim is
//     honoured over a held /24 only inside gossip.allowed_static
//     (Config.StaticWins); elsewhere the gossip glue refuses it too (see
//     discovery/trust/incumbency.go). A claim first seen
//     within claimSettle is a tie (two hosts that picked the same /24 at about
//     the same time, or a host joining where its persisted /24 is held): this
//     host moves, and so does the other unless it held the /24 first; no key
//     wins a tie, so a member cannot take a /24 by choosing a key that sorts
//     low. It moves to the first /24 that no live member announces,
//     searching from a point hashed from its key and the /24 it lost (not from
//     the next /24: hosts that lost the same /24 would all land on the same
//     next one and lose again, one gossip round per host, which took 20
//     colliding hosts minutes on a loaded machine), persists it and
//     re-announces it with a tag update. Failed members hold
//     nothing: their subnet may be taken, and on their return their claim is
//     the later one.
//
// Two hosts that both held a /24 before they saw each other (a partition that
// heals, two clusters merged) both keep it: neither claim is later for the
// other. The other hosts peer with the one they saw first and refuse the other
// (subnet_held in `weft members`); the operator moves one (delete its
// state_dir/subnet and restart it).

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// SubnetFile is the name of the file in Config.StateDir that keeps the
// allocated subnet across restarts.
const SubnetFile = "subnet"

// Named errors of subnet allocation.
var (
	// ErrSubnetConflict: this host's static subnet is claimed by a member that
	// claimed it earlier.
	ErrSubnetConflict = errors.New("static subnet conflict")
	// ErrNoFreeSubnet: every /24 of the cluster CIDR is held by a live member.
	ErrNoFreeSubnet = errors.New("no free subnet left")
)

// SubnetStatus is the state of this host's subnet.
type SubnetStatus uint8

const (
	// SubnetOK: the subnet is announced and uncontested as far as we know.
	SubnetOK SubnetStatus = iota
	// SubnetConflict: the static subnet is held by an earlier member; withdrawn.
	SubnetConflict
	// SubnetExhausted: no free /24 was left; nothing announced.
	SubnetExhausted
)

func (s SubnetStatus) String() string {
	switch s {
	case SubnetOK:
		return "ok"
	case SubnetConflict:
		return "conflict"
	case SubnetExhausted:
		return "exhausted"
	}
	return "unknown"
}

// pool is the cluster CIDR seen as slots of one prefix length (Config.SubnetBits: /24 by
// default), of which the numbers first…last are allocatable (Config.SubnetMin/SubnetMax;
// by default every slot but number 0).
type pool struct {
	cidr        netip.Prefix
	base        uint32 // first address of the CIDR
	bits        int    // prefix length of a slot
	first, last int    // the allocatable slot numbers, inclusive
	ranged      bool   // first/last come from SubnetMin/SubnetMax
}

// Bounds of Config.SubnetBits: a /20 (4,094 addresses a host) to a /26 (62).
const (
	MinSubnetBits     = 20
	MaxSubnetBits     = 26
	DefaultSubnetBits = 24
)

// ErrIPv6Cluster: the cluster CIDR is an IPv6 prefix, which the allocator does not cut yet.
var ErrIPv6Cluster = errors.New("an IPv6 cluster_cidr is not supported yet: use an IPv4 range such as 10.42.0.0/16")

// newPool cuts cidr into /bits slots (0: DefaultSubnetBits), allocatable from min to max
// (zero: from slot 1 to the last).
func newPool(cidr netip.Prefix, bits int, min, max netip.Prefix) (pool, error) {
	if bits == 0 {
		bits = DefaultSubnetBits
	}
	switch {
	case cidr.Addr().Is6():
		return pool{}, ErrIPv6Cluster
	case bits < MinSubnetBits || bits > MaxSubnetBits:
		return pool{}, fmt.Errorf("subnet_len %d: must be %d to %d (a /%d per host)", bits, MinSubnetBits, MaxSubnetBits, DefaultSubnetBits)
	case !cidr.Addr().Is4() || cidr.Bits() < 8 || cidr.Bits() >= bits:
		return pool{}, fmt.Errorf("cluster CIDR %s must be an IPv4 prefix from /8 to /%d (it is cut into /%ds)", cidr, bits-1, bits)
	}
	cidr = cidr.Masked()
	a := cidr.Addr().As4()
	p := pool{cidr: cidr, base: binary.BigEndian.Uint32(a[:]), bits: bits, first: 1, last: 1<<(bits-cidr.Bits()) - 1}
	slot := func(name string, s netip.Prefix) (int, error) {
		i, ok := p.slotOf(s)
		if !ok {
			return 0, fmt.Errorf("%s %s: must be a /%d inside cluster_cidr %s", name, s, bits, cidr)
		}
		return i, nil
	}
	var err error
	if min.IsValid() {
		if p.first, err = slot("subnet_min", min); err != nil {
			return pool{}, err
		}
		p.ranged = true
	}
	if max.IsValid() {
		if p.last, err = slot("subnet_max", max); err != nil {
			return pool{}, err
		}
		p.ranged = true
	}
	if p.first > p.last {
		return pool{}, fmt.Errorf("subnet_min %s is above subnet_max %s", p.subnet(p.first), p.subnet(p.last))
	}
	return p, nil
}

// n is the number of allocatable slots.
func (p pool) n() int { return p.last - p.first + 1 }

func (p pool) subnet(i int) netip.Prefix {
	var a [4]byte
	binary.BigEndian.PutUint32(a[:], p.base+uint32(i)<<(32-p.bits))
	return netip.PrefixFrom(netip.AddrFrom4(a), p.bits)
}

// slotOf returns the number of s among all the CIDR's slots (0 included), or false if s
// is no slot of the CIDR.
func (p pool) slotOf(s netip.Prefix) (int, bool) {
	if !s.IsValid() || !s.Addr().Is4() || s.Bits() != p.bits || !p.cidr.Contains(s.Addr()) {
		return 0, false
	}
	a := s.Addr().As4()
	off := binary.BigEndian.Uint32(a[:]) - p.base
	if off&(1<<(32-p.bits)-1) != 0 {
		return 0, false
	}
	return int(off >> (32 - p.bits)), true
}

// index returns the number of s in the pool, or false if s is not one of its
// allocatable slots.
func (p pool) index(s netip.Prefix) (int, bool) {
	i, ok := p.slotOf(s)
	if !ok || i < p.first || i > p.last {
		return 0, false
	}
	return i, true
}

// propose returns the hash-chosen index for key, in first…last.
func (p pool) propose(key [32]byte) int {
	h := sha256.Sum256(key[:])
	return p.first + int(binary.BigEndian.Uint64(h[:8])%uint64(p.n()))
}

// reprobe is where a host that lost slot number lost starts looking for a free one: a
// point hashed from its key and lost, so that the hosts that lost the same slot spread
// over the pool instead of all trying the next one (deterministic: the same view gives
// the same choice).
func (p pool) reprobe(key [32]byte, lost int) int {
	var b [36]byte
	copy(b[:], key[:])
	binary.BigEndian.PutUint32(b[32:], uint32(lost))
	h := sha256.Sum256(b[:])
	return p.first + int(binary.BigEndian.Uint64(h[:8])%uint64(p.n()))
}

// exhausted is the error of a pool whose every allocatable slot is held: it names the
// settings that make room.
func (p pool) exhausted() error {
	where := fmt.Sprintf("cluster_cidr %s", p.cidr)
	widen := "widen cluster_cidr or raise subnet_len"
	if p.ranged {
		where = fmt.Sprintf("subnet_min…subnet_max %s–%s of cluster_cidr %s", p.subnet(p.first), p.subnet(p.last), p.cidr)
		widen = "widen subnet_min…subnet_max or cluster_cidr, or raise subnet_len"
	}
	return fmt.Errorf("%w: all %d /%d subnets of %s are held by live members; %s", ErrNoFreeSubnet, p.n(), p.bits, where, widen)
}

// claim is one member's announced subnet.
type claim struct {
	name   string
	key    [32]byte
	subnet netip.Prefix
	static bool
	since  int64
	later  bool // first seen more than claimSettle after this host started announcing its subnet
	wins   bool // a static claim that Config.StaticWins honours over a held /24
}

// claimSettle is how long after this host starts announcing a subnet another member's claim
// on it counts as simultaneous (a tie: this host moves) rather than later (refused: this host
// keeps it). It must exceed the time a tag update takes to reach every host, or two hosts
// that picked the same /24 together would each see the other as later and both keep it.
func claimSettle(cfg Config) time.Duration {
	return max(4*cfg.ReconcileInterval, 5*time.Second)
}

// allocMemory is what reconcile remembers between runs (allocator goroutine only): since
// when this host announces its subnet, and when each member's claim was first seen.
type allocMemory struct {
	subnet netip.Prefix
	since  time.Time
	seen   map[string]seenClaim
}

type seenClaim struct {
	subnet netip.Prefix
	at     time.Time
}

// mark records, at now, this host's subnet (since changes when it does) and the live
// members' claims (at changes when a member's subnet does), and sets each claim's later: first
// seen more than settle after this host started announcing its subnet. Members absent from
// others are forgotten: on their return, their claim is new.
func (a *allocMemory) mark(now time.Time, self netip.Prefix, others []claim, settle time.Duration) {
	seen := make(map[string]seenClaim, len(others))
	for _, o := range others {
		sc, ok := a.seen[o.name]
		if !ok || sc.subnet != o.subnet {
			sc = seenClaim{subnet: o.subnet, at: now}
		}
		seen[o.name] = sc
	}
	a.seen = seen
	if a.since.IsZero() || a.subnet != self {
		a.subnet, a.since = self, now
	}
	settled := a.since.Add(settle)
	for i := range others {
		others[i].later = seen[others[i].name].at.After(settled)
	}
}

// before breaks a tie between two static claims claimed at the same StaticSince.
func (a claim) before(b claim) bool {
	if c := bytes.Compare(a.key[:], b.key[:]); c != 0 {
		return c < 0
	}
	return a.name < b.name
}

// decision is the outcome of decide.
type decision struct {
	subnet netip.Prefix // to announce; zero when none
	status SubnetStatus
	err    error
}

// decide chooses this host's subnet. self.subnet is the current choice (or the
// configured static subnet); others are the live members' valid claims.
func (p pool) decide(self claim, others []claim) decision {
	if self.static {
		for _, o := range others {
			if (o.later && !o.wins) || !o.static || !o.subnet.Overlaps(self.subnet) {
				continue
			}
			if o.since < self.since || (o.since == self.since && o.before(self)) {
				return decision{status: SubnetConflict, err: fmt.Errorf(
					"%w: %s is also configured on member %q, which claimed it first; configure another subnet on this host (%q)",
					ErrSubnetConflict, self.subnet, o.name, self.name)}
			}
		}
		return decision{subnet: self.subnet}
	}
	held := func(s netip.Prefix) bool {
		for _, o := range others {
			if o.subnet.Overlaps(s) {
				return true
			}
		}
		return false
	}
	start := p.propose(self.key)
	if i, ok := p.index(self.subnet); ok {
		lose := false
		for _, o := range others {
			if o.subnet.Overlaps(self.subnet) && (!o.later || o.wins) {
				lose = true
				break
			}
		}
		if !lose {
			return decision{subnet: self.subnet}
		}
		start = p.reprobe(self.key, i)
	}
	for k := 0; k < p.n(); k++ {
		i := p.first + (start-p.first+k)%p.n()
		if s := p.subnet(i); !held(s) {
			return decision{subnet: s}
		}
	}
	return decision{status: SubnetExhausted, err: p.exhausted()}
}

// loadSubnet reads the persisted subnet; a missing file is not an error.
func loadSubnet(dir string) (netip.Prefix, error) {
	if dir == "" {
		return netip.Prefix{}, nil
	}
	b, err := os.ReadFile(filepath.Join(dir, SubnetFile))
	if errors.Is(err, os.ErrNotExist) {
		return netip.Prefix{}, nil
	}
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("read subnet: %w", err)
	}
	p, err := netip.ParsePrefix(strings.TrimSpace(string(b)))
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("read subnet: %s: %w", filepath.Join(dir, SubnetFile), err)
	}
	return p, nil
}

// saveSubnet persists p atomically (write then rename).
func saveSubnet(dir string, p netip.Prefix) error {
	if dir == "" {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("save subnet: %w", err)
	}
	path := filepath.Join(dir, SubnetFile)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(p.String()+"\n"), 0o644); err != nil {
		return fmt.Errorf("save subnet: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("save subnet: %w", err)
	}
	return nil
}

// initialSubnet is the subnet announced at start, before any member is known.
func (c *Cluster) initialSubnet() netip.Prefix {
	if c.cfg.StaticSubnet.IsValid() {
		return c.cfg.StaticSubnet
	}
	p, err := loadSubnet(c.cfg.StateDir)
	if err != nil {
		c.log.Warn("ignoring the persisted subnet", "err", err)
	}
	if _, ok := c.pool.index(p); ok {
		return p
	}
	if p.IsValid() {
		c.log.Info("persisted subnet is outside the cluster CIDR; allocating anew", "subnet", p, "cluster_cidr", c.cfg.ClusterCIDR)
	}
	return c.pool.subnet(c.pool.propose(c.cfg.Node.PublicKey))
}

// reconcile re-decides the local subnet from the member list and announces a
// change. Called by the allocator goroutine only.
func (c *Cluster) reconcile() {
	local := c.cfg.NodeName
	now := time.Now()
	var others []claim
	for _, m := range c.serf.Members() {
		if m.Name == local {
			continue
		}
		mem := c.member(m)
		if (mem.Status != StatusAlive && mem.Status != StatusLeaving) || mem.InfoErr != nil || !mem.Info.Subnet.IsValid() {
			continue
		}
		// A claim wider or narrower than a /24 (a /32 inside another's subnet, a static
		// 0.0.0.0/0) is refused by every host: it must not make this one move or withdraw.
		if !mem.Info.Subnet.Addr().Is4() || mem.Info.Subnet.Bits() != c.pool.bits {
			continue
		}
		if c.cfg.AcceptClaim != nil && !c.cfg.AcceptClaim(mem) {
			continue
		}
		// A member that announces this host's own public key is a copy (every host refuses
		// it as own_key or duplicate_key): its claim never makes this host move, not even
		// within claimSettle of this host's start, where a real claim would be a tie.
		if mem.Info.PublicKey == c.cfg.Node.PublicKey {
			continue
		}
		others = append(others, claim{name: mem.Name, key: mem.Info.PublicKey, subnet: mem.Info.Subnet, static: mem.Info.Static, since: mem.Info.StaticSince})
	}

	c.mu.Lock()
	self := claim{name: local, key: c.info.PublicKey, subnet: c.info.Subnet, static: c.info.Static, since: c.info.StaticSince}
	if self.static {
		self.subnet = c.cfg.StaticSubnet
	}
	c.alloc.mark(now, self.subnet, others, claimSettle(c.cfg))
	for i := range others {
		others[i].wins = others[i].static && c.cfg.StaticWins != nil && c.cfg.StaticWins(others[i].subnet)
	}
	d := c.pool.decide(self, others)
	if d.subnet == c.info.Subnet && d.status == c.status {
		c.mu.Unlock()
		return
	}
	prevStatus, prevSubnet := c.status, c.info.Subnet
	info := c.info
	info.Subnet = d.subnet
	if err := c.setNodeInfoLocked(info); err != nil && !c.tookTagsLocked(info) {
		c.mu.Unlock()
		c.log.Warn("announce subnet", "subnet", d.subnet, "err", err)
		return
	}
	c.status, c.err = d.status, d.err
	c.mu.Unlock()

	if d.subnet.IsValid() && !self.static {
		if err := saveSubnet(c.cfg.StateDir, d.subnet); err != nil {
			c.log.Warn("persist subnet", "subnet", d.subnet, "err", err)
		}
	}
	if d.err != nil && d.status != prevStatus {
		c.log.Error("subnet unusable", "member", local, "err", d.err)
		c.events.send(Event{Type: EventSubnetConflict, Member: c.LocalMember(), Err: d.err})
	}
	if d.subnet != prevSubnet {
		c.log.Info("subnet changed", "member", local, "from", prevSubnet, "subnet", d.subnet, "status", d.status)
		c.events.send(Event{Type: EventSubnetChanged, Member: c.LocalMember(), Subnet: d.subnet})
	}
}

// tookTagsLocked reports whether Serf announces info although SetTags failed: its wait for
// the broadcast timed out (a loaded host) after the local tags changed, and they spread
// anyway. Then c.info and c.tags follow what is announced, or this host would keep deciding
// from a subnet it no longer announces.
func (c *Cluster) tookTagsLocked(info NodeInfo) bool {
	tag, err := info.EncodeTag()
	if err != nil {
		return false
	}
	local := c.serf.LocalMember().Tags
	if local[TagNodeInfo] != tag {
		return false
	}
	c.tags, c.info = maps.Clone(local), info
	return true
}
