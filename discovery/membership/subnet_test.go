package membership

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func clMustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func clKeyN(b byte) [32]byte {
	var k [32]byte
	k[0] = b
	return k
}

func TestPool_Index(t *testing.T) {
	p, err := newPool(clMustPrefix("10.42.0.0/16"), 0, netip.Prefix{}, netip.Prefix{})
	if err != nil {
		t.Fatal(err)
	}
	if p.n() != 255 {
		t.Fatalf("n = %d, want 255 (slot 0 is reserved)", p.n())
	}
	for _, tc := range []struct {
		s    string
		i    int
		want bool
	}{
		{"10.42.0.0/24", 0, false}, // reserved
		{"10.42.1.0/24", 1, true},
		{"10.42.255.0/24", 255, true},
		{"10.43.0.0/24", 0, false},
		{"10.42.1.0/25", 0, false},
		{"10.41.255.0/24", 0, false},
	} {
		i, ok := p.index(clMustPrefix(tc.s))
		if ok != tc.want || (ok && i != tc.i) {
			t.Errorf("index(%s) = %d %v", tc.s, i, ok)
		}
		if ok && p.subnet(i) != clMustPrefix(tc.s) {
			t.Errorf("subnet(%d) = %s", i, p.subnet(i))
		}
	}
	for k := range 100 {
		if i := p.propose(clKeyN(byte(k))); i < 1 || i > p.last {
			t.Fatalf("propose out of range: %d", i)
		}
	}
}

func TestPool_Decide(t *testing.T) {
	p, _ := newPool(clMustPrefix("10.42.0.0/22"), 0, netip.Prefix{}, netip.Prefix{}) // 4 /24s, 3 allocatable
	s1, s2, s3 := clMustPrefix("10.42.1.0/24"), clMustPrefix("10.42.2.0/24"), clMustPrefix("10.42.3.0/24")
	low := func(s netip.Prefix) claim { return claim{name: "low", key: clKeyN(1), subnet: s} }
	high := func(s netip.Prefix) claim { return claim{name: "high", key: clKeyN(9), subnet: s} }
	stat := func(name string, s netip.Prefix, since int64) claim {
		return claim{name: name, key: clKeyN(5), subnet: s, static: true, since: since}
	}
	self := claim{name: "self", key: clKeyN(5)}
	with := func(s netip.Prefix) claim { c := self; c.subnet = s; return c }
	later := func(c claim) claim { c.later = true; return c }
	wins := func(c claim) claim { c.wins = true; return c }
	for _, tc := range []struct {
		name   string
		self   claim
		others []claim
		want   netip.Prefix
		status SubnetStatus
		err    error
	}{
		{"alone-keeps", with(s2), nil, s2, SubnetOK, nil},
		// A tie (a claim not later than this host's): this host moves, whatever the keys.
		{"tie-moves-from-higher-key", with(s2), []claim{high(s2)}, s3, SubnetOK, nil},
		{"tie-moves-from-lower-key", with(s2), []claim{low(s2)}, s3, SubnetOK, nil},
		// A later claim: this host keeps its /24, whatever the keys, dynamic or static.
		{"later-lower-key-refused", with(s2), []claim{later(low(s2))}, s2, SubnetOK, nil},
		{"later-static-refused", with(s1), []claim{later(stat("st", s1, 1))}, s1, SubnetOK, nil},
		{"later-static-inside-allowed-static-wins", with(s1), []claim{wins(later(stat("st", s1, 1)))}, s2, SubnetOK, nil},
		{"later-claim-still-held-for-choice", with(netip.Prefix{}), []claim{later(low(s1)), high(s2)}, s3, SubnetOK, nil},
		{"moves-to-next-free-wrapping", with(s2), []claim{low(s2), high(s3)}, s1, SubnetOK, nil},
		{"static-beats-lower-key", with(s1), []claim{stat("st", s1, 1)}, s2, SubnetOK, nil},
		{"static-overlap", with(s1), []claim{stat("st", clMustPrefix("10.42.0.0/23"), 1)}, s2, SubnetOK, nil},
		{"none-current-takes-free", with(netip.Prefix{}), []claim{low(s1), high(s2)}, s3, SubnetOK, nil},
		{"outside-pool-reallocates", with(clMustPrefix("10.9.0.0/24")), []claim{low(s1), high(s2)}, s3, SubnetOK, nil},
		{"exhausted", with(s1), []claim{low(s1), low(s2), high(s3)}, netip.Prefix{}, SubnetExhausted, ErrNoFreeSubnet},
		{"static-alone", stat("self", s2, 10), nil, s2, SubnetOK, nil},
		{"static-vs-dynamic", stat("self", s2, 10), []claim{low(s2)}, s2, SubnetOK, nil},
		{"static-earlier-wins", stat("self", s2, 10), []claim{stat("later", s2, 20)}, s2, SubnetOK, nil},
		{"static-later-conflicts", stat("self", s2, 10), []claim{stat("earlier", s2, 5)}, netip.Prefix{}, SubnetConflict, ErrSubnetConflict},
		{"static-tie-lower-key", stat("self", s2, 10), []claim{{name: "tie", key: clKeyN(1), subnet: s2, static: true, since: 10}}, netip.Prefix{}, SubnetConflict, ErrSubnetConflict},
		{"static-later-forged-since-ignored", stat("self", s2, 10), []claim{later(stat("forger", s2, 1))}, s2, SubnetOK, nil},
		{"static-later-inside-allowed-static-earlier-wins", stat("self", s2, 10), []claim{wins(later(stat("earlier", s2, 5)))}, netip.Prefix{}, SubnetConflict, ErrSubnetConflict},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := p.decide(tc.self, tc.others)
			if d.subnet != tc.want || d.status != tc.status || !errors.Is(d.err, tc.err) {
				t.Fatalf("decide = %s %s %v, want %s %s %v", d.subnet, d.status, d.err, tc.want, tc.status, tc.err)
			}
		})
	}
}

func TestSubnet_SaveLoad(t *testing.T) {
	dir := t.TempDir()
	if p, err := loadSubnet(dir); err != nil || p.IsValid() {
		t.Fatalf("missing file: %s %v", p, err)
	}
	want := clMustPrefix("10.42.9.0/24")
	if err := saveSubnet(dir, want); err != nil {
		t.Fatal(err)
	}
	if p, err := loadSubnet(dir); err != nil || p != want {
		t.Fatalf("load: %s %v", p, err)
	}
	if err := os.WriteFile(filepath.Join(dir, SubnetFile), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := loadSubnet(dir); err == nil {
		t.Fatal("garbage accepted")
	}
}

// TestCluster_SubnetConverges starts 20 nodes at once in a /19 (31 allocatable
// /24s), with every key chosen so that all propose the same /24, and waits
// until every node sees 20 distinct subnets, each the one its owner announces.
// TestCluster_SubnetConverges: every node proposes the same /24, and the conflict resolves
// to distinct subnets that every view agrees on. The highest key may move once per lower
// claimant, each move one gossip propagation, so the time grows with the node count and the
// machine's load: measured on a loaded 2-core machine under -race, 20 nodes took 4-10 s
// alone and up to 98 s with three such runs side by side, always converging (no conflict
// persisted; the contested pairs changed as nodes moved). Hence 10 nodes under -short and
// the 20-node run, with a generous deadline, in `make test-norace` (no -short).
func TestCluster_SubnetConverges(t *testing.T) {
	nodes, deadline := 20, 120*time.Second
	if testing.Short() {
		nodes, deadline = 10, 60*time.Second
	}
	cidr := clMustPrefix("10.42.0.0/19")
	var cs []*Cluster
	for i := range nodes {
		cfg := clTestConfig(t, fmt.Sprintf("n%02d", i))
		cfg.ClusterCIDR = cidr
		cfg.Logger = nil // 20 nodes' info lines would drown the output
		// Convergence needs gossip, not failure detection: lax probes keep 20
		// nodes under -race on a busy machine from declaring each other failed.
		cfg.ProbeInterval, cfg.ProbeTimeout, cfg.SuspicionMult = time.Second, 500*time.Millisecond, 5
		// Each join is a TCP push/pull with the seed, which under load answers slower than
		// DefaultLocalConfig's 1 s (seen: "join: ... i/o timeout" with the machine at load 12).
		cfg.TCPTimeout = 10 * time.Second
		cfg.Node.PublicKey = clCollidingKey(t, cidr, 7, byte(i))
		cs = append(cs, clStartCluster(t, cfg))
	}
	if got := cs[0].Subnet(); got != clMustPrefix("10.42.7.0/24") {
		t.Fatalf("proposal %s, want the forced 10.42.7.0/24", got)
	}
	for _, c := range cs[1:] {
		if _, err := c.Join([]string{clAddrOf(cs[0])}); err != nil {
			t.Fatal(err)
		}
	}
	var last string
	defer func() {
		if t.Failed() {
			t.Logf("last state: %s", last)
		}
	}()
	start := time.Now()
	defer func() { t.Logf("%d nodes: distinct, agreed subnets after %.1fs", nodes, time.Since(start).Seconds()) }()
	clEventually(t, deadline, "distinct subnets on every node", func() bool {
		for _, c := range cs {
			seen := map[netip.Prefix]string{}
			ms := c.Members()
			if len(ms) != nodes {
				last = fmt.Sprintf("%s sees %d members", c.cfg.NodeName, len(ms))
				return false
			}
			for _, m := range ms {
				if m.Status != StatusAlive || m.InfoErr != nil || !m.Info.Subnet.IsValid() {
					last = fmt.Sprintf("%s: %s is %s, info err %v", c.cfg.NodeName, m.Name, m.Status, m.InfoErr)
					return false
				}
				if other, dup := seen[m.Info.Subnet]; dup {
					last = fmt.Sprintf("%s: %s and %s both hold %s", c.cfg.NodeName, other, m.Name, m.Info.Subnet)
					return false
				}
				seen[m.Info.Subnet] = m.Name
			}
		}
		// Every view agrees with what each owner thinks it holds.
		for _, owner := range cs {
			for _, c := range cs {
				for _, m := range c.Members() {
					if m.Name == owner.cfg.NodeName && m.Info.Subnet != owner.Subnet() {
						last = fmt.Sprintf("%s sees %s at %s, it holds %s", c.cfg.NodeName, m.Name, m.Info.Subnet, owner.Subnet())
						return false
					}
				}
			}
		}
		return true
	})
	for _, c := range cs {
		if c.SubnetStatus() != SubnetOK || c.Err() != nil {
			t.Errorf("%s: %s %v", c.cfg.NodeName, c.SubnetStatus(), c.Err())
		}
	}
}

// clCollidingKey returns a random-looking key whose proposal is /24 number want.
func clCollidingKey(t testing.TB, cidr netip.Prefix, want int, salt byte) [32]byte {
	p, _ := newPool(cidr, 0, netip.Prefix{}, netip.Prefix{})
	k := clRandomKey(t)
	k[31] = salt
	for {
		if p.propose(k) == want {
			return k
		}
		k[0]++
		if k[0] == 0 {
			k[1]++
		}
	}
}

func TestCluster_SubnetPersisted(t *testing.T) {
	dir := t.TempDir()
	cfg := clTestConfig(t, "p")
	cfg.StateDir = dir
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	first := c.Subnet()
	c.Shutdown()
	if p, _ := loadSubnet(dir); p != first {
		t.Fatalf("persisted %s, announced %s", p, first)
	}
	// A new key would propose elsewhere; the persisted subnet wins.
	cfg.Node.PublicKey = clRandomKey(t)
	c2 := clStartCluster(t, cfg)
	if got := c2.Subnet(); got != first {
		t.Fatalf("after restart %s, want %s", got, first)
	}
}

// TestCluster_SubnetMovesOnConflict: a host that joins with a /24 another host held first
// moves, even though its key sorts lower: incumbency, not the key, decides.
func TestCluster_SubnetMovesOnConflict(t *testing.T) {
	cidr := clMustPrefix("10.42.0.0/20")
	holderCfg, newCfg := clTestConfig(t, "holder"), clTestConfig(t, "newcomer")
	holderCfg.ClusterCIDR, newCfg.ClusterCIDR = cidr, cidr
	holderCfg.Node.PublicKey = clCollidingKey(t, cidr, 3, 0)
	newCfg.Node.PublicKey = clCollidingKey(t, cidr, 3, 1)
	if clKeyLess(holderCfg.Node.PublicKey, newCfg.Node.PublicKey) {
		holderCfg.Node.PublicKey, newCfg.Node.PublicKey = newCfg.Node.PublicKey, holderCfg.Node.PublicKey
	}
	holder := clStartCluster(t, holderCfg)
	held := holder.Subnet()
	time.Sleep(claimSettle(holderCfg) + time.Second)
	newcomer := clStartCluster(t, newCfg)
	if newcomer.Subnet() != held {
		t.Fatalf("no collision to start with: %s %s", held, newcomer.Subnet())
	}
	if _, err := newcomer.Join([]string{clAddrOf(holder)}); err != nil {
		t.Fatal(err)
	}
	ev := clWaitEvent(t, newcomer, EventSubnetChanged, "newcomer", 5*time.Second)
	if ev.Subnet == held || !ev.Subnet.IsValid() || newcomer.Subnet() != ev.Subnet {
		t.Fatalf("newcomer moved to %s (holds %s), holder keeps %s", ev.Subnet, newcomer.Subnet(), held)
	}
	time.Sleep(3 * holderCfg.ReconcileInterval)
	if holder.Subnet() != held {
		t.Fatalf("the holder lost its subnet to a lower key: %s", holder.Subnet())
	}
}

// TestCluster_SimultaneousClaimBothMove: two hosts that picked the same /24 and meet at once
// both move off it: the lower key does not win the tie.
func TestCluster_SimultaneousClaimBothMove(t *testing.T) {
	cidr := clMustPrefix("10.42.0.0/20")
	lowCfg, highCfg := clTestConfig(t, "low"), clTestConfig(t, "high")
	lowCfg.ClusterCIDR, highCfg.ClusterCIDR = cidr, cidr
	lowCfg.Node.PublicKey = clCollidingKey(t, cidr, 3, 0)
	highCfg.Node.PublicKey = clCollidingKey(t, cidr, 3, 1)
	if clKeyLess(highCfg.Node.PublicKey, lowCfg.Node.PublicKey) {
		lowCfg.Node.PublicKey, highCfg.Node.PublicKey = highCfg.Node.PublicKey, lowCfg.Node.PublicKey
	}
	low, high := clStartCluster(t, lowCfg), clStartCluster(t, highCfg)
	held := low.Subnet()
	if high.Subnet() != held {
		t.Fatalf("no collision to start with: %s %s", held, high.Subnet())
	}
	if _, err := high.Join([]string{clAddrOf(low)}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*Cluster{low, high} {
		if ev := clWaitEvent(t, c, EventSubnetChanged, c.cfg.NodeName, 5*time.Second); ev.Subnet == held {
			t.Fatalf("%s did not move off the tied %s", c.cfg.NodeName, held)
		}
	}
	clEventually(t, 10*time.Second, "distinct subnets", func() bool {
		return low.Subnet().IsValid() && high.Subnet().IsValid() && low.Subnet() != high.Subnet()
	})
}

func clKeyLess(a, b [32]byte) bool { return claim{key: a}.before(claim{key: b}) }

func TestCluster_StaticSubnetConflict(t *testing.T) {
	static := clMustPrefix("10.42.50.0/24")
	cfgA, cfgB := clTestConfig(t, "first"), clTestConfig(t, "second")
	cfgA.StaticSubnet, cfgB.StaticSubnet = static, static
	a := clStartCluster(t, cfgA)
	time.Sleep(5 * time.Millisecond) // distinct claim times, in ms
	b := clStartCluster(t, cfgB)
	if _, err := b.Join([]string{clAddrOf(a)}); err != nil {
		t.Fatal(err)
	}
	ev := clWaitEvent(t, b, EventSubnetConflict, "second", 5*time.Second)
	if !errors.Is(ev.Err, ErrSubnetConflict) || !errors.Is(b.Err(), ErrSubnetConflict) || b.SubnetStatus() != SubnetConflict {
		t.Fatalf("event err %v, Err %v, status %s", ev.Err, b.Err(), b.SubnetStatus())
	}
	t.Logf("the later host reports: %v", b.Err())
	if b.Subnet().IsValid() {
		t.Errorf("the later host still announces %s", b.Subnet())
	}
	if a.Err() != nil || a.Subnet() != static {
		t.Errorf("the earlier host: %s %v", a.Subnet(), a.Err())
	}
	// A dynamic host never takes a static subnet.
	cfgD := clTestConfig(t, "dyn")
	cfgD.StateDir = t.TempDir()
	if err := saveSubnet(cfgD.StateDir, static); err != nil {
		t.Fatal(err)
	}
	d := clStartCluster(t, cfgD)
	if _, err := d.Join([]string{clAddrOf(a)}); err != nil {
		t.Fatal(err)
	}
	clEventually(t, 5*time.Second, "dyn moves off the static subnet", func() bool {
		return d.Subnet().IsValid() && d.Subnet() != static
	})
	// The earlier host leaves: the later takes its subnet back.
	if err := a.Leave(); err != nil {
		t.Fatal(err)
	}
	clEventually(t, 5*time.Second, "second recovers", func() bool {
		return b.Err() == nil && b.Subnet() == static && b.SubnetStatus() == SubnetOK
	})
}

// TestCluster_ForgedClaimsDoNotMoveAnyone: a member that writes its own tags announces a
// static 0.0.0.0/0, then a static /32 inside a host's subnet, then (refused by AcceptClaim,
// as a certificate check would) the host's /24 as static and oldest: the host keeps its subnet.
func TestCluster_ForgedClaimsDoNotMoveAnyone(t *testing.T) {
	vcfg := clTestConfig(t, "victim")
	forgerKey := clRandomKey(t)
	vcfg.AcceptClaim = func(m Member) bool { return m.Info.PublicKey != forgerKey }
	victim := clStartCluster(t, vcfg)
	fcfg := clTestConfig(t, "forger")
	fcfg.Node.PublicKey = forgerKey
	forger := clStartCluster(t, fcfg)
	if _, err := forger.Join([]string{clAddrOf(victim)}); err != nil {
		t.Fatal(err)
	}
	held := victim.Subnet()
	for _, forged := range []netip.Prefix{clMustPrefix("0.0.0.0/0"), netip.PrefixFrom(held.Addr().Next(), 32), held} {
		info := NodeInfo{PublicKey: forgerKey, DataPort: 51820, VNI: 1, Proto: 1, Subnet: forged, Static: true, StaticSince: 1}
		tag, err := info.EncodeTag()
		if err != nil {
			t.Fatal(err)
		}
		// Past SetNodeInfo, which would not let a host announce what it likes.
		if err := forger.serf.SetTags(map[string]string{TagNodeInfo: tag}); err != nil {
			t.Fatal(err)
		}
		clEventually(t, 5*time.Second, "the victim sees the forged claim "+forged.String(), func() bool {
			for _, m := range victim.Members() {
				if m.Name == "forger" && m.Info.Subnet == forged {
					return true
				}
			}
			return false
		})
		time.Sleep(3 * vcfg.ReconcileInterval) // several reconciles; the subnet must not move
		if victim.Subnet() != held || victim.Err() != nil {
			t.Fatalf("forged %s: the victim holds %s (%v), had %s", forged, victim.Subnet(), victim.Err(), held)
		}
	}
}

// TestCluster_KeyCopierDoesNotMoveAnyone: a member that announces the victim's own public
// key and /24 right after the victim started (within claimSettle, where another key's claim
// would be a tie and the victim would move) is a copy: the victim keeps its subnet.
func TestCluster_KeyCopierDoesNotMoveAnyone(t *testing.T) {
	vcfg := clTestConfig(t, "victim")
	victim := clStartCluster(t, vcfg)
	fcfg := clTestConfig(t, "copier")
	forger := clStartCluster(t, fcfg)
	if _, err := forger.Join([]string{clAddrOf(victim)}); err != nil {
		t.Fatal(err)
	}
	held := victim.Subnet()
	info := NodeInfo{PublicKey: vcfg.Node.PublicKey, DataPort: 51820, VNI: 1, Proto: 1, Subnet: held}
	tag, err := info.EncodeTag()
	if err != nil {
		t.Fatal(err)
	}
	if err := forger.serf.SetTags(map[string]string{TagNodeInfo: tag}); err != nil {
		t.Fatal(err)
	}
	clEventually(t, 5*time.Second, "the victim sees the copy", func() bool {
		for _, m := range victim.Members() {
			if m.Name == "copier" && m.Info.Subnet == held {
				return true
			}
		}
		return false
	})
	time.Sleep(5 * vcfg.ReconcileInterval)
	if victim.Subnet() != held || victim.Err() != nil {
		t.Fatalf("the victim moved from %s to %s (%v) for a copy of its own key", held, victim.Subnet(), victim.Err())
	}
}

// clKeyBelow returns a random key that sorts below k.
func clKeyBelow(t testing.TB, k [32]byte) [32]byte {
	for {
		l := clRandomKey(t)
		if clKeyLess(l, k) {
			return l
		}
	}
}

// TestCluster_IncumbentKeepsSubnet: without a CA (no AcceptClaim), a member holding the
// gossip key and a key that sorts below the victim's announces the victim's exact /24, first
// as a dynamic claim, then as a static one claimed "since 1": the victim, which held it
// first, keeps it through many reconciles.
func TestCluster_IncumbentKeepsSubnet(t *testing.T) {
	vcfg := clTestConfig(t, "victim")
	victim := clStartCluster(t, vcfg)
	fcfg := clTestConfig(t, "forger")
	fcfg.Node.PublicKey = clKeyBelow(t, vcfg.Node.PublicKey)
	forger := clStartCluster(t, fcfg)
	if _, err := forger.Join([]string{clAddrOf(victim)}); err != nil {
		t.Fatal(err)
	}
	held := victim.Subnet()
	time.Sleep(claimSettle(vcfg) + time.Second) // the victim holds its /24, the forger its own
	for _, static := range []bool{false, true} {
		info := NodeInfo{PublicKey: fcfg.Node.PublicKey, DataPort: 51820, VNI: 1, Proto: 1, Subnet: held, Static: static}
		if static {
			info.StaticSince = 1
		}
		tag, err := info.EncodeTag()
		if err != nil {
			t.Fatal(err)
		}
		if err := forger.serf.SetTags(map[string]string{TagNodeInfo: tag}); err != nil {
			t.Fatal(err)
		}
		clEventually(t, 5*time.Second, "the victim sees the forged claim", func() bool {
			for _, m := range victim.Members() {
				if m.Name == "forger" && m.Info.Subnet == held && m.Info.Static == static {
					return true
				}
			}
			return false
		})
		time.Sleep(5 * vcfg.ReconcileInterval)
		if victim.Subnet() != held || victim.Err() != nil {
			t.Fatalf("static=%v: the victim moved from %s to %s (%v) for a later claim by a lower key", static, held, victim.Subnet(), victim.Err())
		}
	}
}

// TestPool_SubnetLen: a /20 cut into /26s (64 slots, 63 allocatable); subnet_min and
// subnet_max bound what is allocated; every bad combination is refused with a message that
// names the setting.
func TestPool_SubnetLen(t *testing.T) {
	none := netip.Prefix{}
	p, err := newPool(clMustPrefix("10.42.0.0/20"), 26, none, none)
	if err != nil {
		t.Fatal(err)
	}
	if p.n() != 63 || p.subnet(1) != clMustPrefix("10.42.0.64/26") || p.subnet(63) != clMustPrefix("10.42.15.192/26") {
		t.Fatalf("n %d, first %s, last %s", p.n(), p.subnet(1), p.subnet(63))
	}
	for _, tc := range []struct {
		s    string
		want bool
	}{
		{"10.42.0.0/26", false}, // slot 0
		{"10.42.0.64/26", true},
		{"10.42.15.192/26", true},
		{"10.42.0.96/26", false}, // not on a slot boundary (not masked)
		{"10.42.1.0/24", false},  // another length
		{"10.42.16.0/26", false}, // outside
	} {
		if _, ok := p.index(clMustPrefix(tc.s)); ok != tc.want {
			t.Errorf("index(%s) = %v, want %v", tc.s, ok, tc.want)
		}
	}
	r, err := newPool(clMustPrefix("10.42.0.0/20"), 26, clMustPrefix("10.42.1.0/26"), clMustPrefix("10.42.1.64/26"))
	if err != nil {
		t.Fatal(err)
	}
	if r.n() != 2 {
		t.Fatalf("range of 2 slots has n %d", r.n())
	}
	for k := range 200 {
		if i := r.propose(clKeyN(byte(k))); i != r.first && i != r.last {
			t.Fatalf("propose %d outside subnet_min…subnet_max", i)
		}
	}
	full := r.decide(claim{name: "c", key: clKeyN(3)}, []claim{{name: "a", subnet: clMustPrefix("10.42.1.0/26")}, {name: "b", subnet: clMustPrefix("10.42.1.64/26")}})
	if full.status != SubnetExhausted || !errors.Is(full.err, ErrNoFreeSubnet) ||
		!strings.Contains(full.err.Error(), "subnet_min…subnet_max 10.42.1.0/26–10.42.1.64/26") {
		t.Fatalf("full range: %v %v", full.status, full.err)
	}
	for _, tc := range []struct {
		cidr     string
		bits     int
		min, max string
		want     string
	}{
		{"fd00::/48", 0, "", "", "IPv6 cluster_cidr is not supported"},
		{"10.42.0.0/16", 19, "", "", "subnet_len 19: must be 20 to 26"},
		{"10.42.0.0/16", 27, "", "", "subnet_len 27"},
		{"10.42.0.0/26", 26, "", "", "must be an IPv4 prefix from /8 to /25"},
		{"10.42.0.0/20", 26, "10.43.0.0/26", "", "subnet_min 10.43.0.0/26: must be a /26 inside cluster_cidr"},
		{"10.42.0.0/20", 26, "", "10.42.0.0/24", "subnet_max 10.42.0.0/24: must be a /26"},
		{"10.42.0.0/20", 26, "10.42.2.0/26", "10.42.1.0/26", "subnet_min 10.42.2.0/26 is above subnet_max"},
	} {
		pf := func(s string) netip.Prefix {
			if s == "" {
				return netip.Prefix{}
			}
			return clMustPrefix(s)
		}
		_, err := newPool(clMustPrefix(tc.cidr), tc.bits, pf(tc.min), pf(tc.max))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("newPool(%s, %d, %q, %q) = %v, want an error containing %q", tc.cidr, tc.bits, tc.min, tc.max, err, tc.want)
		}
	}
}

// TestCluster_RangeFull: a host whose subnet_min…subnet_max holds one slot, which a member
// that was there first holds, announces nothing and reports the range full, and stays so.
func TestCluster_RangeFull(t *testing.T) {
	cfgA := clTestConfig(t, "a")
	cfgA.ClusterCIDR, cfgA.SubnetBits = clMustPrefix("10.77.0.0/20"), 26
	a := clStartCluster(t, cfgA)
	clEventually(t, 5*time.Second, "a holds a subnet", func() bool { return a.Subnet().IsValid() })
	held := a.Subnet()
	// Past a's claimSettle: d's claim is then later than a's, not a tie (in which both move).
	time.Sleep(claimSettle(cfgA) + time.Second)
	cfgD := clTestConfig(t, "d")
	cfgD.ClusterCIDR, cfgD.SubnetBits, cfgD.SubnetMin, cfgD.SubnetMax = cfgA.ClusterCIDR, 26, held, held
	d := clStartCluster(t, cfgD)
	if _, err := d.Join([]string{clAddrOf(a)}); err != nil {
		t.Fatal(err)
	}
	clEventually(t, 10*time.Second, "d reports its range full", func() bool { return d.SubnetStatus() == SubnetExhausted })
	for range 20 {
		time.Sleep(100 * time.Millisecond)
		if s := d.Subnet(); s.IsValid() || d.SubnetStatus() != SubnetExhausted {
			t.Fatalf("d took %s (status %v) while a holds it", s, d.SubnetStatus())
		}
	}
	if a.Subnet() != held {
		t.Fatalf("a moved from %s to %s", held, a.Subnet())
	}
}
