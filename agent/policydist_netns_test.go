package agent_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftnet/weft/discovery/membership"
	"github.com/weftnet/weft/discovery/policydist"
)

// TestNetns_PolicyHostilePV: two agents hold a signed policy; a member with the gossip key
// announces the current version under a name that sorts first, twice: "0evil" with no
// node info (the trust layer never accepts it) and "0evil-peer" with a fresh /24 (accepted
// as a peer in shared-key mode), neither ever re-sending. A host that joins later still gets
// the policy: the first counts for nothing, the second is skipped once the joiner has lagged
// past the bound (counted as silent_resender).
func TestNetns_PolicyHostilePV(t *testing.T) {
	nodes := gossipLab(t, "pva", "pvb", "pvc", "pvevil")
	a, b, c, evil := nodes[0], nodes[1], nodes[2], nodes[3]
	key := gossipKeyB64(t)
	caCrt, caKey := writeCA(t, t.TempDir(), "cluster")
	extra := "policy_ca_file: " + caCrt + "\n"
	a.start(gossipConfig(a, key) + extra)
	b.start(gossipConfig(b, key, a.underlay) + extra)
	eventually(t, 30*time.Second, "a ↔ b ping", func() error { return allPairsPing([]*node{a, b}) })

	doc := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(doc, []byte("default: allow\nrules:\n  - name: ping\n    from: {any: true}\n    to: {any: true, proto: icmp}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := a.cli("policy", "apply", doc, "--ca-key", caKey, "--ca-cert", caCrt); err != nil {
		t.Fatal(err)
	}
	v := a.policy().Version
	eventually(t, 20*time.Second, "b holds the policy", func() error {
		if got := b.policy().Version; got != v {
			return fmt.Errorf("b holds %d, want %d", got, v)
		}
		return nil
	})

	x := startHostile(t, evil.host, key, evil.underlay, a.underlay+":7946")
	x.do(hostileCmd{Name: "0evil", Port: 7950, Tags: map[string]string{policydist.VersionTag: policydist.FormatVersion(v)}})
	x.do(hostileCmd{Name: "0evil-peer", Port: 7951, Tags: map[string]string{
		membership.TagNodeInfo: forgedInfo(t, freshKey(t), "10.42.250.0/24", false),
		policydist.VersionTag:  policydist.FormatVersion(v),
	}})
	eventually(t, 20*time.Second, "a and b see both forgers", func() error {
		for _, n := range []*node{a, b} {
			out, err := n.cli("members")
			if err != nil || !strings.Contains(out, "0evil ") || !strings.Contains(out, "0evil-peer") {
				return fmt.Errorf("%s: %v\n%s", n.name, err, out)
			}
		}
		return nil
	})

	start := time.Now()
	c.start(gossipConfig(c, key, a.underlay) + extra)
	eventually(t, 45*time.Second, "the joiner gets the policy", func() error {
		if got := c.policy().Version; got != v {
			return fmt.Errorf("the joiner holds %d, want %d (catch-up silenced by a forged pv tag)", got, v)
		}
		return nil
	})
	t.Logf("the joiner received the policy %.1fs after its start", time.Since(start).Seconds())
	if n := a.policy().Refused["silent_resender"] + b.policy().Refused["silent_resender"]; n == 0 {
		t.Errorf("no silent_resender counted on a or b: %v %v", a.policy().Refused, b.policy().Refused)
	}
}
