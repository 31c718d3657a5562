package agent_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// dig asks the node's local DNS server and returns the sorted answer lines (+short).
func (n *node) dig(name, qtype string) ([]string, error) {
	out, err := n.host.Run("dig", "@127.0.0.1", "+short", "+time=2", "+tries=1", name, qtype)
	if err != nil {
		return nil, err
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	sort.Strings(lines)
	return lines, nil
}

func expectAnswers(n *node, name, qtype string, want ...string) func() error {
	sort.Strings(want)
	return func() error {
		got, err := n.dig(name, qtype)
		if err != nil {
			return err
		}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			return fmt.Errorf("dig %s %s from %s: %q, want %q", name, qtype, n.name, got, want)
		}
		return nil
	}
}

// watcher runs `weft watch services` on a node and collects its lines.
type watcher struct {
	mu    sync.Mutex
	lines []string
}

func (w *watcher) seen(sub string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, l := range w.lines {
		if strings.Contains(l, sub) {
			return nil
		}
	}
	return fmt.Errorf("watch printed no line with %q: %q", sub, w.lines)
}

func startWatch(t *testing.T, n *node) *watcher {
	ctx, cancel := context.WithCancel(context.Background())
	cmd := n.host.Command(ctx, weftBin(t), "--socket", n.sock, "watch", "services", "--wait", "5s")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w := &watcher{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			w.mu.Lock()
			w.lines = append(w.lines, sc.Text())
			w.mu.Unlock()
		}
	}()
	t.Cleanup(func() { cancel(); _ = cmd.Wait(); <-done })
	return w
}

func TestNetns_ServiceCatalogDNS(t *testing.T) {
	nodes := gossipLab(t, "a", "b", "c")
	a, b, c := nodes[0], nodes[1], nodes[2]
	key := gossipKeyB64(t)
	a.start(gossipConfig(a, key))
	b.start(gossipConfig(b, key, a.underlay))
	c.start(gossipConfig(c, key, a.underlay))
	aAddr, bAddr := a.status().Address, b.status().Address
	eventually(t, 30*time.Second, "all pairs ping", func() error { return allPairsPing(nodes) })

	watch := startWatch(t, c)

	// web on a and b, healthy while its flag file exists (exec check).
	flags := map[*node]string{}
	start := time.Now()
	for _, n := range []*node{a, b} {
		flag := filepath.Join(n.dir, "web-healthy")
		if err := os.WriteFile(flag, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		flags[n] = flag
		if out, err := n.cli("register", "web", "--port", "8080", "--tag", "v1",
			"--check", "exec", "--target", "test -f "+flag, "--interval", "300ms",
			"--failures-before-critical", "2", "--passes-before-passing", "1"); err != nil {
			t.Fatalf("register: %v %s", err, out)
		}
	}
	eventually(t, 30*time.Second, "c resolves both web instances", expectAnswers(c, "web.service.weft", "A", aAddr, bAddr))
	t.Logf("register on a and b → both A records from c: %.1fs", time.Since(start).Seconds())
	eventually(t, 10*time.Second, "SRV from c", expectAnswers(c, "_web._tcp.service.weft", "SRV", "1 1 8080 a.node.weft.", "1 1 8080 b.node.weft."))
	eventually(t, 10*time.Second, "node record", expectAnswers(c, "b.node.weft", "A", bAddr))
	if got, err := c.dig("nosuch.service.weft", "A"); err != nil || len(got) != 0 {
		t.Fatalf("unknown service: %q %v", got, err)
	}
	out, err := c.host.Run("dig", "@127.0.0.1", "+time=2", "+tries=1", "nosuch.service.weft", "A")
	if err != nil || !strings.Contains(out, "NXDOMAIN") {
		t.Fatalf("unknown name is not NXDOMAIN: %v\n%s", err, out)
	}
	out, err = c.host.Run("dig", "@127.0.0.1", "+time=2", "+tries=1", "example.com", "A")
	if err != nil || !strings.Contains(out, "REFUSED") {
		t.Fatalf("name outside the domain is not REFUSED: %v\n%s", err, out)
	}
	if out, err := c.cli("resolve", "web"); err != nil || !(strings.Contains(out, aAddr) || strings.Contains(out, bAddr)) {
		t.Fatalf("weft resolve web: %v %s", err, out)
	}

	// a's check fails: it leaves DNS everywhere.
	start = time.Now()
	if err := os.Remove(flags[a]); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "failing instance disappears", expectAnswers(c, "web.service.weft", "A", bAddr))
	t.Logf("check fails on a → gone from c's DNS: %.1fs", time.Since(start).Seconds())
	if err := os.WriteFile(flags[a], nil, 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "recovered instance returns", expectAnswers(c, "web.service.weft", "A", aAddr, bAddr))

	// b's agent dies: its services vanish everywhere; restarted, they return (kept on disk).
	start = time.Now()
	b.kill()
	eventually(t, 30*time.Second, "b's instance vanishes", expectAnswers(c, "web.service.weft", "A", aAddr))
	eventually(t, 30*time.Second, "b's instance vanishes on a too", expectAnswers(a, "web.service.weft", "A", aAddr))
	t.Logf("kill -9 of b → its services gone from DNS: %.1fs", time.Since(start).Seconds())
	start = time.Now()
	b.start(gossipConfig(b, key, a.underlay))
	eventually(t, 30*time.Second, "b's instance returns", expectAnswers(c, "web.service.weft", "A", aAddr, bAddr))
	t.Logf("restart of b → its services back in DNS: %.1fs", time.Since(start).Seconds())

	// A watch on c saw registrations and deregistrations made on another host.
	if out, err := a.cli("register", "api", "--port", "9090"); err != nil {
		t.Fatalf("register api: %v %s", err, out)
	}
	eventually(t, 20*time.Second, "watch sees api registered on a", func() error { return watch.seen("+ api on a") })
	if out, err := a.cli("deregister", "api"); err != nil {
		t.Fatalf("deregister api: %v %s", err, out)
	}
	eventually(t, 20*time.Second, "watch sees api deregistered on a", func() error { return watch.seen("- api on a") })
}
