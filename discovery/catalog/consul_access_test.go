package catalog

import (
	"context"
	"io"
	"maps"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	consul "github.com/hashicorp/consul/api"
)

const localToken = "0123456789abcdef-local"

// startLocalConsul serves a catalog holding the host's configured service db (port 5432)
// on a real loopback listener, as `consul_api.listen: [127.0.0.1:PORT]` does.
func startLocalConsul(t *testing.T, cfg ConsulConfig) (*Catalog, string) {
	t.Helper()
	cat, _ := newTestCatalog(t, CatalogConfig{Node: "self", Addr: netip.MustParseAddr("10.42.1.1")})
	if err := cat.Register(Service{Name: "db", Port: 5432}); err != nil {
		t.Fatal(err)
	}
	cfg.Node, cfg.Logger = "self", testLogger(t)
	h, err := NewConsulHandler(cfg, cat)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := NewConsulServer([]string{"127.0.0.1:0"}, h, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return cat, srv.Addrs()[0].String()
}

// localPut is what any local user can send to a loopback listener: a PUT naming the agent
// as a local client does (Host 127.0.0.1:PORT), with the given X-Consul-Token (none if "").
func localPut(t *testing.T, addr, path, body, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("PUT", "http://"+addr+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("X-Consul-Token", token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func dbPort(cat *Catalog) int {
	for _, l := range cat.Local() {
		if l.Service.Name == "db" {
			return int(l.Service.Port)
		}
	}
	return 0
}

// TestConsulAPI_LocalUserNeedsToken is the local-user attack: with a token configured, an
// unprivileged user on the host writes over loopback without it, to register db on a port
// of theirs (and receive part of the cluster's db traffic) or to deregister the host's db.
// Both are refused with a 403 that says how to pass the token; with the token (the header,
// or the official client's Token / CONSUL_HTTP_TOKEN) both work.
func TestConsulAPI_LocalUserNeedsToken(t *testing.T) {
	var refused refusalCounter
	cat, addr := startLocalConsul(t, ConsulConfig{Token: localToken, Refused: refused.add})

	for _, tc := range []struct{ path, body string }{
		{"/v1/agent/service/register", `{"Name":"db","Port":31337}`},
		{"/v1/agent/service/deregister/db", ""},
		{"/v1/agent/check/fail/service:db", ""},
	} {
		code, msg := localPut(t, addr, tc.path, tc.body, "")
		if code != http.StatusForbidden {
			t.Errorf("token-less local PUT %s: %d %q, want 403", tc.path, code, msg)
			continue
		}
		for _, want := range []string{"X-Consul-Token", "CONSUL_HTTP_TOKEN"} {
			if !strings.Contains(msg, want) {
				t.Errorf("PUT %s refused without saying how to pass the token (%s): %q", tc.path, want, msg)
			}
		}
		if code, _ := localPut(t, addr, tc.path, tc.body, "not-the-token-at-all"); code != http.StatusForbidden {
			t.Errorf("local PUT %s with a wrong token: %d, want 403", tc.path, code)
		}
	}
	if p := dbPort(cat); p != 5432 {
		t.Fatalf("after the token-less writes db is on port %d, want the host's 5432", p)
	}

	// The official client without the token fails and says so.
	anon, err := consul.NewClient(&consul.Config{Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	if err := anon.Agent().ServiceDeregister("db"); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("official client without token: deregister err = %v, want a 403", err)
	}
	if p := dbPort(cat); p != 5432 {
		t.Fatalf("db is on port %d after a token-less deregister, want 5432", p)
	}

	// With the token, the header and the official client both write.
	if code, msg := localPut(t, addr, "/v1/agent/service/register", `{"Name":"cache","Port":6379}`, localToken); code != http.StatusOK {
		t.Fatalf("register with the token: %d %q", code, msg)
	}
	c, err := consul.NewClient(&consul.Config{Address: addr, Token: localToken})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Agent().ServiceRegister(&consul.AgentServiceRegistration{Name: "web", Port: 8080, Check: &consul.AgentServiceCheck{TTL: "30s"}}); err != nil {
		t.Fatalf("official client with the token: register: %v", err)
	}
	if err := c.Agent().PassTTL("service:web", "ok"); err != nil {
		t.Fatalf("official client with the token: pass: %v", err)
	}
	if err := c.Agent().ServiceDeregister("cache"); err != nil {
		t.Fatalf("official client with the token: deregister: %v", err)
	}
	// CONSUL_HTTP_TOKEN and CONSUL_HTTP_TOKEN_FILE, as the README tells local tools.
	t.Setenv("CONSUL_HTTP_ADDR", addr)
	t.Setenv("CONSUL_HTTP_TOKEN", localToken)
	envc, err := consul.NewClient(consul.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := envc.Agent().ServiceDeregister("web"); err != nil {
		t.Fatalf("official client with CONSUL_HTTP_TOKEN: deregister: %v", err)
	}
	tokFile := filepath.Join(t.TempDir(), "consul.token")
	if err := os.WriteFile(tokFile, []byte(localToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CONSUL_HTTP_TOKEN", "")
	t.Setenv("CONSUL_HTTP_TOKEN_FILE", tokFile)
	filec, err := consul.NewClient(consul.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := filec.Agent().ServiceRegister(&consul.AgentServiceRegistration{Name: "web", Port: 8081}); err != nil {
		t.Fatalf("official client with CONSUL_HTTP_TOKEN_FILE: register: %v", err)
	}
	if err := filec.Agent().ServiceDeregister("web"); err != nil {
		t.Fatalf("official client with CONSUL_HTTP_TOKEN_FILE: deregister: %v", err)
	}
	names := map[string]bool{}
	for _, l := range cat.Local() {
		names[l.Service.Name] = true
	}
	if !names["db"] || names["cache"] || names["web"] || len(names) != 1 {
		t.Fatalf("local services after the writes with the token: %v, want db only", names)
	}
	if got := refused.get(); got["token"] != 7 || len(got) != 1 {
		t.Fatalf("refusals counted: %v, want token:7", got)
	}
}

// refusalCounter is a ConsulConfig.Refused that remembers.
type refusalCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *refusalCounter) add(reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[reason]++
}

func (c *refusalCounter) get() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.n)
}

// TestConsulAPI_LocalWritesWithoutToken: with no token configured, a token-less write over
// loopback naming a local Host stays possible (a single-user host's Consul tools work as
// before); one from a web page through DNS rebinding (a foreign Host) is refused.
func TestConsulAPI_LocalWritesWithoutToken(t *testing.T) {
	var refused refusalCounter
	cat, addr := startLocalConsul(t, ConsulConfig{Refused: refused.add})
	if code, msg := localPut(t, addr, "/v1/agent/service/register", `{"Name":"web","Port":8080}`, ""); code != http.StatusOK {
		t.Fatalf("no token configured: local register: %d %q", code, msg)
	}
	req, _ := http.NewRequest("PUT", "http://"+addr+"/v1/agent/service/deregister/db", nil)
	req.Host = "evil.example:8500"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || dbPort(cat) != 5432 {
		t.Fatalf("rebinding deregister: %d, db port %d", resp.StatusCode, dbPort(cat))
	}
	if got := refused.get(); got["host"] != 1 || len(got) != 1 {
		t.Fatalf("refusals counted: %v, want host:1", got)
	}
}
