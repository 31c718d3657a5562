package l2

import (
	"errors"
	"net/netip"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftnet/weft/internal/testkit"
)

// fakeClock is a settable clock for FDB tests.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

func testFDB(t *testing.T, cfg FDBConfig) (*FDB[string], *fakeClock) {
	t.Helper()
	clk := newFakeClock()
	cfg.Now = clk.Now
	return NewFDB[string](42, cfg), clk
}

func macN(i int) MAC { return MAC{0x02, 0, 0, byte(i >> 16), byte(i >> 8), byte(i)} }

func TestFDB_Learn(t *testing.T) {
	f, _ := testFDB(t, FDBConfig{})
	f.Learn(testMACA, "vtep1")
	if r, ok := f.Lookup(testMACA); !ok || r != "vtep1" {
		t.Fatalf("Lookup = %q, %v", r, ok)
	}
	if _, ok := f.Lookup(testMACB); ok {
		t.Fatal("unknown MAC found")
	}
	f.Learn(BroadcastMAC, "vtep1")
	f.Learn(MAC{}, "vtep1")
	f.Learn(MAC{0x01, 0, 0x5e, 0, 0, 1}, "vtep1")
	s := f.Stats()
	if s.Entries != 1 || s.Learned != 1 || s.InvalidSource != 3 {
		t.Fatalf("stats %+v", s)
	}
}

func TestFDB_Move(t *testing.T) {
	f, _ := testFDB(t, FDBConfig{})
	f.Learn(testMACA, "vtep1")
	f.Learn(testMACA, "vtep2")
	if r, _ := f.Lookup(testMACA); r != "vtep2" {
		t.Fatalf("after move: %q", r)
	}
	if s := f.Stats(); s.Moved != 1 || s.Entries != 1 || s.Learned != 1 {
		t.Fatalf("stats %+v", s)
	}
	// A static entry is not moved by learning.
	f.SetStatic(testMACB, "vtep1")
	f.Learn(testMACB, "vtep3")
	if r, _ := f.Lookup(testMACB); r != "vtep1" {
		t.Fatalf("static moved to %q", r)
	}
	if s := f.Stats(); s.StaticConflicts != 1 || s.StaticEntries != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestFDB_Expire(t *testing.T) {
	f, clk := testFDB(t, FDBConfig{AgeingTime: 10 * time.Second})
	f.Learn(testMACA, "vtep1")
	f.Learn(testMACB, "vtep1")
	f.SetStatic(testMACC, "vtep2")
	clk.Advance(6 * time.Second)
	f.Learn(testMACB, "vtep1") // refreshed
	clk.Advance(6 * time.Second)
	if _, ok := f.Lookup(testMACA); ok {
		t.Fatal("aged entry still returned before Expire")
	}
	if n := f.Expire(); n != 1 {
		t.Fatalf("Expire removed %d, want 1", n)
	}
	if _, ok := f.Lookup(testMACB); !ok {
		t.Fatal("refreshed entry expired")
	}
	clk.Advance(time.Hour)
	f.Expire()
	if _, ok := f.Lookup(testMACC); !ok {
		t.Fatal("static entry aged out")
	}
	if s := f.Stats(); s.Aged != 2 || s.Entries != 1 {
		t.Fatalf("stats %+v", s)
	}
	if _, ok := f.Lookup(testMACB); ok {
		t.Fatal("entry not removed")
	}
}

func TestFDB_Route(t *testing.T) {
	f, _ := testFDB(t, FDBConfig{})
	if _, _, err := f.Route(BroadcastMAC); !errors.Is(err, ErrNoRemotes) {
		t.Fatalf("no remotes: %v", err)
	}
	f.AddRemote("vtep1")
	f.AddRemote("vtep2")
	f.AddRemote("vtep1")
	f.Learn(testMACA, "vtep2")
	tests := []struct {
		name  string
		dst   MAC
		to    string
		flood []string
	}{
		{"known unicast", testMACA, "vtep2", nil},
		{"unknown unicast", testMACB, "", []string{"vtep1", "vtep2"}},
		{"broadcast", BroadcastMAC, "", []string{"vtep1", "vtep2"}},
		{"multicast", MAC{0x33, 0x33, 0, 0, 0, 1}, "", []string{"vtep1", "vtep2"}},
	}
	for _, tt := range tests {
		to, flood, err := f.Route(tt.dst)
		if err != nil || to != tt.to || !slices.Equal(flood, tt.flood) {
			t.Errorf("%s: Route = %q, %v, %v", tt.name, to, flood, err)
		}
	}
	f.RemoveRemote("vtep2")
	if _, ok := f.Lookup(testMACA); ok {
		t.Fatal("MAC behind a removed remote still known")
	}
	if _, flood, _ := f.Route(testMACA); !slices.Equal(flood, []string{"vtep1"}) {
		t.Fatalf("flood after removal: %v", flood)
	}
}

func TestFDB_FloodBudget(t *testing.T) {
	f, clk := testFDB(t, FDBConfig{FloodRate: 10})
	f.AddRemote("vtep1")
	ok := 0
	for range 100 {
		if _, _, err := f.Route(BroadcastMAC); err == nil {
			ok++
		} else if !errors.Is(err, ErrFloodBudget) {
			t.Fatal(err)
		}
	}
	if ok != 10 {
		t.Fatalf("flooded %d in a burst, want 10", ok)
	}
	clk.Advance(500 * time.Millisecond)
	ok = 0
	for range 100 {
		if _, _, err := f.Route(BroadcastMAC); err == nil {
			ok++
		}
	}
	if ok != 5 {
		t.Fatalf("flooded %d after 0.5 s, want 5", ok)
	}
	if s := f.Stats(); s.Flooded != 15 || s.FloodDropped != 185 {
		t.Fatalf("stats %+v", s)
	}
	// Known unicast is never limited.
	f.Learn(testMACA, "vtep1")
	if _, _, err := f.Route(testMACA); err != nil {
		t.Fatal(err)
	}
}

func TestFDB_Bounds(t *testing.T) {
	f, clk := testFDB(t, FDBConfig{MaxEntries: 100})
	staticMAC := MAC{0x06, 1, 2, 3, 4, 5}
	f.SetStatic(staticMAC, "static")
	for i := range 100 {
		f.Learn(macN(i), "vtep1")
		clk.Advance(time.Millisecond)
	}
	f.Learn(macN(0), "vtep1") // refreshed: gets a second chance
	for i := 100; i < 150; i++ {
		f.Learn(macN(i), "vtep1")
	}
	s := f.Stats()
	if s.Entries != 101 || s.Evicted != 50 {
		t.Fatalf("stats %+v", s)
	}
	if _, ok := f.Lookup(macN(0)); !ok {
		t.Fatal("recently refreshed entry evicted")
	}
	if _, ok := f.Lookup(macN(1)); ok {
		t.Fatal("oldest entry kept")
	}
	if _, ok := f.Lookup(macN(149)); !ok {
		t.Fatal("newest entry missing")
	}
	if _, ok := f.Lookup(staticMAC); !ok {
		t.Fatal("static entry evicted")
	}
	// A storm of random sources stays bounded.
	for i := 1000; i < 20000; i++ {
		f.Learn(macN(i), "vtep2")
	}
	if s := f.Stats(); s.Entries != 101 || len(f.Entries()) != 101 {
		t.Fatalf("after storm: %+v", s)
	}
}

func TestFDB_StaticAndDelete(t *testing.T) {
	f, _ := testFDB(t, FDBConfig{})
	f.Learn(testMACA, "vtep1")
	f.SetStatic(testMACA, "vtep2") // gossip wins over learning
	if r, _ := f.Lookup(testMACA); r != "vtep2" {
		t.Fatalf("got %q", r)
	}
	es := f.Entries()
	if len(es) != 1 || !es[0].Static || es[0].Remote != "vtep2" || es[0].MAC != testMACA {
		t.Fatalf("entries %+v", es)
	}
	f.Delete(testMACA)
	if s := f.Stats(); s.Entries != 0 || s.StaticEntries != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestFDB_ARPReply(t *testing.T) {
	req := testkit.Ethernet(BroadcastMAC, testMACA, nil, EtherTypeARP, testARPRequest(testMACA, "10.0.0.1", "10.0.0.2"))
	var dst [64]byte
	off, _ := testFDB(t, FDBConfig{})
	off.SetNeighbor(netip.MustParseAddr("10.0.0.2"), testMACB)
	if n := off.ARPReply(dst[:], req); n != 0 {
		t.Fatal("answered with suppression off")
	}
	f, _ := testFDB(t, FDBConfig{ARPSuppression: true})
	f.SetNeighbor(netip.MustParseAddr("10.0.0.2"), testMACB)
	n := f.ARPReply(dst[:], req)
	if want := BuildARPReply(make([]byte, 64), req, testMACB); n != 42 || n != want {
		t.Fatalf("ARPReply = %d", n)
	}
	rep, err := ParseARP(dst[14:n])
	if err != nil || rep.Op != ARPReply || rep.SenderMAC != testMACB || rep.SenderIP != netip.MustParseAddr("10.0.0.2") {
		t.Fatalf("reply %+v %v", rep, err)
	}
	notAnswered := map[string][]byte{
		"unknown ip":    testkit.Ethernet(BroadcastMAC, testMACA, nil, EtherTypeARP, testARPRequest(testMACA, "10.0.0.1", "10.0.0.9")),
		"gratuitous":    testkit.Ethernet(BroadcastMAC, testMACA, nil, EtherTypeARP, testARPRequest(testMACA, "10.0.0.2", "10.0.0.2")),
		"probe":         testkit.Ethernet(BroadcastMAC, testMACA, nil, EtherTypeARP, testARPRequest(testMACA, "0.0.0.0", "10.0.0.2")),
		"owner asks":    testkit.Ethernet(BroadcastMAC, testMACB, nil, EtherTypeARP, testARPRequest(testMACB, "10.0.0.1", "10.0.0.2")),
		"unicast":       testkit.Ethernet(testMACB, testMACA, nil, EtherTypeARP, testARPRequest(testMACA, "10.0.0.1", "10.0.0.2")),
		"not arp":       testkit.Ethernet(BroadcastMAC, testMACA, nil, EtherTypeIPv4, testARPRequest(testMACA, "10.0.0.1", "10.0.0.2")),
		"short request": testkit.Ethernet(BroadcastMAC, testMACA, nil, EtherTypeARP, testARPRequest(testMACA, "10.0.0.1", "10.0.0.2")[:20]),
	}
	for name, fr := range notAnswered {
		if n := f.ARPReply(dst[:], fr); n != 0 {
			t.Errorf("%s: answered", name)
		}
	}
	f.RemoveNeighbor(netip.MustParseAddr("10.0.0.2"))
	if n := f.ARPReply(dst[:], req); n != 0 {
		t.Fatal("answered after RemoveNeighbor")
	}
	if s := f.Stats(); s.ARPSuppressed != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestFDB_Allocs(t *testing.T) {
	f := NewFDB[netip.AddrPort](42, FDBConfig{ARPSuppression: true})
	r := netip.MustParseAddrPort("192.0.2.1:4789")
	f.AddRemote(r)
	f.Learn(testMACA, r)
	f.SetNeighbor(netip.MustParseAddr("10.0.0.2"), testMACB)
	req := testkit.Ethernet(BroadcastMAC, testMACA, nil, EtherTypeARP, testARPRequest(testMACA, "10.0.0.1", "10.0.0.2"))
	var dst [64]byte
	allocs := testing.AllocsPerRun(1000, func() {
		f.Learn(testMACA, r)
		if _, ok := f.Lookup(testMACA); !ok {
			t.Fatal("lookup")
		}
		f.Route(testMACA)
		f.Route(BroadcastMAC)
		f.ARPReply(dst[:], req)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per lookup round", allocs)
	}
}

// benchFDB returns an FDB that has learnt macN(0..999) at r.
func benchFDB(r netip.AddrPort) *FDB[netip.AddrPort] {
	f := NewFDB[netip.AddrPort](42, FDBConfig{})
	for i := range 1000 {
		f.Learn(macN(i), r)
	}
	return f
}

func BenchmarkFDB_Lookup(b *testing.B) {
	f := benchFDB(netip.MustParseAddrPort("192.0.2.1:4789"))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		f.Route(macN(i % 1000))
	}
}

func BenchmarkFDB_LearnRefresh(b *testing.B) {
	r := netip.MustParseAddrPort("192.0.2.1:4789")
	f := benchFDB(r)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		f.Learn(macN(i%1000), r)
	}
}
