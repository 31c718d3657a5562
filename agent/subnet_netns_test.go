package agent_test

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestNetns_SubnetConflicts: a static subnet inside gossip.allowed_static wins over an allocated one (the allocated host
// moves, address and all, and traffic follows; its WireGuard client guard follows the
// subnet and its client, addressed in the old one, is reported), and of two hosts with the
// same static subnet the one that joined later reports the conflict.
func TestNetns_SubnetConflicts(t *testing.T) {
	nodes := gossipLab(t, "a", "s", "u")
	a, s, u := nodes[0], nodes[1], nodes[2]
	key := gossipKeyB64(t)
	a.start(allowStatic(gossipConfig(a, key), "10.42.0.0/16"))
	taken := a.status().Subnet
	if out, err := a.cli("client", "add", "phone"); err != nil { // installs the client guard
		t.Fatalf("client add: %v\n%s", err, out)
	}
	guard := func() string {
		out, err := a.host.Run("ip", "-4", "rule", "show")
		if err != nil {
			t.Fatalf("ip rule: %v\n%s", err, out)
		}
		return out
	}
	if g := guard(); !strings.Contains(g, "from "+taken+" to ") || !strings.Contains(g, "to "+taken+" iif weft0") {
		t.Fatalf("client guard for %s missing before the move:\n%s", taken, g)
	}

	start := time.Now()
	s.start(gossipConfig(s, key, a.underlay) + "subnet: " + taken + "\n")
	eventually(t, 30*time.Second, "a moves off the static subnet", func() error {
		st := a.status()
		if st.Subnet == taken || st.Subnet == "" {
			return fmt.Errorf("a still announces %q", st.Subnet)
		}
		if !strings.HasPrefix(st.Address, strings.TrimSuffix(st.Subnet, "0/24")) {
			return fmt.Errorf("a's address %s is not in its new subnet %s", st.Address, st.Subnet)
		}
		return nil
	})
	t.Logf("static subnet %s claimed by s → a moved to %s in %.1fs", taken, a.status().Subnet, time.Since(start).Seconds())
	eventually(t, 20*time.Second, "traffic between s and the moved a", func() error { return allPairsPing([]*node{a, s}) })
	if out, err := a.host.Run("ip", "-4", "addr", "show", "dev", "weft0"); err != nil || strings.Count(out, "inet ") != 1 {
		t.Fatalf("a's device should carry exactly its new address: %v\n%s", err, out)
	}
	moved := a.status().Subnet
	g := guard()
	if strings.Contains(g, taken) || !strings.Contains(g, "from "+moved+" to ") || !strings.Contains(g, "to "+moved+" iif weft0") ||
		strings.Count(g, "iif weft0 blackhole") != 1 {
		t.Fatalf("client guard after the move to %s (from %s): want the new subnet's rules, none of the old, one drop rule:\n%s", moved, taken, g)
	}
	if p := strings.Join(a.status().Problems, "\n"); !strings.Contains(p, "phone") || !strings.Contains(p, "re-issue") {
		t.Fatalf("a's problems should name the client addressed in the old subnet: %q", p)
	}

	// u claims the same static subnet later: u reports the conflict, s keeps it.
	u.start(gossipConfig(u, key, a.underlay) + "subnet: " + taken + "\n")
	eventually(t, 30*time.Second, "u reports the conflict", func() error {
		st := u.status()
		for _, p := range st.Problems {
			if strings.Contains(p, "conflict") || strings.Contains(p, taken) {
				return nil
			}
		}
		return fmt.Errorf("u's status: subnet %q problems %q", st.Subnet, st.Problems)
	})
	t.Logf("u's problem: %q", u.status().Problems)
	if got := s.status().Subnet; got != taken {
		t.Fatalf("s lost its static subnet: %s", got)
	}
	if out, _ := u.cli("status"); !strings.Contains(out, "problem:") {
		t.Fatalf("weft status on u does not show the problem:\n%s", out)
	}
	if err := allPairsPing([]*node{a, s}); err != nil {
		t.Fatal(err)
	}
}
