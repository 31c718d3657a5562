package policydist

import (
	"crypto/ed25519"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftnet/weft/discovery/membership"
	"github.com/weftnet/weft/identity"
	"github.com/weftnet/weft/policy"
)

type policyCA struct {
	cert *identity.Certificate
	key  ed25519.PrivateKey
}

func newPolicyCA(t testing.TB, name string) policyCA {
	t.Helper()
	now := time.Now()
	c, k, err := identity.NewCA(identity.CASpec{Name: name, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return policyCA{cert: c, key: k}
}

func (ca policyCA) pool(t testing.TB) *identity.CAPool {
	t.Helper()
	p, err := ca.cert.MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(file, p, 0o644); err != nil {
		t.Fatal(err)
	}
	pool, err := identity.LoadCAPoolFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return pool
}

func (ca policyCA) sign(t testing.TB, version uint64, doc string) []byte {
	t.Helper()
	env, err := identity.SignDocument(ca.cert, ca.key, "policy", version, []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// host is a Distributor with what the agent's network-policy subsystem does on Install: the
// document is compiled into a real engine and the source becomes "gossip".
type host struct {
	d      *Distributor
	engine *policy.Engine
	dir    string
	bl     atomic.Pointer[identity.Blocklist]

	mu     sync.Mutex
	source string
	sent   [][]byte
}

type noResolver struct{}

func (noResolver) Endpoint(netip.Addr) (policy.Endpoint, bool) { return policy.Endpoint{}, false }
func (noResolver) Service(string) []policy.Instance            { return nil }

func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, nil))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

// newHost starts a host keeping its state in dir ("": a new one); cas nil trusts no CA.
func newHost(t *testing.T, cas *identity.CAPool, dir string) *host {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	e, err := policy.New(policy.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	h := &host{engine: e, dir: dir, source: "none"}
	h.d = New(Deps{
		Name:      "h1",
		CAs:       cas,
		Blocklist: h.bl.Load,
		Install: func(doc *policy.Document) (bool, error) {
			set, err := policy.Compile(doc, noResolver{})
			if err != nil {
				return false, err
			}
			h.mu.Lock()
			h.engine.Load(set)
			h.source = "gossip"
			h.mu.Unlock()
			return true, nil
		},
		StatePath: filepath.Join(dir, "policy.signed"),
		UserEvent: func(name string, payload []byte) error {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.sent = append(h.sent, payload)
			return nil
		},
		Logger: testLog(t),
	})
	h.d.LoadKept()
	return h
}

// hostStatus is the part of the agent's PolicyStatus the distribution and Install make.
type hostStatus struct {
	Source  string
	Version uint64
	Refused map[string]uint64
}

func (h *host) status() hostStatus {
	st := h.d.Status() // not under h.mu: Install takes h.mu under the Distributor's lock
	h.mu.Lock()
	defer h.mu.Unlock()
	return hostStatus{Source: h.source, Version: st.Version, Refused: st.Refused}
}

// deliver feeds the chunks of env to d as gossip would.
func deliver(d *Distributor, env []byte, version uint64) {
	for _, c := range Chunks(env, version) {
		d.UserEvent(EventName, c)
	}
}

const denyDoc = "default: deny\nrules:\n  - name: ping\n    from: {any: true}\n    to: {any: true, proto: icmp}\n"

func TestPolicyDist_ChunksInstallNewest(t *testing.T) {
	ca := newPolicyCA(t, "ca")
	h := newHost(t, ca.pool(t), "")
	big := denyDoc
	for len(big) < 3000 { // several chunks
		big += "  - from: {groups: [web]}\n    to: {services: [db], ports: [\"5432/tcp\"]}\n"
	}
	env := ca.sign(t, 5, big)
	if n := len(Chunks(env, 5)); n < 5 {
		t.Fatalf("%d chunks for %d bytes", n, len(env))
	}
	deliver(h.d, env, 5)
	st := h.status()
	if st.Version != 5 || st.Source != "gossip" || h.engine.Current() == nil {
		t.Fatalf("status %+v", st)
	}
	// Kept across a restart.
	kept, err := os.ReadFile(filepath.Join(h.dir, "policy.signed"))
	if err != nil || string(kept) != string(env) {
		t.Fatalf("kept %d bytes, err %v", len(kept), err)
	}
	again := newHost(t, ca.pool(t), h.dir)
	if again.status().Version != 5 || again.engine.Current() == nil {
		t.Fatal("restart lost the policy")
	}
	// An older version changes nothing and is not a refusal.
	deliver(again.d, ca.sign(t, 4, "default: allow\n"), 4)
	if st := again.status(); st.Version != 5 || len(st.Refused) != 0 {
		t.Fatalf("after an older version: %+v", st)
	}
	// A newer one wins.
	deliver(again.d, ca.sign(t, 6, "default: allow\n"), 6)
	if v := again.status().Version; v != 6 {
		t.Fatalf("version %d after 6", v)
	}
}

// TestPolicyDist_Hostile: whoever holds the gossip key tries to install a policy.
func TestPolicyDist_Hostile(t *testing.T) {
	ca := newPolicyCA(t, "ca")
	evil := newPolicyCA(t, "ca") // same name, another key
	h := newHost(t, ca.pool(t), "")
	g := h.d

	deliver(g, evil.sign(t, 9, "default: allow\n"), 9)
	// The evil CA's envelope relabelled with the real CA's issuer: a bad signature.
	spoof := evil.sign(t, 8, "default: allow\n")
	fp, _ := ca.cert.Fingerprint()
	id := fp.Issuer()
	copy(spoof[4:4+identity.IssuerSize], id[:])
	deliver(g, spoof, 8)
	// A valid envelope, its chunks claiming another version.
	deliver(g, ca.sign(t, 3, denyDoc), 99)
	// A chunk set whose digest does not match.
	chunks := Chunks(ca.sign(t, 10, denyDoc), 10)
	chunks[0][len(chunks[0])-1] ^= 1
	for _, c := range chunks {
		g.UserEvent(EventName, c)
	}
	// Malformed chunks.
	g.UserEvent(EventName, []byte{1, 2, 3})
	g.UserEvent(EventName, append(make([]byte, 16), 5, 2, 0)) // index past count
	// Flood of half documents.
	for v := uint64(100); v < 100+policyMaxAssemblies+2; v++ {
		c := Chunks(make([]byte, 2*policyChunkData), v)
		g.UserEvent(EventName, c[0])
	}
	if v := h.status().Version; v != 0 || h.engine.Current() != nil {
		t.Fatalf("a hostile document was installed: version %d", v)
	}
	// After the flood a real document still gets through (the flood's partials are evicted).
	deliver(g, ca.sign(t, 200, denyDoc), 200)
	if v := h.status().Version; v != 200 {
		t.Fatalf("a real document after a flood of partials: version %d", v)
	}
	// Signed by the CA but not a policy.
	notPolicy, err := identity.SignDocument(ca.cert, ca.key, "blocklist", 250, []byte(denyDoc))
	if err != nil {
		t.Fatal(err)
	}
	deliver(g, notPolicy, 250)
	// Signed by the CA but an invalid document.
	deliver(g, ca.sign(t, 251, "default: maybe\n"), 251)

	st := h.status()
	if st.Version != 200 {
		t.Fatalf("a hostile document was installed: %+v", st)
	}
	for reason, want := range map[string]uint64{
		"unknown_ca": 1, "bad_signature": 1, "version_mismatch": 1, "bad_digest": 1, "bad_chunk": 2,
		"assembly_evicted": 3, // two by the flood, one by the real document
		"wrong_purpose":    1, "invalid_document": 1,
	} {
		if got := st.Refused[reason]; got != want {
			t.Errorf("refused %s = %d, want %d (all: %v)", reason, got, want, st.Refused)
		}
	}

	// Without policy_ca_file nothing from gossip is trusted.
	h2 := newHost(t, nil, "")
	deliver(h2.d, ca.sign(t, 1, denyDoc), 1)
	if st := h2.status(); st.Version != 0 || st.Refused["no_ca"] != 1 {
		t.Fatalf("without a CA: %+v", st)
	}
}

// TestPolicyDist_BlocklistedCA: once the CA's fingerprint is in pki.blocklist (a reload), a
// document it signed is refused; before, the same CA's document installs.
func TestPolicyDist_BlocklistedCA(t *testing.T) {
	ca := newPolicyCA(t, "ca")
	h := newHost(t, ca.pool(t), "")
	g := h.d
	deliver(g, ca.sign(t, 5, denyDoc), 5)
	if v := h.status().Version; v != 5 {
		t.Fatalf("the CA's document: version %d", v)
	}
	fp, _ := ca.cert.Fingerprint()
	h.bl.Store(identity.NewBlocklist(fp))
	deliver(g, ca.sign(t, 6, "default: allow\n"), 6)
	if v := h.status().Version; v != 5 {
		t.Fatalf("a revoked CA's document was installed: version %d", v)
	}
	if n := h.status().Refused["blocklisted"]; n != 1 {
		t.Fatalf("refusals %v, want blocklisted: 1", h.status().Refused)
	}
}

// TestDistributor_AntiEntropy: the designated sender (the lowest name among the alive
// members holding the newest version) re-sends to a lagging member, once per gap; a member
// with a lower name holding the same version keeps this host quiet.
func TestDistributor_AntiEntropy(t *testing.T) {
	ca := newPolicyCA(t, "ca")
	h := newHost(t, ca.pool(t), "")
	members := []membership.Member{
		{Name: "h1", Status: membership.StatusAlive},
		{Name: "h9", Status: membership.StatusAlive, Tags: map[string]string{VersionTag: FormatVersion(0)}},
	}
	var mu sync.Mutex
	h.d.deps.Members = func() []membership.Member {
		mu.Lock()
		defer mu.Unlock()
		return members
	}
	now := time.Now()
	h.d.deps.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	env := ca.sign(t, 3, denyDoc)
	if v, err := h.d.Apply(env); err != nil || v != 3 {
		t.Fatalf("Apply = %d, %v", v, err)
	}
	sent := func() int { h.mu.Lock(); defer h.mu.Unlock(); return len(h.sent) }
	n := len(Chunks(env, 3))
	if sent() != n {
		t.Fatalf("Apply sent %d chunks, want %d", sent(), n)
	}
	h.d.AntiEntropy() // within the gap: nothing
	if sent() != n {
		t.Fatalf("re-sent within %v", policyRebroadcastGap)
	}
	mu.Lock()
	now = now.Add(policyRebroadcastGap + time.Second)
	mu.Unlock()
	h.d.AntiEntropy()
	if sent() != 2*n {
		t.Fatalf("a lagging member was not sent the document: %d chunks", sent())
	}
	// A lower name holding version 3 is the designated sender.
	mu.Lock()
	members = append(members, membership.Member{Name: "a0", Status: membership.StatusAlive, Tags: map[string]string{VersionTag: FormatVersion(3)}})
	now = now.Add(policyRebroadcastGap + time.Second)
	mu.Unlock()
	h.d.AntiEntropy()
	if sent() != 2*n {
		t.Fatalf("sent although not designated: %d chunks", sent())
	}
	if _, err := h.d.Apply(env); err == nil {
		t.Fatal("the same version applied twice")
	}
	if v, ok := ParseVersion(FormatVersion(1 << 40)); !ok || v != 1<<40 {
		t.Fatalf("ParseVersion(FormatVersion) = %d, %v", v, ok)
	}
}
