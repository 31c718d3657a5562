package membership

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

var clTestGossipKey = bytes.Repeat([]byte{0x42}, GossipKeySize)

// clTHandler sends Info and above to t.Log; debug lines (Serf's own) are dropped
// to keep -v output readable.
type clTHandler struct {
	t     testing.TB
	attrs []slog.Attr
	mu    *sync.Mutex
	done  *bool
}

func clNewTLogger(t testing.TB) *slog.Logger {
	h := &clTHandler{t: t, mu: new(sync.Mutex), done: new(bool)}
	t.Cleanup(func() { h.mu.Lock(); *h.done = true; h.mu.Unlock() })
	return slog.New(h)
}

func (h *clTHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }
func (h *clTHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", r.Level, r.Message)
	for _, a := range h.attrs {
		fmt.Fprintf(&b, " %s", a)
	}
	r.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&b, " %s", a); return true })
	h.mu.Lock()
	defer h.mu.Unlock()
	if !*h.done { // t.Log after the test ended panics
		h.t.Log(b.String())
	}
	return nil
}
func (h *clTHandler) WithAttrs(as []slog.Attr) slog.Handler {
	n := *h
	n.attrs = append(append([]slog.Attr(nil), h.attrs...), as...)
	return &n
}
func (h *clTHandler) WithGroup(string) slog.Handler { return h }

func clRandomKey(t testing.TB) [32]byte {
	var k [32]byte
	if _, err := rand.Read(k[:]); err != nil {
		t.Fatal(err)
	}
	return k
}

// clTestConfig is a local, fast, encrypted config for node name.
func clTestConfig(t testing.TB, name string) Config {
	cfg := DefaultLocalConfig()
	cfg.NodeName = name
	cfg.GossipKey = clTestGossipKey
	cfg.Logger = clNewTLogger(t)
	cfg.Node = NodeInfo{PublicKey: clRandomKey(t), DataPort: 51820, VNI: 1, Proto: 1}
	return cfg
}

// clSettled records the tests that already wait for Serf's goroutines.
var clSettled sync.Map

// clStartCluster creates a Cluster from cfg and shuts it down at cleanup. The
// first call of a test also registers clSettle, which runs after every
// Shutdown (cleanups run last-in first-out).
func clStartCluster(t testing.TB, cfg Config) *Cluster {
	t.Helper()
	if _, done := clSettled.LoadOrStore(t, true); !done {
		t.Cleanup(func() { clSettle(t); clSettled.Delete(t) })
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%s): %v", cfg.NodeName, err)
	}
	t.Cleanup(func() { c.Shutdown() })
	return c
}

// clSettle waits until no goroutine of Serf or memberlist is left. Shutdown
// stops them all, but memberlist's probeNode may outlive it by one probe
// interval (scaled up to 9x by Lifeguard under load) while its ack timer runs
// out; waiting here keeps the package's goleak checks (VerifyNone below and
// the TestMain of catalog_test.go) exact without ignoring anything.
func clSettle(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	buf := make([]byte, 8<<20)
	for {
		n := runtime.Stack(buf, true)
		stacks := buf[:n]
		if !bytes.Contains(stacks, []byte("github.com/hashicorp/memberlist.")) && !bytes.Contains(stacks, []byte("github.com/hashicorp/serf/")) {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("Serf/memberlist goroutines still run 10s after Shutdown:\n%s", stacks)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func clAddrOf(c *Cluster) string { return c.LocalMember().Addr.String() }

// clEventually polls cond until it holds or the deadline passes.
func clEventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// clWaitEvent reads c's events until one of type typ about member name arrives.
func clWaitEvent(t testing.TB, c *Cluster, typ EventType, name string, d time.Duration) Event {
	t.Helper()
	timeout := time.After(d)
	for {
		select {
		case ev, ok := <-c.Events():
			if !ok {
				t.Fatalf("events closed while waiting for %s of %s", typ, name)
			}
			if ev.Type == typ && ev.Member.Name == name {
				return ev
			}
		case <-timeout:
			t.Fatalf("no %s event for %s within %v", typ, name, d)
		}
	}
}

// clWaitEvents reads c's events until one of type typ arrived for each name.
func clWaitEvents(t testing.TB, c *Cluster, typ EventType, d time.Duration, names ...string) map[string]Event {
	t.Helper()
	got := map[string]Event{}
	timeout := time.After(d)
	for len(got) < len(names) {
		select {
		case ev, ok := <-c.Events():
			if !ok {
				t.Fatalf("events closed while waiting for %s of %v", typ, names)
			}
			if ev.Type == typ && slices.Contains(names, ev.Member.Name) {
				got[ev.Member.Name] = ev
			}
		case <-timeout:
			t.Fatalf("within %v got %s events only for %v of %v", d, typ, slices.Collect(maps.Keys(got)), names)
		}
	}
	return got
}

func clMemberStatus(c *Cluster, name string) Status {
	for _, m := range c.Members() {
		if m.Name == name {
			return m.Status
		}
	}
	return StatusNone
}

func TestNew_GossipKeyPolicy(t *testing.T) {
	for _, tc := range []struct {
		name     string
		key      []byte
		insecure bool
		want     error
	}{
		{"no-key", nil, false, ErrNoGossipKey},
		{"short-key", make([]byte, 16), false, ErrGossipKeySize},
		{"insecure", nil, true, nil},
		{"key", clTestGossipKey, false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := clTestConfig(t, tc.name)
			cfg.GossipKey, cfg.Insecure = tc.key, tc.insecure
			c, err := New(cfg)
			if !errors.Is(err, tc.want) {
				t.Fatalf("New: %v, want %v", err, tc.want)
			}
			if err == nil {
				c.Shutdown()
			}
		})
	}
	if msg := ErrNoGossipKey.Error(); !strings.Contains(msg, "weft keygen --gossip") || !strings.Contains(msg, "--insecure-gossip") {
		t.Errorf("ErrNoGossipKey does not say what to do: %q", msg)
	}
}

func TestNew_ConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		mut  func(*Config)
	}{
		{"no-name", func(c *Config) { c.NodeName = "" }},
		{"cidr-v6", func(c *Config) { c.ClusterCIDR = clMustPrefix("fd00::/48") }},
		{"cidr-24", func(c *Config) { c.ClusterCIDR = clMustPrefix("10.42.0.0/24") }},
		{"static-unmasked", func(c *Config) { c.StaticSubnet = clMustPrefix("10.42.3.1/24") }},
		{"vni", func(c *Config) { c.Node.VNI = MaxVNI + 1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := clTestConfig(t, tc.name)
			tc.mut(&cfg)
			if _, err := New(cfg); !errors.Is(err, ErrConfig) {
				t.Fatalf("New: %v, want ErrConfig", err)
			}
		})
	}
}

func TestCluster_SetTag(t *testing.T) {
	a := clStartCluster(t, clTestConfig(t, "a"))
	b := clStartCluster(t, clTestConfig(t, "b"))
	if _, err := b.Join([]string{clAddrOf(a)}); err != nil {
		t.Fatal(err)
	}
	if err := a.SetTag("svc", "web:80"); err != nil {
		t.Fatal(err)
	}
	clEventually(t, 5*time.Second, "b sees a's tag", func() bool {
		for _, m := range b.Members() {
			if m.Name == "a" && m.Tags["svc"] == "web:80" && m.InfoErr == nil && m.Info.PublicKey == a.LocalNode().PublicKey {
				return true
			}
		}
		return false
	})

	// Fill the budget exactly, then go one byte over.
	used := a.TagBytes()
	// "big" with a value of n ≥ 32 bytes costs 1+3 (key) + 3+n (raw16 string).
	n := TagBudget - used - (1 + 3 + 3)
	if err := a.SetTag("big", strings.Repeat("x", n)); err != nil {
		t.Fatalf("SetTag at exactly the budget: %v", err)
	}
	if got := a.TagBytes(); got != TagBudget {
		t.Fatalf("TagBytes %d, want %d", got, TagBudget)
	}
	err := a.SetTag("big", strings.Repeat("x", n+1))
	if !errors.Is(err, ErrTagBudget) {
		t.Fatalf("SetTag over the budget: %v, want ErrTagBudget", err)
	}
	if want := fmt.Sprintf("%d bytes of %d", TagBudget+1, TagBudget); !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not name %q", err, want)
	}
	tags := a.LocalMember().Tags
	if len(tags["big"]) != n || tags["svc"] != "web:80" || tags[TagNodeInfo] == "" {
		t.Errorf("tags changed by a refused SetTag: big %d bytes, svc %q", len(tags["big"]), tags["svc"])
	}
	// Serf's own check agrees at the boundary: the measurement is exact.
	over := a.LocalMember().Tags
	over2 := make(map[string]string, len(over))
	for k, v := range over {
		over2[k] = v
	}
	over2["big"] = strings.Repeat("x", n+1)
	if err := a.serf.SetTags(over2); err == nil {
		t.Error("serf accepted tags that EncodedTagsSize says are over the budget")
	}
	if err := a.SetTag(TagNodeInfo, "x"); !errors.Is(err, ErrReservedTag) {
		t.Errorf("SetTag(TagNodeInfo): %v", err)
	}
	if err := a.SetTag("big", ""); err != nil {
		t.Fatal(err)
	}
	if _, ok := a.LocalMember().Tags["big"]; ok {
		t.Error("empty value did not delete the tag")
	}
}

func TestCluster_SetNodeInfo(t *testing.T) {
	a := clStartCluster(t, clTestConfig(t, "a"))
	b := clStartCluster(t, clTestConfig(t, "b"))
	if _, err := b.Join([]string{clAddrOf(a)}); err != nil {
		t.Fatal(err)
	}
	subnet := a.Subnet()
	n := a.LocalNode()
	n.DataPort = 4789
	n.Subnet = clMustPrefix("10.99.0.0/24") // ignored: the cluster owns it
	if err := a.SetNodeInfo(n); err != nil {
		t.Fatal(err)
	}
	ev := clWaitEvent(t, b, EventUpdate, "a", 5*time.Second)
	if ev.Member.Info.DataPort != 4789 || ev.Member.Info.Subnet != subnet {
		t.Errorf("update: port %d subnet %s, want 4789 %s", ev.Member.Info.DataPort, ev.Member.Info.Subnet, subnet)
	}
}

// clSyncBuffer is a bytes.Buffer safe for a slog handler and a reader.
type clSyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *clSyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *clSyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestCluster_JoinRequiresGossipKey(t *testing.T) {
	a := clStartCluster(t, clTestConfig(t, "a"))
	b := clStartCluster(t, clTestConfig(t, "b"))
	if _, err := b.Join([]string{clAddrOf(a)}); err != nil {
		t.Fatal(err)
	}
	otherKey := bytes.Repeat([]byte{0x17}, GossipKeySize)
	for _, tc := range []struct {
		name     string
		key      []byte
		insecure bool
	}{
		{"no-key", nil, true},
		{"other-key", otherKey, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs clSyncBuffer
			cfg := clTestConfig(t, "intruder-"+tc.name)
			cfg.GossipKey, cfg.Insecure = tc.key, tc.insecure
			cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
			x, err := New(cfg) // not clStartCluster: a and b still run, the parent test settles
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { x.Shutdown() })
			n, err := x.Join([]string{clAddrOf(a)})
			t.Logf("Join: n=%d err=%v", n, err)
			if err == nil || !errors.Is(err, ErrJoin) {
				t.Fatalf("Join without the key: n=%d err=%v, want ErrJoin", n, err)
			}
			if !strings.Contains(err.Error(), clAddrOf(a)) {
				t.Errorf("error does not name the address %s: %v", clAddrOf(a), err)
			}
			if !strings.Contains(err.Error(), "gossip.key") {
				t.Errorf("error does not say to fix gossip.key: %v", err)
			}
			out := logs.String()
			if !strings.Contains(out, "join failed") || !strings.Contains(out, "gossip.key") || !strings.Contains(out, "level=ERROR") {
				t.Errorf("no clear error in the log:\n%s", out)
			}
			// Give gossip a few rounds to leak anything, then check.
			time.Sleep(300 * time.Millisecond)
			for _, c := range []*Cluster{a, b} {
				for _, m := range c.Members() {
					if m.Name == cfg.NodeName {
						t.Errorf("%s lists the intruder %s (%s)", c.cfg.NodeName, m.Name, m.Status)
					}
				}
			}
			if got := len(x.Members()); got != 1 {
				t.Errorf("the intruder sees %d members, want only itself", got)
			}
		})
	}
}

func TestCluster_JoinUnreachable(t *testing.T) {
	a := clStartCluster(t, clTestConfig(t, "a"))
	b := clStartCluster(t, clTestConfig(t, "b"))
	n, err := b.Join([]string{clAddrOf(a), "127.0.0.1:1"})
	var je *JoinError
	if n != 1 || !errors.As(err, &je) || len(je.Addrs) != 1 || je.Addrs[0] != "127.0.0.1:1" {
		t.Fatalf("Join: n=%d err=%v; want 1 joined and 127.0.0.1:1 named", n, err)
	}
	if !strings.Contains(err.Error(), "reachable") {
		t.Errorf("error does not say what to check: %v", err)
	}
}

func TestCluster_Events(t *testing.T) {
	a := clStartCluster(t, clTestConfig(t, "a"))
	b := clStartCluster(t, clTestConfig(t, "b"))
	cfgC := clTestConfig(t, "c")
	c := clStartCluster(t, cfgC)
	for _, x := range []*Cluster{b, c} {
		if _, err := x.Join([]string{clAddrOf(a)}); err != nil {
			t.Fatal(err)
		}
	}
	joins := clWaitEvents(t, a, EventJoin, 10*time.Second, "b", "c")
	if ev := joins["c"]; ev.Member.InfoErr != nil || ev.Member.Info.PublicKey != cfgC.Node.PublicKey {
		t.Errorf("join event of c carries info %+v err %v", ev.Member.Info, ev.Member.InfoErr)
	}

	// Graceful leave.
	if err := b.Leave(); err != nil {
		t.Fatal(err)
	}
	if err := b.Shutdown(); err != nil {
		t.Fatal(err)
	}
	ev := clWaitEvent(t, a, EventLeave, "b", 10*time.Second)
	if ev.Member.Status != StatusLeft {
		t.Errorf("leave event: status %s, want left", ev.Member.Status)
	}

	// Crash: no leave.
	portC := c.LocalMember().Addr.Port()
	if err := c.Shutdown(); err != nil {
		t.Fatal(err)
	}
	clWaitEvent(t, a, EventFailed, "c", 15*time.Second)
	if st := clMemberStatus(a, "c"); st != StatusFailed {
		t.Errorf("c is %s on a, want failed", st)
	}

	// Restart under the same name and port: rejoins.
	cfgC.BindPort = int(portC)
	c2 := clStartCluster(t, cfgC)
	if _, err := c2.Join([]string{clAddrOf(a)}); err != nil {
		t.Fatal(err)
	}
	clWaitEvent(t, a, EventJoin, "c", 10*time.Second)
	clEventually(t, 10*time.Second, "c alive on a", func() bool { return clMemberStatus(a, "c") == StatusAlive })
}

func TestCluster_ShutdownLeaksNothing(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	var cs []*Cluster
	for i := range 3 {
		cfg := clTestConfig(t, fmt.Sprintf("n%d", i))
		cfg.SnapshotPath = t.TempDir() + "/snapshot"
		cfg.StateDir = t.TempDir()
		c, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
		if i > 0 {
			if _, err := c.Join([]string{clAddrOf(cs[0])}); err != nil {
				t.Fatal(err)
			}
		}
	}
	clEventually(t, 5*time.Second, "3 members", func() bool { return len(cs[2].Members()) == 3 })
	if err := cs[1].Leave(); err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if err := c.Shutdown(); err != nil {
			t.Fatal(err)
		}
		if err := c.Shutdown(); err != nil { // idempotent
			t.Fatal(err)
		}
		for range c.Events() { // closed by Shutdown
		}
	}
	clSettle(t) // bounded: see its comment; goleak then ignores nothing
}

// TestDefaultLocalConfig_JoinSurvivesLoad: the fast timers (weft agent --gossip-fast) detect
// failures within seconds through the probes, while a join's TCP push/pull keeps a timeout a
// seed on a loaded host meets (1 s made `weft join` fail at load 12).
func TestDefaultLocalConfig_JoinSurvivesLoad(t *testing.T) {
	c := DefaultLocalConfig()
	if c.ProbeInterval > 200*time.Millisecond || c.ProbeTimeout > 100*time.Millisecond {
		t.Errorf("probes %s/%s: the fast timers are no longer fast", c.ProbeInterval, c.ProbeTimeout)
	}
	if c.TCPTimeout < 5*time.Second {
		t.Errorf("TCPTimeout %s: a join to a loaded seed times out", c.TCPTimeout)
	}
	if sc := c.serfConfig(nil, nil, nil); sc.MemberlistConfig.TCPTimeout != c.TCPTimeout {
		t.Errorf("memberlist gets TCPTimeout %s, want %s", sc.MemberlistConfig.TCPTimeout, c.TCPTimeout)
	}
}
