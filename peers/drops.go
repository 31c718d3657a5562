package peers

import "sync/atomic"

// DropReason names why a packet was dropped. Every reason has its own counter, per peer
// and globally in the tunnel; nothing is formatted or logged per packet.
type DropReason uint8

// Drop reasons. DropNone means "not dropped".
const (
	DropNone               DropReason = iota
	DropNoRoute                       // outbound: no peer's allowed prefixes hold the destination
	DropNotAllowedSource              // inbound: inner source outside the sender's allowed prefixes
	DropWrongVNI                      // inbound: authenticated, but the VNI is not ours
	DropWrongProto                    // inbound: VXLAN next protocol not carried in this mode
	DropMalformed                     // a header or inner packet that does not parse
	DropShortMessage                  // UDP payload too short for its message type
	DropUnknownType                   // UDP payload with an unknown message type
	DropUnknownIndex                  // transport message for a receiver index we do not hold
	DropAuthFailed                    // AEAD tag did not verify
	DropReplayed                      // counter already seen or outside the replay window
	DropKeypairExpired                // keypair past RejectAfterMessages/RejectAfterTime
	DropQueueFull                     // pending-handshake queue full: oldest packet dropped
	DropHandshakeTimeout              // queued packets dropped after RekeyAttemptTime without a session
	DropHandshakeQueueFull            // handshake worker busy: handshake message dropped
	DropHandshakeInvalid              // handshake message rejected by crypto (mac, replay, flood, auth)
	DropRateLimited                   // handshake message dropped by Identity.Admit under load
	DropNoEndpoint                    // peer has no known endpoint yet
	DropSendFailed                    // bind.Send returned an error
	DropTooBig                        // packet larger than the MTU allows
	DropFloodCapped                   // more copies than the per-batch flood bound
	DropInvalidMAC1                   // handshake message malformed or its mac1 not for our key (wrong key)
	DropToSelf                        // outbound (L2): frame addressed to this host's own MAC (or another local one)
	DropUnknownVTEP                   // inbound (plain L2): VXLAN from a UDP source that is no known remote
	DropPolicyDenied                  // network policy refused the packet (a deny rule, the deny default, an unknown later fragment)
	DropPolicyFlowQuota               // network policy refused a new flow: its peer holds its quota of flows already
	numDropReasons
)

// NumDropReasons is the number of DropReason values, for arrays of counters.
const NumDropReasons = int(numDropReasons)

var dropNames = [numDropReasons]string{
	DropNone:               "none",
	DropNoRoute:            "no_route",
	DropNotAllowedSource:   "not_allowed_source",
	DropWrongVNI:           "wrong_vni",
	DropWrongProto:         "wrong_proto",
	DropMalformed:          "malformed",
	DropShortMessage:       "short_message",
	DropUnknownType:        "unknown_type",
	DropUnknownIndex:       "unknown_index",
	DropAuthFailed:         "auth_failed",
	DropReplayed:           "replayed",
	DropKeypairExpired:     "keypair_expired",
	DropQueueFull:          "queue_full",
	DropHandshakeTimeout:   "handshake_timeout",
	DropHandshakeQueueFull: "handshake_queue_full",
	DropHandshakeInvalid:   "handshake_invalid",
	DropRateLimited:        "rate_limited",
	DropNoEndpoint:         "no_endpoint",
	DropSendFailed:         "send_failed",
	DropTooBig:             "too_big",
	DropFloodCapped:        "flood_capped",
	DropInvalidMAC1:        "invalid_mac1",
	DropToSelf:             "to_self",
	DropUnknownVTEP:        "unknown_vtep",
	DropPolicyDenied:       "policy_denied",
	DropPolicyFlowQuota:    "policy_flow_quota",
}

// String returns the reason's snake_case name, used as a map key in Stats and as a
// metrics label.
func (r DropReason) String() string {
	if r < numDropReasons {
		return dropNames[r]
	}
	return "unknown"
}

// DropCounters is one atomic counter per DropReason. The zero value is ready.
type DropCounters struct {
	c [numDropReasons]atomic.Uint64
}

// Add counts n drops for r. Safe for concurrent use; no allocation.
func (d *DropCounters) Add(r DropReason, n uint64) {
	if r < numDropReasons {
		d.c[r].Add(n)
	}
}

// Get returns the count for r.
func (d *DropCounters) Get(r DropReason) uint64 {
	if r < numDropReasons {
		return d.c[r].Load()
	}
	return 0
}

// Snapshot returns the nonzero counters keyed by reason name (allocates; control path).
func (d *DropCounters) Snapshot() map[string]uint64 {
	m := make(map[string]uint64)
	for r := DropReason(1); r < numDropReasons; r++ {
		if v := d.c[r].Load(); v != 0 {
			m[r.String()] = v
		}
	}
	return m
}
