package agent_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftnet/weft/agent/api"
	"github.com/weftnet/weft/identity"
)

func init() {
	extraHelpers["serve"] = policyServe
	extraHelpers["probe"] = policyProbe
}

// policyServe "serve PORT/PROTO..." echoes on every listed TCP and UDP port until killed.
func policyServe(args []string) error {
	for _, spec := range args {
		port, proto, _ := strings.Cut(spec, "/")
		switch proto {
		case "tcp":
			ln, err := net.Listen("tcp", ":"+port)
			if err != nil {
				return err
			}
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					go func() {
						defer c.Close()
						_ = c.SetDeadline(time.Now().Add(10 * time.Second))
						buf := make([]byte, 64)
						n, _ := c.Read(buf)
						_, _ = c.Write(buf[:n])
					}()
				}
			}()
		case "udp":
			pc, err := net.ListenPacket("udp", ":"+port)
			if err != nil {
				return err
			}
			go func() {
				buf := make([]byte, 1500)
				for {
					n, from, err := pc.ReadFrom(buf)
					if err != nil {
						return
					}
					_, _ = pc.WriteTo(buf[:n], from)
				}
			}()
		default:
			return fmt.Errorf("serve: %q", spec)
		}
	}
	fmt.Println("listening")
	select {}
}

// policyProbe "probe tcp|udp HOST:PORT" sends one request and waits 1.5s for its echo.
func policyProbe(args []string) error {
	c, err := net.DialTimeout(args[0], args[1], 1500*time.Millisecond)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(1500 * time.Millisecond))
	if _, err := c.Write([]byte("hello")); err != nil {
		return err
	}
	buf := make([]byte, 16)
	n, err := c.Read(buf)
	if err != nil {
		return err
	}
	if string(buf[:n]) != "hello" {
		return fmt.Errorf("echo %q", buf[:n])
	}
	fmt.Println("ok")
	return nil
}

func (n *node) serve(t *testing.T, specs ...string) {
	t.Helper()
	self, _ := os.Executable()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := n.host.Command(ctx, self, append([]string{"-test.run=^$", "serve"}, specs...)...)
	cmd.Env = append(os.Environ(), helperEnv+"=serve")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	buf := make([]byte, 10)
	if _, err := out.Read(buf); err != nil || !strings.HasPrefix(string(buf), "listening") {
		t.Fatalf("serve on %s: %q %v", n.name, buf, err)
	}
}

// reach reports whether a request from n to addr:port over proto gets its echo.
func (n *node) reach(proto, addr string, port int) bool {
	self, _ := os.Executable()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cmd := n.host.Command(ctx, self, "-test.run=^$", "probe", proto, net.JoinHostPort(addr, fmt.Sprint(port)))
	cmd.Env = append(os.Environ(), helperEnv+"=probe")
	out, err := cmd.Output()
	return err == nil && strings.TrimSpace(string(out)) == "ok"
}

func (n *node) policy() api.PolicyStatus {
	n.t.Helper()
	out, err := n.cli("policy", "show", "--json")
	if err != nil {
		n.t.Fatal(err)
	}
	var st api.PolicyStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		n.t.Fatalf("policy show --json: %v: %s", err, out)
	}
	return st
}

func ruleStat(st api.PolicyStatus, name string) (hits, drops uint64) {
	for _, r := range st.Rules {
		if r.Name == name {
			return r.Hits, r.Drops
		}
	}
	return 0, 0
}

// writeCA creates a CA in dir and returns the paths of its certificate and key.
func writeCA(t *testing.T, dir, name string) (crt, key string) {
	t.Helper()
	now := time.Now()
	c, k, err := identity.NewCA(identity.CASpec{Name: name, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	crt, key = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if err := os.WriteFile(crt, p, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, identity.MarshalCAKeyPEM(k), 0o600); err != nil {
		t.Fatal(err)
	}
	return crt, key
}

const policyV1 = `default: deny
rules:
  - name: web-db
    from: {groups: [web]}
    to:   {services: [db]}
  - name: metrics
    from: {groups: [web, db]}
    to:   {groups: [monitoring], ports: ["9100/tcp"]}
  - name: ping
    from: {groups: [web, db, monitoring]}
    to:   {any: true, proto: icmp}
`

// policyV2 also lets web reach db's ssh.
const policyV2 = policyV1 + `  - name: web-ssh
    from: {groups: [web]}
    to:   {hosts: [db1], ports: ["22/tcp"]}
`

// TestNetns_Policy: four agents in groups web, db, monitoring and none; a CA-signed policy
// applied on one host reaches all, is enforced at both ends, survives a restart, reaches a
// joiner; a document signed by another CA is refused.
func TestNetns_Policy(t *testing.T) { netnsPolicy(t, "") }

// TestNetns_PolicyL2: the same in encrypted L2, the IP packets judged inside the frames
// (ARP passes, or nothing would resolve).
func TestNetns_PolicyL2(t *testing.T) { netnsPolicy(t, "mode: l2\n") }

func netnsPolicy(t *testing.T, mode string) {
	nodes := gossipLab(t, "web1", "db1", "mon1", "none1")
	web, db, mon, none := nodes[0], nodes[1], nodes[2], nodes[3]
	key := gossipKeyB64(t)
	caDir := t.TempDir()
	caCrt, caKey := writeCA(t, caDir, "cluster")
	evilCrt, evilKey := writeCA(t, caDir, "evil")
	extra := func(groups, more string) string {
		return fmt.Sprintf("%sgroups: [%s]\npolicy_ca_file: %s\n%s", mode, groups, caCrt, more)
	}
	cfg := map[*node]string{
		web: gossipConfig(web, key) + extra("web", ""),
		db:  gossipConfig(db, key, web.underlay) + extra("db", "services:\n  - name: db\n    port: 5432\n"),
		mon: gossipConfig(mon, key, web.underlay) + extra("monitoring", ""),
	}
	// The ungrouped host enforces nothing itself (a local policy_file allowing all wins over
	// gossip there): what stops it is the receivers' inbound check.
	allowAll := filepath.Join(t.TempDir(), "allow.yaml")
	if err := os.WriteFile(allowAll, []byte("default: allow\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg[none] = gossipConfig(none, key, web.underlay) + extra("", "policy_file: "+allowAll+"\n")
	for _, n := range []*node{web, db, mon} {
		n.start(cfg[n])
	}
	three := []*node{web, db, mon}
	eventually(t, 30*time.Second, "all pairs ping", func() error { return allPairsPing(three) })
	addr := map[*node]string{}
	for _, n := range three {
		addr[n] = n.status().Address
	}
	db.serve(t, "5432/tcp", "22/tcp", "5432/udp")
	mon.serve(t, "9100/tcp")
	web.serve(t, "8080/tcp")
	eventually(t, 20*time.Second, "db service in web's catalog", func() error {
		out, err := web.cli("resolve", "db")
		if err != nil || !strings.Contains(out, addr[db]) {
			return fmt.Errorf("resolve db: %v %s", err, out)
		}
		return nil
	})
	if !web.reach("tcp", addr[db], 22) {
		t.Fatal("without a policy web cannot reach db:22")
	}

	// Apply v1 on web; all three converge.
	policyFile := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(policyFile, []byte(policyV1), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := web.cli("policy", "apply", policyFile, "--ca-key", caKey, "--ca-cert", caCrt)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(strings.TrimSpace(out))
	v1 := web.policy().Version
	eventually(t, 20*time.Second, "v1 everywhere", func() error {
		for _, n := range three {
			if st := n.policy(); st.Version != v1 || st.Source != "gossip" {
				return fmt.Errorf("%s holds %d (%s)", n.name, st.Version, st.Source)
			}
		}
		return nil
	})

	// The joiner gets v1 by anti-entropy (held and passed on; its local file is in force).
	start := time.Now()
	none.start(cfg[none])
	addr[none] = none.status().Address
	eventually(t, 30*time.Second, "the joiner gets v1", func() error {
		if st := none.policy(); st.Version != v1 || st.Source != "file" {
			return fmt.Errorf("none holds %d (%s)", st.Version, st.Source)
		}
		return nil
	})
	t.Logf("joiner received the policy %.1fs after its start", time.Since(start).Seconds())

	// web reaches db's service port, TCP and UDP (request and reply), not db's ssh.
	eventually(t, 10*time.Second, "web → db:5432/tcp", func() error {
		if !web.reach("tcp", addr[db], 5432) {
			return errors.New("refused")
		}
		return nil
	})
	if !web.reach("udp", addr[db], 5432) {
		t.Error("web → db:5432/udp (request and reply) refused")
	}
	if web.reach("tcp", addr[db], 22) {
		t.Error("web reached db:22 under v1")
	}
	// Groups reach every host's policy index by gossip, a rebuild (debounced) after the
	// member event: poll as for web → db above (CI once saw this refused in L2 right after
	// the first check; see the closing note of issues 22/23).
	eventually(t, 10*time.Second, "web/db → monitoring:9100", func() error {
		if !web.reach("tcp", addr[mon], 9100) || !db.reach("tcp", addr[mon], 9100) {
			return errors.New("refused")
		}
		return nil
	})
	if mon.reach("tcp", addr[web], 8080) {
		t.Error("monitoring reached web:8080")
	}
	if err := mon.ping(addr[web], 1); err != nil {
		t.Errorf("monitoring cannot ping web: %v", err)
	}
	// The ungrouped host reaches nothing: it sends (its own policy allows all), the
	// receivers refuse.
	if err := none.ping(addr[db], 2); err == nil {
		t.Error("none pinged db under default: deny")
	}
	for _, c := range []struct {
		to    *node
		proto string
		port  int
	}{{db, "tcp", 5432}, {db, "udp", 5432}, {db, "tcp", 22}, {mon, "tcp", 9100}, {web, "tcp", 8080}} {
		if none.reach(c.proto, addr[c.to], c.port) {
			t.Errorf("none reached %s:%d/%s", c.to.name, c.port, c.proto)
		}
	}
	// Counters agree with what the test saw: db refused none inbound (default, counted
	// per peer and as policy_denied), admitted web's TCP and UDP flows by web-db; web
	// refused its own ssh attempts outbound by the default.
	dbSt := db.policy()
	if hits, _ := ruleStat(dbSt, "web-db"); hits < 2 {
		t.Errorf("db: web-db admitted %d flows, want >= 2 (tcp and udp)", hits)
	}
	if _, drops := ruleStat(dbSt, "default"); drops == 0 {
		t.Error("db: the default refused nothing of none's")
	}
	if n := db.status().Drops["policy_denied"]; n == 0 {
		t.Error("db: no policy_denied drops")
	}
	var noneDrops uint64
	for _, p := range db.peers() {
		if p.Name == "none1" {
			noneDrops = p.Drops["policy_denied"]
		}
	}
	if noneDrops == 0 {
		t.Error("db: no policy_denied drops counted for peer none1")
	}
	if _, drops := ruleStat(web.policy(), "default"); drops == 0 {
		t.Error("web: the default refused none of its ssh attempts")
	}
	for _, c := range []struct {
		on                   *node
		from, to, port, want string
	}{
		{web, "web1", "db1", "5432/tcp", `allow by rule 0 "web-db"`},
		{web, "web1", "db1", "22/tcp", "deny by default"},
		{db, "none1", "db1", "5432/tcp", "deny by default"},
		{db, "web1", "mon1", "9100/tcp", `allow by rule 1 "metrics"`},
		{mon, "mon1", "web1", "icmp", `allow by rule 2 "ping"`},
	} {
		out, err := c.on.cli("policy", "test", "--from", c.from, "--to", c.to, "--port", c.port)
		if err != nil || !strings.Contains(out, c.want) {
			t.Errorf("policy test %s→%s %s on %s: %q %v, want %q", c.from, c.to, c.port, c.on.name, out, err, c.want)
		}
	}
	if out, err := web.cli("policy", "show"); err == nil {
		t.Logf("web1: weft policy show\n%s", out)
	}

	// A document signed by another CA is refused and counted; nothing changes.
	if out, err := web.cli("policy", "apply", policyFile, "--ca-key", evilKey, "--ca-cert", evilCrt); err == nil {
		t.Fatalf("a document of another CA was applied: %s", out)
	}
	if st := web.policy(); st.Version != v1 || st.Refused["unknown_ca"] != 1 {
		t.Errorf("after a forged apply: version %d (want %d), refused %v", st.Version, v1, st.Refused)
	}

	// A change applied on another host (mon) takes effect everywhere.
	if err := os.WriteFile(policyFile, []byte(policyV2), 0o644); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if out, err := mon.cli("policy", "apply", policyFile, "--ca-key", caKey, "--ca-cert", caCrt); err != nil {
		t.Fatal(out, err)
	}
	took := eventually(t, 20*time.Second, "web → db:22 under v2", func() error {
		if !web.reach("tcp", addr[db], 22) {
			return errors.New("refused")
		}
		return nil
	})
	v2 := mon.policy().Version
	eventually(t, 20*time.Second, "v2 everywhere", func() error {
		for _, n := range nodes {
			if st := n.policy(); st.Version != v2 {
				return fmt.Errorf("%s holds %d", n.name, st.Version)
			}
		}
		return nil
	})
	t.Logf("policy change applied on mon1: in force on web1 and db1 (web→db:22 opens) after %.2fs, v2 on all four after %.2fs", took.Seconds(), time.Since(start).Seconds())

	// Restart keeps the newest policy.
	db.kill()
	// As TestNetns_GossipMembership: wait until the others see db failed (its session torn
	// down), since the tunnel has no "data sent, nothing back" re-handshake timer yet, and a
	// peer restarted within the failure-detection time stays on a dead session.
	eventually(t, 30*time.Second, "db failed on web", func() error {
		if st := web.members()["db1"].Status; st != "failed" || web.hasPeer(db.pub()) {
			return fmt.Errorf("web sees db1 %q", st)
		}
		return nil
	})
	db.start(cfg[db])
	if st := db.policy(); st.Version != v2 || st.Source != "gossip" || len(st.Rules) != 5 {
		t.Fatalf("after a restart db holds version %d (%s, %d rules), want %d", st.Version, st.Source, len(st.Rules), v2)
	}
	eventually(t, 30*time.Second, "web → db:22 after db's restart", func() error {
		if !web.reach("tcp", addr[db], 22) {
			return errors.New("refused")
		}
		return nil
	})
	if none.reach("tcp", addr[db], 5432) {
		t.Error("none reached db after db's restart")
	}
}
