package agent_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftnet/weft/agent/api"
	"github.com/weftnet/weft/discovery/catalog"
	"github.com/weftnet/weft/discovery/membership"
	"github.com/weftnet/weft/discovery/policydist"
	"github.com/weftnet/weft/identity"
)

// pinger pings, every 300 ms, each registered (source, destination) pair of honest hosts
// until stopped, and records every ping lost: traffic must keep flowing while a hostile
// member attacks.
type pinger struct {
	mu     sync.Mutex
	pairs  [][2]string // source name, destination address
	nodes  map[string]*node
	sent   int
	lost   []string
	stop   chan struct{}
	done   chan struct{}
	closed bool
}

func startPinger() *pinger {
	p := &pinger{nodes: map[string]*node{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		tick := time.NewTicker(300 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
			p.mu.Lock()
			pairs := slices.Clone(p.pairs)
			p.mu.Unlock()
			for _, pr := range pairs {
				err := p.nodes[pr[0]].ping(pr[1], 1)
				p.mu.Lock()
				p.sent++
				if err != nil {
					p.lost = append(p.lost, fmt.Sprintf("%s %s → %s: %v", time.Now().Format("15:04:05.000"), pr[0], pr[1], err))
				}
				p.mu.Unlock()
			}
		}
	}()
	return p
}

// add pings between every two of nodes, both ways, from now on.
func (p *pinger) add(nodes ...*node) {
	addrs := map[*node]string{}
	for _, n := range nodes {
		addrs[n] = n.status().Address
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, a := range nodes {
		p.nodes[a.name] = a
		for _, b := range nodes {
			pr := [2]string{a.name, addrs[b]}
			if a != b && !slices.Contains(p.pairs, pr) {
				p.pairs = append(p.pairs, pr)
			}
		}
	}
}

// check fails the test if a ping was lost so far.
func (p *pinger) check(t *testing.T, when string) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.lost) > 0 {
		t.Fatalf("%s: %d of %d pings between honest hosts lost:\n%s", when, len(p.lost), p.sent, strings.Join(p.lost, "\n"))
	}
	t.Logf("%s: %d pings between honest hosts, none lost", when, p.sent)
}

func (p *pinger) close() {
	p.mu.Lock()
	closed := p.closed
	p.closed = true
	p.mu.Unlock()
	if !closed {
		close(p.stop)
		<-p.done
	}
}

// metricValue is the value of the sample named exactly series (name and labels) in a
// Prometheus text exposition, 0 when absent.
func metricValue(metrics, series string) float64 {
	for _, l := range strings.Split(metrics, "\n") {
		if rest, ok := strings.CutPrefix(l, series+" "); ok {
			v, _ := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v
		}
	}
	return 0
}

// holdsCertSubnet fails unless every node still holds the subnet it had (want) and that
// subnet is its certificate's.
func holdsCertSubnet(t *testing.T, nodes []*node, want map[string]string) {
	t.Helper()
	for _, n := range nodes {
		st := n.status()
		if st.Certificate == nil || len(st.Certificate.Prefixes) != 1 || st.Certificate.Prefixes[0] != st.Subnet || st.Subnet != want[n.name] {
			t.Fatalf("%s renumbered: subnet %s (was %s), certificate %+v", n.name, st.Subnet, want[n.name], st.Certificate)
		}
	}
	for _, n := range nodes {
		for _, o := range nodes {
			if o == n {
				continue
			}
			if got := peerAllowed(n, o.pub()); !slices.Equal(got, []string{want[o.name]}) {
				t.Fatalf("%s: %s's allowed IPs are %v, want [%s]", n.name, o.name, got, want[o.name])
			}
		}
	}
}

// TestNetns_HostileFourthMember: three agents enrolled by tokens (`weft init` on h1, `weft
// token create`, `--join-token`) under the cluster CA, a signed policy in force, and a fourth
// member that holds the gossip key but no certificate and tries everything in turn: the
// policy's version tag (pv) under a name that sorts first, never re-sending, while h3
// joins; h2's exact /24 with its own key; h3's public key; Serf's keyring queries
// (install, use, remove) to h2 and to everyone; a flood of forged policy chunks; a catalog
// tag registering `db`. Pings between the honest hosts run all along and lose nothing, a
// sha256-checked TCP transfer passes, nobody renumbers or is cut off, the joiner gets the
// policy, a real policy update still lands after the flood, `db` resolves nowhere, and the
// refusals are counted (weft members, weft policy, /metrics).
func TestNetns_HostileFourthMember(t *testing.T) {
	nodes := gossipLab(t, "h1", "h2", "h3", "hx")
	h1, h2, h3, hx := nodes[0], nodes[1], nodes[2], nodes[3]
	state1 := filepath.Join(h1.dir, "state")
	out, err := exec.Command(weftBin(t), "init", "--state-dir", state1, "--name", "lab").CombinedOutput()
	if err != nil {
		t.Fatalf("weft init: %v\n%s", err, out)
	}
	h1.start(enrollConf(h1, fmt.Sprintf("enroll:\n  listen: %s:7947\nmetrics_listen: 127.0.0.1:9101\n", h1.underlay)))
	h2.start(enrollConf(h2, "join_token: "+tokenCreate(t, h1)+"\n", h1.underlay))
	eventually(t, 60*time.Second, "h1 ↔ h2 ping", func() error { return allPairsPing([]*node{h1, h2}) })

	// A signed policy (default allow, so it stops nothing the test sends) signed with the
	// cluster CA that weft init wrote: every host holds version v and announces it.
	caKey, caCrt := filepath.Join(state1, "ca.key"), filepath.Join(state1, "ca.crt")
	apply := func(rules string) uint64 {
		t.Helper()
		doc := filepath.Join(t.TempDir(), "policy.yaml")
		if err := os.WriteFile(doc, []byte("default: allow\nrules:\n"+rules), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := h1.cli("policy", "apply", doc, "--ca-key", caKey, "--ca-cert", caCrt); err != nil {
			t.Fatalf("policy apply: %v\n%s", err, out)
		}
		return h1.policy().Version
	}
	holds := func(what string, v uint64, ns ...*node) {
		t.Helper()
		eventually(t, 30*time.Second, what, func() error {
			for _, n := range ns {
				if got := n.policy().Version; got != v {
					return fmt.Errorf("%s holds version %d, want %d", n.name, got, v)
				}
			}
			return nil
		})
	}
	v := apply("  - name: ping\n    from: {any: true}\n    to: {any: true, proto: icmp}\n")
	holds("h2 holds the policy", v, h2)

	// The fourth member: the gossip key (as found in h1's state directory), no certificate.
	kb, err := os.ReadFile(filepath.Join(state1, "gossip.key"))
	if err != nil {
		t.Fatal(err)
	}
	key := strings.TrimSpace(string(kb))
	x := startHostile(t, hx.host, key, hx.underlay, h1.underlay+":7946")
	p := startPinger()
	defer p.close()
	p.add(h1, h2)

	// 1. pv: "0evil" (sorts before every honest name) announces the newest version and never
	// re-sends it; h3, enrolling now, must still be sent the policy.
	x.do(hostileCmd{Name: "0evil", Port: 7950, Tags: map[string]string{
		membership.TagNodeInfo: forgedInfo(t, freshKey(t), "10.42.252.0/24", false),
		policydist.VersionTag:  policydist.FormatVersion(v),
	}})
	eventually(t, 20*time.Second, "h1 and h2 see 0evil", func() error {
		for _, n := range []*node{h1, h2} {
			if m, ok := n.members()["0evil"]; !ok || m.Status != "alive" {
				return fmt.Errorf("%s sees 0evil as %+v", n.name, m)
			}
		}
		return nil
	})
	start := time.Now()
	h3.start(enrollConf(h3, "join_token: "+tokenCreate(t, h1)+"\n", h1.underlay))
	honest := []*node{h1, h2, h3}
	holds("the joiner h3 gets the policy despite 0evil's pv tag", v, h3)
	t.Logf("h3 received the policy %.1fs after its start", time.Since(start).Seconds())
	for _, n := range []*node{h1, h2} {
		refusedAs(t, n, "0evil", "no_certificate")
		// 0evil was never designated: nobody had to skip it as a silent re-sender.
		if r := n.policy().Refused["silent_resender"]; r != 0 {
			t.Fatalf("%s counted %d silent re-senders: the uncertified 0evil's pv tag was believed", n.name, r)
		}
	}
	eventually(t, 60*time.Second, "all honest pairs ping", func() error { return allPairsPing(honest) })
	p.add(honest...)
	subnets := map[string]string{}
	for _, n := range honest {
		subnets[n.name] = n.status().Subnet
	}
	t.Logf("subnets: %v", subnets)
	holdsCertSubnet(t, honest, subnets)
	before := map[string]string{}
	for _, n := range honest {
		if before[n.name], err = n.cli("keyring", "list"); err != nil {
			t.Fatal(err)
		}
	}

	if got := h3.status().PublicKey; got != h3.pub() {
		t.Fatalf("h3 runs with key %s, not its state directory's %s", got, h3.pub())
	}
	// 2. h2's exact /24 under the hostile's own key; 3. h3's public key on a fresh /24.
	x.do(hostileCmd{Name: "evil-24", Port: 7951, Tags: map[string]string{membership.TagNodeInfo: forgedInfo(t, freshKey(t), subnets["h2"], false)}})
	x.do(hostileCmd{Name: "evil-key", Port: 7952, Tags: map[string]string{membership.TagNodeInfo: forgedInfo(t, h3.priv.Public(), "10.42.250.0/24", false)}})
	for _, n := range honest {
		refusedAs(t, n, "evil-24", "no_certificate")
	}
	for _, n := range honest {
		refusedAs(t, n, "evil-key", "no_certificate")
	}
	for _, n := range honest {
		if cs := n.status().Conflicts; len(cs) != 0 {
			t.Fatalf("%s reports conflicts from an uncertified member: %v", n.name, cs)
		}
		for _, m := range []string{"h1", "h2", "h3"} {
			if r := n.members()[m].Refused; r != "" {
				t.Fatalf("%s refuses honest %s (%s) after the forged claims", n.name, m, r)
			}
		}
	}
	holdsCertSubnet(t, honest, subnets)
	p.check(t, "after the /24 and key claims")

	// 4. Serf's keyring queries, to h2 alone and to everyone: every answer refuses (x.do
	// fails on any other), no keyring changes, nobody is cut off.
	raw, _ := base64.StdEncoding.DecodeString(key)
	evilKey, _ := base64.StdEncoding.DecodeString(gossipKeyB64(t))
	for _, filter := range [][]string{{"h2"}, nil} {
		for _, q := range []struct {
			name string
			key  []byte
		}{{"_serf_install-key", evilKey}, {"_serf_use-key", evilKey}, {"_serf_remove-key", raw}} {
			x.do(hostileCmd{Name: "evil-24", KeyQuery: q.name, Key: q.key, Filter: filter})
		}
	}
	deadline := time.Now().Add(5 * time.Second) // a cut-off member is failed within ~2 s (fast gossip)
	for time.Now().Before(deadline) {
		if err := allAlive(honest, "", "h1", "h2", "h3"); err != nil {
			t.Fatalf("keyring queries cut a host off: %v", err)
		}
		time.Sleep(300 * time.Millisecond)
	}
	for _, n := range honest {
		if got, err := n.cli("keyring", "list"); err != nil || got != before[n.name] {
			t.Fatalf("%s's keyring changed: %v\n%s\nwas\n%s", n.name, err, got, before[n.name])
		}
	}
	p.check(t, "after the keyring queries")
	transfer(t, h1, h2, h2.status().Address, 5011, 4<<20)

	// 5. A flood of forged policy chunks (bounded: 170-190 events), newer versions:
	// whole documents signed by another CA (unknown_ca), chunks whose data do
	// not add up to their digest (bad_digest), short chunks (bad_chunk) and first chunks of
	// documents that never complete (assembly_evicted).
	// Each kind is sent as its own burst, documents a gossip round apart: gossip reorders
	// a burst, and the flood's own first chunks would evict its whole documents (as they
	// would a real update's, until its holders vouch for it) before they are complete.
	junk := func(n int) []byte {
		b := make([]byte, n)
		_, _ = rand.Read(b)
		return b
	}
	flood := func(gap time.Duration, payloads [][]byte) {
		x.do(hostileCmd{Name: "evil-24", Event: policydist.EventName, Payloads: payloads, Gap: gap})
	}
	other := newLabCA(t, "evil")
	for i := range 20 {
		ver := v + 1000 + uint64(i)
		env, err := identity.SignDocument(other.cert, other.key, "policy", ver, []byte("default: allow\n# "+strings.Repeat("x", 800)+"\n"))
		if err != nil {
			t.Fatal(err)
		}
		flood(0, policydist.Chunks(env, ver)) // 2 or 3 chunks each
		time.Sleep(100 * time.Millisecond)
	}
	for i := range 20 {
		cs := policydist.Chunks(junk(1000), v+2000+uint64(i))
		cs[1][policyChunkHeaderLen] ^= 0xff // the data no longer match the digest
		flood(0, cs)
		time.Sleep(100 * time.Millisecond)
	}
	var short, firsts [][]byte
	for range 10 {
		short = append(short, junk(10))
	}
	flood(5*time.Millisecond, short)
	for i := range 60 {
		firsts = append(firsts, policydist.Chunks(junk(1000), v+3000+uint64(i))[0])
	}
	flood(5*time.Millisecond, firsts)
	eventually(t, 30*time.Second, "the forged chunks counted everywhere", func() error {
		for _, n := range honest {
			r := n.policy().Refused
			for _, reason := range []string{"unknown_ca", "bad_digest", "bad_chunk", "assembly_evicted"} {
				if r[reason] == 0 {
					return fmt.Errorf("%s counts no %s: %v", n.name, reason, r)
				}
			}
		}
		return nil
	})
	for _, n := range honest {
		if got := n.policy().Version; got != v {
			t.Fatalf("%s holds version %d after the flood, want %d", n.name, got, v)
		}
		t.Logf("%s policy refusals: %v", n.name, n.policy().Refused)
	}
	v2 := apply("  - name: ping\n    from: {any: true}\n    to: {any: true, proto: icmp}\n  - name: all-tcp\n    from: {any: true}\n    to: {any: true, proto: tcp}\n")
	if v2 <= v {
		t.Fatalf("the update's version %d is not newer than %d", v2, v)
	}
	holds("the real update reaches everyone after the flood", v2, honest...)
	p.check(t, "after the chunk flood")

	// 6. A catalog tag registering db at the hostile's own (fresh) /24.
	svc, err := catalog.EncodeCatalog([]catalog.ServiceHealth{{Service: catalog.Service{Name: "db", Port: 5432}, Health: catalog.HealthPassing}})
	if err != nil {
		t.Fatal(err)
	}
	x.do(hostileCmd{Name: "evil-svc", Port: 7953, Tags: map[string]string{
		membership.TagNodeInfo: forgedInfo(t, freshKey(t), "10.42.251.0/24", false),
		catalog.CatalogTagKey:  svc,
	}})
	// The service is also added to the member that claims h2's /24: were it believed, db
	// would resolve to h2's address.
	x.do(hostileCmd{Name: "evil-24", Tags: map[string]string{
		membership.TagNodeInfo: forgedInfo(t, freshKey(t), subnets["h2"], false),
		catalog.CatalogTagKey:  svc,
	}})
	for _, n := range honest {
		refusedAs(t, n, "evil-svc", "no_certificate")
	}
	time.Sleep(3 * time.Second) // several gossip rounds (fast gossip) for a wrong answer to show
	for _, n := range honest {
		ins, err := api.NewClient(n.sock).Instances(context.Background(), "db", true)
		if err != nil {
			t.Fatal(err)
		}
		if len(ins) != 0 {
			t.Fatalf("%s lists instances of the hostile's db: %+v", n.name, ins)
		}
		if out, err := n.cli("resolve", "db"); err == nil && (strings.Contains(out, "10.42.") || strings.Contains(out, hx.underlay)) {
			t.Fatalf("%s resolves the hostile's db: %s", n.name, out)
		}
	}

	// Throughout and after: traffic, subnets, liveness, counted refusals.
	if err := allAlive(honest, "", "h1", "h2", "h3"); err != nil {
		t.Fatalf("a host is cut off: %v", err)
	}
	holdsCertSubnet(t, honest, subnets)
	for _, n := range honest {
		if ps := n.peers(); len(ps) != 2 {
			t.Fatalf("%s has %d peers, want the 2 honest ones: %+v", n.name, len(ps), ps)
		}
	}
	transfer(t, h3, h2, h2.status().Address, 5012, 4<<20)
	transfer(t, h2, h1, h1.status().Address, 5013, 4<<20)
	p.check(t, "at the end")
	p.close()
	if err := allPairsPing(honest); err != nil {
		t.Fatal(err)
	}

	members, err := h1.cli("members")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("weft members on h1:\n%s", members)
	for _, name := range []string{"0evil", "evil-24", "evil-key", "evil-svc"} {
		if !strings.Contains(grepLines(members, name), "no_certificate") {
			t.Errorf("weft members does not show %s refused as no_certificate", name)
		}
	}
	metrics, err := h1.httpGet("http://127.0.0.1:9101/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if n := metricValue(metrics, `weft_gossip_claims_refused_total{reason="no_certificate"}`); n < 4 {
		t.Errorf("weft_gossip_claims_refused_total{reason=\"no_certificate\"} = %v, want at least 4 (0evil, evil-24, evil-key, evil-svc)", n)
	}
	for _, reason := range []string{"unknown_ca", "bad_digest", "bad_chunk", "assembly_evicted"} {
		if n := metricValue(metrics, `weft_policy_refused_total{reason="`+reason+`"}`); n == 0 {
			t.Errorf("weft_policy_refused_total{reason=%q} is 0", reason)
		}
	}
	if t.Failed() {
		t.Logf("metrics:\n%s\n%s", grepLines(metrics, "claims_refused"), grepLines(metrics, "policy_refused"))
	}
}

// policyChunkHeaderLen is the length of a policy chunk's header (policydist/chunk.go):
// version (8), digest (8), index (1), count (1).
const policyChunkHeaderLen = 18
