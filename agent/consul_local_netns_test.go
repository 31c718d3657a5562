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

// curlAsNobody runs curl inside the node's namespace as uid/gid 65534 with no
// capabilities: any local user of the host. It returns the body and the status code.
func (n *node) curlAsNobody(args ...string) (string, string) {
	full := append([]string{"--reuid", "65534", "--regid", "65534", "--clear-groups", "--inh-caps=-all", "--",
		"curl", "-sS", "--max-time", "10", "-w", "\n%{http_code}"}, args...)
	out, _ := n.host.Run("setpriv", full...)
	i := strings.LastIndexByte(out, '\n')
	if i < 0 {
		return out, ""
	}
	return out[:i], strings.TrimSpace(out[i+1:])
}

// TestNetns_ConsulLocalUser: issue 23's local-user attack on real agents. a serves the
// Consul API on loopback with a token file (root's, 0600) and configures db on 5432; an
// unprivileged user of a's host tries to register db on a port of theirs and to deregister
// it: both 403, b keeps seeing db on 5432 only. Root with the token writes. A browser led
// by DNS rebinding (Host: evil.example) reads neither /metrics nor /debug/pprof/cmdline;
// every refusal is in weft_http_refused_total.
func TestNetns_ConsulLocalUser(t *testing.T) {
	netlab.RequireTools(t, "curl", "setpriv")
	nodes := gossipLab(t, "a", "b")
	a, b := nodes[0], nodes[1]
	key := gossipKeyB64(t)
	tok := filepath.Join(a.dir, "consul.token")
	const token = "9f1c2d3e-4b5a-6978-8a9b-0c1d2e3f4a5b"
	if err := os.WriteFile(tok, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a.start(consulConfig(a, key) + "  token_file: " + tok + `
metrics_listen: 127.0.0.1:9101
debug:
  pprof_listen: 127.0.0.1:6060
services:
  - name: db
    port: 5432
`)
	b.start(consulConfig(b, key, a.underlay))
	if strings.Contains(a.logs(), "takes writes with no token") {
		t.Fatalf("a warns of a token-less Consul API though it has a token:\n%s", a.logs())
	}
	dbOnB := func(want string) func() error {
		return func() error {
			body, code, err := b.curl("http://127.0.0.1:8500/v1/catalog/service/db")
			if err != nil || code != "200" || strings.Count(body, `"ServicePort"`) != 1 || !strings.Contains(body, want) {
				return fmt.Errorf("b's catalog of db: %v %s %q, want only %s", err, code, body, want)
			}
			return nil
		}
	}
	eventually(t, 30*time.Second, "b sees a's db on 5432", dbOnB(`"ServicePort":5432`))

	// The local user: no token (the file is root's), over loopback, naming 127.0.0.1.
	for _, req := range [][]string{
		{"-X", "PUT", "--data", `{"Name":"db","Port":31337}`, "http://127.0.0.1:8500/v1/agent/service/register"},
		{"-X", "PUT", "http://127.0.0.1:8500/v1/agent/service/deregister/db"},
	} {
		body, code := a.curlAsNobody(req...)
		if code != "403" || !strings.Contains(body, "X-Consul-Token") {
			t.Fatalf("a local user's %v: %s %q, want 403 saying how to pass the token", req, code, body)
		}
	}
	if _, err := a.host.Run("setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", "--", "cat", tok); err == nil {
		t.Fatal("the local user can read the token file")
	}
	time.Sleep(2 * time.Second) // a write that got through would have reached b by now
	if err := dbOnB(`"ServicePort":5432`)(); err != nil {
		t.Fatal(err)
	}

	// Root with the token writes, as the README tells local tools.
	body, code, err := a.curl("-X", "PUT", "-H", "X-Consul-Token: "+token, "--data", `{"Name":"cache","Port":6379}`,
		"http://127.0.0.1:8500/v1/agent/service/register")
	if err != nil || code != "200" {
		t.Fatalf("register with the token: %v %s %q", err, code, body)
	}

	// DNS rebinding against the metrics and pprof listeners; the local names pass.
	for _, url := range []string{"http://127.0.0.1:9101/metrics", "http://127.0.0.1:6060/debug/pprof/cmdline"} {
		body, code, _ := a.curl("-H", "Host: evil.example", url)
		if code != "403" || !strings.HasPrefix(body, "Forbidden") {
			t.Fatalf("%s with Host evil.example: %s %.200q, want 403", url, code, body)
		}
		if _, code, err := a.curl("-H", "Host: localhost", url); err != nil || code != "200" {
			t.Fatalf("%s with Host localhost: %v %s", url, err, code)
		}
	}
	body, code, err = a.curl("http://127.0.0.1:9101/metrics")
	if err != nil || code != "200" {
		t.Fatalf("metrics: %v %s", err, code)
	}
	for _, line := range []string{
		`weft_http_refused_total{listener="consul_api",reason="token"} 2`,
		`weft_http_refused_total{listener="metrics",reason="host"} 1`,
		`weft_http_refused_total{listener="pprof",reason="host"} 1`,
	} {
		if !strings.Contains(body, line) {
			t.Errorf("a's /metrics lacks %s", line)
		}
	}
}
