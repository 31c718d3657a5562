package agent_test

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/discovery/membership"
)

// allowStatic adds gossip.allowed_static to a config made by gossipConfig: static claims
// inside it displace the host that holds the /24 (without it, incumbency keeps the holder).
func allowStatic(conf string, prefixes ...string) string {
	return strings.Replace(conf, "  fast: true\n", "  fast: true\n  allowed_static: ["+strings.Join(prefixes, ", ")+"]\n", 1)
}

// keySorting returns a fresh public key that sorts below (lower) or above k.
func keySorting(t *testing.T, k crypto.PublicKey, lower bool) crypto.PublicKey {
	t.Helper()
	for {
		p := freshKey(t)
		if c := bytes.Compare(p[:], k[:]); c != 0 && (c < 0) == lower {
			return p
		}
	}
}

// TestNetns_IncumbencyHostileMember: shared-key mode (no CA). Three honest agents and a
// hostile member that holds the gossip key announce b's exact /24 with their own keys: one
// sorting below b's, one above, and one as a static claim "since 1". Every honest host
// refuses them (subnet_held; b: subnet_overlaps_own), counts the refusals, keeps b's allowed
// IPs whole; b is not renumbered; pings and a sha256-checked transfer keep flowing.
func TestNetns_IncumbencyHostileMember(t *testing.T) {
	nodes := gossipLab(t, "a", "b", "c", "evil")
	a, b, c, evil := nodes[0], nodes[1], nodes[2], nodes[3]
	key := gossipKeyB64(t)
	started := time.Now()
	a.start(gossipConfig(a, key) + "metrics_listen: 127.0.0.1:9101\n")
	for _, n := range []*node{b, c} {
		n.start(gossipConfig(n, key, a.underlay))
	}
	honest := []*node{a, b, c}
	eventually(t, 30*time.Second, "all pairs ping", func() error { return allPairsPing(honest) })
	victimSubnet, victimAddr := b.status().Subnet, b.status().Address
	// b has held its /24 for longer than the allocator's tie window (claimSettle: 5 s with
	// fast gossip): the forged claims below are later claims, not a tie.
	if d := 7*time.Second - time.Since(started); d > 0 {
		time.Sleep(d)
	}

	bKey := b.priv.Public()
	x := startHostile(t, evil.host, key, evil.underlay, a.underlay+":7946")
	forged := []struct {
		name string
		tag  string
	}{
		{"evil-low", forgedInfo(t, keySorting(t, bKey, true), victimSubnet, false)},
		{"evil-high", forgedInfo(t, keySorting(t, bKey, false), victimSubnet, false)},
		{"evil-static", forgedInfo(t, keySorting(t, bKey, true), victimSubnet, true)},
	}
	for i, f := range forged {
		x.do(hostileCmd{Name: f.name, Port: 7950 + i, Tags: map[string]string{membership.TagNodeInfo: f.tag}})
	}
	for _, n := range honest {
		eventually(t, 30*time.Second, n.name+" sees the forged claims", func() error {
			ms := n.members()
			for _, f := range forged {
				if m, ok := ms[f.name]; !ok || m.Subnet != victimSubnet {
					return fmt.Errorf("%s sees %s as %+v", n.name, f.name, m)
				}
			}
			return nil
		})
	}
	time.Sleep(2 * time.Second) // several allocator reconciles (200 ms with fast gossip)
	for _, n := range []*node{a, c} {
		if got := peerAllowed(n, b.pub()); !slices.Equal(got, []string{victimSubnet}) {
			t.Fatalf("%s: the victim's allowed IPs are %v, want [%s]", n.name, got, victimSubnet)
		}
		if ps := n.peers(); len(ps) != 2 {
			t.Fatalf("%s has %d peers, want the 2 honest ones: %+v", n.name, len(ps), ps)
		}
	}
	if got := b.status().Subnet; got != victimSubnet {
		t.Fatalf("the victim was renumbered from %s to %s", victimSubnet, got)
	}
	if err := allPairsPing(honest); err != nil {
		t.Fatalf("honest traffic under forged /24 claims: %v", err)
	}
	for _, f := range forged {
		for _, n := range []*node{a, c} {
			refusedAs(t, n, f.name, "subnet_held")
		}
		refusedAs(t, b, f.name, "subnet_overlaps_own")
	}
	transfer(t, a, b, victimAddr, 5011, 4<<20)
	transfer(t, b, c, c.status().Address, 5012, 4<<20)
	if got := b.status().Subnet; got != victimSubnet {
		t.Fatalf("the victim was renumbered from %s to %s", victimSubnet, got)
	}
	if strings.Contains(b.logs(), "subnet changed") {
		t.Fatalf("b's allocator moved:\n%s", grepLines(b.logs(), "subnet changed"))
	}

	metrics, err := a.httpGet("http://127.0.0.1:9101/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("weft_gossip_claims_refused_total{reason=%q} 3\n", "subnet_held"); !strings.Contains(metrics, want) {
		t.Fatalf("metrics lack %q:\n%s", want, grepLines(metrics, "claims_refused"))
	}
	members, err := a.cli("members")
	if err != nil || !strings.Contains(members, "subnet_held") {
		t.Fatalf("weft members shows no subnet_held: %v\n%s", err, members)
	}
	t.Logf("weft members on a:\n%s", members)

	// The forgers leave: nothing changes for the honest hosts.
	for _, f := range forged {
		x.do(hostileCmd{Name: f.name, Leave: true})
	}
	if err := allPairsPing(honest); err != nil {
		t.Fatal(err)
	}
}
