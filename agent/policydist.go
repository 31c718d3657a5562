package agent

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/weftnet/weft/discovery/membership"
	"github.com/weftnet/weft/identity"
	"github.com/weftnet/weft/policy"
)

// Spreading a signed policy by gossip.
//
// A signed document (identity's envelope, purpose "policy", a few KB) is far larger than a
// Serf user event (512 bytes encoded), so it travels in chunks, each its own user event:
//
//	name "weft-policy" | payload: version (8, BE) | digest (8: SHA-256 of the envelope) |
//	index (1) | count (1) | up to policyChunkData bytes of the envelope
//
// A receiver collects the chunks of one (version, digest) (at most policyMaxAssemblies at
// a time, the oldest evicted for a new one, each forgotten after policyAssemblyTTL), checks the digest, verifies the
// signature against policy_ca_file's CAs and installs the document when its version is
// newer than what it holds; it keeps it in STATE_DIR/policy.signed and announces the
// version in its "pv" tag. Chunks are unauthenticated until the whole envelope verifies;
// a forger never installs anything, and every refusal is counted
// (weft_policy_refused_total{reason}). It can delay an update, though: chunks it sends
// under a real (version, digest) spoil that assembly (the digest then fails), and a burst of
// new keys evicts it; the sender's anti-entropy re-sends every few seconds, so a forger that
// keeps this up blocks updates until it stops. Per-chunk hashes in chunk 0 would stop it.
//
// Serf delivers user events to the members alive at the time; Join ignores old events. So
// a joiner, or a member that missed a chunk, is caught up by anti-entropy: every member
// announces its version in the "pv" tag, and the member with the lowest name among those
// holding the newest version re-broadcasts it when it sees one lagging (on the member's
// join or update event, and every antiEntropyInterval), at most once per
// policyRebroadcastGap. Chosen over a Serf query because a query's response is limited to
// 1 KB and sent by UDP to the asker alone, so a document would need chunked responses and
// retries anyway; chunked events reach everybody who lags at once.

const (
	policyEventName      = "weft-policy"
	policyChunkHeader    = 18
	policyChunkData      = membership.UserEventLimit - len(policyEventName) - policyChunkHeader
	policyMaxChunks      = 255
	policyMaxAssemblies  = 4
	policyAssemblyTTL    = 30 * time.Second
	policyRebroadcastGap = 3 * time.Second
	antiEntropyInterval  = 5 * time.Second
	policyPurpose        = "policy"
)

// distState is the policy distribution's state, guarded by policyGlue.mu.
type distState struct {
	signed  []byte // newest verified envelope
	version uint64
	asm     map[asmKey]*assembly
	refused map[string]uint64
	lastBC  time.Time
}

type asmKey struct {
	version uint64
	digest  [8]byte
}

type assembly struct {
	parts [][]byte
	have  int
	first time.Time
}

func (d *distState) init() {
	d.asm = map[asmKey]*assembly{}
	d.refused = map[string]uint64{}
}

func versionTag(v uint64) string { return fmt.Sprintf("%016x", v) }

// refuse counts a refused document or chunk. Caller holds g.mu.
func (g *policyGlue) refuseLocked(reason string, err error) {
	g.dist.refused[reason]++
	g.a.log.Warn("signed policy refused", "reason", reason, "err", err)
}

// verify checks an envelope and parses its document.
func (g *policyGlue) verify(env []byte) (*identity.Signed, *policy.Document, string, error) {
	if g.cas == nil {
		return nil, nil, "no_ca", errNoCA
	}
	var bl *identity.Blocklist // pki.blocklist as last (re)loaded: a revoked CA signs no policy
	if st := g.a.pki.Load(); st != nil {
		bl = st.Blocklist
	}
	s, err := identity.VerifySigned(env, policyPurpose, g.cas, time.Now(), bl)
	if err != nil {
		return nil, nil, identity.Reason(err), err
	}
	doc, err := policy.Parse(s.Body)
	if err != nil {
		return nil, nil, "invalid_document", err
	}
	doc.Version = s.Version // the signed version is the one that counts
	return s, doc, "", nil
}

// accept installs a verified envelope newer than what this host holds; it reports whether
// it did. from names where it came from, for the log.
func (g *policyGlue) accept(env []byte, from string) (uint64, error) {
	s, doc, reason, err := g.verify(env)
	g.mu.Lock()
	defer g.mu.Unlock()
	if err != nil {
		g.refuseLocked(reason, err)
		return 0, err
	}
	if s.Version <= g.dist.version {
		return s.Version, fmt.Errorf("%w: version %d, this host holds %d", errStale, s.Version, g.dist.version)
	}
	if g.local == nil {
		set, err := policy.Compile(doc, g.res)
		if err != nil {
			g.refuseLocked("invalid_document", err)
			return 0, err
		}
		g.engine.Load(set)
		g.source = "gossip"
	}
	g.dist.signed, g.dist.version = bytes.Clone(env), s.Version
	if err := writeFileAtomic(g.statePath(), env, 0o600); err != nil {
		g.a.log.Error("keep signed policy", "path", g.statePath(), "err", err)
	}
	if g.a.gsp != nil {
		if err := g.a.gsp.c.SetTag(policyVersionTag, versionTag(s.Version)); err != nil {
			g.a.log.Error("announce policy version", "err", err)
		}
	}
	g.a.log.Info("signed policy installed", "version", s.Version, "from", from, "rules", len(doc.Rules),
		"default", defaultOf(doc), "enforced", g.local == nil)
	return s.Version, nil
}

var errStale = errors.New("not newer than the policy in force: run weft policy apply without --version (it picks the next one) or with a higher --version")

// loadKept installs STATE_DIR/policy.signed at start, when it still verifies.
func (g *policyGlue) loadKept() {
	env, err := os.ReadFile(g.statePath())
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			g.a.log.Warn("read kept policy", "path", g.statePath(), "err", err)
		}
		return
	}
	if _, err := g.accept(env, "state directory"); err != nil {
		g.a.log.Warn("kept policy not used", "path", g.statePath(), "err", err)
	}
}

// apply is POST /v1/policy: a signed envelope from `weft policy apply`. It is installed
// here and spread to every member.
func (g *policyGlue) apply(env []byte) (uint64, error) {
	v, err := g.accept(env, "control API")
	if err != nil {
		return 0, err
	}
	if err := g.broadcast(true); err != nil {
		return v, fmt.Errorf("installed here, but not spread: %w", err)
	}
	return v, nil
}

// broadcast sends the held envelope in chunks (force: regardless of the rate limit).
func (g *policyGlue) broadcast(force bool) error {
	g.mu.Lock()
	env, v := g.dist.signed, g.dist.version
	if env == nil || (!force && time.Since(g.dist.lastBC) < policyRebroadcastGap) {
		g.mu.Unlock()
		return nil
	}
	g.dist.lastBC = time.Now()
	g.mu.Unlock()
	if g.a.gsp == nil {
		return nil
	}
	chunks := chunkEnvelope(env, v)
	for _, c := range chunks {
		if err := g.a.gsp.c.UserEvent(policyEventName, c); err != nil {
			return err
		}
	}
	g.a.log.Debug("signed policy broadcast", "version", v, "chunks", len(chunks), "bytes", len(env))
	return nil
}

// chunkEnvelope cuts env into user-event payloads.
func chunkEnvelope(env []byte, version uint64) [][]byte {
	sum := sha256.Sum256(env)
	n := (len(env) + policyChunkData - 1) / policyChunkData
	out := make([][]byte, 0, n)
	for i := range n {
		part := env[i*policyChunkData : min(len(env), (i+1)*policyChunkData)]
		c := make([]byte, 0, policyChunkHeader+len(part))
		c = binary.BigEndian.AppendUint64(c, version)
		c = append(c, sum[:8]...)
		c = append(c, byte(i), byte(n))
		out = append(out, append(c, part...))
	}
	return out
}

// maxPolicyEnvelope bounds what chunks may add up to (identity's body bound + framing).
const maxPolicyEnvelope = identity.MaxSignedBody + 256

// userEvent takes one chunk.
func (g *policyGlue) userEvent(name string, p []byte) {
	if name != policyEventName {
		return
	}
	g.mu.Lock()
	if len(p) < policyChunkHeader+1 {
		g.refuseLocked("bad_chunk", errors.New("short chunk"))
		g.mu.Unlock()
		return
	}
	k := asmKey{version: binary.BigEndian.Uint64(p[:8])}
	copy(k.digest[:], p[8:16])
	idx, n := int(p[16]), int(p[17])
	data := p[policyChunkHeader:]
	if n == 0 || idx >= n || n*policyChunkData > maxPolicyEnvelope+policyChunkData {
		g.refuseLocked("bad_chunk", fmt.Errorf("chunk %d of %d", idx, n))
		g.mu.Unlock()
		return
	}
	if k.version <= g.dist.version {
		g.mu.Unlock()
		return // ours, or an old re-broadcast: nothing to do
	}
	now := time.Now()
	for key, as := range g.dist.asm {
		if now.Sub(as.first) > policyAssemblyTTL {
			delete(g.dist.asm, key)
		}
	}
	as, ok := g.dist.asm[k]
	if !ok {
		if len(g.dist.asm) >= policyMaxAssemblies {
			// Evict the oldest rather than refuse the newcomer: a forger who sends a few
			// partial documents cannot then block a real one for policyAssemblyTTL (a real
			// document's chunks arrive in one burst; anti-entropy sends it again).
			var oldest asmKey
			first := true
			for key, o := range g.dist.asm {
				if first || o.first.Before(g.dist.asm[oldest].first) {
					oldest, first = key, false
				}
			}
			delete(g.dist.asm, oldest)
			g.refuseLocked("assembly_evicted", fmt.Errorf("%d documents in flight", policyMaxAssemblies))
		}
		as = &assembly{parts: make([][]byte, n), first: now}
		g.dist.asm[k] = as
	}
	if len(as.parts) != n {
		g.refuseLocked("bad_chunk", fmt.Errorf("chunk count %d, was %d", n, len(as.parts)))
		g.mu.Unlock()
		return
	}
	if as.parts[idx] == nil {
		as.parts[idx] = bytes.Clone(data)
		as.have++
	}
	if as.have < n {
		g.mu.Unlock()
		return
	}
	delete(g.dist.asm, k)
	env := bytes.Join(as.parts, nil)
	sum := sha256.Sum256(env)
	if !bytes.Equal(sum[:8], k.digest[:]) {
		g.refuseLocked("bad_digest", errors.New("chunks do not add up to their digest"))
		g.mu.Unlock()
		return
	}
	// The chunks' version is only a hint for assembly; the signed one must agree.
	if s, err := identity.DecodeSigned(env); err == nil && s.Version != k.version {
		g.refuseLocked("version_mismatch", fmt.Errorf("chunks say %d, the envelope %d", k.version, s.Version))
		g.mu.Unlock()
		return
	}
	g.mu.Unlock()
	_, _ = g.accept(env, "gossip") // refusals are counted and logged by accept
}

// memberVersion notes a member's announced policy version; if it lags and this host is
// the designated sender, the document is re-broadcast.
func (g *policyGlue) memberVersion(m membership.Member) {
	if m.Name == g.a.cfg.Name || m.Status != membership.StatusAlive {
		return
	}
	v, ok := parseVersionTag(m.Tags[policyVersionTag])
	g.mu.Lock()
	mine := g.dist.version
	g.mu.Unlock()
	if mine == 0 || (ok && v >= mine) {
		return
	}
	if g.designated(mine) {
		go func() {
			time.Sleep(rebindDebounce) // let the joiner's event handling start
			if err := g.broadcast(false); err != nil {
				g.a.log.Warn("re-broadcast policy", "err", err)
			}
		}()
	}
}

func parseVersionTag(s string) (uint64, bool) {
	if len(s) != 16 {
		return 0, false
	}
	v, err := strconv.ParseUint(s, 16, 64)
	return v, err == nil
}

// designated reports whether this host is the alive member with the lowest name among
// those announcing version v (itself included): one sender per lagging member, not N.
func (g *policyGlue) designated(v uint64) bool {
	if g.a.gsp == nil {
		return false
	}
	self := g.a.cfg.Name
	for _, m := range g.a.gsp.c.Members() {
		if m.Name == self || m.Status != membership.StatusAlive {
			continue
		}
		if mv, ok := parseVersionTag(m.Tags[policyVersionTag]); ok && mv == v && m.Name < self {
			return false
		}
	}
	return true
}

// antiEntropy re-broadcasts when some alive member lags and this host is designated.
func (g *policyGlue) antiEntropy() {
	g.mu.Lock()
	mine := g.dist.version
	g.mu.Unlock()
	if mine == 0 || g.a.gsp == nil || !g.designated(mine) {
		return
	}
	for _, m := range g.a.gsp.c.Members() {
		if m.Name == g.a.cfg.Name || m.Status != membership.StatusAlive {
			continue
		}
		if v, ok := parseVersionTag(m.Tags[policyVersionTag]); ok && v < mine {
			if err := g.broadcast(false); err != nil {
				g.a.log.Warn("re-broadcast policy", "err", err)
			}
			return
		}
	}
}
