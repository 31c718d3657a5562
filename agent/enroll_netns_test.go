package agent_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftnet/weft/identity"
)

// enrollConf is the config of a host of the enrollment lab: fast gossip at its underlay
// address, joining join (none: the CA host), with extra settings.
func enrollConf(n *node, extra string, join ...string) string {
	rj := ""
	if len(join) > 0 {
		rj = fmt.Sprintf("  retry_join: [%s]\n  retry_interval: 1s\n  retry_max: 3\n", strings.Join(join, ", "))
	}
	return fmt.Sprintf("# trust: the default (ca)\ngossip:\n  bind: %s:7946\n  fast: true\n%sdns:\n  listen: [\"127.0.0.1:53\"]\n%s", n.underlay, rj, extra)
}

// tokenCreate runs `weft token create` on the CA host and returns the token.
func tokenCreate(t *testing.T, ca *node, args ...string) string {
	t.Helper()
	out, err := exec.Command(weftBin(t), append([]string{"--socket", ca.sock, "token", "create"}, args...)...).Output()
	if err != nil {
		t.Fatalf("token create: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// joinFails starts a joining agent on n with token and returns its output; it must exit
// with an error.
func joinFails(t *testing.T, n *node, ca *node, token string) string {
	t.Helper()
	_ = os.RemoveAll(filepath.Join(n.dir, "state"))
	cfgPath := filepath.Join(n.dir, "weft.yaml")
	full := fmt.Sprintf("name: %s\nstate_dir: %s\ncontrol_socket: %s\njoin_token: %s\n%s", n.name, filepath.Join(n.dir, "state"), n.sock, token, enrollConf(n, "", ca.underlay))
	if err := os.WriteFile(cfgPath, []byte(full), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := n.host.Command(ctx, weftBin(t), "agent", "-c", cfgPath).CombinedOutput()
	if err == nil || ctx.Err() != nil {
		t.Fatalf("%s: the agent did not refuse to start: %v\n%s", n.name, err, out)
	}
	if _, err := os.Stat(filepath.Join(n.dir, "state", "host.crt")); err == nil {
		t.Fatalf("%s: refused, yet a certificate was stored", n.name)
	}
	return string(out)
}

// TestNetns_Enroll: `weft init` on a, `weft token create` there, and three hosts join with
// `--join-token`: each gets a distinct /24 from its certificate and they all ping; a second
// use of a single-use token, an expired and a revoked token and a token of another CA are
// refused with errors that say what to run; certificates are renewed before they expire
// (30s validity) and traffic keeps flowing.
func TestNetns_Enroll(t *testing.T) {
	nodes := gossipLab(t, "a", "b", "c", "d", "e")
	a, b, c, d, e := nodes[0], nodes[1], nodes[2], nodes[3], nodes[4]
	out, err := exec.Command(weftBin(t), "init", "--state-dir", filepath.Join(a.dir, "state"), "--name", "lab").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "weft token create") {
		t.Fatalf("weft init: %v\n%s", err, out)
	}
	a.start(enrollConf(a, fmt.Sprintf("enroll:\n  listen: %s:7947\n  cert_validity: 30s\n", a.underlay)))

	joined := []*node{b, c, d}
	tokens := map[string]string{}
	for _, n := range joined {
		tok := tokenCreate(t, a, "--groups", "web")
		tokens[n.name] = tok
		n.start(enrollConf(n, "join_token: "+tok+"\n", a.underlay))
	}
	all := []*node{a, b, c, d}
	eventually(t, 60*time.Second, "all enrolled hosts ping", func() error { return allPairsPing(all) })
	seen := map[string]string{}
	for _, n := range all {
		st := n.status()
		if st.Certificate == nil || len(st.Certificate.Prefixes) != 1 || st.Certificate.Prefixes[0] != st.Subnet {
			t.Fatalf("%s: subnet %s, certificate %+v", n.name, st.Subnet, st.Certificate)
		}
		if other, dup := seen[st.Subnet]; dup {
			t.Fatalf("%s and %s both hold %s", n.name, other, st.Subnet)
		}
		seen[st.Subnet] = n.name
		if n != a && (len(st.Certificate.Groups) != 1 || st.Certificate.Groups[0] != "web") {
			t.Fatalf("%s: groups %v, the token gave web", n.name, st.Certificate.Groups)
		}
	}
	t.Logf("subnets: %v", seen)

	// Refusals, each with what to run.
	expired := tokenCreate(t, a, "--ttl", "1s")
	revoked := tokenCreate(t, a)
	rt, _ := identity.ParseToken(revoked)
	if _, err := a.cli("token", "revoke", rt.ID.String()); err != nil {
		t.Fatal(err)
	}
	other, _ := identity.ParseToken(tokenCreate(t, a))
	other.CA[0] ^= 0xff // a token of another cluster's CA
	time.Sleep(1500 * time.Millisecond)
	for _, c := range []struct{ name, token, want string }{
		{"second use", tokens["b"], "token_used"},
		{"expired", expired, "token_expired"},
		{"revoked", revoked, "token_revoked"},
		{"another CA", other.String(), "another cluster"},
	} {
		out := joinFails(t, e, a, c.token)
		if !strings.Contains(out, c.want) || !strings.Contains(out, "weft token create") {
			t.Errorf("%s: refusal does not say %q and what to run:\n%s", c.name, c.want, out)
		}
		t.Logf("%s: %s", c.name, lastLine(out))
	}
	// The CA default: a host that joins with neither a certificate nor a token refuses and
	// says what to run; one that joins nobody creates a cluster of its own.
	out = []byte(joinFails(t, e, a, `""`))
	if !strings.Contains(string(out), "weft token create") || !strings.Contains(string(out), "trust: shared-key") {
		t.Errorf("a host without certificate or token: %s", out)
	}
	t.Logf("no token: %s", lastLine(string(out)))
	e.start(enrollConf(e, fmt.Sprintf("enroll:\n  listen: %s:7947\n", e.underlay)))
	if st := e.status(); st.Certificate == nil || st.Certificate.Prefixes[0] != st.Subnet {
		t.Fatalf("a host that joins nobody did not create its cluster: %+v", st.Certificate)
	}
	if _, err := os.Stat(filepath.Join(e.dir, "state", "ca.key")); err != nil {
		t.Fatalf("bootstrapped host has no CA key: %v", err)
	}
	e.kill()

	tl, err := a.cli("token", "list")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"token_used=1", "token_expired=1", "token_revoked=1", "enrolled=3"} {
		if !strings.Contains(tl, want) {
			t.Errorf("token list does not count %s:\n%s", want, tl)
		}
	}

	// Renewal: every certificate is replaced before it expires; traffic keeps flowing.
	fps := map[string]string{}
	for _, n := range all {
		fps[n.name] = n.status().Certificate.Fingerprint
	}
	eventually(t, 40*time.Second, "certificates renewed", func() error {
		for _, n := range all {
			if fp := n.status().Certificate.Fingerprint; fp == fps[n.name] {
				return fmt.Errorf("%s still has its first certificate", n.name)
			}
		}
		return nil
	})
	eventually(t, 30*time.Second, "pings after renewal", func() error { return allPairsPing(all) })
	for _, n := range all {
		if st := n.status(); st.Subnet != seenBy(seen, n.name) {
			t.Fatalf("%s moved to %s after renewal", n.name, st.Subnet)
		}
	}
}

func seenBy(seen map[string]string, name string) string {
	for s, n := range seen {
		if n == name {
			return s
		}
	}
	return ""
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
