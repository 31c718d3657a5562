package agent_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestNetns_SubnetLen: a /20 cluster CIDR cut into /26s (subnet_len: 26). Three hosts get
// three distinct /26s inside subnet_min…subnet_max, each host's device carries its /26's
// first address, and traffic flows between all of them. A fourth host finds the one-slot
// range of its own config (a's subnet) full: it announces nothing and says which settings make room,
// in the error it exits with, instead of taking a subnet or retrying. A fifth host with another
// subnet_len (a /24 of the same CIDR) is refused by the others, not peered.
func TestNetns_SubnetLen(t *testing.T) {
	nodes := gossipLab(t, "a", "b", "c", "d", "e")
	a, b, c, d, e := nodes[0], nodes[1], nodes[2], nodes[3], nodes[4]
	key := gossipKeyB64(t)
	const cidr = "10.77.0.0/20"
	conf := func(n *node, extra string, join ...string) string {
		return gossipConfig(n, key, join...) + "cluster_cidr: " + cidr + "\n" + extra
	}
	wide := "subnet_len: 26\nsubnet_min: 10.77.1.0/26\nsubnet_max: 10.77.3.192/26\n" // 12 slots
	a.start(conf(a, wide))
	b.start(conf(b, wide, a.underlay))
	c.start(conf(c, wide, a.underlay))
	min, max := netip.MustParseAddr("10.77.1.0"), netip.MustParseAddr("10.77.3.192")
	var subnets []string
	eventually(t, 30*time.Second, "a, b and c hold three distinct /26s in subnet_min…subnet_max", func() error {
		seen := map[string]bool{}
		subnets = subnets[:0]
		for _, n := range []*node{a, b, c} {
			st := n.status()
			p, err := netip.ParsePrefix(st.Subnet)
			if err != nil || p.Bits() != 26 || p.Addr().Less(min) || max.Less(p.Addr()) || seen[st.Subnet] {
				return fmt.Errorf("%s holds %q (seen %v)", n.name, st.Subnet, seen)
			}
			if want := p.Addr().Next().String(); st.Address != want {
				return fmt.Errorf("%s's address %s, want %s", n.name, st.Address, want)
			}
			seen[st.Subnet] = true
			subnets = append(subnets, st.Subnet)
		}
		return nil
	})
	t.Logf("subnets: %v", subnets)
	if out, err := a.host.Run("ip", "-4", "-o", "addr", "show", "dev", "weft0"); err != nil || !strings.Contains(out, "/20") {
		t.Fatalf("a's device should carry its address with the cluster's /20 (the overlay on-link): %v\n%s", err, out)
	}
	eventually(t, 20*time.Second, "traffic between a, b and c", func() error { return allPairsPing([]*node{a, b, c}) })

	// d's own range is one slot, a's: it is full. d starts once a has held its subnet for
	// longer than the allocator's settle time (5 s): a claim within it is a tie, in which
	// both hosts move.
	time.Sleep(6 * time.Second)
	narrow := fmt.Sprintf("subnet_len: 26\nsubnet_min: %s\nsubnet_max: %s\n", subnets[0], subnets[0])
	// d cannot start: its range is full. It exits with an error that names the settings
	// that make room (no retry loop, nothing announced).
	cfgPath := filepath.Join(d.dir, "weft.yaml")
	full := fmt.Sprintf("name: %s\nstate_dir: %s\ncontrol_socket: %s\n%s", d.name, filepath.Join(d.dir, "state"), d.sock, withTrust(conf(d, narrow, a.underlay)))
	if err := os.WriteFile(cfgPath, []byte(full), 0o600); err != nil {
		t.Fatal(err)
	}
	d.launch(d.host.Command(context.Background(), weftBin(t), "agent", "-c", cfgPath))
	if err := d.wait(30 * time.Second); err == nil {
		t.Fatalf("d exited without an error although its range is full:\n%s", tail(d.logs(), 20))
	} else if !strings.Contains(err.Error(), "exit status") {
		t.Fatalf("d did not exit: %v\n%s", err, tail(d.logs(), 20))
	}
	if l := d.logs(); !strings.Contains(l, "no overlay subnet: no free subnet left") || !strings.Contains(l, "widen subnet_min…subnet_max") {
		t.Fatalf("d's error does not name the settings:\n%s", tail(l, 20))
	}
	t.Logf("d: %s", lastLine(d.logs()))
	if m := a.members()["d"]; m.Status == "alive" && m.Subnet != "" {
		t.Fatalf("d announced %s", m.Subnet)
	}
	for _, n := range []*node{a, b, c} {
		if got := n.status().Subnet; !slices.Contains(subnets, got) {
			t.Fatalf("%s moved to %s after d joined", n.name, got)
		}
	}

	// e runs subnet_len 24 in the same CIDR: the /26 hosts refuse its /24.
	e.start(conf(e, "", a.underlay))
	eventually(t, 30*time.Second, "a refuses e's /24", func() error {
		m := a.members()["e"]
		if m.Refused != "subnet_not_cluster_slot" {
			return fmt.Errorf("a sees e as %+v", m)
		}
		return nil
	})
	for _, p := range a.peers() {
		if p.Name == "e" {
			t.Fatalf("a peers with e, whose subnet_len differs: %+v", p)
		}
	}
	if err := allPairsPing([]*node{a, b, c}); err != nil {
		t.Fatalf("traffic after d and e joined: %v", err)
	}
}
