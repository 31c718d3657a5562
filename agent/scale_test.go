package agent

import (
	"fmt"
	"io"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weftnet/weft/agent/config"
	"github.com/weftnet/weft/agent/gossip"
	"github.com/weftnet/weft/agent/netpolicy"
	"github.com/weftnet/weft/agent/services"
	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/discovery/catalog"
	"github.com/weftnet/weft/discovery/membership"
	"github.com/weftnet/weft/peers"
)

// The scale harness (issue 26): the agent's real member pipeline — the gossip glue's trust
// checks and ledger, the peer table behind the L3 datapath, the service catalog (which DNS
// and the Consul API answer from), the policy's groups and address index — driven by
// synthetic members, without Serf. What Serf itself costs is measured by the real agents
// (make scale-agents).
//
//	go test -run '^$' -bench MemberPipeline -benchtime 1x ./agent     # or: make scale
//
// For each N it reports: an update event (a member's catalog tag changes) and a failure
// followed by the rejoin as per-event latency (median, p99) and allocations; a join storm of
// all N members into an empty agent as process CPU (every goroutine: the policy's debounced
// rebuild too); churn, 1 % of members failing and rejoining in one second, as the share of a
// core it takes; and the heap the pipeline holds per member after the storm.

// scaleN is the cluster sizes measured; WEFT_SCALE_N (comma-separated) overrides it.
func scaleN() []int {
	ns := []int{100, 1000, 10000}
	if s := os.Getenv("WEFT_SCALE_N"); s != "" {
		ns = nil
		for _, f := range strings.Split(s, ",") {
			var n int
			if _, err := fmt.Sscan(f, &n); err == nil && n > 0 {
				ns = append(ns, n)
			}
		}
	}
	return ns
}

// scaleCluster is the cluster CIDR that holds 10,000 /24s and more (slot 0 is never given).
var scaleCluster = netip.MustParsePrefix("10.0.0.0/8")

// scaleMember is member i: its own key, a /24 of scaleCluster, two services and a group.
func scaleMember(b testing.TB, i int) membership.Member {
	priv, err := crypto.GeneratePrivateKey()
	if err != nil {
		b.Fatal(err)
	}
	slot := i + 1
	return membership.Member{
		Name:   fmt.Sprintf("host-%05d", i),
		Addr:   netip.AddrPortFrom(netip.AddrFrom4([4]byte{172, 16 + byte(i>>16), byte(i >> 8), byte(i)}), 7946),
		Status: membership.StatusAlive,
		Info: membership.NodeInfo{PublicKey: priv.Public(), DataPort: 51820, VNI: 1, Proto: ProtocolVersion, Mode: gossip.ModeByte("l3", "wireguard"),
			Subnet: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(slot >> 8), byte(slot), 0}), 24)},
		Tags: map[string]string{catalog.CatalogTagKey: "1;api:8080;web:80", "g": "web"},
	}
}

// scaleRig is one agent's member pipeline: gossip glue, table, catalog and policy, wired
// as Run wires them.
type scaleRig struct {
	a       *Agent
	g       *gossip.Gossip
	members []membership.Member
}

func newScaleRig(b testing.TB, members []membership.Member) *scaleRig {
	b.Helper()
	priv, err := crypto.GeneratePrivateKey()
	if err != nil {
		b.Fatal(err)
	}
	cfg := config.DefaultConfig()
	cfg.Name = "self"
	cfg.StateDir = b.TempDir()
	cfg.ClusterCIDR = config.Prefix{Prefix: scaleCluster}
	cfg.DNS.Disabled = true // DNS and the Consul API answer from the catalog at query time
	cfg.Groups = []string{"web"}
	id := crypto.NewIdentity(priv)
	b.Cleanup(id.Close)
	a := &Agent{cfg: cfg, log: NewLogger(io.Discard, "info"), priv: priv, table: peers.NewTable(id)}
	a.subnet = netip.MustParsePrefix("10.255.255.0/24")
	a.address = netip.MustParseAddr("10.255.255.1")
	a.dp = newDatapath(a) // L3: members go into the table (no device needed for that)
	g := gossip.Attach(nil, a.gossipConfig(), a.gossipDeps())
	a.gsp = g
	r := &scaleRig{a: a, g: g, members: members}

	sd := servicesDeps(a, hostResolver{})
	sd.Tags = fakeTags{}
	sd.Subnet = func() netip.Prefix { return a.subnet }
	svc, err := services.Start(sd)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(svc.Close)
	a.cat = &catalogGlue{svc: svc, cat: svc.Catalog()}

	pd := policyDeps(a)
	pd.Members = func() []membership.Member { return r.members }
	pd.SetTag = func(string, string) error { return nil }
	pd.UserEvent = func(string, []byte) error { return nil }
	pol, err := netpolicy.New(pd)
	if err != nil {
		b.Fatal(err)
	}
	if err := pol.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pol.Close)
	a.pol = pol
	a.subscribeMembers(g)
	return r
}

func (r *scaleRig) event(t membership.EventType, m membership.Member) {
	r.g.HandleEvent(membership.Event{Type: t, Member: m})
}

// cpuTime is the process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// heapNow is the live heap after a collection.
func heapNow() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// mallocs is the count of heap allocations so far.
func mallocs() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.Mallocs
}

// latencies times each call of f(i) for i < n and returns the median and the 99th percentile,
// and the allocations per call.
func latencies(n int, f func(i int)) (p50, p99 time.Duration, allocs float64) {
	ds := make([]time.Duration, n)
	m0 := mallocs()
	for i := range ds {
		t0 := time.Now()
		f(i)
		ds[i] = time.Since(t0)
	}
	allocs = float64(mallocs()-m0) / float64(n)
	slices.Sort(ds)
	return ds[n/2], ds[n*99/100], allocs
}

// settle waits for the policy's debounced rebuild that a burst of events kicked (its CPU
// belongs to the burst).
func settle() { time.Sleep(300 * time.Millisecond) }

func BenchmarkMemberPipeline(b *testing.B) {
	for _, n := range scaleN() {
		members := make([]membership.Member, n)
		for i := range members {
			members[i] = scaleMember(b, i)
		}
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			for range b.N {
				runScale(b, members)
			}
		})
	}
}

func runScale(b *testing.B, members []membership.Member) {
	n := len(members)
	idle := settleCPU(b)
	r := newScaleRig(b, members)
	hRig := heapNow()

	// Join storm: every member joins an agent that knows none of them.
	m0, c0, t0 := mallocs(), cpuTime(), time.Now()
	for _, m := range members {
		r.event(membership.EventJoin, m)
	}
	wall := time.Since(t0)
	settle()
	stormCPU := cpuTime() - c0 - idle
	stormAllocs := float64(mallocs()-m0) / float64(n)
	heap := float64(heapNow()-hRig) / float64(n)
	if got := len(r.a.table.Peers()); got != n {
		b.Fatalf("%d peers after the join storm of %d", got, n)
	}
	if got := len(r.a.cat.cat.Instances("api", false)); got != n {
		b.Fatalf("%d api instances after the join storm of %d", got, n)
	}

	// Update: a member's catalog tag changes (a health check flips).
	const updates = 2000
	flip := [2]string{"1;api:8080:c;web:80", "1;api:8080;web:80"}
	p50u, p99u, allocU := latencies(updates, func(i int) {
		m := members[(i*7919)%n]
		m.Tags = map[string]string{catalog.CatalogTagKey: flip[(i/n)%2], "g": "web"}
		r.event(membership.EventUpdate, m)
	})

	// Fail and rejoin: a member fails, then comes back (two events, timed together).
	const flaps = 1000
	p50f, p99f, allocF := latencies(flaps, func(i int) {
		m := members[(i*104729)%n]
		failed := m
		failed.Status = membership.StatusFailed
		r.event(membership.EventFailed, failed)
		r.event(membership.EventJoin, m)
	})
	settle()

	// Churn: 1 % of the members fail and rejoin within one second.
	k := max(1, n/100)
	c1 := cpuTime()
	for i := range k {
		m := members[(i*31)%n]
		failed := m
		failed.Status = membership.StatusFailed
		r.event(membership.EventFailed, failed)
	}
	for i := range k {
		r.event(membership.EventJoin, members[(i*31)%n])
	}
	settle()
	churn := cpuTime() - c1 - idle
	if got := len(r.a.table.Peers()); got != n {
		b.Fatalf("%d peers after churn, want %d", got, n)
	}

	b.ReportMetric(float64(p50u.Nanoseconds()), "update-p50-ns")
	b.ReportMetric(float64(p99u.Nanoseconds()), "update-p99-ns")
	b.ReportMetric(allocU, "update-allocs")
	b.ReportMetric(float64(p50f.Nanoseconds()), "flap-p50-ns")
	b.ReportMetric(float64(p99f.Nanoseconds()), "flap-p99-ns")
	b.ReportMetric(allocF, "flap-allocs")
	b.ReportMetric(stormCPU.Seconds(), "storm-cpu-s")
	b.ReportMetric(wall.Seconds(), "storm-wall-s")
	b.ReportMetric(stormAllocs, "storm-allocs/member")
	b.ReportMetric(churn.Seconds()*100, "churn-%core")
	b.ReportMetric(heap, "heap-B/member")
}

// settleCPU is the CPU an idle settle() costs (the Go runtime's background work), measured
// once and subtracted from the bursts'.
var idleSettle time.Duration

func settleCPU(b *testing.B) time.Duration {
	if idleSettle == 0 {
		c := cpuTime()
		settle()
		idleSettle = max(cpuTime()-c, 1)
	}
	return idleSettle
}
