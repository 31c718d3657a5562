package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/weftnet/weft/internal/testkit"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// tagSink is a fake Publish: it records every value and fails on demand.
type tagSink struct {
	mu   sync.Mutex
	tags []string
	fail error
}

func (s *tagSink) publish(v string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	s.tags = append(s.tags, v)
	return nil
}

func (s *tagSink) last() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.tags) == 0 {
		return "<none>"
	}
	return s.tags[len(s.tags)-1]
}

func (s *tagSink) setFail(err error) {
	s.mu.Lock()
	s.fail = err
	s.mu.Unlock()
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func newTestCatalog(t *testing.T, cfg CatalogConfig) (*Catalog, *tagSink) {
	t.Helper()
	sink := &tagSink{}
	if cfg.Publish == nil {
		cfg.Publish = sink.publish
	}
	if cfg.Node == "" {
		cfg.Node = "self"
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	c, err := NewCatalog(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, sink
}

func TestCatalog_RegisterPersistRestore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "services.json")
	c, sink := newTestCatalog(t, CatalogConfig{StatePath: path, Addr: netip.MustParseAddr("10.42.1.1")})
	if sink.last() != "" {
		t.Fatalf("initial tag %q", sink.last())
	}
	if err := c.Register(Service{Name: "Web", Port: 80, Tags: []string{"http"}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Register(Service{Name: "db", Port: 5432, Weight: 5}); err != nil {
		t.Fatal(err)
	}
	if got, want := sink.last(), "1;db:5432:::5;web:80::http"; got != want {
		t.Fatalf("tag %q, want %q", got, want)
	}
	n := len(sink.tags)
	if err := c.Register(Service{Name: "web", Port: 80, Tags: []string{"http"}}); err != nil || len(sink.tags) != n {
		t.Fatalf("identical re-registration: %v, %d publishes", err, len(sink.tags)-n)
	}
	ins := c.Instances("WEB", true)
	if len(ins) != 1 || ins[0].Node != "self" || ins[0].Addr != netip.MustParseAddr("10.42.1.1") || ins[0].Service.Port != 80 {
		t.Fatalf("instances %+v", ins)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var st stateFile
	if err := json.Unmarshal(b, &st); err != nil || len(st.Services) != 2 {
		t.Fatalf("state file %s: %v", b, err)
	}
	c.Close()

	c2, sink2 := newTestCatalog(t, CatalogConfig{StatePath: path})
	if got := sink2.last(); got != "1;db:5432:::5;web:80::http" {
		t.Fatalf("restored tag %q", got)
	}
	if l := c2.Local(); len(l) != 2 || l[0].Service.Name != "db" || l[1].Service.Name != "web" {
		t.Fatalf("restored %+v", l)
	}
	if err := c2.Deregister("db"); err != nil {
		t.Fatal(err)
	}
	if err := c2.Deregister("db"); !errors.Is(err, ErrUnknownService) {
		t.Fatalf("second deregister: %v", err)
	}
	if got := sink2.last(); got != "1;web:80::http" {
		t.Fatalf("tag after deregister %q", got)
	}
	saved, err := loadServices(path)
	if err != nil || len(saved) != 1 || saved[0].Name != "web" {
		t.Fatalf("saved %+v %v", saved, err)
	}
}

func TestCatalog_RegisterFull(t *testing.T) {
	path := filepath.Join(t.TempDir(), "services.json")
	c, sink := newTestCatalog(t, CatalogConfig{StatePath: path, MaxBytes: 60})
	svcs := realisticServices(3)
	for _, s := range svcs[:2] {
		if err := c.Register(s); err != nil {
			t.Fatal(err)
		}
	}
	before, _ := os.ReadFile(path)
	tag := sink.last()
	err := c.Register(svcs[2])
	if !errors.Is(err, ErrCatalogFull) {
		t.Fatalf("Register = %v, want ErrCatalogFull", err)
	}
	if !strings.Contains(err.Error(), "over the 60-byte limit") {
		t.Fatalf("message does not say by how much: %v", err)
	}
	t.Log(err)
	after, _ := os.ReadFile(path)
	if len(c.Local()) != 2 || sink.last() != tag || string(before) != string(after) {
		t.Fatalf("a rejected registration changed something: %d local, tag %q", len(c.Local()), sink.last())
	}
	// Replacing a registered service with a same-size one still fits.
	s := svcs[1]
	s.Port = 9999
	if err := c.Register(s); err != nil {
		t.Fatalf("replace: %v", err)
	}
}

func TestCatalog_RegisterPublishFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "services.json")
	c, sink := newTestCatalog(t, CatalogConfig{StatePath: path})
	if err := c.Register(Service{Name: "a", Port: 1}); err != nil {
		t.Fatal(err)
	}
	idx := c.Index()
	errTag := errors.New("serf: tag budget exceeded")
	sink.setFail(errTag)
	err := c.Register(Service{Name: "b", Port: 2})
	if !errors.Is(err, errTag) {
		t.Fatalf("Register = %v, want the publish error", err)
	}
	if l := c.Local(); len(l) != 1 || c.Index() != idx {
		t.Fatalf("rejected registration kept: %+v", l)
	}
	if saved, _ := loadServices(path); len(saved) != 1 {
		t.Fatalf("rejected registration persisted: %+v", saved)
	}
	if err := c.Deregister("a"); !errors.Is(err, errTag) || len(c.Local()) != 1 {
		t.Fatalf("Deregister with failing publish = %v, local %d", err, len(c.Local()))
	}
}

func TestCatalog_RegisterPersistFails(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	c, sink := newTestCatalog(t, CatalogConfig{StatePath: filepath.Join(dir, "services.json")})
	os.WriteFile(dir, nil, 0o600) // the state directory cannot be created
	err := c.Register(Service{Name: "a", Port: 1})
	if err == nil {
		t.Fatal("Register succeeded without a state file")
	}
	t.Log(err)
	if len(c.Local()) != 0 || sink.last() != "" {
		t.Fatalf("local %v, tag %q: the old tag must be published again", c.Local(), sink.last())
	}
}

func TestCatalog_Invalid(t *testing.T) {
	c, _ := newTestCatalog(t, CatalogConfig{})
	if err := c.Register(Service{Name: "no_underscores", Port: 1}); !errors.Is(err, ErrInvalidService) {
		t.Fatalf("Register = %v", err)
	}
	if err := c.Renew("x"); !errors.Is(err, ErrUnknownService) {
		t.Fatalf("Renew unknown = %v", err)
	}
	c.Register(Service{Name: "x", Port: 1})
	if err := c.Renew("x"); !errors.Is(err, ErrNotTTL) {
		t.Fatalf("Renew without ttl = %v", err)
	}
	c.Close()
	if err := c.Register(Service{Name: "y", Port: 1}); err == nil {
		t.Fatal("Register after Close succeeded")
	}
}

func TestNewCatalog_BadState(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"garbage":   "{",
		"version":   `{"version":2,"services":[]}`,
		"invalid":   `{"version":1,"services":[{"name":"a b","port":1}]}`,
		"duplicate": `{"version":1,"services":[{"name":"a","port":1},{"name":"a","port":2}]}`,
	} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(content), 0o600)
		if _, err := NewCatalog(CatalogConfig{StatePath: p}); err == nil {
			t.Errorf("%s: NewCatalog accepted %s", name, content)
		}
	}
	p := filepath.Join(dir, "full")
	saveServices(p, realisticServices(30))
	if _, err := NewCatalog(CatalogConfig{StatePath: p, MaxBytes: 400}); !errors.Is(err, ErrCatalogFull) {
		t.Errorf("over-limit state (bytes): %v", err)
	}
	if _, err := NewCatalog(CatalogConfig{StatePath: p, MaxServices: 29}); !errors.Is(err, ErrCatalogFull) {
		t.Errorf("over-limit state (services): %v", err)
	}
	if c, err := NewCatalog(CatalogConfig{StatePath: p}); err != nil {
		t.Errorf("30 services within the default limits: %v", err)
	} else {
		c.Close()
	}
}

func TestCatalog_UpdateNode(t *testing.T) {
	c, _ := newTestCatalog(t, CatalogConfig{})
	c.Register(Service{Name: "web", Port: 80})
	a, b := netip.MustParseAddr("10.42.2.1"), netip.MustParseAddr("fd00::3")
	idx := c.Index()
	if err := c.UpdateNode("self", netip.MustParseAddr("10.42.1.1"), "ignored"); err != nil {
		t.Fatal(err)
	}
	if err := c.UpdateNode("host-b", a, "1;db:5432;web:8080:c"); err != nil {
		t.Fatal(err)
	}
	if err := c.UpdateNode("host-c", b, "1;web:80::canary:3"); err != nil {
		t.Fatal(err)
	}
	if c.Index() != idx+3 {
		t.Fatalf("index %d, want %d", c.Index(), idx+3)
	}
	if err := c.UpdateNode("host-c", b, "1;web:80::canary:3"); err != nil || c.Index() != idx+3 {
		t.Fatalf("unchanged update bumped the index: %v", err)
	}
	all := c.Instances("web", false)
	if len(all) != 3 || all[0].Node != "host-b" || all[1].Node != "host-c" || all[2].Node != "self" {
		t.Fatalf("instances %+v", all)
	}
	passing := c.Instances("web", true)
	if len(passing) != 2 || passing[0].Node != "host-c" || passing[0].Service.Weight != 3 || passing[0].Service.Tags[0] != "canary" {
		t.Fatalf("passing %+v", passing)
	}
	if got := c.Nodes(); strings.Join(got, ",") != "host-b,host-c,self" {
		t.Fatalf("nodes %v", got)
	}
	if addr, ok := c.NodeAddr("HOST-C"); !ok || addr != b {
		t.Fatalf("NodeAddr %v %v", addr, ok)
	}
	if addr, ok := c.NodeAddr("self"); !ok || addr != netip.MustParseAddr("10.42.1.1") {
		t.Fatalf("NodeAddr self %v %v", addr, ok)
	}
	if len(c.All()) != 4 {
		t.Fatalf("all %+v", c.All())
	}

	if err := c.UpdateNode("host-c", b, "9;junk"); !errors.Is(err, ErrBadCatalog) {
		t.Fatalf("bad tag: %v", err)
	}
	if len(c.Instances("web", false)) != 2 {
		t.Fatal("a bad tag kept the node's old services")
	}
	if _, ok := c.NodeAddr("host-c"); !ok {
		t.Fatal("a bad tag dropped the node")
	}
	c.RemoveNode("host-b")
	c.RemoveNode("nobody")
	if _, ok := c.NodeAddr("host-b"); ok || len(c.Instances("db", false)) != 0 {
		t.Fatal("RemoveNode kept the node")
	}
}

// fakeProber scripts the checks of a catalog. A probe first announces itself on asked
// (so the previous result has been applied) and then returns the next value sent on
// results, however long that takes: the probe timeout is ignored; a probe ends when its
// runner stops or the test ends.
type fakeProber struct {
	asked   chan struct{}
	results chan Health
}

func fakeProbes(t *testing.T, c *Catalog) *fakeProber {
	f := &fakeProber{asked: make(chan struct{}), results: make(chan Health)}
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	c.proberFor = func(*CheckDef) prober {
		return func(ctx context.Context) (Health, string) {
			// The probe's deadline is ignored; a stopped runner (Canceled) ends it.
			done := ctx.Done()
			for {
				select {
				case f.asked <- struct{}{}:
				case <-stop:
					return HealthCritical, "stopped"
				case <-done:
					if errors.Is(ctx.Err(), context.Canceled) {
						return HealthCritical, "stopped"
					}
					done = nil
					continue
				}
				break
			}
			done = ctx.Done()
			for {
				select {
				case h := <-f.results:
					return h, "scripted " + h.String()
				case <-stop:
					return HealthCritical, "stopped"
				case <-done:
					if errors.Is(ctx.Err(), context.Canceled) {
						return HealthCritical, "stopped"
					}
					done = nil
				}
			}
		}
	}
	return f
}

func TestCatalog_CheckTransitionsRepublish(t *testing.T) {
	c, sink := newTestCatalog(t, CatalogConfig{})
	probes := fakeProbes(t, c)
	err := c.Register(Service{Name: "web", Port: 80, Check: &CheckDef{Kind: CheckTCP, Target: "x:1",
		Interval: MinCheckInterval, Timeout: time.Hour, FailuresBeforeCritical: 2, PassesBeforePassing: 1}})
	if err == nil {
		t.Fatal("timeout above interval accepted")
	}
	err = c.Register(Service{Name: "web", Port: 80, Check: &CheckDef{Kind: CheckTCP, Target: "x:1",
		Interval: MinCheckInterval, Timeout: MinCheckInterval, FailuresBeforeCritical: 2, PassesBeforePassing: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if got := sink.last(); got != "1;web:80:c" {
		t.Fatalf("a new check must start critical: %q", got)
	}
	if len(c.Instances("web", true)) != 0 {
		t.Fatal("critical instance answered")
	}
	steps := []struct {
		result Health
		want   Health
		tag    string
	}{
		{HealthPassing, HealthPassing, "1;web:80"},
		{HealthCritical, HealthPassing, "1;web:80"}, // one failure of two
		{HealthPassing, HealthPassing, "1;web:80"},
		{HealthCritical, HealthPassing, "1;web:80"},
		{HealthWarning, HealthWarning, "1;web:80:w"},
		{HealthCritical, HealthCritical, "1;web:80:c"},
		{HealthPassing, HealthPassing, "1;web:80"},
	}
	<-probes.asked
	for i, s := range steps {
		probes.results <- s.result
		<-probes.asked // the result is applied; the next probe waits
		if h := c.Local()[0].Health; h != s.want {
			t.Fatalf("step %d: result %v gave %v, want %v", i, s.result, h, s.want)
		}
		testkit.Eventually(t, testkit.Timeout, func() bool { return sink.last() == s.tag }, "tag %s", s.tag)
		if got := len(c.Instances("web", true)); got != map[bool]int{true: 1, false: 0}[s.want == HealthPassing] {
			t.Fatalf("step %d: %d passing instances", i, got)
		}
	}
	if !strings.HasPrefix(c.Local()[0].Output, "scripted") {
		t.Fatalf("output %q", c.Local()[0].Output)
	}
	// A new port with the same check keeps the state; a new check starts critical.
	svc := c.Local()[0].Service
	svc.Port = 81
	if err := c.Register(svc); err != nil || c.Local()[0].Health != HealthPassing {
		t.Fatalf("re-register same check: %v %v", err, c.Local()[0].Health)
	}
	svc.Check.Target = "y:1"
	if err := c.Register(svc); err != nil || c.Local()[0].Health != HealthCritical {
		t.Fatalf("re-register new check: %v %v", err, c.Local()[0].Health)
	}
}

func TestCatalog_TTL(t *testing.T) {
	c, sink := newTestCatalog(t, CatalogConfig{})
	if err := c.Register(Service{Name: "job", Port: 9, Check: &CheckDef{Kind: CheckTTL, TTL: 200 * time.Millisecond}}); err != nil {
		t.Fatal(err)
	}
	if sink.last() != "1;job:9:c" {
		t.Fatalf("tag %q", sink.last())
	}
	idx := c.Index()
	if err := c.Renew("JOB"); err != nil {
		t.Fatal(err)
	}
	if h := c.Local()[0].Health; h != HealthPassing || c.Index() != idx+1 {
		t.Fatalf("after Renew: %v", h)
	}
	testkit.Eventually(t, testkit.Timeout, func() bool { return sink.last() == "1;job:9" }, "passing tag")
	testkit.Eventually(t, testkit.Timeout, func() bool { return c.Local()[0].Health == HealthCritical }, "expiry")
	testkit.Eventually(t, testkit.Timeout, func() bool { return sink.last() == "1;job:9:c" }, "critical tag")
	if !strings.Contains(c.Local()[0].Output, "expired") {
		t.Fatalf("output %q", c.Local()[0].Output)
	}
}

func TestCatalog_RealTCPCheck(t *testing.T) {
	c, _ := newTestCatalog(t, CatalogConfig{})
	err := c.Register(Service{Name: "dead", Port: 1, Check: &CheckDef{Kind: CheckTCP, Target: "127.0.0.1:1",
		Interval: MinCheckInterval, FailuresBeforeCritical: 1}})
	if err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, testkit.Timeout, func() bool { return c.Local()[0].Output != "" }, "probe output")
	if c.Local()[0].Health != HealthCritical {
		t.Fatalf("%+v", c.Local()[0])
	}
	// Replacing and deregistering stop the runner (goleak checks at exit).
	c.Register(Service{Name: "dead", Port: 2, Check: &CheckDef{Kind: CheckTTL, TTL: time.Hour}})
	if err := c.Deregister("dead"); err != nil {
		t.Fatal(err)
	}
}

// TestCatalog_TwoNodesThroughTags wires two catalogs the way the agent does: a's Publish
// stands in for Serf's tag update, which b receives as a member update.
func TestCatalog_TwoNodesThroughTags(t *testing.T) {
	addrA := netip.MustParseAddr("10.42.1.1")
	var b *Catalog
	var mu sync.Mutex
	gossip := func(v string) error {
		mu.Lock()
		defer mu.Unlock()
		if b != nil {
			return b.UpdateNode("a", addrA, v)
		}
		return nil
	}
	a, _ := newTestCatalog(t, CatalogConfig{Node: "a", Addr: addrA, Publish: gossip})
	mu.Lock()
	b, _ = newTestCatalog(t, CatalogConfig{Node: "b", Addr: netip.MustParseAddr("10.42.2.1")})
	mu.Unlock()

	idx := b.Index()
	if err := a.Register(Service{Name: "job", Port: 7, Check: &CheckDef{Kind: CheckTTL, TTL: time.Hour}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := b.Wait(ctx, idx); err != nil {
		t.Fatal(err)
	}
	if all := b.Instances("job", false); len(all) != 1 || all[0].Health != HealthCritical || all[0].Addr != addrA {
		t.Fatalf("b sees %+v", all)
	}
	a.Renew("job")
	testkit.Eventually(t, testkit.Timeout, func() bool { return len(b.Instances("job", true)) == 1 }, "b sees job passing")
	a.Deregister("job")
	if len(b.Instances("job", false)) != 0 {
		t.Fatal("b still sees the deregistered service")
	}
}

// Example_wiring shows how an agent connects the catalog to gossip and DNS.
func Example_wiring() {
	// Publish would be cluster.SetTag(CatalogTagKey, v); member events call
	// UpdateNode(member, overlayAddr, member.Tags[CatalogTagKey]) and RemoveNode(member).
	cat, err := NewCatalog(CatalogConfig{
		Node:    "host-a",
		Addr:    netip.MustParseAddr("10.42.1.1"),
		Publish: func(v string) error { fmt.Printf("tag %s=%q\n", CatalogTagKey, v); return nil },
	})
	if err != nil {
		panic(err)
	}
	defer cat.Close()
	cat.Register(Service{Name: "web", Port: 8080, Tags: []string{"http"}})
	cat.UpdateNode("host-b", netip.MustParseAddr("10.42.2.1"), "1;web:8080::http:3")
	for _, in := range cat.Instances("web", true) {
		fmt.Println(in.Node, in.Addr, in.Service.Port, in.Service.Weight, in.Health)
	}
	// Output:
	// tag s=""
	// tag s="1;web:8080::http"
	// host-a 10.42.1.1 8080 1 passing
	// host-b 10.42.2.1 8080 3 passing
}

// A member announcing its catalog by digest keeps the services it had until ApplyNode
// installs the announced one; an ApplyNode for a tag the member no longer announces is
// stale and ignored; a service of the applied catalog naming an address outside the
// member's subnet is dropped like one from a tag.
func TestCatalog_AnnounceApply(t *testing.T) {
	c, _ := newTestCatalog(t, CatalogConfig{})
	addr := netip.MustParseAddr("10.42.7.1")
	if err := c.UpdateNode("h1", addr, "1;old:1"); err != nil {
		t.Fatal(err)
	}
	const tagA, tagB = OutOfBandPrefix + "A;10;2", OutOfBandPrefix + "B;10;2"
	if !c.Announce("h1", addr, tagA) {
		t.Fatal("Announce of a new digest tag: nothing needed")
	}
	if in := c.Instances("old", false); len(in) != 1 {
		t.Fatalf("services before the announced catalog arrived: %+v", in)
	}
	c.Announce("h1", addr, tagB)
	svcA := []ServiceHealth{{Service: Service{Name: "a", Port: 1, Weight: 1}}}
	if ok, _ := c.ApplyNode("h1", tagA, svcA); ok || len(c.Instances("a", false)) != 0 {
		t.Fatal("stale catalog applied")
	}
	svcB := []ServiceHealth{
		{Service: Service{Name: "b", Port: 2, Weight: 1}},
		{Service: Service{Name: "evil", Port: 3, Weight: 1, Address: netip.MustParseAddr("10.42.8.9")}},
	}
	ok, err := c.ApplyNode("h1", tagB, svcB)
	if !ok || !errors.Is(err, ErrForeignAddress) {
		t.Fatalf("ApplyNode = %v, %v", ok, err)
	}
	if len(c.Instances("b", false)) != 1 || len(c.Instances("old", false)) != 0 || len(c.Instances("evil", false)) != 0 {
		t.Fatalf("after apply: %+v", c.All())
	}
	if c.Announce("h1", addr, tagB) {
		t.Fatal("Announce of the applied tag: still needed")
	}
	if ok, _ := c.ApplyNode("h1", tagB, svcA); ok {
		t.Fatal("the same tag applied twice")
	}
	c.RemoveNode("h1")
	if ok, _ := c.ApplyNode("h1", tagB, svcB); ok || len(c.All()) != 0 {
		t.Fatal("applied to a member that left")
	}
}

func TestCatalog_MaxServices(t *testing.T) {
	c, _ := newTestCatalog(t, CatalogConfig{MaxServices: 3})
	for i := range 3 {
		if err := c.Register(Service{Name: fmt.Sprintf("s%d", i), Port: 1}); err != nil {
			t.Fatal(err)
		}
	}
	err := c.Register(Service{Name: "s3", Port: 1})
	if !errors.Is(err, ErrCatalogFull) || !strings.Contains(err.Error(), "catalog.max_services") {
		t.Fatalf("4th of 3 = %v", err)
	}
	if err := c.Register(Service{Name: "s2", Port: 2}); err != nil {
		t.Fatalf("replacing one at the limit: %v", err)
	}
}
