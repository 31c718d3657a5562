package crypto

import (
	"slices"
	"testing"
)

func kp(initiator bool, idx uint32) *Keypair {
	return &Keypair{isInitiator: initiator, localIndex: idx}
}

func TestKeypairs_Rotation(t *testing.T) {
	type state struct{ current, previous, next *Keypair }
	i1, i2, i3 := kp(true, 1), kp(true, 2), kp(true, 3)
	r1, r2 := kp(false, 11), kp(false, 12)
	tests := []struct {
		name    string
		steps   func(k *Keypairs) []*Keypair // returns everything evicted
		want    state
		evicted []*Keypair
	}{
		{"initiator becomes current at once", func(k *Keypairs) []*Keypair {
			return k.Install(i1)
		}, state{i1, nil, nil}, nil},
		{"second initiator: old current to previous", func(k *Keypairs) []*Keypair {
			return append(k.Install(i1), k.Install(i2)...)
		}, state{i2, i1, nil}, nil},
		{"third initiator evicts previous", func(k *Keypairs) []*Keypair {
			return slices.Concat(k.Install(i1), k.Install(i2), k.Install(i3))
		}, state{i3, i2, nil}, []*Keypair{i1}},
		{"responder waits as next", func(k *Keypairs) []*Keypair {
			return append(k.Install(i1), k.Install(r1)...)
		}, state{i1, nil, r1}, nil},
		{"responder evicts previous", func(k *Keypairs) []*Keypair {
			return slices.Concat(k.Install(i1), k.Install(i2), k.Install(r1))
		}, state{i2, nil, r1}, []*Keypair{i1}},
		{"second responder replaces next", func(k *Keypairs) []*Keypair {
			return slices.Concat(k.Install(i1), k.Install(r1), k.Install(r2))
		}, state{i1, nil, r2}, []*Keypair{r1}},
		{"confirm promotes next", func(k *Keypairs) []*Keypair {
			ev := slices.Concat(k.Install(i1), k.Install(r1))
			if !k.Confirm(r1) {
				panic("Confirm(next) = false")
			}
			return ev
		}, state{r1, i1, nil}, nil},
		{"confirm of current is a no-op", func(k *Keypairs) []*Keypair {
			ev := k.Install(i1)
			if k.Confirm(i1) || k.Confirm(nil) {
				panic("Confirm(current) = true")
			}
			return ev
		}, state{i1, nil, nil}, nil},
		{"confirm evicts old previous", func(k *Keypairs) []*Keypair {
			ev := slices.Concat(k.Install(i1), k.Install(r1))
			k.Confirm(r1)
			ev = append(ev, k.Install(r2)...) // evicts previous i1
			ok, old := k.ConfirmEvicting(r2)
			if !ok || old != nil {
				panic("ConfirmEvicting")
			}
			return ev
		}, state{r2, r1, nil}, []*Keypair{i1}},
		{"initiator while next waits: next to previous, current evicted", func(k *Keypairs) []*Keypair {
			return slices.Concat(k.Install(i1), k.Install(r1), k.Install(i2))
		}, state{i2, r1, nil}, []*Keypair{i1}},
		{"clear returns all", func(k *Keypairs) []*Keypair {
			return slices.Concat(k.Install(i1), k.Install(i2), k.Install(r1), k.Clear())
		}, state{nil, nil, nil}, []*Keypair{i1, i2, r1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var k Keypairs
			ev := tc.steps(&k)
			got := state{k.Current(), k.Previous(), k.Next()}
			if got != tc.want {
				t.Fatalf("state = %+v, want %+v", got, tc.want)
			}
			slices.SortFunc(ev, func(a, b *Keypair) int { return int(a.localIndex) - int(b.localIndex) })
			if !slices.Equal(ev, tc.evicted) {
				t.Fatalf("evicted %v, want %v", ev, tc.evicted)
			}
		})
	}
}

func TestKeypairs_CurrentNoAlloc(t *testing.T) {
	var k Keypairs
	k.Install(kp(true, 1))
	if n := testing.AllocsPerRun(100, func() { _ = k.Current() }); n != 0 {
		t.Fatalf("Current: %v allocs", n)
	}
}
