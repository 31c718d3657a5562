package policydist

import (
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"github.com/weftnet/weft/discovery/membership"
)

// Choosing the re-sender, and what members' tags may vouch for.
//
// Every member holding the newest version would see a joiner lag; one of them re-sends, the
// designated one: the lowest name among the trusted alive members announcing this host's
// version, itself included. Only members the trust layer accepts (Deps.Trusted: with a CA,
// a valid certificate and no refusal) count, so a member with the gossip key alone cannot
// announce the current version under the name "0evil" and be designated to stay silent.
//
// A trusted member can still fail to re-send (a bug, a broken link, a compromised host with
// a certificate). User events carry no sender, so nobody can see who re-sent; what every
// holder sees is the lag: a trusted member still behind resendBound after the current
// designated re-sender became designated (or after the member began to lag, whichever is
// later) marks that re-sender silent for this version (counted as refused
// "silent_resender"), and the next name in order is designated. Each holder decides alone;
// when they disagree, two send, which is harmless (chunks of the same key coincide). When
// every candidate has been skipped the list starts over, so a member that lags for good
// (a host without policy_ca_file never installs anything) costs one re-send per
// policyRebroadcastGap, as before, never more.

// resendBound is how long a trusted member may stay behind before the designated re-sender
// is deemed silent: the designated one re-sends at its next anti-entropy round (within
// AntiEntropyInterval, the gap is shorter) and the lagging member's tag follows within a
// gossip round; twice the interval leaves one missed round of slack.
const resendBound = 2 * AntiEntropyInterval

// resender is the designation state. Owned by the Distributor, under its mu.
type resender struct {
	version  uint64               // the version skip applies to
	skip     map[string]bool      // re-senders deemed silent for version
	lagSince map[string]time.Time // trusted members behind version, since when
	current  string               // the designated re-sender at the last survey
	since    time.Time            // when current became designated
}

func newResender() resender {
	return resender{skip: map[string]bool{}, lagSince: map[string]time.Time{}}
}

// surveyResult is what one look at the member list decided.
type surveyResult struct {
	mine       uint64
	designated bool // this host re-sends
	lagging    bool // some trusted alive member is behind mine
}

// survey reads the member list once: the newer versions trusted members vouch for, the
// trusted members that lag, and the designated re-sender (replacing a silent one).
func (d *Distributor) survey() surveyResult {
	if d.deps.Members == nil {
		return surveyResult{mine: d.Version()}
	}
	members := d.deps.Members()
	self := d.deps.Name
	type announced struct {
		name string
		key  asmKey
		ok   bool // a version tag that parses
	}
	var trusted []announced
	for _, m := range members {
		if m.Name == self || m.Status != membership.StatusAlive || !d.deps.Trusted(m.Name) {
			continue
		}
		v, ok := ParseVersion(m.Tags[VersionTag])
		a := announced{name: m.Name, key: asmKey{version: v}, ok: ok}
		if dg, ok := ParseDigest(m.Tags[DigestTag]); ok {
			a.key.digest = dg
		}
		trusted = append(trusted, a)
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.deps.Now()
	mine := d.version
	clear(d.vouched)
	for _, a := range trusted {
		if a.ok && a.key.version > mine && a.key.digest != ([8]byte{}) && len(d.vouched) < policyMaxAssemblies {
			d.vouched[a.key] = true
		}
	}
	res := surveyResult{mine: mine}
	if mine == 0 {
		return res
	}
	rs := &d.rs
	if rs.version != mine {
		rs.version, rs.current = mine, ""
		clear(rs.skip)
		clear(rs.lagSince)
	}
	candidates := []string{self}
	lagging := map[string]bool{}
	for _, a := range trusted {
		switch {
		case a.ok && a.key.version == mine:
			candidates = append(candidates, a.name)
		case a.ok && a.key.version < mine:
			lagging[a.name] = true
			if _, ok := rs.lagSince[a.name]; !ok {
				rs.lagSince[a.name] = now
			}
		}
	}
	for name := range rs.lagSince {
		if !lagging[name] {
			delete(rs.lagSince, name)
		}
	}
	slices.Sort(candidates)
	pick := func() string {
		for _, c := range candidates {
			if !rs.skip[c] {
				return c
			}
		}
		clear(rs.skip) // every one was skipped: start over
		return candidates[0]
	}
	next := pick()
	if next != rs.current {
		rs.current, rs.since = next, now
	}
	if rs.current != self {
		for name, since := range rs.lagSince {
			if now.Sub(later(since, rs.since)) < resendBound {
				continue
			}
			d.refuseLocked("silent_resender", fmt.Errorf("designated re-sender %s let %s lag %v behind version %d; the next member takes over",
				rs.current, name, resendBound, mine))
			rs.skip[rs.current] = true
			rs.current, rs.since = pick(), now
			break
		}
	}
	res.designated = rs.current == self
	res.lagging = len(lagging) > 0
	return res
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// unvouchedLocked counts the assemblies no trusted member vouches for. Caller holds d.mu.
func (d *Distributor) unvouchedLocked() int {
	n := 0
	for k := range d.asm {
		if !d.vouched[k] {
			n++
		}
	}
	return n
}

// FormatDigest is the DigestTag value for an envelope whose SHA-256 is sum.
func FormatDigest(sum [32]byte) string { return hex.EncodeToString(sum[:8]) }

// ParseDigest reads a DigestTag value; ok is false for anything FormatDigest does not
// write, and for the zero digest (nothing held).
func ParseDigest(s string) (dg [8]byte, ok bool) {
	if len(s) != 16 {
		return dg, false
	}
	if _, err := hex.Decode(dg[:], []byte(s)); err != nil {
		return [8]byte{}, false
	}
	return dg, dg != [8]byte{}
}
