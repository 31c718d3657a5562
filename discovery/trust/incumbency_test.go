package trust

import (
	"slices"
	"testing"
	"time"
)

func reasonOf(err *ClaimError) string {
	if err == nil {
		return ""
	}
	return err.Reason
}

// TestIncumbency_LaterClaimRefused: the first member to claim a /24 holds it; a forger that
// claims it later is refused whatever it announces, and gets it only once the holder moves
// or goes.
func TestIncumbency_LaterClaimRefused(t *testing.T) {
	in := NewIncumbency()
	s5, s6 := pfx("10.42.5.0/24"), pfx("10.42.6.0/24")
	if _, err := in.Claim("victim", s5, false); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := in.Claim("forger", s5, false); reasonOf(err) != ReasonSubnetHeld {
			t.Fatalf("later claim: %v, want %s", err, ReasonSubnetHeld)
		}
		if _, err := in.Claim("victim", s5, false); err != nil {
			t.Fatalf("the holder's repeat: %v", err)
		}
	}
	if in.Holder(s5) != "victim" {
		t.Fatalf("holder %q", in.Holder(s5))
	}
	// The victim, refused for something else, still announces s5: it keeps it.
	if in.Keep("victim", s5) || in.Holder(s5) != "victim" {
		t.Fatal("Keep of the held /24 released it")
	}
	// The victim moves: s5 is freed (reported), the forger may take it.
	if freed, err := in.Claim("victim", s6, false); err != nil || !freed {
		t.Fatalf("move: freed %v, %v", freed, err)
	}
	if _, err := in.Claim("forger", s5, false); err != nil {
		t.Fatalf("the freed /24: %v", err)
	}
	if !in.Release("forger") || in.Holder(s5) != "" || in.Release("forger") {
		t.Fatal("Release")
	}
	if !in.Reaped("victim") || in.Holder(s6) != "" {
		t.Fatal("Reaped")
	}
}

// TestIncumbency_SimultaneousFirstClaim: claims first seen in the same round on a free /24
// are a tie: none holds it, however the members are named or ordered; when all but one
// moved, the last holds it; a newcomer is refused meanwhile.
func TestIncumbency_SimultaneousFirstClaim(t *testing.T) {
	s5, s7 := pfx("10.42.5.0/24"), pfx("10.42.7.0/24")
	for _, order := range [][]string{{"aaa", "zzz"}, {"zzz", "aaa"}} {
		in := NewIncumbency()
		in.Round([]Holding{{order[0], s5}, {order[1], s5}, {"other", s7}})
		for _, n := range order {
			if _, err := in.Claim(n, s5, false); reasonOf(err) != ReasonSubnetContested {
				t.Fatalf("%v: %s: %v, want %s", order, n, err, ReasonSubnetContested)
			}
		}
		if _, err := in.Claim("other", s7, false); err != nil {
			t.Fatalf("an uncontested claim of the round: %v", err)
		}
		if _, err := in.Claim("late", s5, false); reasonOf(err) != ReasonSubnetHeld {
			t.Fatalf("a newcomer on a tie: %v", err)
		}
		// A second round changes nothing for members already tied.
		in.Round([]Holding{{order[0], s5}, {order[1], s5}})
		if freed, err := in.Claim(order[0], pfx("10.42.8.0/24"), false); err != nil || !freed {
			t.Fatalf("move off the tie: %v %v", freed, err)
		}
		if _, err := in.Claim(order[1], s5, false); err != nil || in.Holder(s5) != order[1] {
			t.Fatalf("the last of the tie: %v, holder %q", err, in.Holder(s5))
		}
	}
}

// TestIncumbency_NameBinding: a name reappearing with another key is refused until the old
// member has been away for the reap time or is reaped; its own key is always accepted.
func TestIncumbency_NameBinding(t *testing.T) {
	in := NewIncumbency()
	k1, k2 := newKey(t).Public(), newKey(t).Public()
	now := time.Now()
	const reap = time.Hour
	if err := in.BindName("db", k1, now, reap); err != nil {
		t.Fatal(err)
	}
	if err := in.BindName("db", k2, now, reap); reasonOf(err) != ReasonNameKeyChanged {
		t.Fatalf("another key while alive: %v", err)
	}
	in.Away("db", now)
	if err := in.BindName("db", k2, now.Add(reap/2), reap); reasonOf(err) != ReasonNameKeyChanged {
		t.Fatalf("another key before the reap time: %v", err)
	}
	if err := in.BindName("db", k1, now.Add(reap/2), reap); err != nil {
		t.Fatalf("its own key back: %v", err)
	}
	in.Away("db", now.Add(reap/2))
	if err := in.BindName("db", k2, now.Add(reap/2+reap), reap); err != nil {
		t.Fatalf("after the reap time: %v", err)
	}
	if err := in.BindName("db", k1, now.Add(2*reap), reap); reasonOf(err) != ReasonNameKeyChanged {
		t.Fatalf("the name is now k2's: %v", err)
	}
	in.Reaped("db")
	if err := in.BindName("db", k1, now.Add(2*reap), reap); err != nil {
		t.Fatalf("after the reap: %v", err)
	}
	for _, r := range []string{ReasonSubnetHeld, ReasonSubnetContested, ReasonNameKeyChanged} {
		if !slices.Contains(RefusalReasons(), r) {
			t.Errorf("%s is not a refusal reason (metric label)", r)
		}
	}
}

// TestIncumbency_StaticInsideAllowedStatic: a static claim that the operator allows (inside
// gossip.allowed_static) displaces a dynamic holder; a second such claim does not displace
// the first; a static claim outside it is an ordinary later claim.
func TestIncumbency_StaticInsideAllowedStatic(t *testing.T) {
	in := NewIncumbency()
	s5 := pfx("10.42.5.0/24")
	in.Claim("dyn", s5, false)
	if _, err := in.Claim("forged-static", s5, false); reasonOf(err) != ReasonSubnetHeld {
		t.Fatalf("a static claim outside allowed_static: %v", err)
	}
	if freed, err := in.Claim("static", s5, true); err != nil || !freed || in.Holder(s5) != "static" {
		t.Fatalf("an allowed static claim: freed %v, %v, holder %q", freed, err, in.Holder(s5))
	}
	if _, err := in.Claim("dyn", s5, false); reasonOf(err) != ReasonSubnetHeld {
		t.Fatalf("the displaced holder: %v", err)
	}
	if _, err := in.Claim("static2", s5, true); reasonOf(err) != ReasonSubnetHeld {
		t.Fatalf("a second allowed static claim: %v", err)
	}
}
