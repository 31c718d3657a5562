package enroll

import "fmt"

// Reason is why the CA host refused an enrollment or renewal. The server counts each one
// (Server.Stats); a refusal sent to the joiner carries its code, and the joiner's error says
// what to do (RefusedError).
type Reason uint8

// Refusal reasons sent to the joiner. Codes are on the wire: append only.
const (
	ReasonBadRequest   Reason = iota + 1 // a request that does not parse or names nothing valid
	ReasonBadProof                       // the MAC does not verify: replayed, altered, wrong secret
	ReasonUnknownToken                   // no such token on this CA host
	ReasonTokenExpired                   // past the token's ttl
	ReasonTokenRevoked                   // `weft token revoke`
	ReasonTokenUsed                      // every use spent
	ReasonNoPrefix                       // no /24 left in the cluster CIDR
	ReasonNotRenewable                   // renewal of a certificate that is not current, or not this CA's
	ReasonNotAllocator                   // this CA host serves renewals only
	ReasonInternal                       // the CA host failed (its log says why)
	ReasonNameTaken                      // another key holds this node name
	numReasons
)

var reasonNames = [...]string{
	ReasonBadRequest:   "bad_request",
	ReasonBadProof:     "bad_proof",
	ReasonUnknownToken: "unknown_token",
	ReasonTokenExpired: "token_expired",
	ReasonTokenRevoked: "token_revoked",
	ReasonTokenUsed:    "token_used",
	ReasonNoPrefix:     "no_prefix",
	ReasonNotRenewable: "not_renewable",
	ReasonNotAllocator: "not_allocator",
	ReasonInternal:     "internal",
	ReasonNameTaken:    "name_taken",
}

// String is the reason's name, as counted.
func (r Reason) String() string {
	if r > 0 && r < numReasons {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason_%d", uint8(r))
}

// advice is what the operator of the joining host should do about r.
var advice = [...]string{
	ReasonBadRequest:   "the CA host could not read the request: check that both hosts run the same weft version",
	ReasonBadProof:     "the token's proof did not verify (a replayed or altered message, or a token whose secret was altered in copying): copy the whole token again, or create a new one with `weft token create` on the CA host",
	ReasonUnknownToken: "the CA host does not know this token: create one on it with `weft token create` (a token works only with the CA host that created it)",
	ReasonTokenExpired: "the token expired: create a new one on the CA host with `weft token create` (--ttl sets how long it lasts)",
	ReasonTokenRevoked: "the token was revoked: create a new one on the CA host with `weft token create`",
	ReasonTokenUsed:    "the token was already used (tokens are single-use unless created with --uses N): create a new one on the CA host with `weft token create`",
	ReasonNoPrefix:     "the CA host has no /24 left in the cluster CIDR: widen cluster_cidr, or free one",
	ReasonNotRenewable: "the CA host does not renew this certificate (expired, or not of its CA): enroll again with a new token (`weft token create` on the CA host, then --join-token)",
	ReasonNotAllocator: "this CA host renews certificates but does not enroll new hosts: pass --retry-join the address of the CA host where `weft init` ran",
	ReasonInternal:     "the CA host failed to issue the certificate: read its log (journalctl -u weft)",
	ReasonNameTaken:    "another host's key holds this node name at the CA host (`weft token list` shows it): start this host with another --name, or, re-installing that host, restore its old private.key into the state directory",
}

// RefusedError is the joiner's error for a refusal by the CA host.
type RefusedError struct {
	Addr   string
	Reason Reason
}

func (e *RefusedError) Error() string {
	a := "retry later"
	if e.Reason > 0 && e.Reason < numReasons {
		a = advice[e.Reason]
	}
	return fmt.Sprintf("CA host %s refused the enrollment (%s): %s", e.Addr, e.Reason, a)
}

// Names of refusals the server counts that are not sent (the connection is closed).
const (
	countRateLimited     = "rate_limited"
	countBusy            = "busy"
	countHandshakeFailed = "handshake_failed"
	countTooLarge        = "too_large"
	countIO              = "io"
)
