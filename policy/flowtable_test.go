package policy

import (
	"math/rand/v2"
	"testing"
)

// TestShard_DifferentialAgainstMap drives one shard with random inserts, removals and
// sweeps, hashes crowded into a few home slots so probe runs wrap and overlap, and checks
// after every step that it holds exactly what a map holds.
func TestShard_DifferentialAgainstMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		s := &shard{slots: make([]entry, 32), mask: 31, limit: 24}
		ref := map[flowKey]int64{} // key → expires
		hashOf := map[flowKey]uint64{}
		var now int64
		for op := range 400 {
			var k flowKey
			k[0] = byte(rng.IntN(40))
			h, ok := hashOf[k]
			if !ok {
				// Homes in a narrow band around the end of the table: wrapping runs.
				h = uint64(28+rng.IntN(8)) | uint64(rng.IntN(4))<<8
				hashOf[k] = h
			}
			switch rng.IntN(4) {
			case 0, 1: // insert or refresh
				i := s.find(&k, h)
				if i < 0 {
					before := s.evicted + s.expired
					i = s.insert(&k, h, now)
					if s.evicted+s.expired != before {
						// The shard removed something: resync the reference.
						for rk := range ref {
							if s.find(&rk, hashOf[rk]) < 0 {
								delete(ref, rk)
							}
						}
					}
				}
				exp := now + int64(1+rng.IntN(50))
				s.slots[i].expires = exp
				ref[k] = exp
			case 2: // remove
				if i := s.find(&k, h); i >= 0 {
					s.remove(i)
					delete(ref, k)
				}
			case 3:
				now += int64(rng.IntN(5))
				s.sweep(now, rng.IntN(8))
				for rk := range ref {
					if s.find(&rk, hashOf[rk]) < 0 {
						if ref[rk] > now {
							t.Fatalf("round %d op %d: sweep removed a live entry", round, op)
						}
						delete(ref, rk)
					}
				}
			}
			if s.count != len(ref) {
				t.Fatalf("round %d op %d: count %d, reference %d", round, op, s.count, len(ref))
			}
			if s.count > s.limit {
				t.Fatalf("round %d op %d: count %d over limit %d", round, op, s.count, s.limit)
			}
			for rk, exp := range ref {
				i := s.find(&rk, hashOf[rk])
				if i < 0 {
					t.Fatalf("round %d op %d: key %d lost", round, op, rk[0])
				}
				if s.slots[i].expires != exp {
					t.Fatalf("round %d op %d: key %d has expiry %d, want %d", round, op, rk[0], s.slots[i].expires, exp)
				}
			}
			used := 0
			for i := range s.slots {
				if s.slots[i].used {
					used++
				}
			}
			if used != s.count {
				t.Fatalf("round %d op %d: %d used slots, count %d", round, op, used, s.count)
			}
		}
	}
}

func TestMakeKey_BothDirectionsOneKey(t *testing.T) {
	a := Flow{Src: web1, Dst: db1, SrcPort: 40000, DstPort: 5432, Proto: ipProtoTCP}
	b := Flow{Src: db1, Dst: web1, SrcPort: 5432, DstPort: 40000, Proto: ipProtoTCP}
	ka, fa := makeKey(&a)
	kb, fb := makeKey(&b)
	if ka != kb || fa == fb {
		t.Fatalf("directions: keys equal %v, fwd %v %v", ka == kb, fa, fb)
	}
	// Same addresses, ports swapped between the ends: another flow.
	c := Flow{Src: web1, Dst: db1, SrcPort: 5432, DstPort: 40000, Proto: ipProtoTCP}
	if kc, _ := makeKey(&c); kc == ka {
		t.Fatal("ports swapped gave the same key")
	}
	// Same host to itself: the ports decide the order.
	d := Flow{Src: web1, Dst: web1, SrcPort: 2, DstPort: 1, Proto: ipProtoUDP}
	e := Flow{Src: web1, Dst: web1, SrcPort: 1, DstPort: 2, Proto: ipProtoUDP}
	kd, fd := makeKey(&d)
	ke, fe := makeKey(&e)
	if kd != ke || fd == fe {
		t.Fatal("self flow directions")
	}
	// Protocol separates flows; a fragment key never equals a flow key.
	u := a
	u.Proto = ipProtoUDP
	if ku, _ := makeKey(&u); ku == ka {
		t.Fatal("tcp and udp share a key")
	}
	if makeFragKey(&a) == ka {
		t.Fatal("fragment key equals flow key")
	}
}
