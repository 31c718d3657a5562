package peers

import (
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/crypto/cryptotest"
)

func pfxs(s ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(s))
	for i, v := range s {
		out[i] = netip.MustParsePrefix(v)
	}
	return out
}

func newTestTable(tb testing.TB) *Table {
	tb.Helper()
	return NewTable(cryptotest.NewIdentity(tb))
}

func TestTable_Upsert(t *testing.T) {
	tb := newTestTable(t)
	ka, kb := crypto.PublicKey{1}, crypto.PublicKey{2}
	a, err := tb.Upsert(PeerConfig{PublicKey: ka, Endpoint: netip.MustParseAddrPort("192.0.2.1:51820"),
		AllowedIPs: pfxs("10.42.1.0/24", "fd00:1::/64"), PersistentKeepalive: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	b, err := tb.Upsert(PeerConfig{PublicKey: kb, AllowedIPs: pfxs("10.42.2.0/24")})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		addr string
		want *Peer
	}{
		{"10.42.1.7", a}, {"10.42.2.7", b}, {"10.42.3.7", nil}, {"fd00:1::9", a}, {"fd00:2::9", nil},
	}
	for _, tc := range tests {
		if got := tb.Lookup(netip.MustParseAddr(tc.addr)); got != tc.want {
			t.Errorf("Lookup(%s) = %p, want %p", tc.addr, got, tc.want)
		}
	}
	// Update in place: same *Peer, new endpoint and prefixes.
	a2, err := tb.Upsert(PeerConfig{PublicKey: ka, Endpoint: netip.MustParseAddrPort("192.0.2.9:1"),
		AllowedIPs: pfxs("10.42.5.0/24")})
	if err != nil || a2 != a {
		t.Fatalf("update: %p, %v; want same peer", a2, err)
	}
	if got := a.Endpoint().String(); got != "192.0.2.9:1" {
		t.Errorf("endpoint = %s", got)
	}
	if tb.Lookup(netip.MustParseAddr("10.42.1.7")) != nil || tb.Lookup(netip.MustParseAddr("10.42.5.1")) != a {
		t.Error("prefixes not replaced")
	}
	// Overlap: b takes 10.42.5.0/24 from a (last writer wins, reported).
	_, err = tb.Upsert(PeerConfig{PublicKey: kb, AllowedIPs: pfxs("10.42.2.0/24", "10.42.5.0/24")})
	var moved *PrefixMovedError
	if !errors.Is(err, ErrPrefixMoved) || !errors.As(err, &moved) || moved.From[0] != ka {
		t.Fatalf("overlap err = %v", err)
	}
	if tb.Lookup(netip.MustParseAddr("10.42.5.1")) != b || len(a.AllowedIPs()) != 0 {
		t.Errorf("prefix did not move: %v / %v", b.AllowedIPs(), a.AllowedIPs())
	}
	if _, err := tb.Upsert(PeerConfig{PublicKey: kb, AllowedIPs: []netip.Prefix{{}}}); !errors.Is(err, ErrInvalidPrefix) {
		t.Errorf("invalid prefix err = %v", err)
	}
	if n := len(tb.Peers()); n != 2 {
		t.Errorf("Peers() = %d", n)
	}
}

func TestTable_Remove(t *testing.T) {
	tb := newTestTable(t)
	k := crypto.PublicKey{7}
	p, _ := tb.Upsert(PeerConfig{PublicKey: k, AllowedIPs: pfxs("10.0.0.0/8")})
	i, err := tb.NewIndex(p)
	if err != nil {
		t.Fatal(err)
	}
	p.Session().AttemptSent(time.Now(), i)
	p.Session().Enqueue([]byte{1}, 2)
	if !tb.Remove(k) || !p.Removed() || tb.ByKey(k) != nil || tb.Lookup(netip.MustParseAddr("10.1.1.1")) != nil {
		t.Errorf("after Remove: removed %v", p.Removed())
	}
	if p.Session().PendingLen() != 0 || p.Drops(DropNoRoute) != 1 {
		t.Errorf("queued packet not dropped: %d queued, %d counted", p.Session().PendingLen(), p.Drops(DropNoRoute))
	}
	if _, ok := tb.ByIndex(i); ok || tb.NumIndexes() != 0 {
		t.Error("index not freed")
	}
	if tb.Remove(k) {
		t.Error("second Remove found the peer")
	}
}

func TestTable_Index(t *testing.T) {
	tb := newTestTable(t)
	p, _ := tb.Upsert(PeerConfig{PublicKey: crypto.PublicKey{1}})
	seen := map[uint32]bool{}
	for range 100 {
		i, err := tb.NewIndex(p)
		if err != nil || i == 0 || seen[i] {
			t.Fatalf("NewIndex = %d, %v", i, err)
		}
		seen[i] = true
		if e, ok := tb.ByIndex(i); !ok || e.Peer != p || e.Keypair != nil {
			t.Fatalf("ByIndex(%d) = %+v %v", i, e, ok)
		}
	}
	kp := &crypto.Keypair{}
	for i := range seen {
		tb.SetIndexKeypair(i, kp)
		if e, _ := tb.ByIndex(i); e.Keypair != kp {
			t.Fatal("SetIndexKeypair lost")
		}
		tb.FreeIndexes(i)
	}
	if tb.NumIndexes() != 0 {
		t.Errorf("NumIndexes = %d", tb.NumIndexes())
	}
	tb.SetIndexKeypair(12345, kp) // freed/unknown: no-op
	if _, ok := tb.ByIndex(12345); ok {
		t.Error("SetIndexKeypair created an index")
	}
}

func TestQueue_Push(t *testing.T) {
	var q Queue
	if _, ev := q.Push([]byte{0}); !ev {
		t.Error("uninitialized queue accepted")
	}
	q.Init(2)
	q.Push([]byte{1})
	q.Push([]byte{2})
	old, ev := q.Push([]byte{3})
	if !ev || old[0] != 1 || q.Len() != 2 {
		t.Fatalf("evict = %v %v len %d", old, ev, q.Len())
	}
	for _, want := range []byte{2, 3} {
		b, ok := q.Pop()
		if !ok || b[0] != want {
			t.Fatalf("Pop = %v %v want %d", b, ok, want)
		}
	}
	if _, ok := q.Pop(); ok {
		t.Error("Pop on empty")
	}
}

func TestPeer_Stats(t *testing.T) {
	tb := newTestTable(t)
	p, _ := tb.Upsert(PeerConfig{PublicKey: crypto.PublicKey{1}, AllowedIPs: pfxs("10.0.0.0/8")})
	p.AddTx(2, 100, true, 1)
	p.AddRx(3, 300, true, 2)
	p.AddDrop(DropWrongVNI, 4)
	p.HandshakeDone(time.Unix(5, 0))
	s := p.Stats()
	if s.TxPackets != 2 || s.TxBytes != 100 || s.RxPackets != 3 || s.RxBytes != 300 || s.Handshakes != 1 ||
		s.Drops["wrong_vni"] != 4 || !s.LastHandshake.Equal(time.Unix(5, 0)) || len(s.AllowedIPs) != 1 {
		t.Errorf("Stats = %+v", s)
	}
}

func TestDropReason_String(t *testing.T) {
	seen := map[string]DropReason{}
	for r := DropReason(0); r < numDropReasons; r++ {
		if r.String() == "" || r.String() == "unknown" {
			t.Errorf("reason %d has no name", r)
		}
		if o, dup := seen[r.String()]; dup {
			t.Errorf("reasons %d and %d share the name %q (names are metric labels)", o, r, r.String())
		}
		seen[r.String()] = r
	}
}

// TestTable_ConcurrentReadsDuringWrites runs the hot-path reads against writers (meaningful
// under -race): readers must always see a consistent snapshot.
func TestTable_ConcurrentReadsDuringWrites(t *testing.T) {
	tb := newTestTable(t)
	stable, _ := tb.Upsert(PeerConfig{PublicKey: crypto.PublicKey{1}, AllowedIPs: pfxs("10.1.0.0/16")})
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := netip.MustParseAddr("10.1.2.3")
			for {
				select {
				case <-done:
					return
				default:
				}
				if tb.Lookup(a) != stable {
					t.Error("stable prefix lost during writes")
					return
				}
				tb.ByIndex(12345)
			}
		}()
	}
	for i := range 200 {
		p, _ := tb.Upsert(PeerConfig{PublicKey: crypto.PublicKey{2, byte(i)}, AllowedIPs: pfxs("10.2.0.0/16")})
		idx, _ := tb.NewIndex(p)
		tb.FreeIndexes(idx)
		tb.Remove(p.Key())
	}
	close(done)
	wg.Wait()
}
