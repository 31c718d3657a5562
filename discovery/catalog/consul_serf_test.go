package catalog_test

// The Consul API over real gossip: three Serf members on 127.0.0.1, each with its catalog
// published in its tag (as the agent wires it) and the Consul API on its own listener,
// driven by HashiCorp's Go client.

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	consul "github.com/hashicorp/consul/api"

	"github.com/weftnet/weft/discovery/catalog"
	"github.com/weftnet/weft/discovery/membership"
	"github.com/weftnet/weft/internal/testkit"
)

type serfHost struct {
	name    string
	cl      *membership.Cluster
	cat     *catalog.Catalog
	client  *consul.Client
	evsDone chan struct{}
}

// serfMembers adapts a Cluster to catalog.ConsulMembers, as the agent does.
type serfMembers struct{ cl *membership.Cluster }

func (m serfMembers) ConsulMembers() []catalog.ConsulMember {
	var out []catalog.ConsulMember
	for _, x := range m.cl.Members() {
		out = append(out, catalog.ConsulMember{Name: x.Name, Addr: x.Addr, Status: x.Status.String(), Tags: x.Tags})
	}
	return out
}

type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func startSerfHost(t *testing.T, i int, key []byte, join string) *serfHost {
	t.Helper()
	log := slog.New(slog.NewTextHandler(logWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	h := &serfHost{name: fmt.Sprintf("host-%c", 'a'+i), evsDone: make(chan struct{})}
	cfg := membership.DefaultLocalConfig()
	cfg.NodeName = h.name
	cfg.GossipKey = key
	cfg.Logger = log
	cfg.ClusterCIDR = netip.MustParsePrefix("10.42.0.0/16")
	cfg.StaticSubnet = netip.MustParsePrefix(fmt.Sprintf("10.42.%d.0/24", i+1))
	cfg.StateDir = t.TempDir()
	var pk [32]byte
	rand.Read(pk[:])
	cfg.Node = membership.NodeInfo{PublicKey: pk, DataPort: 51820, VNI: 1, Proto: 1}
	cl, err := membership.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.cl = cl
	self := cfg.StaticSubnet.Addr().Next()
	cat, err := catalog.NewCatalog(catalog.CatalogConfig{Node: h.name, Addr: self, Logger: log,
		Publish: func(v string) error { return cl.SetTag(catalog.CatalogTagKey, v) }})
	if err != nil {
		t.Fatal(err)
	}
	h.cat = cat
	go func() {
		defer close(h.evsDone)
		for ev := range cl.Events() {
			m := ev.Member
			switch ev.Type {
			case membership.EventJoin, membership.EventUpdate:
				if m.Name != h.name && m.InfoErr == nil && m.Info.Subnet.IsValid() {
					_ = cat.UpdateNode(m.Name, m.Info.Subnet.Masked().Addr().Next(), m.Tags[catalog.CatalogTagKey])
				}
			case membership.EventLeave, membership.EventFailed, membership.EventReap:
				cat.RemoveNode(m.Name)
			}
		}
	}()
	handler, err := catalog.NewConsulHandler(catalog.ConsulConfig{Node: h.name, Members: serfMembers{cl}, Logger: log}, cat)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(handler)
	h.client, err = consul.NewClient(&consul.Config{Address: srv.Listener.Addr().String(), HttpClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		srv.Close()
		cat.Close()
		cl.Shutdown()
		<-h.evsDone
	})
	if join != "" {
		if _, err := cl.Join([]string{join}); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

// settleSerf waits until Serf's and memberlist's goroutines are gone (see membership's
// clSettle: a probe may outlive Shutdown by one interval), so the package's goleak check
// stays exact.
func settleSerf(t *testing.T) {
	deadline := time.Now().Add(10 * time.Second)
	buf := make([]byte, 8<<20)
	for {
		stacks := buf[:runtime.Stack(buf, true)]
		if !bytes.Contains(stacks, []byte("github.com/hashicorp/memberlist.")) && !bytes.Contains(stacks, []byte("github.com/hashicorp/serf/")) {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("Serf goroutines still run 10s after Shutdown")
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestConsulAPI_OverSerf(t *testing.T) {
	t.Cleanup(func() { settleSerf(t) })
	key := make([]byte, 32)
	rand.Read(key)
	a := startSerfHost(t, 0, key, "")
	aAddr := a.cl.LocalMember().Addr.String()
	b := startSerfHost(t, 1, key, aAddr)
	testkit.Eventually(t, 15*time.Second, func() error {
		ms, err := b.client.Agent().Members(false)
		if err != nil || len(ms) != 2 {
			return fmt.Errorf("%v %d members", err, len(ms))
		}
		return nil
	}, "b's Consul API lists both members")

	// Register on a with a TTL check; b sees it critical in the catalog, then passing.
	if err := a.client.Agent().ServiceRegister(&consul.AgentServiceRegistration{
		Name: "api", Port: 9000, Tags: []string{"v1"}, Check: &consul.AgentServiceCheck{TTL: "1m"}}); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 15*time.Second, func() error {
		e, _, err := b.client.Catalog().Service("api", "v1", nil)
		if err != nil || len(e) != 1 || e[0].Node != "host-a" || e[0].Address != "10.42.1.1" || e[0].ServicePort != 9000 {
			return fmt.Errorf("%v %+v", err, e)
		}
		return nil
	}, "b's catalog lists api")
	if p, _, err := b.client.Health().Service("api", "", true, nil); err != nil || len(p) != 0 {
		t.Fatalf("passing before the TTL passed: %v %+v", err, p)
	}
	if err := a.client.Agent().PassTTL("service:api", ""); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 15*time.Second, func() error {
		p, _, err := b.client.Health().Service("api", "", true, nil)
		if err != nil || len(p) != 1 || p[0].Checks.AggregatedStatus() != consul.HealthPassing {
			return fmt.Errorf("%v %+v", err, p)
		}
		return nil
	}, "b sees api passing")

	// A blocking query on b returns when a third host joins and registers.
	_, meta, err := b.client.Health().Service("db", "", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	type res struct {
		e   []*consul.ServiceEntry
		err error
	}
	got := make(chan res, 8)
	go func() {
		idx := meta.LastIndex
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) { // the join itself also moves the index: wait again
			e, m, err := b.client.Health().Service("db", "", true, &consul.QueryOptions{WaitIndex: idx, WaitTime: 20 * time.Second})
			if err != nil || len(e) > 0 {
				got <- res{e, err}
				return
			}
			idx = m.LastIndex
		}
		got <- res{nil, fmt.Errorf("no db within 30s")}
	}()
	c := startSerfHost(t, 2, key, aAddr)
	if err := c.client.Agent().ServiceRegister(&consul.AgentServiceRegistration{Name: "db", Port: 5432}); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-got:
		if r.err != nil || len(r.e) != 1 || r.e[0].Node.Node != "host-c" || r.e[0].Node.Address != "10.42.3.1" {
			t.Fatalf("blocking query: %v %+v", r.err, r.e)
		}
	case <-time.After(40 * time.Second):
		t.Fatal("the blocking query did not return")
	}

	// Deregister on a: gone from b.
	if err := a.client.Agent().ServiceDeregister("api"); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 15*time.Second, func() error {
		e, _, err := b.client.Catalog().Service("api", "", nil)
		if err != nil || len(e) != 0 {
			return fmt.Errorf("%v %+v", err, e)
		}
		return nil
	}, "api leaves b's catalog")
	if ms, err := b.client.Agent().Members(false); err != nil || len(ms) != 3 {
		t.Fatalf("members: %v %+v", err, ms)
	}
}
