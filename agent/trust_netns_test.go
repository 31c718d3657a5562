package agent_test

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"

	"github.com/weftnet/weft/agent"
	"github.com/weftnet/weft/agent/api"
	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/discovery/catalog"
	"github.com/weftnet/weft/discovery/membership"
	"github.com/weftnet/weft/identity"
	"github.com/weftnet/weft/internal/netlab"
)

// A hostile member holds the gossip key and writes its own Serf tags. It is the test binary
// run as a helper inside a namespace ("hostile KEY BIND JOIN"): it reads one JSON command a
// line from stdin, creating Serf members (each on its own port) with exactly the tags given,
// changing their tags, or stopping them, and answers "ok" or "error: ..." a line.

type hostileCmd struct {
	Name  string            `json:"name"`
	Port  int               `json:"port,omitempty"`
	Tags  map[string]string `json:"tags,omitempty"`
	Leave bool              `json:"leave,omitempty"`
	// KeyQuery, on an existing member: send this Serf keyring query with Key, filtered to
	// Filter (day2_netns_test.go).
	KeyQuery string   `json:"key_query,omitempty"`
	Key      []byte   `json:"key,omitempty"`
	Filter   []string `json:"filter,omitempty"`
	// Event, on an existing member: send each of Payloads as a Serf user event of this name,
	// Gap apart (hostile_netns_test.go's policy chunk flood).
	Event    string        `json:"event,omitempty"`
	Payloads [][]byte      `json:"payloads,omitempty"`
	Gap      time.Duration `json:"gap,omitempty"`
}

func hostileMain(args []string) error {
	key, err := base64.StdEncoding.DecodeString(args[0])
	if err != nil {
		return err
	}
	bind, join := args[1], args[2]
	members := map[string]*serf.Serf{}
	defer func() {
		for _, s := range members {
			_ = s.Shutdown()
		}
	}()
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(nil, 4<<20) // a user event flood is one long line
	for in.Scan() {
		var c hostileCmd
		if err := json.Unmarshal(in.Bytes(), &c); err != nil {
			return err
		}
		err := func() error {
			if s, ok := members[c.Name]; ok {
				if c.KeyQuery != "" {
					return hostileKeyQuery(s, c)
				}
				if c.Event != "" {
					for _, p := range c.Payloads {
						if err := s.UserEvent(c.Event, p, false); err != nil {
							return err
						}
						time.Sleep(c.Gap)
					}
					return nil
				}
				if c.Leave {
					delete(members, c.Name)
					_ = s.Leave()
					return s.Shutdown()
				}
				return s.SetTags(c.Tags)
			}
			ml := memberlist.DefaultLANConfig()
			ml.Name, ml.BindAddr, ml.BindPort = c.Name, bind, c.Port
			ml.LogOutput = io.Discard
			if err := membership.SealGossip(ml, key); err != nil { // weft's gossip encryption
				return err
			}
			sc := serf.DefaultConfig()
			sc.Init()
			sc.NodeName, sc.Tags, sc.MemberlistConfig, sc.LogOutput = c.Name, c.Tags, ml, io.Discard
			s, err := serf.Create(sc)
			if err != nil {
				return err
			}
			members[c.Name] = s
			_, err = s.Join([]string{join}, true)
			return err
		}()
		if err != nil {
			fmt.Println("error:", err)
			continue
		}
		fmt.Println("ok")
	}
	return in.Err()
}

// hostile drives a hostileMain process.
type hostile struct {
	t   *testing.T
	in  io.WriteCloser
	out *bufio.Reader
	cmd *exec.Cmd
}

func startHostile(t *testing.T, h *netlab.Host, key, bind, join string) *hostile {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := h.Command(context.Background(), self, "-test.run=^$", "hostile", key, bind, join)
	cmd.Env = append(os.Environ(), helperEnv+"=hostile")
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = in.Close(); _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return &hostile{t: t, in: in, out: bufio.NewReader(out), cmd: cmd}
}

// announce creates member name (on port) or replaces its tags.
func (x *hostile) do(c hostileCmd) {
	x.t.Helper()
	b, _ := json.Marshal(c)
	if _, err := fmt.Fprintf(x.in, "%s\n", b); err != nil {
		x.t.Fatal(err)
	}
	line, err := x.out.ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ok" {
		x.t.Fatalf("hostile %s: %q %v", c.Name, line, err)
	}
}

// forgedInfo is the node-info tag of an L3 host on VNI 1 with the given claims.
func forgedInfo(t *testing.T, key crypto.PublicKey, subnet string, static bool) string {
	t.Helper()
	n := membership.NodeInfo{PublicKey: key, DataPort: 51820, VNI: 1, Proto: agent.ProtocolVersion, Mode: 3,
		Subnet: netip.MustParsePrefix(subnet), Static: static}
	if static {
		n.StaticSince = 1 // claims to be the oldest static claimant
	}
	tag, err := n.EncodeTag()
	if err != nil {
		t.Fatal(err)
	}
	return tag
}

func freshKey(t *testing.T) crypto.PublicKey {
	t.Helper()
	k, err := crypto.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k.Public()
}

// refusedAs waits until n shows member name refused with reason.
func refusedAs(t *testing.T, n *node, name, reason string) {
	t.Helper()
	eventually(t, 30*time.Second, fmt.Sprintf("%s refuses %s as %s", n.name, name, reason), func() error {
		m, ok := n.members()[name]
		if !ok || m.Refused != reason {
			return fmt.Errorf("%s sees %s as %+v", n.name, name, m)
		}
		return nil
	})
}

// peerAllowed returns the allowed IPs n has for the peer with key, or nil when not a peer.
func peerAllowed(n *node, key string) []string {
	for _, p := range n.peers() {
		if p.PublicKey == key {
			return p.AllowedIPs
		}
	}
	return nil
}

// TestNetns_TrustHostileMember: three honest agents and a hostile member that holds the
// gossip key and writes its own tags. It announces a victim's /32, a static 0.0.0.0/0 and the
// victim's public key: honest traffic keeps flowing, the victim keeps its subnet, and every
// claim shows as refused in `weft members --json` and the metric.
func TestNetns_TrustHostileMember(t *testing.T) {
	nodes := gossipLab(t, "a", "b", "c", "evil")
	a, b, c, evil := nodes[0], nodes[1], nodes[2], nodes[3]
	key := gossipKeyB64(t)
	a.start(gossipConfig(a, key) + "metrics_listen: 127.0.0.1:9101\n")
	for _, n := range []*node{b, c} {
		n.start(gossipConfig(n, key, a.underlay))
	}
	honest := []*node{a, b, c}
	eventually(t, 30*time.Second, "all pairs ping", func() error { return allPairsPing(honest) })
	victimSubnet, victimAddr := b.status().Subnet, b.status().Address

	x := startHostile(t, evil.host, key, evil.underlay, a.underlay+":7946")
	x.do(hostileCmd{Name: "evil-32", Port: 7950, Tags: map[string]string{membership.TagNodeInfo: forgedInfo(t, freshKey(t), victimAddr+"/32", false)}})
	x.do(hostileCmd{Name: "evil-default", Port: 7951, Tags: map[string]string{membership.TagNodeInfo: forgedInfo(t, freshKey(t), "0.0.0.0/0", true)}})
	x.do(hostileCmd{Name: "evil-static-32", Port: 7952, Tags: map[string]string{membership.TagNodeInfo: forgedInfo(t, freshKey(t), victimAddr+"/32", true)}})
	for _, n := range []*node{a, c} {
		refusedAs(t, n, "evil-32", "subnet_not_cluster_slot")
		refusedAs(t, n, "evil-default", "static_not_allowed")
		refusedAs(t, n, "evil-static-32", "static_not_allowed")
	}
	for _, n := range []*node{a, c} {
		if got := peerAllowed(n, b.pub()); !slices.Equal(got, []string{victimSubnet}) {
			t.Fatalf("%s: the victim's allowed IPs are %v, want [%s]", n.name, got, victimSubnet)
		}
		if ps := n.peers(); len(ps) != 2 {
			t.Fatalf("%s has %d peers, want the 2 honest ones: %+v", n.name, len(ps), ps)
		}
	}
	if err := allPairsPing(honest); err != nil {
		t.Fatalf("honest traffic under forged claims: %v", err)
	}
	transfer(t, a, b, victimAddr, 5001, 4<<20)
	if got := b.status().Subnet; got != victimSubnet {
		t.Fatalf("the victim's subnet moved from %s to %s", victimSubnet, got)
	}
	members, err := a.cli("members")
	if err != nil || !strings.Contains(members, "REFUSED") || !strings.Contains(members, "static_not_allowed") {
		t.Fatalf("weft members shows no refusals: %v\n%s", err, members)
	}
	t.Logf("weft members on a:\n%s", members)

	// The victim's public key, with a fresh /24: peered with neither, reported as a conflict.
	// The copy announces b's own /24 too, seconds after b started: b's allocator would once
	// count that as a tie and move b (CI drew the copier's former fixed /24 for b, and b
	// renumbered); a copy of a host's own key never moves it.
	x.do(hostileCmd{Name: "evil-key", Port: 7953, Tags: map[string]string{membership.TagNodeInfo: forgedInfo(t, b.priv.Public(), victimSubnet, false)}})
	for _, n := range []*node{a, c} {
		refusedAs(t, n, "evil-key", "duplicate_key")
		refusedAs(t, n, "b", "duplicate_key")
		if cs := n.status().Conflicts; len(cs) != 1 || !strings.Contains(cs[0], b.pub()) {
			t.Fatalf("%s: conflicts %v", n.name, cs)
		}
		if peerAllowed(n, b.pub()) != nil {
			t.Fatalf("%s still peers the duplicated key", n.name)
		}
	}
	refusedAs(t, b, "evil-key", "own_key")
	if err := allPairsPing([]*node{a, c}); err != nil {
		t.Fatalf("a ↔ c while b's key is duplicated: %v", err)
	}
	// The copier goes: b is peered again, everything flows.
	x.do(hostileCmd{Name: "evil-key", Leave: true})
	// a and c peer b afresh and start the handshake (b still holds its old sessions with
	// them, which they forgot when they withdrew it).
	eventually(t, 30*time.Second, "b peered again after the copier left", func() error {
		if err := a.ping(victimAddr, 1); err != nil {
			return err
		}
		return c.ping(victimAddr, 1)
	})
	if err := allPairsPing(honest); err != nil {
		t.Fatal(err)
	}
	transfer(t, c, b, victimAddr, 5002, 4<<20)

	metrics, err := a.httpGet("http://127.0.0.1:9101/metrics")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`weft_gossip_claims_refused_total{reason="subnet_not_cluster_slot"} 1` + "\n",
		`weft_gossip_claims_refused_total{reason="static_not_allowed"} 2` + "\n",
		`weft_gossip_claims_refused_total{reason="duplicate_key"} 2` + "\n",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if t.Failed() {
		t.Logf("metrics:\n%s", grepLines(metrics, "claims_refused"))
	}
	// Logged once per change, as counted: five changes, however often the tags were re-read.
	if n := strings.Count(a.logs(), "member's claims refused; not peering"); n != 5 {
		t.Fatalf("a logged %d refusals, want 5 (one per change):\n%s", n, grepLines(a.logs(), "refused"))
	}
}

// lab CA helpers

type labCA struct {
	cert *identity.Certificate
	key  ed25519.PrivateKey
}

func newLabCA(t *testing.T, name string) labCA {
	t.Helper()
	c, k, err := identity.NewCA(identity.CASpec{Name: name, NotBefore: time.Now().AddDate(0, 0, -30), NotAfter: time.Now().AddDate(2, 0, 0)}, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return labCA{cert: c, key: k}
}

func (ca labCA) sign(t *testing.T, name string, key crypto.PublicKey, from, to time.Time, groups []string, prefixes ...string) *identity.Certificate {
	t.Helper()
	spec := identity.HostSpec{Name: name, PublicKey: key, NotBefore: from, NotAfter: to, Groups: groups}
	for _, p := range prefixes {
		spec.Prefixes = append(spec.Prefixes, netip.MustParsePrefix(p))
	}
	c, err := identity.Sign(ca.cert, ca.key, spec)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func writePEM(t *testing.T, path string, c *identity.Certificate) {
	t.Helper()
	b, err := c.MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	// Write then rename, as an operator's tooling would: a reload never reads half a file.
	if err := os.WriteFile(path+".tmp", b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}

func certTag(t *testing.T, c *identity.Certificate) string {
	t.Helper()
	s, err := c.EncodeTag()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func fingerprint(t *testing.T, c *identity.Certificate) string {
	t.Helper()
	fp, err := c.Fingerprint()
	if err != nil {
		t.Fatal(err)
	}
	return fp.String()
}

// TestNetns_TrustCA: with a cluster CA, members with a certificate of another CA, an expired
// or a blocklisted one, none, or one that does not cover the subnet they announce are not
// peered and their services are not answered; a renewed certificate and a changed blocklist
// are picked up without a restart (`weft reload` and SIGHUP); an agent whose certificate is
// of another CA or key refuses to start and says what to do.
func TestNetns_TrustCA(t *testing.T) {
	nodes := gossipLab(t, "a", "b", "c", "evil")
	a, b, c, evil := nodes[0], nodes[1], nodes[2], nodes[3]
	key := gossipKeyB64(t)
	ca, other := newLabCA(t, "cluster"), newLabCA(t, "other")
	now := time.Now()
	year := now.AddDate(1, 0, -1)
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	writePEM(t, caFile, ca.cert)

	blocked := ca.sign(t, "x-blocked", freshKey(t), now.Add(-time.Hour), year, nil, "10.42.0.0/16")
	pkiConf := func(n *node, notAfter time.Time, groups []string, subnet string) string {
		cert := ca.sign(t, n.name, n.priv.Public(), now.Add(-time.Hour), notAfter, groups, subnet)
		writePEM(t, filepath.Join(n.dir, "host.crt"), cert)
		bl := filepath.Join(n.dir, "blocklist")
		if err := os.WriteFile(bl, []byte(fingerprint(t, blocked)+" # x-blocked\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("pki:\n  ca: %s\n  cert: %s\n  blocklist: %s\n", caFile, filepath.Join(n.dir, "host.crt"), bl)
	}
	// The certificates pin each host's subnet; c's expires in 3 days (a warning).
	a.start(gossipConfig(a, key) + pkiConf(a, year, []string{"web"}, "10.42.1.0/24"))
	b.start(gossipConfig(b, key, a.underlay) + pkiConf(b, year, []string{"db"}, "10.42.2.0/24"))
	c.start(gossipConfig(c, key, a.underlay) + pkiConf(c, now.Add(72*time.Hour), nil, "10.42.3.0/24"))
	honest := []*node{a, b, c}
	eventually(t, 30*time.Second, "all pairs ping with certificates", func() error { return allPairsPing(honest) })
	if sn := b.status().Subnet; sn != "10.42.2.0/24" {
		t.Fatalf("b took subnet %s, its certificate pins 10.42.2.0/24", sn)
	}
	if st := c.status(); st.Certificate == nil || len(st.Certificate.Warnings) != 1 || !strings.Contains(st.Certificate.Warnings[0], "expires in") {
		t.Fatalf("c's status does not warn of its expiring certificate: %+v", st.Certificate)
	}
	if g := a.members()["b"].Groups; !slices.Equal(g, []string{"db"}) {
		t.Fatalf("a sees b's groups as %v", g)
	}

	// Hostile members, each with a service in its catalog tag.
	svc, err := catalog.EncodeCatalog([]catalog.ServiceHealth{{Service: catalog.Service{Name: "evil", Port: 80}, Health: catalog.HealthPassing}})
	if err != nil {
		t.Fatal(err)
	}
	x := startHostile(t, evil.host, key, evil.underlay, a.underlay+":7946")
	type forged struct {
		name, subnet, reason string
		cert                 *identity.Certificate
		key                  crypto.PublicKey
	}
	k := []crypto.PublicKey{freshKey(t), freshKey(t), freshKey(t), freshKey(t), freshKey(t), freshKey(t)}
	cases := []forged{
		{"x-good", "10.42.9.0/24", "", ca.sign(t, "x-good", k[0], now.Add(-time.Hour), year, []string{"web"}, "10.42.9.0/24"), k[0]},
		{"x-otherca", "10.42.10.0/24", "unknown_ca", other.sign(t, "x-otherca", k[1], now.Add(-time.Hour), year, nil, "10.42.10.0/24"), k[1]},
		{"x-expired", "10.42.11.0/24", "expired", ca.sign(t, "x-expired", k[2], now.AddDate(0, 0, -10), now.Add(-time.Hour), nil, "10.42.11.0/24"), k[2]},
		{"x-blocked", "10.42.12.0/24", "blocklisted", blocked, crypto.PublicKey(blocked.PublicKey)},
		{"x-pinned", "10.42.8.0/24", "prefix_not_allowed", ca.sign(t, "x-pinned", k[3], now.Add(-time.Hour), year, nil, "10.42.7.0/24"), k[3]},
		{"x-nocert", "10.42.13.0/24", "no_certificate", nil, k[4]},
		{"x-othername", "10.42.14.0/24", "name_mismatch", ca.sign(t, "b", k[5], now.Add(-time.Hour), year, nil, "10.42.14.0/24"), k[5]},
	}
	for i, f := range cases {
		tags := map[string]string{membership.TagNodeInfo: forgedInfo(t, f.key, f.subnet, false), catalog.CatalogTagKey: svc}
		if f.cert != nil {
			tags[identity.TagKey] = certTag(t, f.cert)
		}
		x.do(hostileCmd{Name: f.name, Port: 7960 + i, Tags: tags})
	}
	for _, n := range []*node{a, c} {
		for _, f := range cases[1:] {
			refusedAs(t, n, f.name, f.reason)
		}
		eventually(t, 30*time.Second, n.name+" peers x-good and answers its service only", func() error {
			if peerAllowed(n, cases[0].key.String()) == nil {
				return fmt.Errorf("x-good (valid certificate) is not peered")
			}
			ins, err := api.NewClient(n.sock).Instances(context.Background(), "evil", true)
			if err != nil {
				return err
			}
			if len(ins) != 1 || ins[0].Node != "x-good" {
				return fmt.Errorf("instances of evil: %+v", ins)
			}
			return nil
		})
		for _, f := range cases[1:] {
			if peerAllowed(n, f.key.String()) != nil {
				t.Fatalf("%s peers %s", n.name, f.name)
			}
		}
	}
	if err := allPairsPing(honest); err != nil {
		t.Fatalf("honest traffic with hostile members: %v", err)
	}
	transfer(t, a, b, b.status().Address, 5003, 4<<20)

	// Renewal without restart: c gets a year-long certificate with a group; `weft reload`.
	writePEM(t, filepath.Join(c.dir, "host.crt"), ca.sign(t, "c", c.priv.Public(), now.Add(-time.Hour), year, []string{"renewed"}, "10.42.3.0/24"))
	if out, err := c.cli("reload"); err != nil {
		t.Fatalf("reload: %v %s", err, out)
	}
	if st := c.status(); st.Certificate == nil || len(st.Certificate.Warnings) != 0 || st.Certificate.NotAfter.Before(now.AddDate(0, 11, 0)) {
		t.Fatalf("c's status after the renewal: %+v", st.Certificate)
	}
	eventually(t, 30*time.Second, "a sees c's renewed certificate", func() error {
		if g := a.members()["c"].Groups; !slices.Equal(g, []string{"renewed"}) {
			return fmt.Errorf("c's groups on a: %v", g)
		}
		return nil
	})
	// A broken renewal is refused and changes nothing.
	if err := os.WriteFile(filepath.Join(c.dir, "host.crt"), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := c.cli("reload"); err == nil {
		t.Fatalf("reload of a broken certificate succeeded: %s", out)
	}

	// Revocation without restart: b's certificate is blocklisted on a, then SIGHUP.
	bl := filepath.Join(a.dir, "blocklist")
	if err := os.WriteFile(bl, []byte(fingerprint(t, blocked)+"\n"+b.status().Certificate.Fingerprint+" # b, revoked\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	refusedAs(t, a, "b", "blocklisted")
	eventually(t, 10*time.Second, "a withdraws b", func() error {
		if peerAllowed(a, b.pub()) != nil {
			return fmt.Errorf("a still peers b")
		}
		return nil
	})
	if err := a.ping(c.status().Address, 1); err != nil {
		t.Fatalf("a → c after revoking b: %v", err)
	}
	// Unrevoked by `weft reload`: b is peered again.
	if err := os.WriteFile(bl, []byte(fingerprint(t, blocked)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := a.cli("reload"); err != nil {
		t.Fatalf("reload: %v %s", err, out)
	}
	eventually(t, 30*time.Second, "b peered again", func() error { return a.ping(b.status().Address, 1) })

	// An agent with a certificate of another CA refuses to start and says what to do.
	bad := filepath.Join(evil.dir, "weft.yaml")
	if err := os.MkdirAll(filepath.Join(evil.dir, "state"), 0o700); err != nil {
		t.Fatal(err)
	}
	writePEM(t, filepath.Join(evil.dir, "host.crt"), other.sign(t, "evil", evil.priv.Public(), now.Add(-time.Hour), year, nil))
	conf := fmt.Sprintf("name: evil\nstate_dir: %s\ncontrol_socket: %s\n%spki:\n  ca: %s\n  cert: %s\n", filepath.Join(evil.dir, "state"), evil.sock,
		gossipConfig(evil, key), caFile, filepath.Join(evil.dir, "host.crt"))
	if err := os.WriteFile(bad, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := evil.host.Command(ctx, weftBin(t), "agent", "-c", bad).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "unknown CA") || !strings.Contains(string(out), "weft ca sign") {
		t.Fatalf("agent with another CA's certificate: %v\n%s", err, out)
	}
	t.Logf("agent with another CA's certificate: %s", strings.TrimSpace(string(out)))
}

// TestNetns_TrustHostileMemberL2: in encrypted L2, a hostile member announces a victim's TAP
// MAC under its own key: refused (mac_not_derived), the victim's MAC stays bound to the
// victim in the FDB, and traffic between the honest hosts keeps flowing.
func TestNetns_TrustHostileMemberL2(t *testing.T) {
	nodes := gossipLab(t, "a", "b", "evil")
	a, b, evil := nodes[0], nodes[1], nodes[2]
	key := gossipKeyB64(t)
	a.start("mode: l2\n" + gossipConfig(a, key))
	b.start("mode: l2\n" + gossipConfig(b, key, a.underlay))
	eventually(t, 30*time.Second, "a and b ping in l2", func() error { return allPairsPing([]*node{a, b}) })
	out, err := b.host.Run("cat", "/sys/class/net/weft0/address")
	if err != nil {
		t.Fatal(err)
	}
	hw, err := net.ParseMAC(strings.TrimSpace(out))
	if err != nil {
		t.Fatal(err)
	}
	n := membership.NodeInfo{PublicKey: freshKey(t), DataPort: 51820, VNI: 1, Proto: agent.ProtocolVersion, Mode: 2,
		Subnet: netip.MustParsePrefix("10.42.250.0/24")}
	copy(n.MAC[:], hw)
	tag, err := n.EncodeTag()
	if err != nil {
		t.Fatal(err)
	}
	x := startHostile(t, evil.host, key, evil.underlay, a.underlay+":7946")
	x.do(hostileCmd{Name: "evil-mac", Port: 7950, Tags: map[string]string{membership.TagNodeInfo: tag}})
	refusedAs(t, a, "evil-mac", "mac_not_derived")
	fdb, err := api.NewClient(a.sock).FDB(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	owner := ""
	for _, e := range fdb {
		if e.MAC == hw.String() {
			owner = e.Remote
		}
	}
	if owner != "b" {
		t.Fatalf("b's MAC %s is bound to %q in a's FDB: %+v", hw, owner, fdb)
	}
	if err := allPairsPing([]*node{a, b}); err != nil {
		t.Fatal(err)
	}
	transfer(t, a, b, b.status().Address, 5004, 4<<20)
}
