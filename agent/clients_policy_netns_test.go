package agent_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftnet/weft/internal/netlab"
)

// TestNetns_ClientIsNotItsHost is issue 23's fourth attack with real agents and a stock
// client: host a is in group g; b's policy lets group g reach b's port 8080 (and anyone
// ping). a reaches b:8080. a's WireGuard client (wireguard-go in w's namespace, from the
// config `weft client add` printed) pings b, so its packets are forwarded, but is refused
// at b:8080: b judges it as client@a, with no groups, never as a. `weft policy test` on b
// says the same, and b refused no client announcement.
func TestNetns_ClientIsNotItsHost(t *testing.T) {
	netlab.RequireTools(t)
	nodes := gossipLab(t, "a", "b", "w")
	a, b, w := nodes[0], nodes[1], nodes[2]
	key := gossipKeyB64(t)
	polFile := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(polFile, []byte(`default: deny
rules:
  - name: g-web
    from: {groups: [g]}
    to:   {any: true, ports: ["8080/tcp"]}
  - name: ping
    from: {any: true}
    to:   {any: true, proto: icmp}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	a.start(gossipConfig(a, key) + "groups: [g]\n")
	b.start(gossipConfig(b, key, a.underlay) + "policy_file: " + polFile + "\nmetrics_listen: 127.0.0.1:9101\n")
	eventually(t, 30*time.Second, "a and b ping", func() error { return allPairsPing(nodes[:2]) })
	bAddr := b.status().Address
	b.serve(t, "8080/tcp")
	eventually(t, 15*time.Second, "a (group g) reaches b:8080", func() error {
		if !a.reach("tcp", bAddr, 8080) {
			return fmt.Errorf("refused")
		}
		return nil
	})

	out, err := a.cli("client", "add", "phone")
	if err != nil {
		t.Fatal(err)
	}
	cfg := parseWGQuick(t, out[:strings.Index(out, "AllowedIPs")+strings.Index(out[strings.Index(out, "AllowedIPs"):], "\n")+1])
	clientAddr := strings.Split(cfg["Interface.Address"], "/")[0]
	startStockClient(t, w, cfg, "")
	eventually(t, 15*time.Second, "the client pings b through a", func() error { return w.ping(bAddr, 1) })

	// The attack: the client passes the rule written for its host's group.
	for i := 0; i < 3; i++ {
		if w.reach("tcp", bAddr, 8080) {
			t.Fatalf("a's WireGuard client %s reached b:8080 through the rule for a's group g", clientAddr)
		}
	}
	if !a.reach("tcp", bAddr, 8080) {
		t.Fatal("a itself no longer reaches b:8080")
	}
	out, err = b.cli("policy", "test", "--from", clientAddr, "--to", bAddr, "--port", "8080/tcp")
	if err != nil || !strings.Contains(out, "deny") {
		t.Fatalf("policy test from the client on b: %v %s", err, out)
	}
	t.Logf("on b: %s", strings.TrimSpace(out))
	if _, drops := ruleStat(b.policy(), "default"); drops == 0 {
		t.Error("b's default refused nothing of the client's")
	}
	m, err := b.httpGet("http://127.0.0.1:9101/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(m, "weft_policy_client_tags_refused_total") {
		t.Errorf("b refused a's honest client announcement:\n%s", grepLines(m, "client_tags"))
	}
}
