package agent_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/serf/serf"

	"github.com/weftnet/weft/agent"
	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/internal/netlab"
)

// labOn builds hosts on one switch with the given underlay addresses (CIDR notation).
func labOn(t *testing.T, names []string, addrs []string) []*node {
	t.Helper()
	lab := netlab.NewT(t)
	netlab.RequireTools(t, "ping")
	var hosts []*netlab.Host
	for _, n := range names {
		h, err := lab.AddHost(n)
		if err != nil {
			t.Fatal(err)
		}
		hosts = append(hosts, h)
	}
	if _, err := lab.Switch("eth0", hosts, addrs); err != nil {
		t.Fatal(err)
	}
	nodes := make([]*node, len(hosts))
	for i, h := range hosts {
		nodes[i] = newNode(t, h, strings.Split(addrs[i], "/")[0])
	}
	return nodes
}

// TestNetnsAdvertise_TestNetOnly: on hosts whose only address is TEST-NET-1 (192.0.2.x,
// which memberlist refuses to pick as "not private"), the agent binds the wildcard, picks the
// address of its default route's interface, says so, and is reachable: a join and an
// overlay ping.
func TestNetnsAdvertise_TestNetOnly(t *testing.T) {
	nodes := labOn(t, []string{"a", "b"}, []string{"192.0.2.1/24", "192.0.2.2/24"})
	a, b := nodes[0], nodes[1]
	for _, n := range nodes {
		if _, err := n.host.Run("ip", "route", "add", "default", "via", "192.0.2.254", "dev", "eth0"); err != nil {
			t.Fatal(err)
		}
	}
	key := gossipKeyB64(t)
	cfg := func(join ...string) string {
		return fmt.Sprintf("gossip:\n  key: %s\n  fast: true\n  join: [%s]\ndns:\n  listen: [\"127.0.0.1:53\"]\n", key, strings.Join(join, ", "))
	}
	a.start(cfg()) // gossip.bind stays the default 0.0.0.0:7946
	if !strings.Contains(a.logs(), `msg="gossip advertise address" addr=192.0.2.1 chosen_by="address of the IPv4 default route's interface"`) {
		t.Fatalf("a's log does not say which address it advertises:\n%s", a.logs())
	}
	if got := a.status().Gossip; got != "192.0.2.1:7946" {
		t.Fatalf("a gossips at %s, want 192.0.2.1:7946", got)
	}
	b.start(cfg(a.underlay))
	eventually(t, 30*time.Second, "a and b see each other alive", func() error { return allAlive(nodes, "192.0.2.", "a", "b") })
	eventually(t, 30*time.Second, "overlay ping both ways", func() error { return allPairsPing(nodes) })
}

// TestNetnsRetryJoin_ReverseOrder: three agents with retry_join, started in reverse order
// (each one's seeds are not up yet when it starts), converge without a manual join; the API
// answers while joining and `weft status` shows the progress.
func TestNetnsRetryJoin_ReverseOrder(t *testing.T) {
	nodes := gossipLab(t, "a", "b", "c")
	key := gossipKeyB64(t)
	cfg := func(n *node) string {
		var seeds []string
		for _, o := range nodes {
			if o != n {
				seeds = append(seeds, o.underlay)
			}
		}
		return fmt.Sprintf("gossip:\n  bind: %s:7946\n  key: %s\n  fast: true\n  retry_join: [%s]\n  retry_interval: 1s\ndns:\n  listen: [\"127.0.0.1:53\"]\n",
			n.underlay, key, strings.Join(seeds, ", "))
	}
	c := nodes[2]
	c.start(cfg(c)) // returns once the API answers: it does while retry_join is still failing
	eventually(t, 20*time.Second, "c reports its retry_join progress", func() error {
		if st := c.status().RetryJoin; !strings.HasPrefix(st, "joining: attempt") || !strings.Contains(st, "last error") {
			return fmt.Errorf("status retry_join = %q", st)
		}
		return nil
	})
	if out, err := c.cli("status"); err != nil || !strings.Contains(out, "retry join:") {
		t.Fatalf("weft status shows no retry join line: %v\n%s", err, out)
	}
	nodes[1].start(cfg(nodes[1]))
	nodes[0].start(cfg(nodes[0]))
	eventually(t, 60*time.Second, "all three alive everywhere", func() error { return allAlive(nodes, "", "a", "b", "c") })
	eventually(t, 30*time.Second, "all pairs ping", func() error { return allPairsPing(nodes) })
	// Each one's own loop ends with a successful join (c's at its next attempt, even though
	// b joined it first).
	eventually(t, 20*time.Second, "every retry_join loop joined", func() error {
		for _, n := range nodes {
			if st := n.status().RetryJoin; !strings.HasPrefix(st, "joined") {
				return fmt.Errorf("%s: retry_join status %q, want joined", n.name, st)
			}
		}
		return nil
	})
	if !strings.Contains(c.logs(), "retry_join: no member answered; retrying") || !strings.Contains(c.logs(), "retry_join: joined") {
		t.Fatalf("c's log does not show the retries:\n%s", c.logs())
	}
}

// rewriteConfig replaces the node's configuration file as start wrote it.
func (n *node) rewriteConfig(config string) {
	n.t.Helper()
	full := fmt.Sprintf("name: %s\nstate_dir: %s\ncontrol_socket: %s\n%s", n.name, filepath.Join(n.dir, "state"), n.sock, withTrust(config))
	if err := os.WriteFile(filepath.Join(n.dir, "weft.yaml"), []byte(full), 0o600); err != nil {
		n.t.Fatal(err)
	}
}

// TestNetnsReload_SIGHUP: SIGHUP applies a new log level and a new service, says so in the
// log, names a setting that needs a restart, refuses a broken file without stopping, and
// a ping running across the reloads loses nothing.
func TestNetnsReload_SIGHUP(t *testing.T) {
	nodes := gossipLab(t, "a", "b")
	a, b := nodes[0], nodes[1]
	key := gossipKeyB64(t)
	a.start(gossipConfig(a, key))
	b.start(gossipConfig(b, key, a.underlay))
	eventually(t, 30*time.Second, "a and b ping", func() error { return allPairsPing(nodes) })
	if strings.Contains(a.logs(), "level=DEBUG") {
		t.Fatal("debug lines before the reload")
	}
	bAddr := b.status().Address

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ping := a.host.Command(ctx, "ping", "-c", "40", "-i", "0.1", "-W", "2", bAddr)
	var pingOut strings.Builder
	ping.Stdout, ping.Stderr = &pingOut, &pingOut
	if err := ping.Start(); err != nil {
		t.Fatal(err)
	}
	hup := func() {
		if err := a.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(500 * time.Millisecond)
	a.rewriteConfig(gossipConfig(a, key) + "log_level: debug\nmtu: 1300\nservices:\n  - name: web\n    port: 8080\n")
	hup()
	eventually(t, 10*time.Second, "the reload in the log", func() error {
		l := a.logs()
		if !strings.Contains(l, `msg=reloaded changed="log_level info → debug; services added web"`) {
			return fmt.Errorf("no reload line")
		}
		if !strings.Contains(l, `restart_needed_for=mtu`) {
			return fmt.Errorf("the changed mtu is not named as needing a restart")
		}
		if i := strings.Index(l, "msg=reloaded"); !strings.Contains(l[i:], "level=DEBUG") {
			return fmt.Errorf("no debug line after the reload")
		}
		return nil
	})
	if out, err := a.cli("services"); err != nil || !strings.Contains(out, "web") {
		t.Fatalf("the reloaded service is not registered: %v\n%s", err, out)
	}
	time.Sleep(500 * time.Millisecond)
	a.rewriteConfig(gossipConfig(a, key) + "log_levell: debug\n")
	hup()
	eventually(t, 10*time.Second, "the refused reload in the log", func() error {
		if !strings.Contains(a.logs(), `reload: configuration refused; nothing changed`) || !strings.Contains(a.logs(), "log_levell: unknown key; did you mean log_level?") {
			return fmt.Errorf("no refusal")
		}
		return nil
	})
	if err := ping.Wait(); err != nil {
		t.Fatalf("ping across the reloads: %v\n%s", err, pingOut.String())
	}
	if !strings.Contains(pingOut.String(), "40 received") {
		t.Fatalf("ping lost packets across the reloads:\n%s", pingOut.String())
	}
	if st := a.status(); st.Name != "a" {
		t.Fatalf("a after the reloads: %+v", st)
	}
}

// TestNetnsKeyring_RotateLiveCluster: `weft keyring install|use|remove`, run on each host in
// turn (a keyring acts on its own host only: gossip cannot change keys), rotates the gossip
// key of three running agents; no kept member is ever seen other than alive, traffic flows,
// a fourth agent left out of the rotation is evicted (the kept hosts see it failed, it sees
// them failed), and an agent restarted with the old key in its configuration rejoins from its
// keyring file.
func TestNetnsKeyring_RotateLiveCluster(t *testing.T) {
	all := gossipLab(t, "a", "b", "c", "x")
	nodes, x := all[:3], all[3]
	a, c := nodes[0], nodes[2]
	oldKey, newKey := gossipKeyB64(t), gossipKeyB64(t)
	a.start(gossipConfig(a, oldKey))
	for _, n := range all[1:] {
		n.start(gossipConfig(n, oldKey, a.underlay))
	}
	threeAlive := func() error { return allAlive(nodes, "", "a", "b", "c") }
	eventually(t, 30*time.Second, "four alive", func() error { return allAlive(all, "", "a", "b", "c", "x") })
	for _, step := range [][]string{{"install", newKey}, {"use", newKey}, {"remove", oldKey}} {
		for _, n := range nodes { // each step on every kept host before the next, as the README says
			out, err := n.cli("keyring", step[0], step[1])
			if err != nil || !strings.Contains(out, "done on this host") {
				t.Fatalf("keyring %s on %s: %v\n%s", step[0], n.name, err, out)
			}
			if err := threeAlive(); err != nil {
				t.Fatalf("after keyring %s on %s: %v", step[0], n.name, err)
			}
		}
		time.Sleep(time.Second) // gossip and probes under the new keyrings
		if err := threeAlive(); err != nil {
			t.Fatalf("a second after keyring %s: %v", step[0], err)
		}
	}
	eventually(t, 30*time.Second, "x, left out of the rotation, evicted", func() error {
		for _, n := range nodes {
			if m := n.members()["x"]; m.Status == "alive" {
				return fmt.Errorf("%s still sees x alive", n.name)
			}
		}
		ms := x.members()
		for _, n := range nodes {
			if ms[n.name].Status == "alive" {
				return fmt.Errorf("x still sees %s alive", n.name)
			}
		}
		return nil
	})
	var out string
	for _, n := range nodes {
		o, err := n.cli("keyring", "list")
		if err != nil || strings.Contains(o, oldKey) || !slices.ContainsFunc(strings.Split(o, "\n"), func(l string) bool {
			return slices.Equal(strings.Fields(l), []string{newKey, "yes"})
		}) {
			t.Fatalf("keyring list on %s after the rotation: %v\n%s", n.name, err, o)
		}
		out = o
	}
	t.Logf("keyring list:\n%s", out)
	eventually(t, 30*time.Second, "all pairs ping after the rotation", func() error { return allPairsPing(nodes) })

	c.kill()
	c.start(gossipConfig(c, oldKey, a.underlay)) // the old key in the file: the keyring file wins
	eventually(t, 30*time.Second, "c back with the new key", threeAlive)
	if !strings.Contains(c.logs(), "gossip keys from the keyring file") {
		t.Fatalf("c's log does not say it used its keyring file:\n%s", c.logs())
	}
}

// TestNetnsPeerState: `weft peers` shows up for a live peer, "handshake failing: no
// response" for a peer whose endpoint drops every packet (an address on the segment that
// nobody holds), and "no endpoint" for a peer without one.
func TestNetnsPeerState(t *testing.T) {
	netlab.Require(t)
	netlab.RequireTools(t, "ping")
	ha, hb := netlab.PairT(t, "eth0", "192.168.63.1/24", "192.168.63.2/24")
	a, b := newNode(t, ha, "192.168.63.1"), newNode(t, hb, "192.168.63.2")
	ghost, _ := crypto.GeneratePrivateKey()
	silent, _ := crypto.GeneratePrivateKey()
	a.start(fmt.Sprintf(`gossip: {disabled: true}
dns: {disabled: true}
subnet: 10.42.1.0/24
metrics_listen: 127.0.0.1:9101
peers:
  - public_key: %s
    endpoint: 192.168.63.2:51820
    allowed_ips: [10.42.2.0/24]
  - public_key: %s
    endpoint: 192.168.63.77:51820
    allowed_ips: [10.42.3.0/24]
  - public_key: %s
    allowed_ips: [10.42.4.0/24]
`, b.pub(), ghost.Public(), silent.Public()))
	b.start(fmt.Sprintf("gossip: {disabled: true}\ndns: {disabled: true}\nsubnet: 10.42.2.0/24\npeers:\n  - public_key: %s\n    endpoint: 192.168.63.1:51820\n    allowed_ips: [10.42.1.0/24]\n", a.pub()))
	// weft ping, run on a (inside its namespace): the first reply needed a handshake, the
	// second did not; both went to b's endpoint.
	out, err := a.host.Run(weftBin(t), "--socket", a.sock, "ping", "-c", "2", b.pub())
	t.Logf("weft ping b:\n%s", out)
	if err != nil || !strings.Contains(out, "seq=1 endpoint=192.168.63.2:51820") || !strings.Contains(out, "handshake needed: yes") ||
		!strings.Contains(out, "seq=2 endpoint=192.168.63.2:51820") || !strings.Contains(out, "handshake needed: no") || !strings.Contains(out, "2 sent, 2 received") {
		t.Fatalf("weft ping b: %v\n%s", err, out)
	}
	eventually(t, 10*time.Second, "a pings b", func() error { return a.ping("10.42.2.1", 1) })
	// weft ping of the ghost: no reply; this starts its handshake.
	out, err = a.host.Run(weftBin(t), "--socket", a.sock, "ping", "-c", "1", "-W", "1s", "10.42.3.1")
	t.Logf("weft ping ghost:\n%s", out)
	if err == nil || !strings.Contains(out, "no reply within 1s") {
		t.Fatalf("weft ping of the ghost: %v\n%s", err, out)
	}
	state := func(key string) (string, string) {
		for _, p := range a.peers() {
			if p.PublicKey == key {
				return p.State, p.StateReason
			}
		}
		return "", ""
	}
	if st, _ := state(b.pub()); st != agent.PeerUp {
		t.Fatalf("b: state %q, want up", st)
	}
	if st, _ := state(silent.Public().String()); st != agent.PeerNoEndpoint {
		t.Fatalf("the peer without endpoint: state %q", st)
	}
	took := eventually(t, 15*time.Second, "the ghost's handshake failing", func() error {
		if st, reason := state(ghost.Public().String()); st != agent.PeerFailing || !strings.HasPrefix(reason, "no response") {
			return fmt.Errorf("ghost: %q %q", st, reason)
		}
		return nil
	})
	t.Logf("handshake failing shown %.1fs after the first initiation", took.Seconds())
	out, err = a.cli("peers")
	if err != nil || !strings.Contains(out, "STATE") || !strings.Contains(out, "handshake failing: no response") || !strings.Contains(out, " up ") {
		t.Fatalf("weft peers: %v\n%s", err, out)
	}
	t.Logf("weft peers:\n%s", out)

	metrics, err := a.httpGet("http://127.0.0.1:9101/metrics")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`weft_build_info{commit=`,
		fmt.Sprintf(`weft_peer_state{name="",peer="%s",state="up"} 1`, b.pub()),
		fmt.Sprintf(`weft_peer_state{name="",peer="%s",state="handshake failing"} 1`, ghost.Public()),
		fmt.Sprintf(`weft_peer_state{name="",peer="%s",state="no endpoint"} 1`, silent.Public()),
		fmt.Sprintf(`weft_peer_handshake_failures_total{name="",peer="%s"} 0`, ghost.Public()),
		`weft_services{health="passing"} 0`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// TestNetnsRetryJoin_RetryMaxGivesUp: with retry_max, an agent whose seeds never answer
// gives up after that many attempts and exits with an error (Consul's semantics), so that
// its supervisor sees it.
func TestNetnsRetryJoin_RetryMaxGivesUp(t *testing.T) {
	nodes := gossipLab(t, "a")
	a := nodes[0]
	a.start(fmt.Sprintf("gossip:\n  bind: %s:7946\n  key: %s\n  fast: true\n  retry_join: [192.168.62.99]\n  retry_interval: 500ms\n  retry_max: 2\ndns:\n  listen: [\"127.0.0.1:53\"]\n", a.underlay, gossipKeyB64(t)))
	err := a.wait(30 * time.Second)
	if err == nil || strings.Contains(err.Error(), "still running") {
		t.Fatalf("agent after retry_max: %v\n%s", err, a.logs())
	}
	if !strings.Contains(a.logs(), "retry_join: gave up after 2 attempts (gossip.retry_max)") {
		t.Fatalf("the log does not say it gave up:\n%s", a.logs())
	}
}

// TestNetnsAdvertise_IPv6Only: on hosts with only IPv6 underlay addresses (and an IPv6
// default route) the agent advertises its IPv6 address; gossip and the datapath work over it.
func TestNetnsAdvertise_IPv6Only(t *testing.T) {
	nodes := labOn(t, []string{"a", "b"}, []string{"2001:db8:62::1/64", "2001:db8:62::2/64"})
	a, b := nodes[0], nodes[1]
	for _, n := range nodes {
		if _, err := n.host.Run("ip", "-6", "route", "add", "default", "via", "2001:db8:62::ff", "dev", "eth0"); err != nil {
			t.Fatal(err)
		}
	}
	key := gossipKeyB64(t)
	cfg := func(join ...string) string {
		return fmt.Sprintf("gossip:\n  key: %s\n  fast: true\n  join: [%s]\ndns:\n  listen: [\"127.0.0.1:53\"]\n", key, strings.Join(join, ", "))
	}
	// DAD must finish before the address can be bound.
	eventually(t, 10*time.Second, "addresses past DAD", func() error {
		for _, n := range nodes {
			if out, _ := n.host.Run("ip", "-6", "addr", "show", "dev", "eth0", "tentative"); strings.TrimSpace(out) != "" {
				return fmt.Errorf("%s: tentative: %s", n.name, out)
			}
		}
		return nil
	})
	a.start(cfg())
	if !strings.Contains(a.logs(), `msg="gossip advertise address" addr=2001:db8:62::1 chosen_by="address of the IPv6 default route's interface"`) {
		t.Fatalf("a's log:\n%s", a.logs())
	}
	b.start(cfg(`"[2001:db8:62::1]:7946"`))
	eventually(t, 30*time.Second, "a and b alive over IPv6", func() error { return allAlive(nodes, "[2001:db8:62::", "a", "b") })
	eventually(t, 30*time.Second, "overlay ping both ways", func() error { return allPairsPing(nodes) })
}

// hostileKeyQuery sends Serf's keyring query c.KeyQuery (as serf.KeyManager encodes it:
// message type 7, msgpack keyRequest{Key}) from a hostile member, filtered to c.Filter, and
// waits for the answers. An answer that does not refuse ("encryption not enabled") is an
// error: that member acted on it.
func hostileKeyQuery(s *serf.Serf, c hostileCmd) error {
	var buf bytes.Buffer
	buf.WriteByte(7)
	h := codec.MsgpackHandle{BasicHandle: codec.BasicHandle{TimeNotBuiltin: true}}
	if err := codec.NewEncoder(&buf, &h).Encode(struct{ Key []byte }{c.Key}); err != nil {
		return err
	}
	resp, err := s.Query(c.KeyQuery, buf.Bytes(), &serf.QueryParam{FilterNodes: c.Filter, Timeout: 2 * time.Second})
	if err != nil {
		return err
	}
	var acted []string
	for r := range resp.ResponseCh() {
		if !bytes.Contains(r.Payload, []byte("encryption not enabled")) {
			acted = append(acted, r.From)
		}
	}
	if len(acted) > 0 {
		return fmt.Errorf("%s acted on by %v", c.KeyQuery, acted)
	}
	return nil
}

// TestNetnsKeyring_HostilePartition: a member that holds the gossip key (and, with a CA, no
// certificate) sends Serf's keyring queries filtered to a victim agent, then to every agent:
// install its own key, make it primary, remove the cluster's. With and without a CA, no
// agent acts on them, every keyring stays as it was, and the victim stays in the cluster.
func TestNetnsKeyring_HostilePartition(t *testing.T) {
	for _, mode := range []string{"shared-key", "ca"} {
		t.Run(mode, func(t *testing.T) {
			nodes := gossipLab(t, "a", "b", "victim", "evil")
			honest, evil := nodes[:3], nodes[3]
			key := gossipKeyB64(t)
			conf := func(*node, string) string { return "" }
			if mode == "ca" {
				ca := newLabCA(t, "cluster")
				caFile := filepath.Join(t.TempDir(), "ca.crt")
				writePEM(t, caFile, ca.cert)
				now := time.Now()
				conf = func(n *node, subnet string) string {
					cert := ca.sign(t, n.name, n.priv.Public(), now.Add(-time.Hour), now.AddDate(1, 0, 0), nil, subnet)
					writePEM(t, filepath.Join(n.dir, "host.crt"), cert)
					return fmt.Sprintf("pki:\n  ca: %s\n  cert: %s\n", caFile, filepath.Join(n.dir, "host.crt"))
				}
			}
			a := honest[0]
			a.start(gossipConfig(a, key) + conf(a, "10.42.1.0/24"))
			honest[1].start(gossipConfig(honest[1], key, a.underlay) + conf(honest[1], "10.42.2.0/24"))
			honest[2].start(gossipConfig(honest[2], key, a.underlay) + conf(honest[2], "10.42.3.0/24"))
			names := []string{"a", "b", "victim"}
			eventually(t, 30*time.Second, "three alive", func() error { return allAlive(honest, "", names...) })
			before := map[string]string{}
			for _, n := range honest {
				out, err := n.cli("keyring", "list")
				if err != nil {
					t.Fatal(err)
				}
				before[n.name] = out
			}
			raw, _ := base64.StdEncoding.DecodeString(key)
			evilKey, _ := base64.StdEncoding.DecodeString(gossipKeyB64(t))
			x := startHostile(t, evil.host, key, evil.underlay, a.underlay+":7946")
			x.do(hostileCmd{Name: "evil", Port: 7946})
			for _, filter := range [][]string{{"victim"}, nil} {
				for _, q := range []struct {
					name string
					key  []byte
				}{{"_serf_install-key", evilKey}, {"_serf_use-key", evilKey}, {"_serf_remove-key", raw}, {"_serf_list-keys", nil}} {
					x.do(hostileCmd{Name: "evil", KeyQuery: q.name, Key: q.key, Filter: filter})
				}
				deadline := time.Now().Add(5 * time.Second) // a cut-off member is failed within ~2 s (fast gossip)
				for time.Now().Before(deadline) {
					if err := allAlive(honest, "", names...); err != nil {
						t.Fatalf("keyring queries (filter %v) partitioned the cluster: %v", filter, err)
					}
					time.Sleep(200 * time.Millisecond)
				}
			}
			for _, n := range honest {
				if out, err := n.cli("keyring", "list"); err != nil || out != before[n.name] {
					t.Fatalf("%s's keyring changed: %v\n%s\nwas\n%s", n.name, err, out, before[n.name])
				}
			}
			if err := allPairsPing(honest); err != nil {
				t.Fatal(err)
			}
		})
	}
}
