package agent_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/weftnet/weft/internal/netlab"
)

func consulConfig(n *node, key string, join ...string) string {
	return gossipSection(n, key, join) + `dns:
  listen: ["127.0.0.1:53", "overlay:53"]
  consul_alias: true
consul_api:
  listen: ["127.0.0.1:8500", "overlay:8500"]
`
}

// curl runs curl inside the node's namespace and returns the body and the status code.
func (n *node) curl(args ...string) (string, string, error) {
	full := append([]string{"-sS", "--max-time", "10", "-w", "\n%{http_code}"}, args...)
	out, err := n.host.Run("curl", full...)
	i := strings.LastIndexByte(out, '\n')
	if i < 0 {
		return out, "", err
	}
	return out[:i], strings.TrimSpace(out[i+1:]), err
}

// holdUDP binds addr (UDP) inside the node's namespace until the test ends.
func (n *node) holdUDP(t *testing.T, addr string) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := n.host.Command(ctx, self, "-test.run=^$", "hold-udp", addr)
	cmd.Env = append(os.Environ(), helperEnv+"=hold-udp")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "holding\n" {
		t.Fatalf("hold %s: %q %v", addr, line, err)
	}
}

// TestNetns_ConsulDNSAndAPI: real agents in namespaces. a registers a service through the
// Consul API; b digs TAG.NAME.service.weft, the SRV and a PTR, the consul. alias, and reads
// a's Consul API over the overlay (writes from there are refused without a token). c's DNS
// port is taken before it starts: it comes up anyway, says so in `weft status`, and the
// overlay works. No systemd-resolved in the namespaces: the agents say so and run.
func TestNetns_ConsulDNSAndAPI(t *testing.T) {
	netlab.RequireTools(t, "dig", "curl")
	nodes := gossipLab(t, "a", "b", "c")
	a, b, c := nodes[0], nodes[1], nodes[2]
	key := gossipKeyB64(t)
	a.start(consulConfig(a, key))
	b.start(consulConfig(b, key, a.underlay))
	c.holdUDP(t, "127.0.0.1:53")
	c.start(consulConfig(c, key, a.underlay))
	aAddr := a.status().Address
	eventually(t, 30*time.Second, "all pairs ping", func() error { return allPairsPing(nodes) })

	// c: the DNS port was taken; the agent runs, its status and log say why.
	st := c.status()
	if !strings.Contains(strings.Join(st.Problems, "|"), "dns is not serving") {
		t.Fatalf("c's status problems %q: want the DNS port problem", st.Problems)
	}
	if !strings.Contains(c.logs(), "dns is not serving; the overlay stays up") {
		t.Fatalf("c's log does not report the DNS problem:\n%s", c.logs())
	}
	// No token_file: the log says that any local user may write.
	if !strings.Contains(a.logs(), "consul_api.listen 127.0.0.1:8500 takes writes with no token: any local user") {
		t.Fatalf("a's log does not warn of the token-less Consul API:\n%s", a.logs())
	}
	for _, n := range []*node{a, b} {
		if !strings.Contains(n.logs(), "host resolver not configured: systemd-resolved is not running") {
			t.Fatalf("%s's log does not say systemd-resolved is absent:\n%s", n.name, n.logs())
		}
	}

	// Register on a through its Consul API (loopback: no token needed), with a TTL check.
	body, code, err := a.curl("-X", "PUT", "--data", `{"Name":"web","Port":8080,"Tags":["v2"],"Check":{"TTL":"60s"}}`,
		"http://127.0.0.1:8500/v1/agent/service/register")
	if err != nil || code != "200" {
		t.Fatalf("register on a: %v %s %q", err, code, body)
	}
	if body, code, err := a.curl("-X", "PUT", "http://127.0.0.1:8500/v1/agent/check/pass/service:web"); err != nil || code != "200" {
		t.Fatalf("pass ttl on a: %v %s %q", err, code, body)
	}
	start := time.Now()
	eventually(t, 30*time.Second, "b resolves v2.web.service.weft", expectAnswers(b, "v2.web.service.weft", "A", aAddr))
	t.Logf("Consul API register on a → A record from b: %.1fs", time.Since(start).Seconds())
	eventually(t, 10*time.Second, "SRV from b", expectAnswers(b, "_web._tcp.service.weft", "SRV", "1 1 8080 a.node.weft."))
	eventually(t, 10*time.Second, "RFC 2782 tag SRV from b", expectAnswers(b, "_web._v2.service.weft", "SRV", "1 1 8080 a.node.weft."))
	eventually(t, 10*time.Second, "consul alias from b", expectAnswers(b, "web.service.consul", "A", aAddr))
	out, err := b.host.Run("dig", "@127.0.0.1", "+short", "+time=2", "+tries=1", "-x", aAddr)
	if err != nil || !strings.Contains(out, "a.node.weft.") || !strings.Contains(out, "web.service.weft.") {
		t.Fatalf("PTR of %s from b: %v %q", aAddr, err, out)
	}
	if got, err := b.dig("v1.web.service.weft", "A"); err != nil || len(got) != 0 {
		t.Fatalf("an absent tag answered: %q %v", got, err)
	}

	// b reads a's Consul API over the overlay; a write from there needs a token.
	body, code, err = b.curl("http://" + aAddr + ":8500/v1/health/service/web?passing=1")
	if err != nil || code != "200" {
		t.Fatalf("b → a's health over the overlay: %v %s %q", err, code, body)
	}
	var entries []struct {
		Node    struct{ Node, Address string }
		Service struct{ Port int }
	}
	if err := json.Unmarshal([]byte(body), &entries); err != nil || len(entries) != 1 || entries[0].Node.Address != aAddr || entries[0].Service.Port != 8080 {
		t.Fatalf("health entries: %v %q", err, body)
	}
	body, code, _ = b.curl("-X", "PUT", "--data", `{"Name":"evil","Port":1}`, "http://"+aAddr+":8500/v1/agent/service/register")
	if code != "403" {
		t.Fatalf("a token-less write over the overlay: %s %q, want 403", code, body)
	}
	// c (no DNS of its own) still reads the catalog through its Consul API.
	eventually(t, 10*time.Second, "c's Consul API lists web", func() error {
		body, code, err := c.curl("http://127.0.0.1:8500/v1/catalog/service/web")
		if err != nil || code != "200" || !strings.Contains(body, `"ServicePort":8080`) {
			return fmt.Errorf("c: %v %s %q", err, code, body)
		}
		return nil
	})

	// Deregister: gone from b's DNS.
	if body, code, err := a.curl("-X", "PUT", "http://127.0.0.1:8500/v1/agent/service/deregister/web"); err != nil || code != "200" {
		t.Fatalf("deregister: %v %s %q", err, code, body)
	}
	eventually(t, 30*time.Second, "web leaves b's DNS", expectAnswers(b, "web.service.weft", "A"))
}
