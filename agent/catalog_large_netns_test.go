package agent_test

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	consul "github.com/hashicorp/consul/api"

	"github.com/weftnet/weft/discovery/catalog"
	"github.com/weftnet/weft/discovery/catalogdist"
	"github.com/weftnet/weft/discovery/membership"
)

func init() { extraHelpers["consul-catalog"] = consulCatalogHelper }

// consulCatalogHelper lists the catalog through the official Consul client, from inside a
// namespace: args are the agent's HTTP address and a node name; it prints, as JSON, every
// service name with the number of that node's passing instances
// (Health().Service(name, "", passingOnly)).
func consulCatalogHelper(args []string) error {
	c, err := consul.NewClient(&consul.Config{Address: args[0]})
	if err != nil {
		return err
	}
	names, _, err := c.Catalog().Services(nil)
	if err != nil {
		return err
	}
	out := map[string]int{}
	for name := range names {
		entries, _, err := c.Health().Service(name, "", true, nil)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if e.Node.Node == args[1] {
				out[name]++
			}
		}
	}
	return json.NewEncoder(os.Stdout).Encode(out)
}

// consulCatalog runs consulCatalogHelper on n against its Consul API for node.
func (n *node) consulCatalog(t *testing.T, node string) (map[string]int, error) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := n.host.Command(t.Context(), self, "-test.run=^$", "consul-catalog", "127.0.0.1:8500", node)
	cmd.Env = append(os.Environ(), helperEnv+"=consul-catalog")
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("consul client on %s: %w", n.name, err)
	}
	var m map[string]int
	return m, json.Unmarshal(out, &m)
}

// catalogMetric reads one series of n's metrics (0 when absent): a name with its labels as
// printed, e.g. `weft_catalog_dropped_total{reason="bad_chunk"}`.
func catalogMetric(t *testing.T, n *node, series string) int {
	t.Helper()
	body, err := n.httpGet("http://127.0.0.1:9101/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(body)
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return int(v)
}

func catalogDropped(t *testing.T, n *node, reason string) int {
	return catalogMetric(t, n, `weft_catalog_dropped_total{reason="`+reason+`"}`)
}

// TestNetns_CatalogLarge: a host publishes 100 services, far more than its 512-byte tag
// holds; a member that was there and one that joins later resolve every one by DNS and
// list them through the official Consul client; a change reaches both. A hostile member
// with the gossip key announces 100,000 services, lies about its catalog's size, and floods
// catalog events: nothing of it is kept, each refusal is counted, and the honest catalog
// stays answered.
func TestNetns_CatalogLarge(t *testing.T) {
	nodes := gossipLab(t, "a", "b", "c", "evil")
	a, b, c, evil := nodes[0], nodes[1], nodes[2], nodes[3]
	key := gossipKeyB64(t)
	const n = 100
	var svc strings.Builder
	svc.WriteString("services:\n")
	var list []catalog.ServiceHealth
	for i := range n {
		fmt.Fprintf(&svc, "  - {name: app-%03d, port: %d, tags: [v1, team-%d]}\n", i, 9000+i, i%7)
		list = append(list, catalog.ServiceHealth{Service: catalog.Service{Name: fmt.Sprintf("app-%03d", i),
			Port: uint16(9000 + i), Tags: []string{"v1", fmt.Sprintf("team-%d", i%7)}, Weight: 1}})
	}
	// What b announces: its catalog's digest (the agent encodes it the same way).
	v1, err := catalog.EncodeCatalog(list)
	if err != nil {
		t.Fatal(err)
	}
	bEnc, err := catalogdist.Encode(v1)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("b's catalog: %d bytes encoded, tag %q (%d bytes), %d events", len(v1), bEnc.Tag(), len(bEnc.Tag()), len(bEnc.Events))
	metrics := "metrics_listen: 127.0.0.1:9101\n"
	a.start(consulConfig(a, key) + metrics)
	start := time.Now()
	b.start(consulConfig(b, key, a.underlay) + metrics + svc.String())
	bAddr := b.status().Address
	resolvesAll := func(x *node, except ...string) func() error {
		return func() error {
			for i := range n {
				name := fmt.Sprintf("app-%03d.service.weft", i)
				if slices.Contains(except, name) {
					continue
				}
				got, err := x.dig(name, "A")
				if err != nil {
					return err
				}
				if len(got) != 1 || got[0] != bAddr {
					return fmt.Errorf("dig %s from %s: %q, want %s", name, x.name, got, bAddr)
				}
			}
			return nil
		}
	}
	// One name first (a catalog is installed whole), then every one of them.
	last := fmt.Sprintf("app-%03d.service.weft", n-1)
	eventually(t, 30*time.Second, "a resolves b's last service", expectAnswers(a, last, "A", bAddr))
	t.Logf("b started with %d services → a resolves them: %.1fs", n, time.Since(start).Seconds())
	t0 := time.Now()
	if err := resolvesAll(a)(); err != nil {
		t.Fatal(err)
	}
	t.Logf("a resolves each of the %d (%d digs: %.1fs)", n, n, time.Since(t0).Seconds())
	if got := catalogMetric(t, a, "weft_catalog_received_total"); got < 1 {
		t.Fatalf("a received %d catalogs out of band", got)
	}

	// c joins later: it missed the broadcast and asks for the catalog.
	start = time.Now()
	c.start(consulConfig(c, key, a.underlay) + metrics)
	ready := time.Now()
	eventually(t, 30*time.Second, "the late joiner c resolves b's last service", expectAnswers(c, last, "A", bAddr))
	t.Logf("c joined → resolves all %d: %.1fs after its start, %.1fs after it was ready (%d requests sent, b broadcast its catalog %d times)", n,
		time.Since(start).Seconds(), time.Since(ready).Seconds(),
		catalogMetric(t, c, "weft_catalog_requests_total"), catalogMetric(t, b, "weft_catalog_sent_total"))
	if err := resolvesAll(c)(); err != nil {
		t.Fatal(err)
	}
	if catalogMetric(t, c, "weft_catalog_requests_total") < 1 {
		t.Fatal("the late joiner c sent no request: how did it learn b's catalog?")
	}
	eventually(t, 20*time.Second, "the Consul client on c lists b's 100 passing services", func() error {
		m, err := c.consulCatalog(t, "b")
		if err != nil {
			return err
		}
		for i := range n {
			if name := fmt.Sprintf("app-%03d", i); m[name] != 1 {
				return fmt.Errorf("Consul client: %s has %d passing instances on b", name, m[name])
			}
		}
		return nil
	})
	if err := expectAnswers(c, "_app-042._tcp.service.weft", "SRV", "1 1 9042 b.node.weft.")(); err != nil {
		t.Fatal(err)
	}

	// A change on b (one service gone, another added) reaches both.
	start = time.Now()
	if out, err := b.cli("deregister", "app-007"); err != nil {
		t.Fatalf("deregister: %v %s", err, out)
	}
	if out, err := b.cli("register", "late-one", "--port", "7777"); err != nil {
		t.Fatalf("register: %v %s", err, out)
	}
	for _, x := range []*node{a, c} {
		eventually(t, 20*time.Second, x.name+" sees the change", func() error {
			if err := expectAnswers(x, "late-one.service.weft", "A", bAddr)(); err != nil {
				return err
			}
			return expectAnswers(x, "app-007.service.weft", "A")()
		})
	}
	t.Logf("deregister + register on b → seen on a and c: %.1fs", time.Since(start).Seconds())

	// Health travels with the catalog: a ttl service starts critical (not answered), passes
	// once renewed, and a watch on c sees it come and go.
	watch := startWatch(t, c)
	if out, err := b.cli("register", "batch", "--port", "7001", "--check", "ttl", "--ttl", "60s"); err != nil {
		t.Fatalf("register batch: %v %s", err, out)
	}
	eventually(t, 20*time.Second, "c's watch sees batch registered on b", func() error { return watch.seen("+ batch on b") })
	if got, err := c.dig("batch.service.weft", "A"); err != nil || len(got) != 0 {
		t.Fatalf("a critical service is answered: %q %v", got, err)
	}
	start = time.Now()
	if out, err := b.cli("renew", "batch"); err != nil {
		t.Fatalf("renew: %v %s", err, out)
	}
	eventually(t, 20*time.Second, "c answers batch once it passes", expectAnswers(c, "batch.service.weft", "A", bAddr))
	t.Logf("renew on b → passing on c: %.1fs", time.Since(start).Seconds())
	if out, err := b.cli("deregister", "batch"); err != nil {
		t.Fatalf("deregister batch: %v %s", err, out)
	}
	eventually(t, 20*time.Second, "c's watch sees batch deregistered", func() error { return watch.seen("- batch on b") })

	// The hostile member: the gossip key, a free /24 (trusted in shared-key mode).
	x := startHostile(t, evil.host, key, evil.underlay, a.underlay+":7946")
	many := catalogdist.Announce{Digest: catalogdist.Digest{1, 2, 3}, Bytes: 60_000, Services: 100_000}
	x.do(hostileCmd{Name: "evil-many", Port: 7950, Tags: map[string]string{
		membership.TagNodeInfo: forgedInfo(t, freshKey(t), "10.42.251.0/24", false),
		catalog.CatalogTagKey:  many.Tag(),
	}})
	// 100,000 real services behind a tag and a manifest that claim 2,000 bytes and 10.
	var huge strings.Builder
	huge.WriteString("1")
	for i := range 100_000 {
		fmt.Fprintf(&huge, ";evil-%06d:%d", i, 1+i%60000)
	}
	lie := catalogdist.EncodeAs(huge.String(), 2000, 10)
	x.do(hostileCmd{Name: "evil-lie", Port: 7951, Tags: map[string]string{
		membership.TagNodeInfo: forgedInfo(t, freshKey(t), "10.42.252.0/24", false),
		catalog.CatalogTagKey:  lie.Tag(),
	}})
	eventually(t, 20*time.Second, "a and c see both hostile members alive", func() error {
		for _, y := range []*node{a, c} {
			for _, name := range []string{"evil-many", "evil-lie"} {
				if m, ok := y.members()[name]; !ok || m.Status != "alive" {
					return fmt.Errorf("%s sees %s as %+v", y.name, name, m)
				}
			}
		}
		return nil
	})
	x.do(hostileCmd{Name: "evil-lie", Event: catalogdist.EventName, Payloads: lie.Events, Gap: 20 * time.Millisecond})
	// A flood of chunks under digests nobody announces (b's first catalog's among them: b
	// has changed it since), each kept at most earlyTTL in a bounded pool.
	var flood [][]byte
	for i := range 200 {
		p := append([]byte{'c'}, bEnc.Digest[:]...)
		if i%2 == 1 {
			p[1], p[2] = byte(i), 0xee
		}
		flood = append(flood, append(p, byte(i%3), 0xde, 0xad, byte(i)))
	}
	x.do(hostileCmd{Name: "evil-lie", Event: catalogdist.EventName, Payloads: flood, Gap: 2 * time.Millisecond})

	eventually(t, 30*time.Second, "a counts every refusal", func() error {
		for _, reason := range []string{"too_many_services", "bad_length", "unannounced"} {
			if catalogDropped(t, a, reason) == 0 {
				return fmt.Errorf("a: weft_catalog_dropped_total{reason=%q} is 0", reason)
			}
		}
		return nil
	})
	if got := catalogDropped(t, a, "too_many_services"); got != 1 {
		t.Fatalf("a counted the 100,000-service announcement %d times, want once", got)
	}
	for _, y := range []*node{a, c} {
		if got, err := y.dig("evil-000001.service.weft", "A"); err != nil || len(got) != 0 {
			t.Fatalf("%s answers a hostile service: %q %v", y.name, got, err)
		}
		if err := resolvesAll(y, "app-007.service.weft")(); err != nil {
			t.Fatalf("after the hostile member: %v", err)
		}
	}
	m, err := a.consulCatalog(t, "evil-lie")
	if err != nil {
		t.Fatal(err)
	}
	for name, k := range m {
		if k > 0 {
			t.Fatalf("the Consul API on a lists %s on evil-lie", name)
		}
	}
	body, _ := a.httpGet("http://127.0.0.1:9101/metrics")
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, "weft_catalog_") {
			t.Log(l)
		}
	}
}
