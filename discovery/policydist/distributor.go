package policydist

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/weftnet/weft/discovery/membership"
	"github.com/weftnet/weft/identity"
	"github.com/weftnet/weft/internal/fsutil"
	"github.com/weftnet/weft/policy"
)

// Deps is what a Distributor needs from its host. Functions left nil mean "not there"
// (no gossip: nothing is sent or announced, no member is designated to).
type Deps struct {
	// Name is this member's name in the cluster.
	Name string
	// CAs are the trusted signers of policy documents; nil: none is trusted, every
	// document is refused as no_ca.
	CAs *identity.CAPool
	// Blocklist returns pki.blocklist as last (re)loaded (nil: none): a revoked CA signs
	// no policy. Nil: no blocklist.
	Blocklist func() *identity.Blocklist
	// Install puts a verified document newer than the one held in force. It is called
	// with the Distributor's lock held (so installs happen in version order) and must not
	// call back into the Distributor. enforced reports whether the document is enforced
	// (false when a local policy file wins over gossip); an error refuses the document as
	// invalid_document.
	Install func(doc *policy.Document) (enforced bool, err error)
	// StatePath is where the newest verified envelope is kept across restarts.
	StatePath string
	// UserEvent sends a Serf user event (coalescing off); nil without gossip.
	UserEvent func(name string, payload []byte) error
	// SetTag sets one of this member's gossip tags; nil without gossip.
	SetTag func(key, value string) error
	// Members lists the cluster's members; nil without gossip.
	Members func() []membership.Member
	// Trusted reports whether the trust layer accepts a member's claims now (with a CA: it
	// holds a valid certificate for its name and is not refused; without: it is a peer whose
	// claims are not refused). Only a trusted member's VersionTag and DigestTag count: it
	// alone may be designated re-sender, vouch for an assembly, or be re-sent to when it
	// lags. Nil: every member is (tests, or no trust layer).
	Trusted func(name string) bool
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// Logger receives refusals and installs (nil: discarded).
	Logger *slog.Logger
}

// Distributor holds the newest verified policy envelope and the chunks in flight. Its
// methods are safe for concurrent use.
type Distributor struct {
	deps Deps
	log  *slog.Logger

	mu      sync.Mutex
	signed  []byte // newest verified envelope
	version uint64
	asm     map[asmKey]*assembly
	refused map[string]uint64
	lastBC  time.Time
	rs      resender
	// vouched are the (version, digest) pairs newer than ours that trusted members
	// announce, as of the last survey: their assemblies are never evicted by others.
	vouched map[asmKey]bool
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

var (
	// ErrStale is returned by Accept and Apply for a document not newer than the one held.
	ErrStale = errors.New("not newer than the policy in force: run weft policy apply without --version (it picks the next one) or with a higher --version")
	// ErrNoCA is returned when no CA is configured to verify signed documents.
	ErrNoCA = errors.New("no policy_ca_file: signed policies cannot be verified; set policy_ca_file (or pki.ca) to the cluster's ca.crt and restart the agent")
)

// New returns a Distributor holding nothing (version 0); LoadKept picks up the document
// kept by an earlier run.
func New(deps Deps) *Distributor {
	if deps.Now == nil {
		deps.Now = time.Now
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if deps.Install == nil {
		deps.Install = func(*policy.Document) (bool, error) { return false, nil }
	}
	if deps.Trusted == nil {
		deps.Trusted = func(string) bool { return true }
	}
	return &Distributor{deps: deps, log: log, asm: map[asmKey]*assembly{}, refused: map[string]uint64{},
		rs: newResender(), vouched: map[asmKey]bool{}}
}

// Status is what a Distributor holds: the version of the newest verified document (0:
// none) and the refusals counted by reason.
type Status struct {
	Version uint64
	Refused map[string]uint64
}

// Status returns a copy of the distribution's state.
func (d *Distributor) Status() Status {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[string]uint64, len(d.refused))
	for k, v := range d.refused {
		out[k] = v
	}
	return Status{Version: d.version, Refused: out}
}

// Version is the version of the newest verified document held (0: none).
func (d *Distributor) Version() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.version
}

// refuseLocked counts a refused document or chunk. Caller holds d.mu.
func (d *Distributor) refuseLocked(reason string, err error) {
	d.refused[reason]++
	d.log.Warn("signed policy refused", "reason", reason, "err", err)
}

// verify checks an envelope and parses its document.
func (d *Distributor) verify(env []byte) (*identity.Signed, *policy.Document, string, error) {
	if d.deps.CAs == nil {
		return nil, nil, "no_ca", ErrNoCA
	}
	var bl *identity.Blocklist // pki.blocklist as last (re)loaded: a revoked CA signs no policy
	if d.deps.Blocklist != nil {
		bl = d.deps.Blocklist()
	}
	s, err := identity.VerifySigned(env, policyPurpose, d.deps.CAs, d.deps.Now(), bl)
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

// Accept installs a verified envelope newer than what this host holds and returns its
// version. from names where it came from, for the log. A refusal is counted and logged.
func (d *Distributor) Accept(env []byte, from string) (uint64, error) {
	s, doc, reason, err := d.verify(env)
	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil {
		d.refuseLocked(reason, err)
		return 0, err
	}
	if s.Version <= d.version {
		return s.Version, fmt.Errorf("%w: version %d, this host holds %d", ErrStale, s.Version, d.version)
	}
	enforced, err := d.deps.Install(doc)
	if err != nil {
		d.refuseLocked("invalid_document", err)
		return 0, err
	}
	d.signed, d.version = bytes.Clone(env), s.Version
	if err := fsutil.WriteFileAtomic(d.deps.StatePath, env, 0o600); err != nil {
		d.log.Error("keep signed policy", "path", d.deps.StatePath, "err", err)
	}
	if d.deps.SetTag != nil {
		// The digest first: between the two updates the tags pair the new digest with the
		// old version, which vouches for nothing newer, never the other way round.
		sum := sha256.Sum256(env)
		if err := d.deps.SetTag(DigestTag, FormatDigest(sum)); err != nil {
			d.log.Error("announce policy digest", "err", err)
		}
		if err := d.deps.SetTag(VersionTag, FormatVersion(s.Version)); err != nil {
			d.log.Error("announce policy version", "err", err)
		}
	}
	d.log.Info("signed policy installed", "version", s.Version, "from", from, "rules", len(doc.Rules),
		"default", DefaultOf(doc), "enforced", enforced)
	return s.Version, nil
}

// DefaultOf names a document's default action for logs: "deny" or "allow".
func DefaultOf(doc *policy.Document) string {
	if doc.Default == policy.ActionDeny {
		return "deny"
	}
	return "allow"
}

// LoadKept installs the envelope kept in StatePath at start, when it still verifies.
func (d *Distributor) LoadKept() {
	path := d.deps.StatePath
	env, err := os.ReadFile(path)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			d.log.Warn("read kept policy", "path", path, "err", err)
		}
		return
	}
	if _, err := d.Accept(env, "state directory"); err != nil {
		d.log.Warn("kept policy not used", "path", path, "err", err)
	}
}

// Apply installs a signed envelope handed in by the operator (POST /v1/policy) and spreads
// it to every member. An error with a non-zero version means installed here, not spread.
func (d *Distributor) Apply(env []byte) (uint64, error) {
	v, err := d.Accept(env, "control API")
	if err != nil {
		return 0, err
	}
	if err := d.Broadcast(true); err != nil {
		return v, fmt.Errorf("installed here, but not spread: %w", err)
	}
	return v, nil
}

// Broadcast sends the held envelope in chunks (force: regardless of the rate limit).
func (d *Distributor) Broadcast(force bool) error {
	d.mu.Lock()
	env, v := d.signed, d.version
	if env == nil || (!force && d.deps.Now().Sub(d.lastBC) < policyRebroadcastGap) {
		d.mu.Unlock()
		return nil
	}
	d.lastBC = d.deps.Now()
	d.mu.Unlock()
	if d.deps.UserEvent == nil {
		return nil
	}
	chunks := Chunks(env, v)
	for _, c := range chunks {
		if err := d.deps.UserEvent(EventName, c); err != nil {
			return err
		}
	}
	d.log.Debug("signed policy broadcast", "version", v, "chunks", len(chunks), "bytes", len(env))
	return nil
}

// UserEvent takes one chunk (events of another name are ignored); a completed, verified
// document newer than the one held is installed.
func (d *Distributor) UserEvent(name string, p []byte) {
	if name != EventName {
		return
	}
	d.mu.Lock()
	if len(p) < policyChunkHeader+1 {
		d.refuseLocked("bad_chunk", errors.New("short chunk"))
		d.mu.Unlock()
		return
	}
	k := asmKey{version: binary.BigEndian.Uint64(p[:8])}
	copy(k.digest[:], p[8:16])
	idx, n := int(p[16]), int(p[17])
	data := p[policyChunkHeader:]
	if n == 0 || idx >= n || n*policyChunkData > MaxEnvelope+policyChunkData {
		d.refuseLocked("bad_chunk", fmt.Errorf("chunk %d of %d", idx, n))
		d.mu.Unlock()
		return
	}
	if k.version <= d.version {
		d.mu.Unlock()
		return // ours, or an old re-broadcast: nothing to do
	}
	now := d.deps.Now()
	for key, as := range d.asm {
		if now.Sub(as.first) > policyAssemblyTTL {
			delete(d.asm, key)
		}
	}
	as, ok := d.asm[k]
	if !ok {
		if !d.vouched[k] && d.unvouchedLocked() >= policyMaxAssemblies {
			// Evict the oldest unvouched assembly rather than refuse the newcomer: a forger
			// who sends a few partial documents cannot then block a real one for
			// policyAssemblyTTL (its chunks arrive in one burst; anti-entropy sends it again,
			// by then vouched for). A vouched assembly is never evicted by chunks.
			var oldest asmKey
			first := true
			for key, o := range d.asm {
				if !d.vouched[key] && (first || o.first.Before(d.asm[oldest].first)) {
					oldest, first = key, false
				}
			}
			delete(d.asm, oldest)
			d.refuseLocked("assembly_evicted", fmt.Errorf("%d unvouched documents in flight", policyMaxAssemblies))
		}
		as = &assembly{parts: make([][]byte, n), first: now}
		d.asm[k] = as
	}
	if len(as.parts) != n {
		d.refuseLocked("bad_chunk", fmt.Errorf("chunk count %d, was %d", n, len(as.parts)))
		d.mu.Unlock()
		return
	}
	if as.parts[idx] == nil {
		as.parts[idx] = bytes.Clone(data)
		as.have++
	}
	if as.have < n {
		d.mu.Unlock()
		return
	}
	delete(d.asm, k)
	env := bytes.Join(as.parts, nil)
	sum := sha256.Sum256(env)
	if !bytes.Equal(sum[:8], k.digest[:]) {
		d.refuseLocked("bad_digest", errors.New("chunks do not add up to their digest"))
		d.mu.Unlock()
		return
	}
	// The chunks' version is only a hint for assembly; the signed one must agree.
	if s, err := identity.DecodeSigned(env); err == nil && s.Version != k.version {
		d.refuseLocked("version_mismatch", fmt.Errorf("chunks say %d, the envelope %d", k.version, s.Version))
		d.mu.Unlock()
		return
	}
	d.mu.Unlock()
	_, _ = d.Accept(env, "gossip") // refusals are counted and logged by Accept
}

// MemberVersion notes a member's announced policy version (its join or update event); if
// it is trusted and lags and this host is the designated sender, the document is re-broadcast
// shortly. A trusted member announcing a newer version vouches for its chunks (see survey).
func (d *Distributor) MemberVersion(m membership.Member) {
	if m.Name == d.deps.Name || m.Status != membership.StatusAlive || !d.deps.Trusted(m.Name) {
		return
	}
	v, ok := ParseVersion(m.Tags[VersionTag])
	if d.Version() == 0 && (!ok || v == 0) {
		return // it neither lags behind nor vouches for anything
	}
	sv := d.survey()
	if sv.mine == 0 || (ok && v >= sv.mine) {
		return
	}
	if sv.designated {
		go func() {
			time.Sleep(rebroadcastDelay) // let the joiner's event handling start
			if err := d.Broadcast(false); err != nil {
				d.log.Warn("re-broadcast policy", "err", err)
			}
		}()
	}
}

// AntiEntropy re-broadcasts when some trusted alive member lags and this host is
// designated; it also notes a designated re-sender that lets a member lag past
// resendBound, so that the next one takes over. The caller runs it every
// AntiEntropyInterval.
func (d *Distributor) AntiEntropy() {
	if sv := d.survey(); sv.designated && sv.lagging {
		if err := d.Broadcast(false); err != nil {
			d.log.Warn("re-broadcast policy", "err", err)
		}
	}
}
