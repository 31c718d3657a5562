package agent_test

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestNetns_SubnetConflicts: a static subnet wins over an allocated one (the allocated host
// moves, address and all, and traffic follows), and of two hosts with the same static subnet
// the one that joined later reports the conflict.
func TestNetns_SubnetConflicts(t *testing.T) {
	nodes := gossipLab(t, "a", "s", "u")
	a, s, u := nodes[0], nodes[1], nodes[2]
	key := gossipKeyB64(t)
	a.start(gossipConfig(a, key))
	taken := a.status().Subnet

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
