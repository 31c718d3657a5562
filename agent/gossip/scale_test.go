package gossip

import (
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/discovery/membership"
	"github.com/weftnet/weft/discovery/trust"
)

// The cost of a member in the glue (issue 26's first measurement; the catalog, policy index
// and DNS/Consul views, which subscribe to the glue's bus, are not in it): synthetic members,
// no Serf, the trust checks and the ledger real, a map for the datapath.
//
//	go test -run '^$' -bench 'GossipApply' -benchmem ./agent/gossip

// scaleMembers returns n alive members with distinct keys, /24s of 10.0.0.0/8 and addresses.
func scaleMembers(b testing.TB, n int) []membership.Member {
	b.Helper()
	ms := make([]membership.Member, n)
	for i := range ms {
		priv, err := crypto.GeneratePrivateKey()
		if err != nil {
			b.Fatal(err)
		}
		ms[i] = membership.Member{
			Name:   fmt.Sprintf("h%05d", i),
			Addr:   netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 168, byte(i >> 8), byte(i)}), 7946),
			Status: membership.StatusAlive,
			Info: membership.NodeInfo{PublicKey: priv.Public(), DataPort: 51820, VNI: 1, Proto: 1, Mode: ModeByte("l3", "wireguard"),
				Subnet: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(1 + i>>8), byte(i), 0}), 24)},
		}
	}
	return ms
}

// scaleGlue is host "self" with no CA over a cluster CIDR of 10.0.0.0/8 and a map datapath.
func scaleGlue(b testing.TB) (*Gossip, *fakeDatapath) {
	b.Helper()
	priv, _ := crypto.GeneratePrivateKey()
	dp := &fakeDatapath{peers: map[crypto.PublicKey]fakePeer{}}
	cidr := netip.MustParsePrefix("10.0.0.0/8")
	deps := Deps{
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		PKI: func() *trust.PKI { return nil },
		Policy: func(now time.Time) *trust.Policy {
			return &trust.Policy{Cluster: cidr, OwnKey: priv.Public(), Now: now}
		},
		AddPeer:       dp.add,
		RemovePeer:    dp.remove,
		SubnetChanged: func(netip.Prefix) {},
		Problem:       func(string) {},
	}
	cfg := Config{Name: "self", Node: membership.NodeInfo{PublicKey: priv.Public(), DataPort: 51820, VNI: 1, Proto: 1, Mode: ModeByte("l3", "wireguard")}}
	return Attach(nil, cfg, deps), dp
}

// BenchmarkGossipApply: one member's update applied at N members (the steady state of tag
// changes), a join storm of all N (per member), and a leave followed by its rejoin; with the
// heap the glue holds per member after the storm.
func BenchmarkGossipApply(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		ms := scaleMembers(b, n)
		b.Run(fmt.Sprintf("update/members=%d", n), func(b *testing.B) {
			g, _ := scaleGlue(b)
			for _, m := range ms {
				g.Apply(m)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				g.Apply(ms[i%n])
			}
		})
		b.Run(fmt.Sprintf("storm/members=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			var heap float64
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				runtime.GC()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				g, dp := scaleGlue(b)
				b.StartTimer()
				for _, m := range ms {
					g.Apply(m)
				}
				b.StopTimer()
				runtime.GC()
				runtime.ReadMemStats(&after)
				heap = float64(after.HeapAlloc-before.HeapAlloc) / float64(n)
				if len(dp.peers) != n {
					b.Fatalf("%d peers after the storm, want %d", len(dp.peers), n)
				}
				runtime.KeepAlive(g)
				b.StartTimer()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/member")
			b.ReportMetric(heap, "heapB/member")
		})
		b.Run(fmt.Sprintf("leave+rejoin/members=%d", n), func(b *testing.B) {
			g, _ := scaleGlue(b)
			for _, m := range ms {
				g.Apply(m)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				m := ms[i%n]
				left := m
				left.Status = membership.StatusLeft
				g.Apply(left)
				g.Apply(m)
			}
		})
	}
}
