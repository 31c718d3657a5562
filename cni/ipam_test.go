package cni

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

var testSubnet = netip.MustParsePrefix("10.42.7.0/24")

func TestStore_ReserveRelease(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenStore(dir, "weft")
	if err != nil {
		t.Fatal(err)
	}
	gw := netip.MustParseAddr("10.42.7.1")
	a, err := s.Reserve(testSubnet, "c1", "eth0", gw)
	if err != nil || a != netip.MustParseAddr("10.42.7.2") {
		t.Fatalf("first: %v %v", a, err)
	}
	again, err := s.Reserve(testSubnet, "c1", "eth0", gw)
	if err != nil || again != a {
		t.Fatalf("a repeated ADD got %v (%v), want %v", again, err, a)
	}
	b, _ := s.Reserve(testSubnet, "c1", "eth1", gw)
	if b == a {
		t.Fatal("a second interface of one container got the same address")
	}
	// A new store on the same directory (a restarted plugin or agent) sees the reservation.
	s2, _ := OpenStore(dir, "weft")
	if got, ok, err := s2.Lookup(testSubnet, "c1", "eth0"); err != nil || !ok || got != a {
		t.Fatalf("after reopen: %v %v %v", got, ok, err)
	}
	if err := s2.Release("c1", "eth0"); err != nil {
		t.Fatal(err)
	}
	if err := s2.Release("c1", "eth0"); err != nil {
		t.Fatalf("second release: %v", err)
	}
	if _, ok, _ := s2.Lookup(testSubnet, "c1", "eth0"); ok {
		t.Fatal("released address still reserved")
	}
	c, _ := s2.Reserve(testSubnet, "c2", "eth0", gw)
	if c != a {
		t.Fatalf("freed address not reused: got %v, want %v", c, a)
	}
}

func TestStore_Exhausted(t *testing.T) {
	s, _ := OpenStore(t.TempDir(), "weft")
	p := netip.MustParsePrefix("10.42.7.0/29") // .1-.6 usable, .1 excluded: 5
	gw := netip.MustParseAddr("10.42.7.1")
	seen := map[netip.Addr]bool{}
	for i := 0; i < 5; i++ {
		a, err := s.Reserve(p, fmt.Sprint("c", i), "eth0", gw)
		if err != nil {
			t.Fatal(err)
		}
		if a == gw || a == p.Addr() || a == netip.MustParseAddr("10.42.7.7") || seen[a] {
			t.Fatalf("bad address %v", a)
		}
		seen[a] = true
	}
	if _, err := s.Reserve(p, "c9", "eth0", gw); !errors.Is(err, ErrExhausted) {
		t.Fatalf("want ErrExhausted, got %v", err)
	}
}

// Files that are no reservation of this subnet (another subnet's after the agent moved,
// garbage) neither count nor block.
func TestStore_IgnoresForeignFiles(t *testing.T) {
	dir := t.TempDir()
	s, _ := OpenStore(dir, "weft")
	for _, n := range []string{"10.42.9.2", "garbage", "10.42.7.x"} {
		if err := os.WriteFile(filepath.Join(dir, "weft", n), []byte("x\neth0\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.Count(testSubnet); err != nil || n != 0 {
		t.Fatalf("count %d %v", n, err)
	}
	if a, err := s.Reserve(testSubnet, "c", "eth0"); err != nil || a != netip.MustParseAddr("10.42.7.1") {
		t.Fatalf("%v %v", a, err)
	}
}

func TestStore_ReleaseExcept(t *testing.T) {
	s, _ := OpenStore(t.TempDir(), "weft")
	for _, id := range []string{"a", "b", "c"} {
		if _, err := s.Reserve(testSubnet, id, "eth0"); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.ReleaseExcept(map[string]bool{OwnerKey("b", "eth0"): true}); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.Count(testSubnet); n != 1 {
		t.Fatalf("%d left, want 1", n)
	}
	if _, ok, _ := s.Lookup(testSubnet, "b", "eth0"); !ok {
		t.Fatal("GC freed a valid attachment")
	}
}

// TestStore_Concurrent: 50 concurrent reservations, each through its own Store (its own lock
// descriptor, as separate plugin processes have), get 50 distinct addresses; releasing all
// leaves none.
func TestStore_Concurrent(t *testing.T) {
	dir := t.TempDir()
	const n = 50
	addrs := make([]netip.Addr, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := OpenStore(dir, "weft")
			if err == nil {
				addrs[i], err = s.Reserve(testSubnet, fmt.Sprint("c", i), "eth0", netip.MustParseAddr("10.42.7.1"))
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	seen := map[netip.Addr]int{}
	for i, a := range addrs {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if j, dup := seen[a]; dup {
			t.Fatalf("containers %d and %d both got %v", j, i, a)
		}
		seen[a] = i
	}
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, _ := OpenStore(dir, "weft")
			errs[i] = s.Release(fmt.Sprint("c", i), "eth0")
		}()
	}
	wg.Wait()
	s, _ := OpenStore(dir, "weft")
	if c, err := s.Count(testSubnet); err != nil || c != 0 {
		t.Fatalf("%d reservations leaked (%v)", c, err)
	}
}

// Owners that would collide once written ("a\nb"+"c" and "a"+"b\nc") are refused.
func TestStore_RefusesAmbiguousOwners(t *testing.T) {
	s, _ := OpenStore(t.TempDir(), "weft")
	if _, err := s.Reserve(testSubnet, "a", "b\nc"); !errors.Is(err, errBadOwner) {
		t.Fatalf("newline in ifname: %v", err)
	}
	if err := s.Release("a\nb", "c"); !errors.Is(err, errBadOwner) {
		t.Fatalf("newline in id: %v", err)
	}
	if _, _, err := s.Lookup(testSubnet, "", "eth0"); !errors.Is(err, errBadOwner) {
		t.Fatalf("empty id: %v", err)
	}
}

// TestStore_ReclaimStale: only reservations whose recorded host link is gone are freed; one
// being wired (no link yet), one of an older plugin and one whose link lives are kept, and the
// owner lookups ignore the link line.
func TestStore_ReclaimStale(t *testing.T) {
	s, _ := OpenStore(t.TempDir(), "weft")
	gw := netip.MustParseAddr("10.42.7.1")
	var addrs []netip.Addr
	for i := range 4 {
		a, err := s.Reserve(testSubnet, fmt.Sprint("c", i), "eth0", gw)
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, a)
	}
	for i, link := range map[int]string{0: "vethdead", 1: "vethalive"} {
		if err := s.SetLink(testSubnet, fmt.Sprint("c", i), "eth0", link); err != nil {
			t.Fatal(err)
		}
	}
	for _, bad := range []string{"", "a/b", "has space", "0123456789abcdef", "..", "x\ny"} {
		if err := s.SetLink(testSubnet, "c2", "eth0", bad); err == nil {
			t.Fatalf("SetLink accepted %q", bad)
		}
	}
	if err := s.SetLink(testSubnet, "nobody", "eth0", "veth1"); err == nil {
		t.Fatal("SetLink without a reservation succeeded")
	}
	// c3's file as an older weft-cni wrote it, with a stray line that is no link record.
	if err := os.WriteFile(filepath.Join(s.dir, addrs[3].String()), []byte("c3\neth0\nlinkveth9\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if a, ok, err := s.Lookup(testSubnet, "c0", "eth0"); err != nil || !ok || a != addrs[0] {
		t.Fatalf("lookup with a link line: %v %v %v", a, ok, err)
	}
	if a, _ := s.Reserve(testSubnet, "c1", "eth0", gw); a != addrs[1] {
		t.Fatalf("a repeated reserve with a link line got %v, want %v", a, addrs[1])
	}
	var asked []string
	n, err := s.ReclaimStale(testSubnet, func(l string) bool { asked = append(asked, l); return l == "vethalive" })
	if err != nil || n != 1 {
		t.Fatalf("reclaimed %d (%v), want 1; asked %v", n, err, asked)
	}
	if _, ok, _ := s.Lookup(testSubnet, "c0", "eth0"); ok {
		t.Fatal("the reservation of the gone link is still there")
	}
	for i := 1; i < 4; i++ {
		if _, ok, _ := s.Lookup(testSubnet, fmt.Sprint("c", i), "eth0"); !ok {
			t.Fatalf("c%d's reservation was freed", i)
		}
	}
	if err := s.Release("c1", "eth0"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.Lookup(testSubnet, "c1", "eth0"); ok {
		t.Fatal("Release left a reservation that has a link line")
	}
}
