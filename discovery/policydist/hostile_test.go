package policydist

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"sync"
	"testing"
	"time"

	"github.com/weftnet/weft/discovery/membership"
)

// cluster is a fake member list and clock for one host's Distributor.
type cluster struct {
	mu      sync.Mutex
	members []membership.Member
	now     time.Time
}

func (c *cluster) list() []membership.Member {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]membership.Member(nil), c.members...)
}

func (c *cluster) clock() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *cluster) advance(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

func (c *cluster) set(ms ...membership.Member) {
	c.mu.Lock()
	c.members = ms
	c.mu.Unlock()
}

// announcing is an alive member whose tags say it holds version v of envelope env (nil: no
// digest tag).
func announcing(name string, v uint64, env []byte) membership.Member {
	tags := map[string]string{"pv": FormatVersion(v)}
	if env != nil {
		sum := sha256.Sum256(env)
		tags["pd"] = hex.EncodeToString(sum[:8])
	}
	return membership.Member{Name: name, Status: membership.StatusAlive, Tags: tags}
}

// resendHost is h1 holding version 3, with "0evil" (lower name) announcing version 3 as
// well and never re-sending, and "h9" just joined with no policy.
func resendHost(t *testing.T) (*host, *cluster, int) {
	t.Helper()
	ca := newPolicyCA(t, "ca")
	h := newHost(t, ca.pool(t), "")
	env := ca.sign(t, 3, denyDoc)
	c := &cluster{now: time.Now()}
	c.set(membership.Member{Name: "h1", Status: membership.StatusAlive},
		announcing("0evil", 3, env), announcing("h9", 0, nil))
	h.d.deps.Members = c.list
	h.d.deps.Now = c.clock
	if _, err := h.d.Apply(env); err != nil {
		t.Fatal(err)
	}
	return h, c, len(Chunks(env, 3))
}

func (h *host) sentCount() int { h.mu.Lock(); defer h.mu.Unlock(); return len(h.sent) }

// TestDistributor_HostilePVFromUncertified: "0evil" holds the gossip key but no certificate
// (the trust layer does not accept it) and announces the newest version to be designated
// re-sender. Its tag must count for nothing: h1 re-sends to the joiner at its first
// anti-entropy round.
func TestDistributor_HostilePVFromUncertified(t *testing.T) {
	h, c, n := resendHost(t)
	h.d.deps.Trusted = func(name string) bool { return name != "0evil" }
	c.advance(AntiEntropyInterval)
	h.d.AntiEntropy()
	if got := h.sentCount(); got != 2*n {
		t.Fatalf("the joiner h9 was not sent the policy: %d chunks sent, want %d (an uncertified member's pv tag silenced anti-entropy)", got, 2*n)
	}
}

// TestDistributor_SilentResenderReplaced: "0evil" is accepted by the trust layer (or the
// trust layer cannot tell) and is designated, but never re-sends. h9 is still behind after
// resendBound: h1 takes over, so the joiner gets the policy within the bound.
func TestDistributor_SilentResenderReplaced(t *testing.T) {
	h, c, n := resendHost(t)
	deadline := c.clock().Add(2*AntiEntropyInterval + AntiEntropyInterval)
	for c.clock().Before(deadline) && h.sentCount() == n {
		c.advance(AntiEntropyInterval)
		h.d.AntiEntropy()
	}
	if got := h.sentCount(); got == n {
		t.Fatalf("a designated re-sender that never re-sends stalls catch-up: h9 still behind after %v, h1 sent nothing", 3*AntiEntropyInterval)
	}
	if got := h.d.Status().Refused["silent_resender"]; got != 1 {
		t.Errorf("silent_resender counted %d times, want 1", got)
	}
	// h9 caught up: nobody lags, nothing more is sent, and a later lag starts afresh.
	c.set(membership.Member{Name: "h1", Status: membership.StatusAlive},
		announcing("0evil", 3, nil), announcing("h9", 3, nil))
	sent := h.sentCount()
	c.advance(AntiEntropyInterval)
	h.d.AntiEntropy()
	if h.sentCount() != sent {
		t.Fatal("re-sent although nobody lags")
	}
}

// TestDistributor_ChunkFloodDoesNotBlockUpdate: a forger floods chunks of made-up documents
// (new keys, to evict the honest assembly; the honest version with other digests; copies of
// the honest key with junk in slots already filled) between every honest chunk. The update
// that a trusted member announces (pv and pd tags) still installs; a later update, its chunks
// spoiled by a racing forger, installs at the next re-send.
func TestDistributor_ChunkFloodDoesNotBlockUpdate(t *testing.T) {
	ca := newPolicyCA(t, "ca")
	h := newHost(t, ca.pool(t), "")
	big := denyDoc
	for len(big) < 3000 {
		big += "  - from: {groups: [web]}\n    to: {services: [db], ports: [\"5432/tcp\"]}\n"
	}
	env := ca.sign(t, 2, big)
	c := &cluster{now: time.Now()}
	c.set(membership.Member{Name: "h1", Status: membership.StatusAlive}, announcing("a1", 2, env))
	h.d.deps.Members = c.list
	h.d.deps.Now = c.clock
	h.d.MemberVersion(announcing("a1", 2, env))

	junk := make([]byte, policyChunkData)
	fake := uint64(0)
	forge := func(version uint64, digest uint64, idx, count int) []byte {
		p := binary.BigEndian.AppendUint64(nil, version)
		p = binary.BigEndian.AppendUint64(p, digest)
		return append(append(p, byte(idx), byte(count)), junk...)
	}
	honest := Chunks(env, 2)
	for i, ch := range honest {
		for range 3 * policyMaxAssemblies {
			fake++
			h.d.UserEvent(EventName, forge(2+fake%3, fake, 0, 100))
		}
		if i > 0 {
			h.d.UserEvent(EventName, append(append([]byte(nil), honest[0][:policyChunkHeader]...), junk...))
		}
		h.d.UserEvent(EventName, ch)
	}
	if v := h.status().Version; v != 2 {
		t.Fatalf("a chunk flood kept the announced update out: version %d, refused %v", v, h.status().Refused)
	}

	// Version 3: a forger racing the sender fills slot 1 with junk first; the digest fails
	// (counted), and the next re-send installs it.
	env3 := ca.sign(t, 3, big)
	c.set(membership.Member{Name: "h1", Status: membership.StatusAlive}, announcing("a1", 3, env3))
	h.d.MemberVersion(announcing("a1", 3, env3))
	ch3 := Chunks(env3, 3)
	spoil := append(append([]byte(nil), ch3[1][:policyChunkHeader]...), junk...)
	spoil[16] = 1
	h.d.UserEvent(EventName, spoil)
	deliver(h.d, env3, 3)
	if v := h.status().Version; v != 2 {
		t.Fatalf("version %d: the spoiled assembly installed?", v)
	}
	deliver(h.d, env3, 3)
	if st := h.status(); st.Version != 3 || st.Refused["bad_digest"] != 1 {
		t.Fatalf("after a re-send: %+v", st)
	}
}
