package gossip

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/discovery/membership"
	"github.com/weftnet/weft/discovery/trust"
)

func member(name string, key crypto.PublicKey, subnet string) membership.Member {
	return membership.Member{Name: name, Addr: netip.MustParseAddrPort("192.0.2.1:7946"), Status: membership.StatusAlive,
		Info: membership.NodeInfo{PublicKey: key, Subnet: netip.MustParsePrefix(subnet), DataPort: 51820, VNI: 1, Mode: ModeByte("l3", "wireguard")}}
}

// keyAround returns a fresh key that sorts below (lower) or above the given one.
func keyAround(t *testing.T, of crypto.PublicKey, lower bool) crypto.PublicKey {
	t.Helper()
	for {
		k, err := crypto.GeneratePrivateKey()
		if err != nil {
			t.Fatal(err)
		}
		pub := k.Public()
		if c := bytes.Compare(pub[:], of[:]); (c < 0) == lower && c != 0 {
			return pub
		}
	}
}

// TestGossip_ForgedSubnetClaim: without a CA, a gossip-key holder announces the victim's
// exact /24 with its own key (sorting below or above the victim's). The claim is refused as
// subnet_held and counted once, never reaches the datapath, and the victim keeps its peer
// and prefix; once the victim fails, the prefix is free and the next claimant gets it.
func TestGossip_ForgedSubnetClaim(t *testing.T) {
	for _, lower := range []bool{true, false} {
		name := map[bool]string{true: "forger key sorts lower", false: "forger key sorts higher"}[lower]
		t.Run(name, func(t *testing.T) {
			priv, _ := crypto.GeneratePrivateKey()
			g, dp := testGlue(t, nil, priv)
			vk, _ := crypto.GeneratePrivateKey()
			victim := member("victim", vk.Public(), "10.42.5.0/24")
			g.Apply(victim)
			fk := keyAround(t, vk.Public(), lower)
			forger := member("forger", fk, "10.42.5.0/24")
			for range 2 { // a repeat is counted once
				g.Apply(forger)
			}
			if _, ok := dp.get(fk); ok {
				t.Fatal("the forger reached the datapath with the victim's /24")
			}
			if p, ok := dp.get(vk.Public()); !ok || p.subnet != victim.Info.Subnet {
				t.Fatalf("the victim lost its peer or prefix: %+v %v", p, ok)
			}
			if r, _ := g.Refused("forger"); r.Reason != trust.ReasonSubnetHeld {
				t.Fatalf("the forger's refusal is %+v, want %s", r, trust.ReasonSubnetHeld)
			}
			if n := g.RefusedCounts()[trust.ReasonSubnetHeld]; n != 1 {
				t.Fatalf("subnet_held counted %d times, want 1", n)
			}
			if g.IsRefused("victim") {
				t.Fatal("the victim is refused")
			}
			// A static claim on the held /24 is no better.
			forger.Info.Static, forger.Info.StaticSince = true, 1
			g.Apply(forger)
			if _, ok := dp.get(fk); ok {
				t.Fatal("a static claim took the victim's /24")
			}
			// The holder fails: the prefix is free (the existing rule: a failed member holds
			// nothing), the waiting claimant is peered on the next apply.
			victim.Status = membership.StatusFailed
			g.Apply(victim)
			forger.Info.Static, forger.Info.StaticSince = false, 0
			g.Apply(forger)
			if p, ok := dp.get(fk); !ok || p.subnet != forger.Info.Subnet || g.IsRefused("forger") {
				t.Fatalf("after the holder failed, the next claimant is not peered: %+v %v", p, ok)
			}
			// The old holder returns: now it is the later claimant.
			victim.Status = membership.StatusAlive
			g.Apply(victim)
			if r, _ := g.Refused("victim"); r.Reason != trust.ReasonSubnetHeld {
				t.Fatalf("the returning member: %+v, want %s", r, trust.ReasonSubnetHeld)
			}
		})
	}
}

// TestGossip_HolderMovesFreesPrefix: a holder that moves to another /24 frees its old one
// for the member that was refused on it.
func TestGossip_HolderMovesFreesPrefix(t *testing.T) {
	priv, _ := crypto.GeneratePrivateKey()
	g, dp := testGlue(t, nil, priv)
	ak, bk := freshPub(t), freshPub(t)
	a := member("a1", ak, "10.42.5.0/24")
	g.Apply(a)
	g.Apply(member("b1", bk, "10.42.5.0/24"))
	if _, ok := dp.get(bk); ok {
		t.Fatal("a second claimant was peered")
	}
	a.Info.Subnet = netip.MustParsePrefix("10.42.6.0/24")
	g.Apply(a)
	g.Apply(member("b1", bk, "10.42.5.0/24"))
	if p, ok := dp.get(bk); !ok || p.subnet != netip.MustParsePrefix("10.42.5.0/24") {
		t.Fatalf("the freed /24 is not given to the waiting claimant: %+v %v", p, ok)
	}
	if p, ok := dp.get(ak); !ok || p.subnet != a.Info.Subnet {
		t.Fatalf("the holder that moved: %+v %v", p, ok)
	}
}

func freshPub(t *testing.T) crypto.PublicKey {
	t.Helper()
	k, err := crypto.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k.Public()
}

// TestGossip_SimultaneousFirstClaim: a host that first sees two members claiming one free
// /24 together (its start, a resync) gives it to neither, whatever their keys: a member
// cannot win a tie by choosing a key that sorts low. When one of them moves away, the other
// holds it; a third member arriving later is refused.
func TestGossip_SimultaneousFirstClaim(t *testing.T) {
	priv, _ := crypto.GeneratePrivateKey()
	g, dp := testGlue(t, nil, priv)
	xk := freshPub(t)
	yk := keyAround(t, xk, true)
	x, y := member("x", xk, "10.42.5.0/24"), member("y", yk, "10.42.5.0/24")
	other := member("z", freshPub(t), "10.42.6.0/24")
	g.ApplyRound([]membership.Member{x, y, other})
	for _, m := range []membership.Member{x, y} {
		if _, ok := dp.get(crypto.PublicKey(m.Info.PublicKey)); ok {
			t.Fatalf("%s won a simultaneous first claim", m.Name)
		}
		if r, _ := g.Refused(m.Name); r.Reason != trust.ReasonSubnetContested {
			t.Fatalf("%s: refusal %+v, want %s", m.Name, r, trust.ReasonSubnetContested)
		}
	}
	if _, ok := dp.get(crypto.PublicKey(other.Info.PublicKey)); !ok {
		t.Fatal("an uncontested member of the same round is not peered")
	}
	// Applied again one by one (the order of events), the tie still stands.
	g.Apply(y)
	g.Apply(x)
	if _, ok := dp.get(yk); ok {
		t.Fatal("the lower key won the tie on a later apply")
	}
	// y moves away (as its allocator makes it): x holds the /24.
	y.Info.Subnet = netip.MustParsePrefix("10.42.7.0/24")
	g.Apply(y)
	g.Apply(x)
	if p, ok := dp.get(xk); !ok || p.subnet != x.Info.Subnet {
		t.Fatalf("the remaining claimant does not hold the /24: %+v %v", p, ok)
	}
	if _, ok := dp.get(yk); !ok {
		t.Fatal("the claimant that moved is not peered on its new /24")
	}
	g.Apply(member("late", keyAround(t, xk, true), "10.42.5.0/24"))
	if r, _ := g.Refused("late"); r.Reason != trust.ReasonSubnetHeld {
		t.Fatalf("a later claimant: %+v", r)
	}
}

// TestGossip_NameTakeover: a member name that reappears with another public key before the
// old member was reaped is refused (name_key_changed, counted): it gets neither peering nor,
// through IsRefused, the old holder's services, DNS name or host: rules. Once the old member
// is reaped the name is free.
func TestGossip_NameTakeover(t *testing.T) {
	priv, _ := crypto.GeneratePrivateKey()
	g, dp := testGlue(t, nil, priv)
	oldKey := freshPub(t)
	db := member("db", oldKey, "10.42.5.0/24")
	g.Apply(db)
	db.Status = membership.StatusFailed
	g.Apply(db)
	newKey := freshPub(t)
	thief := member("db", newKey, "10.42.9.0/24")
	g.Apply(thief)
	if _, ok := dp.get(newKey); ok || !g.IsRefused("db") {
		t.Fatal("a name reappearing with another key took the old holder's identity")
	}
	if r, _ := g.Refused("db"); r.Reason != trust.ReasonNameKeyChanged {
		t.Fatalf("refusal %+v, want %s", r, trust.ReasonNameKeyChanged)
	}
	if n := g.RefusedCounts()[trust.ReasonNameKeyChanged]; n != 1 {
		t.Fatalf("counted %d", n)
	}
	// The old key comes back under its name: accepted.
	db.Status = membership.StatusAlive
	g.Apply(db)
	if _, ok := dp.get(oldKey); !ok || g.IsRefused("db") {
		t.Fatal("the name's own key is refused")
	}
	// Reaped: the name is free for a new key.
	db.Status = membership.StatusLeft
	g.handle(membership.Event{Type: membership.EventReap, Member: db})
	g.Apply(thief)
	if _, ok := dp.get(newKey); !ok || g.IsRefused("db") {
		t.Fatal("after the reap the name is still bound to the old key")
	}
}
