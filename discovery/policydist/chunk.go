package policydist

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"strconv"
	"time"

	"github.com/weftnet/weft/discovery/membership"
	"github.com/weftnet/weft/identity"
)

// Spreading a signed policy by gossip.
//
// A signed document (identity's envelope, purpose "policy", a few KB) is far larger than a
// Serf user event (512 bytes encoded), so it travels in chunks, each its own user event:
//
//	name "weft-policy" | payload: version (8, BE) | digest (8: SHA-256 of the envelope) |
//	index (1) | count (1) | up to policyChunkData bytes of the envelope
//
// A receiver collects the chunks of one (version, digest), checks the digest, verifies the
// signature against policy_ca_file's CAs and installs the document when its version is
// newer than what it holds; it keeps it in STATE_DIR/policy.signed and announces the
// version in its "pv" tag and the digest in its "pd" tag. Chunks are unauthenticated until
// the whole envelope verifies, and a user event names no sender; a forger never installs
// anything, and every refusal is counted (weft_policy_refused_total{reason}).
//
// A chunk flood must not keep a real update out. An assembly whose (version, digest) a
// trusted member announces in its pv and pd tags is vouched for: chunks never evict it (at
// most policyMaxAssemblies of them, the newest versions). The others (a document whose
// holders' tags have not arrived yet, or a forger's) share policyMaxAssemblies places, the
// oldest evicted for a newcomer (assembly_evicted), each forgotten after policyAssemblyTTL.
// What a forger with the gossip key can still do: evict an update's assembly before any
// trusted member's tags vouch for it (the first burst of `weft policy apply`; the
// re-send that anti-entropy makes once the holders' tags arrived lands vouched); and,
// having seen an honest chunk, race forged chunks under the same key into slots still
// empty: the assembly then fails its digest (bad_digest) and is dropped, and each later
// re-send is a new race, so a forger that wins every race delays the update for as long as
// it keeps flooding. Per-chunk hashes committed to by the digest would end that; it does
// not change what is installed, only when.
//
// Serf delivers user events to the members alive at the time; Join ignores old events. So
// a joiner, or a member that missed a chunk, is caught up by anti-entropy: every member
// announces its version in the "pv" tag, and the designated member re-broadcasts it when
// it sees a trusted member lagging (on the member's join or update event, and every
// AntiEntropyInterval), at most once per policyRebroadcastGap. The designated member is the
// lowest-named trusted member holding the newest version, one that let a member lag past
// resendBound skipped (resender.go); an uncertified member's tags count for nothing.
// Chosen over a Serf query because a query's response is limited to 1 KB and sent by UDP
// to the asker alone, so a document would need chunked responses and retries anyway;
// chunked events reach everybody who lags at once.

const (
	// EventName is the Serf user event that carries a chunk.
	EventName = "weft-policy"
	// VersionTag is the member tag announcing the version of the newest signed policy a
	// member holds (16 hex digits, a fixed width so the tag budget the catalog is given at
	// start stays right).
	VersionTag = "pv"
	// DigestTag is the member tag announcing the first 8 bytes of the SHA-256 of that
	// document's envelope (16 hex digits, fixed width like VersionTag): the key its chunks
	// carry, so that a receiver knows which assembly a trusted member vouches for.
	DigestTag = "pd"
	// AntiEntropyInterval is how often Run (the caller's loop) should call AntiEntropy.
	AntiEntropyInterval = 5 * time.Second
	// MaxEnvelope bounds what chunks may add up to (identity's body bound + framing).
	MaxEnvelope = identity.MaxSignedBody + 256

	policyChunkHeader    = 18
	policyChunkData      = membership.UserEventLimit - len(EventName) - policyChunkHeader
	policyMaxChunks      = 255
	policyMaxAssemblies  = 4
	policyAssemblyTTL    = 30 * time.Second
	policyRebroadcastGap = 3 * time.Second
	policyPurpose        = "policy"

	// rebroadcastDelay lets a joiner's event handling start before it is sent the document
	// (the agent's rebuild debounce, 200 ms).
	rebroadcastDelay = 200 * time.Millisecond
)

// FormatVersion is the VersionTag value for version v.
func FormatVersion(v uint64) string { return fmt.Sprintf("%016x", v) }

// ParseVersion reads a VersionTag value; ok is false for anything FormatVersion does not write.
func ParseVersion(s string) (uint64, bool) {
	if len(s) != 16 {
		return 0, false
	}
	v, err := strconv.ParseUint(s, 16, 64)
	return v, err == nil
}

// Chunks cuts a signed envelope into the payloads of EventName user events, the form in
// which a Distributor sends it and UserEvent takes it.
func Chunks(env []byte, version uint64) [][]byte {
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
