package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/weftnet/weft/agent/api"
)

// SystemWeftPolicy is the weft row with network policy on both hosts: a 50-rule document
// (policyRules rules that match nothing of the benchmark, then one that allows everything)
// and a flow table holding policyFlows flows besides the measured ones, so that the row's
// ratio to the weft row is what a realistic policy costs the datapath.
const SystemWeftPolicy = "weft-policy"

const (
	policyRules = 50
	// policyFlows all come from host a, one peer to b: they must stay under the policy
	// engine's per-peer flow quota (a quarter of its 32768 flows), which refuses the rest.
	policyFlows = 8000
)

func weftPolicySystem() *system {
	return &system{
		name:   SystemWeftPolicy,
		weft:   true,
		desc:   fmt.Sprintf("weft agent, L3 TUN, encrypted, %d-rule policy and %d flows in the flow table", policyRules, policyFlows),
		ifname: weftIf,
		check:  func(o *Options) error { return probeBinary(o.WeftBin, "--policy-file", "agent", "--help") },
		up:     weftPolicyUp,
	}
}

// benchPolicy is the document: policyRules-1 rules for addresses, groups and ports the
// benchmark never uses (each new flow walks all of them), then an allow-all.
func benchPolicy() string {
	var b strings.Builder
	b.WriteString("default: deny\nrules:\n")
	for i := 0; i < policyRules-1; i++ {
		fmt.Fprintf(&b, "  - name: r%d\n    from: {cidrs: [10.%d.%d.0/24]}\n    to: {any: true, ports: [\"%d/tcp\", \"%d-%d/udp\"]}\n",
			i, 100+i/200, i%200, 1000+i, 2000+10*i, 2005+10*i)
	}
	b.WriteString("  - name: all\n    from: {any: true}\n    to: {any: true}\n")
	return b.String()
}

func weftPolicyUp(ctx context.Context, s *session) (string, error) {
	ka, kb, err := newKeyPairs()
	if err != nil {
		return "", err
	}
	path := filepath.Join(s.dir, "policy.yaml")
	if err := os.WriteFile(path, []byte(benchPolicy()), 0o600); err != nil {
		return "", err
	}
	ca, cb, target := weftConfigs(weftVariant{mode: "l3", encryption: "wireguard"}, s.dir, ka, kb)
	ca.PolicyFile, cb.PolicyFile = path, path
	if err := startWeftPair(ctx, s, ca, cb, ka, kb); err != nil {
		return "", err
	}
	if err := s.waitReachable(ctx, s.a, target, reachTimeout); err != nil {
		return "", err
	}
	// policyFlows UDP flows from a to b (a socket each: distinct source ports; b's kernel
	// answers a few with ICMP port unreachable, rate-limited). A datagram can be lost on a
	// loaded machine before an agent sees it (a full device queue while the agent waits for
	// a CPU; seen once in CI: 7,961 of 8,000): the shortfall is sent again, as new flows, at
	// most twice. b counts a's flows against its per-peer quota (8,192), which leaves room.
	fill := func(n, first int) error {
		script := fmt.Sprintf("for p in $(seq %d %d); do echo x > /dev/udp/%s/$((20000 + p %% 40000)) 2>/dev/null; done; true", first, first+n-1, target)
		_, err := s.run(ctx, s.a, "bash", "-c", script)
		return err
	}
	if err := fill(policyFlows, 1); err != nil {
		return "", fmt.Errorf("fill the flow table: %w", err)
	}
	for again, next := 0, policyFlows+1; again < 2; again++ {
		time.Sleep(500 * time.Millisecond) // the last datagrams through both agents
		least := policyFlows
		for _, c := range []weftConfig{ca, cb} {
			st, err := api.NewClient(c.ControlSocket).Policy(ctx)
			if err != nil {
				return "", fmt.Errorf("policy status of %s: %w", c.Name, err)
			}
			least = min(least, st.Flows)
		}
		if least >= policyFlows {
			break
		}
		if err := fill(policyFlows-least, next); err != nil {
			return "", fmt.Errorf("fill the flow table: %w", err)
		}
		next += policyFlows - least
	}
	// Both agents must hold the flows (else the row measures an empty table). The last
	// datagrams may still be on their way through the agents when the loop ends: wait.
	for _, c := range []weftConfig{ca, cb} {
		err := poll(ctx, 10*time.Second, c.Name+"'s flow table", func() error {
			st, err := api.NewClient(c.ControlSocket).Policy(ctx)
			if err != nil {
				return fmt.Errorf("policy status of %s: %w", c.Name, err)
			}
			if st.Flows < policyFlows {
				return fmt.Errorf("%s's flow table holds %d flows, want at least %d", c.Name, st.Flows, policyFlows)
			}
			return nil
		}, nil)
		if err != nil {
			return "", err
		}
	}
	return target, nil
}
