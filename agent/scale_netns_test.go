package agent_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftnet/weft/agent/api"
	"github.com/weftnet/weft/internal/netlab"
)

// TestNetns_ScaleAgents runs N real agents (default LAN gossip timers, shared-key trust) in
// network namespaces on one switch, all started together, and reports as a table: the time
// until every agent sees N alive members holding N distinct prefixes (beside the gossip
// model's time for one broadcast to reach N members), each agent's idle CPU and RSS, the
// first ping from one host to every other (the handshake included), and how long until
// every survivor sees k killed (kill -9) agents as failed.
//
// make test runs it at a small N; `make scale-agents` (WEFT_SCALE_AGENTS=100) at the
// largest this machine holds. It fails when the cluster does not converge, a host does not
// answer or a failure is not seen; the figures are reported, not asserted.
func TestNetns_ScaleAgents(t *testing.T) {
	netlab.Require(t)
	netlab.RequireTools(t, "ping", "sysctl")
	n := 16
	if s := os.Getenv("WEFT_SCALE_AGENTS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 4 || v > 1000 {
			t.Fatalf("WEFT_SCALE_AGENTS=%q: want a number of agents from 4 to 1000", s)
		}
		n = v
	}
	raiseNeighLimits(t, n*n) // every host learns every other's MAC: n² entries in all
	// WEFT_SCALE_PROFILE=DIR: the first agent serves pprof, and the test saves its CPU
	// profile over the idle window and its heap profile into DIR.
	profDir := os.Getenv("WEFT_SCALE_PROFILE")

	lab := netlab.NewT(t)
	hosts := make([]*netlab.Host, n)
	addrs := make([]string, n)
	for i := range hosts {
		h, err := lab.AddHost(fmt.Sprintf("s%03d", i))
		if err != nil {
			t.Fatal(err)
		}
		hosts[i] = h
		addrs[i] = fmt.Sprintf("192.168.%d.%d/16", 100+i/250, i%250+1)
	}
	if _, err := lab.Switch("eth0", hosts, addrs); err != nil {
		t.Fatal(err)
	}
	nodes := make([]*node, n)
	for i, h := range hosts {
		nodes[i] = newNode(t, h, strings.TrimSuffix(addrs[i], "/16"))
	}
	key := gossipKeyB64(t)
	seeds := []string{nodes[0].underlay, nodes[1].underlay, nodes[2].underlay}

	// All together: write every config, then start every agent in one loop.
	cmds := make([]*exec.Cmd, n)
	for i, nd := range nodes {
		cfg := fmt.Sprintf("name: %s\nstate_dir: %s\ncontrol_socket: %s\ntrust: shared-key\ngossip:\n  bind: %s:7946\n  key: %s\n  retry_join: [%s]\n  retry_interval: 1s\ndns:\n  listen: [\"127.0.0.1:53\"]\n",
			nd.name, filepath.Join(nd.dir, "state"), nd.sock, nd.underlay, key, strings.Join(seeds, ", "))
		if i == 0 && profDir != "" {
			cfg += "debug:\n  pprof_listen: 127.0.0.1:6060\n"
		}
		path := filepath.Join(nd.dir, "weft.yaml")
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		cmds[i] = nd.host.Command(context.Background(), weftBin(t), "agent", "-c", path)
	}
	t0 := time.Now()
	for i, nd := range nodes {
		nd.launch(cmds[i])
	}
	launched := time.Since(t0)

	// Convergence: every agent sees n alive members with n distinct prefixes.
	clients := make([]*api.Client, n)
	for i, nd := range nodes {
		clients[i] = api.NewClient(nd.sock)
	}
	var allAliveAt, distinctAt time.Duration
	var timeline []string // every 2 s: the fewest alive members and distinct prefixes an agent sees
	lastMark := time.Duration(0)
	converged := pollUntil(t, 120*time.Second, 500*time.Millisecond, func() (bool, string) {
		views := memberViews(clients)
		alive, distinct, worst := true, true, ""
		minAlive, minDistinct := n, n
		for i, ms := range views {
			nAlive, prefixes := 0, map[string]bool{}
			for _, m := range ms {
				if m.Status == "alive" {
					nAlive++
					if m.Subnet != "" {
						prefixes[m.Subnet] = true
					}
				}
			}
			minAlive, minDistinct = min(minAlive, nAlive), min(minDistinct, len(prefixes))
			if nAlive != n {
				alive = false
				worst = fmt.Sprintf("%s sees %d of %d alive", nodes[i].name, nAlive, n)
			} else if len(prefixes) != n {
				distinct = false
				worst = fmt.Sprintf("%s sees %d distinct prefixes among %d alive members", nodes[i].name, len(prefixes), n)
			}
		}
		if el := time.Since(t0); el-lastMark >= 2*time.Second {
			lastMark = el
			timeline = append(timeline, fmt.Sprintf("%.0fs: %d/%d", el.Seconds(), minAlive, minDistinct))
		}
		if alive && allAliveAt == 0 {
			allAliveAt = time.Since(t0)
		}
		if alive && distinct {
			distinctAt = time.Since(t0)
			return true, ""
		}
		return false, worst
	})
	if !converged {
		t.Fatalf("%d agents did not converge within 120 s%s\nfirst agent's log:\n%s", n, exited(nodes), tail(nodes[0].logs(), 40))
	}

	var convergeCPU float64 // CPU seconds all agents spent from their start to convergence
	for _, nd := range nodes {
		convergeCPU += procCPUSeconds(t, nd.cmd.Process.Pid)
	}
	rssConverged := make([]float64, n)
	for i, nd := range nodes {
		rssConverged[i] = procMem(t, nd.cmd.Process.Pid).rss
	}

	// The prefixes as the first agent sees them (every agent agrees now).
	ms, err := clients[0].Members(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	subnetOf := map[string]string{}
	for _, m := range ms {
		subnetOf[m.Name] = m.Subnet
	}

	// First packet from s000 to every other host's overlay address, 16 at a time; the RTT of
	// the first reply includes the WireGuard handshake.
	rtts := make([]float64, 0, n-1)
	var mu sync.Mutex
	var failures []string
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	pingStart := time.Now()
	for _, nd := range nodes[1:] {
		dst := overlayAddr(t, subnetOf[nd.name])
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			rtt, err := firstPing(nodes[0], dst)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failures = append(failures, fmt.Sprintf("%s (%s): %v", nd.name, dst, err))
				return
			}
			rtts = append(rtts, rtt)
		}()
	}
	wg.Wait()
	pingAll := time.Since(pingStart)
	if len(failures) > 0 {
		t.Fatalf("s000 could not reach %d of %d hosts:\n%s", len(failures), n-1, strings.Join(failures, "\n"))
	}

	// Idle: 10 s after the pings, each agent's CPU over 10 s and its RSS.
	time.Sleep(10 * time.Second)
	cpu0 := make([]float64, n)
	for i, nd := range nodes {
		cpu0[i] = procCPUSeconds(t, nd.cmd.Process.Pid)
	}
	const idleWindow = 10 * time.Second
	var profWG sync.WaitGroup
	if profDir != "" {
		profWG.Add(1)
		go func() {
			defer profWG.Done()
			secs := int(idleWindow.Seconds()) - 1
			if _, err := nodes[0].host.Run("curl", "-sf", "-o", filepath.Join(profDir, "agent-cpu.pprof"), fmt.Sprintf("http://127.0.0.1:6060/debug/pprof/profile?seconds=%d", secs)); err != nil {
				t.Errorf("cpu profile: %v", err)
			}
		}()
	}
	time.Sleep(idleWindow)
	profWG.Wait()
	if profDir != "" {
		if _, err := nodes[0].host.Run("curl", "-sf", "-o", filepath.Join(profDir, "agent-heap.pprof"), "http://127.0.0.1:6060/debug/pprof/heap"); err != nil {
			t.Errorf("heap profile: %v", err)
		}
	}
	cpuPct := make([]float64, n)
	rss, pss, anon := make([]float64, n), make([]float64, n), make([]float64, n)
	for i, nd := range nodes {
		cpuPct[i] = (procCPUSeconds(t, nd.cmd.Process.Pid) - cpu0[i]) / idleWindow.Seconds() * 100
		m := procMem(t, nd.cmd.Process.Pid)
		rss[i], pss[i], anon[i] = m.rss, m.pss, m.anon
	}

	// Failure detection: kill -9 k agents; every survivor must see them failed.
	k := max(2, n/20)
	victims := nodes[n-k:]
	survivors := clients[:n-k]
	tk := time.Now()
	for _, v := range victims {
		v.kill()
	}
	var detected time.Duration
	if !pollUntil(t, 60*time.Second, 250*time.Millisecond, func() (bool, string) {
		for i, ms := range memberViews(survivors) {
			status := map[string]string{}
			for _, m := range ms {
				status[m.Name] = m.Status
			}
			for _, v := range victims {
				if status[v.name] != "failed" {
					return false, fmt.Sprintf("%s sees %s %q", nodes[i].name, v.name, status[v.name])
				}
			}
		}
		detected = time.Since(tk)
		return true, ""
	}) {
		t.Fatalf("the %d killed agents were not seen failed by every survivor within 60 s", k)
	}

	slices.Sort(rtts)
	model := gossipModel(n)
	rows := [][2]string{
		{"agents (started together)", fmt.Sprintf("%d (launched in %.2f s)", n, launched.Seconds())},
		{"all alive at every agent", fmt.Sprintf("%.1f s", allAliveAt.Seconds())},
		{"N distinct prefixes at every agent", fmt.Sprintf("%.1f s", distinctAt.Seconds())},
		{"CPU of all agents until converged", fmt.Sprintf("%.1f s (%.2f s per agent; this machine has %d cores)", convergeCPU, convergeCPU/float64(n), runtime.NumCPU())},
		{"timeline: fewest alive / distinct seen", strings.Join(timeline, ", ")},
		{"gossip model: one broadcast reaches N", fmt.Sprintf("%.1f s (fanout 3, 200 ms rounds)", model.Seconds())},
		{"first ping s000 → each host (RTT)", fmt.Sprintf("median %.1f ms, max %.1f ms; all %d in %.1f s", pct(rtts, 50), pct(rtts, 100), n-1, pingAll.Seconds())},
		{"idle CPU per agent (% of a core)", fmt.Sprintf("median %.2f, max %.2f", pct(sorted(cpuPct), 50), pct(sorted(cpuPct), 100))},
		{"RSS per agent at convergence", fmt.Sprintf("median %.1f MiB, max %.1f MiB", pct(sorted(rssConverged), 50), pct(sorted(rssConverged), 100))},
		{"idle RSS per agent (after the pings)", fmt.Sprintf("median %.1f MiB, max %.1f MiB", pct(sorted(rss), 50), pct(sorted(rss), 100))},
		{"  of which anonymous (heap, stacks)", fmt.Sprintf("median %.1f MiB, max %.1f MiB", pct(sorted(anon), 50), pct(sorted(anon), 100))},
		{"  PSS (shared binary pages split)", fmt.Sprintf("median %.1f MiB, max %.1f MiB", pct(sorted(pss), 50), pct(sorted(pss), 100))},
		{"failure detection", fmt.Sprintf("%d killed (kill -9), seen failed by all %d survivors in %.1f s", k, n-k, detected.Seconds())},
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n| %-40s | %s\n|%s|%s\n", "real agents", "measured", strings.Repeat("-", 42), strings.Repeat("-", 60))
	for _, r := range rows {
		fmt.Fprintf(&b, "| %-40s | %s\n", r[0], r[1])
	}
	t.Log(b.String())
}

// raiseNeighLimits raises the ARP table's limits, which every namespace shares, to hold
// entries neighbours (gc_thresh1 = entries, 2 and 3 at twice and four times that: the
// kernel drops packets to new neighbours past gc_thresh3, "neighbor table overflow"), and
// puts the old values back when the test ends.
func raiseNeighLimits(t *testing.T, entries int) {
	t.Helper()
	for i, name := range []string{"gc_thresh1", "gc_thresh2", "gc_thresh3"} {
		key := "net.ipv4.neigh.default." + name
		out, err := exec.Command("sysctl", "-n", key).Output()
		if err != nil {
			t.Fatalf("sysctl %s: %v", key, err)
		}
		old, _ := strconv.Atoi(strings.TrimSpace(string(out)))
		want := entries << i
		if old >= want {
			continue
		}
		if out, err := exec.Command("sysctl", "-qw", fmt.Sprintf("%s=%d", key, want)).CombinedOutput(); err != nil {
			t.Fatalf("sysctl %s=%d: %v: %s", key, want, err, out)
		}
		t.Cleanup(func() { _ = exec.Command("sysctl", "-qw", fmt.Sprintf("%s=%d", key, old)).Run() })
	}
}

// pollUntil calls f every interval until it reports done or timeout passes; the last
// reason it gave for not being done is logged on timeout.
func pollUntil(t *testing.T, timeout, interval time.Duration, f func() (bool, string)) bool {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		done, why := f()
		if done {
			return true
		}
		last = why
		time.Sleep(interval)
	}
	t.Logf("still not done after %s: %s", timeout, last)
	return false
}

// memberViews asks every client for its member list at once (an agent not answering yet
// gives an empty list).
func memberViews(clients []*api.Client) [][]api.Member {
	out := make([][]api.Member, len(clients))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i, c := range clients {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			ms, err := c.Members(ctx)
			if err == nil {
				out[i] = ms
			}
		}()
	}
	wg.Wait()
	return out
}

// overlayAddr is a subnet's first address (the host's own on the overlay).
func overlayAddr(t *testing.T, subnet string) string {
	t.Helper()
	i := strings.LastIndexByte(subnet, '.')
	j := strings.IndexByte(subnet, '/')
	if i < 0 || j < i {
		t.Fatalf("subnet %q is no IPv4 prefix", subnet)
	}
	last, _ := strconv.Atoi(subnet[i+1 : j])
	return subnet[:i+1] + strconv.Itoa(last+1)
}

var pingTime = regexp.MustCompile(`time=([0-9.]+) ms`)

// firstPing sends pings from n to dst until one is answered (at most 5, one a second) and
// returns the RTT of the first answer.
func firstPing(n *node, dst string) (float64, error) {
	out, err := n.host.Run("ping", "-n", "-c", "1", "-w", "5", dst)
	if err != nil {
		return 0, err
	}
	m := pingTime.FindStringSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("no RTT in %q", out)
	}
	return strconv.ParseFloat(m[1], 64)
}

// procCPUSeconds is a process's user+system CPU time (/proc/PID/stat, clock ticks of 1/100 s).
func procCPUSeconds(t *testing.T, pid int) float64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:]) // fields from the 3rd on
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100
}

// memUse is a process's resident memory in MiB: all of it (VmRSS, which counts the
// binary's pages in every process that maps them), the anonymous part, and the
// proportional set size (shared pages divided among the processes sharing them).
type memUse struct{ rss, anon, pss float64 }

func procMem(t *testing.T, pid int) memUse {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		t.Fatal(err)
	}
	var m memUse
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "Rss:":
			m.rss = kb / 1024
		case "Pss:":
			m.pss = kb / 1024
		case "Anonymous:":
			m.anon = kb / 1024
		}
	}
	return m
}

// gossipModel is the time for one broadcast to reach n members by push gossip to 3 random
// members every 200 ms (memberlist's LAN fanout and interval): log_4(n) + ln(n)/3 rounds
// (the classic bound for random push gossip), the model Serf's convergence figures follow.
func gossipModel(n int) time.Duration {
	rounds := math.Log(float64(n))/math.Log(4) + math.Log(float64(n))/3
	return time.Duration(rounds * float64(200*time.Millisecond))
}

func sorted(v []float64) []float64 { s := slices.Clone(v); slices.Sort(s); return s }

// pct is the p-th percentile of sorted values (p=100: the largest).
func pct(sorted []float64, p int) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	i := min(len(sorted)-1, len(sorted)*p/100)
	return sorted[i]
}

func tail(s string, lines int) string {
	ls := strings.Split(s, "\n")
	return strings.Join(ls[max(0, len(ls)-lines):], "\n")
}

// exited describes the agents whose process has ended, with the end of their logs.
func exited(nodes []*node) string {
	var b strings.Builder
	for _, nd := range nodes {
		select {
		case err := <-nd.done:
			nd.done <- err // leave it for kill/wait
			fmt.Fprintf(&b, "\nagent %s exited (%v):\n%s", nd.name, err, tail(nd.logs(), 30))
		default:
		}
	}
	return b.String()
}
