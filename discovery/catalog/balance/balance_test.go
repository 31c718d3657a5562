package balance

import (
	"errors"
	"math"
	"net/netip"
	"sync"
	"testing"
)

func inst(port uint16, w int) Instance {
	return Instance{Addr: netip.AddrPortFrom(netip.MustParseAddr("10.42.0.1"), port), Weight: w}
}

func TestPicker_WeightedRandomDistribution(t *testing.T) {
	ins := []Instance{inst(1, 1), inst(2, 2), inst(3, 7), inst(4, 0), inst(5, -3)} // 0 and -3 count as 1
	p := NewSeeded(WeightedRandom, ins, 42)
	const n = 120000
	counts := map[uint16]int{}
	for range n {
		in, err := p.Pick()
		if err != nil {
			t.Fatal(err)
		}
		counts[in.Addr.Port()]++
	}
	total := 12.0
	chi2 := 0.0
	for _, in := range ins {
		want := float64(max(in.Weight, 1)) / total * n
		got := float64(counts[in.Addr.Port()])
		chi2 += (got - want) * (got - want) / want
		if math.Abs(got-want)/want > 0.05 {
			t.Errorf("port %d: %v picks, want about %v", in.Addr.Port(), got, want)
		}
	}
	// 4 degrees of freedom: P(chi2 > 18.47) = 0.001.
	if chi2 > 18.47 {
		t.Errorf("chi-squared %.2f: not the weighted distribution", chi2)
	}
	t.Logf("counts %v, chi2 %.2f", counts, chi2)
}

func TestPicker_Seeded(t *testing.T) {
	ins := []Instance{inst(1, 1), inst(2, 1), inst(3, 1)}
	a, b := NewSeeded(WeightedRandom, ins, 7), NewSeeded(WeightedRandom, ins, 7)
	for range 100 {
		x, _ := a.Pick()
		y, _ := b.Pick()
		if x != y {
			t.Fatal("same seed, different picks")
		}
	}
}

func TestPicker_RoundRobin(t *testing.T) {
	p := NewSeeded(RoundRobin, []Instance{inst(1, 100), inst(2, 1), inst(3, 1)}, 1)
	var got []uint16
	for range 7 {
		in, _ := p.Pick()
		got = append(got, in.Addr.Port())
	}
	want := []uint16{1, 2, 3, 1, 2, 3, 1}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("order %v, want %v", got, want)
		}
	}
	p.Update([]Instance{inst(8, 1), inst(9, 1)}) // position 1 carries over
	in, _ := p.Pick()
	if in.Addr.Port() != 9 {
		t.Fatalf("after Update: %v", in)
	}
	p.Update(nil)
	if _, err := p.Pick(); !errors.Is(err, ErrNoInstances) {
		t.Fatalf("empty: %v", err)
	}
}

func TestPicker_Empty(t *testing.T) {
	for _, s := range []Strategy{WeightedRandom, RoundRobin} {
		if _, err := New(s, nil).Pick(); !errors.Is(err, ErrNoInstances) {
			t.Errorf("%v: %v", s, err)
		}
	}
}

func TestPicker_UpdateCopies(t *testing.T) {
	ins := []Instance{inst(1, 1)}
	p := New(RoundRobin, ins)
	ins[0] = inst(2, 1)
	if in, _ := p.Pick(); in.Addr.Port() != 1 || p.Len() != 1 {
		t.Fatalf("picker shares the caller's slice: %v", in)
	}
}

func TestPicker_Concurrent(t *testing.T) {
	p := New(WeightedRandom, []Instance{inst(1, 1), inst(2, 3)})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1000 {
				if _, err := p.Pick(); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	p.Update([]Instance{inst(3, 1)})
	wg.Wait()
}

func TestParseStrategy(t *testing.T) {
	for in, want := range map[string]Strategy{"rr": RoundRobin, "round-robin": RoundRobin, "weighted-random": WeightedRandom, "Random": WeightedRandom} {
		if got, err := ParseStrategy(in); err != nil || got != want {
			t.Errorf("%q: %v %v", in, got, err)
		}
	}
	if _, err := ParseStrategy("least-conn"); err == nil {
		t.Error("accepted least-conn")
	}
	if WeightedRandom.String() != "weighted-random" || RoundRobin.String() != "round-robin" {
		t.Error("String")
	}
}

func BenchmarkPicker_Pick(b *testing.B) {
	ins := make([]Instance, 32)
	for i := range ins {
		ins[i] = inst(uint16(i+1), i%5+1)
	}
	for _, s := range []Strategy{WeightedRandom, RoundRobin} {
		b.Run(s.String(), func(b *testing.B) {
			p := NewSeeded(s, ins, 1)
			b.ReportAllocs()
			for b.Loop() {
				p.Pick()
			}
		})
	}
}
