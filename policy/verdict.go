package policy

import "strconv"

// Decision is who decided a packet's fate.
type Decision uint8

// Decisions. Exactly one applies to each packet.
const (
	Denied           Decision = iota // refused; Verdict.Reason says why
	AllowedByRule                    // a new flow admitted by the rule Verdict.Rule
	AllowedByFlow                    // a packet of a flow in the table (admitted earlier by Verdict.Rule, -1 the default)
	AllowedByDefault                 // no rule matched and the default is allow (or there is no policy)
)

func (d Decision) String() string {
	switch d {
	case Denied:
		return "denied"
	case AllowedByRule:
		return "allowed_by_rule"
	case AllowedByFlow:
		return "allowed_by_flow"
	case AllowedByDefault:
		return "allowed_by_default"
	}
	return "decision(" + strconv.Itoa(int(d)) + ")"
}

// Reason names why a packet was denied. Each has an Engine counter; the datapath maps
// them onto its drop reasons (policy_denied, malformed).
type Reason uint8

// Reasons. ReasonNone means "not denied".
const (
	ReasonNone         Reason = iota
	ReasonPolicyDenied        // a deny rule or the deny default refused a new flow
	ReasonMalformed           // Classify refused the headers
	ReasonFragment            // a later fragment whose first fragment was not admitted (or not seen yet)
	ReasonFlowQuota           // a new flow from a peer that holds Config.MaxFlowsPerPeer flows already
	numReasons
)

// NumReasons is the number of Reason values, for arrays of counters.
const NumReasons = int(numReasons)

var reasonNames = [numReasons]string{
	ReasonNone:         "none",
	ReasonPolicyDenied: "policy_denied",
	ReasonMalformed:    "policy_malformed",
	ReasonFragment:     "policy_fragment_unknown",
	ReasonFlowQuota:    "policy_flow_quota",
}

// String returns the reason's snake_case name, for metrics labels.
func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// Verdict is the answer for one packet. Rule is the deciding rule's index, -1 for the
// default or when no rule was involved (malformed, unknown fragment).
type Verdict struct {
	Decision Decision
	Rule     int32
	Reason   Reason
}

// Allowed reports whether the packet may pass.
func (v Verdict) Allowed() bool { return v.Decision != Denied }
