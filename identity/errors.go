package identity

import "errors"

// Named errors. Verify and the decoders return these (wrapped with a detail
// where one helps a human), so callers compare with errors.Is and count
// refusals by Reason without parsing messages.
var (
	// ErrMalformed: the bytes are no canonical certificate of this format
	// (short, trailing bytes, a length or count out of bounds, a field out
	// of its domain, or a non-canonical spelling of a valid value).
	ErrMalformed = errors.New("identity: malformed certificate")
	// ErrUnknownVersion: the version byte is not one this build reads.
	ErrUnknownVersion = errors.New("identity: unknown certificate version")
	// ErrWrongKind: a CA certificate where a host certificate is required,
	// or the reverse (also a PEM block whose type disagrees with its body).
	ErrWrongKind = errors.New("identity: wrong certificate kind")
	// ErrUnknownCA: the certificate's issuer is no CA of the pool.
	ErrUnknownCA = errors.New("identity: issued by an unknown CA")
	// ErrBadSignature: the signature does not verify under the issuer's key
	// (forged, tampered, or signed by another key of the same name).
	ErrBadSignature = errors.New("identity: bad signature")
	// ErrExpired: the certificate, or the CA certificate that issued it, is
	// past its not-after time.
	ErrExpired = errors.New("identity: certificate expired")
	// ErrNotYetValid: the certificate, or its CA certificate, is before its
	// not-before time.
	ErrNotYetValid = errors.New("identity: certificate not yet valid")
	// ErrBlocklisted: the certificate's fingerprint, or its CA's, is on the
	// blocklist.
	ErrBlocklisted = errors.New("identity: certificate blocklisted")
	// ErrCAConstraint: the certificate claims a prefix or group that its CA
	// may not sign, or a validity window outside the CA's.
	ErrCAConstraint = errors.New("identity: claim outside the CA's constraints")

	// ErrNameMismatch: a member's node name is not its certificate's name.
	ErrNameMismatch = errors.New("identity: name does not match the certificate")
	// ErrKeyMismatch: a member's public key is not its certificate's key.
	ErrKeyMismatch = errors.New("identity: public key does not match the certificate")
	// ErrPrefixNotAllowed: a member announces a prefix outside every prefix
	// of its certificate.
	ErrPrefixNotAllowed = errors.New("identity: prefix not allowed by the certificate")
)

// reasons maps each named error to its metric label, most specific first
// (Verify wraps a CA's expiry as ErrExpired too, so order matters only for
// errors that wrap two sentinels, of which there are none today).
var reasons = []struct {
	err   error
	label string
}{
	{ErrMalformed, "malformed"},
	{ErrUnknownVersion, "unknown_version"},
	{ErrWrongKind, "wrong_kind"},
	{ErrUnknownCA, "unknown_ca"},
	{ErrBadSignature, "bad_signature"},
	{ErrExpired, "expired"},
	{ErrNotYetValid, "not_yet_valid"},
	{ErrBlocklisted, "blocklisted"},
	{ErrCAConstraint, "ca_constraint"},
	{ErrNameMismatch, "name_mismatch"},
	{ErrKeyMismatch, "key_mismatch"},
	{ErrPrefixNotAllowed, "prefix_not_allowed"},
	{ErrBadEnvelope, "bad_envelope"},
	{ErrWrongPurpose, "wrong_purpose"},
}

// Reason returns the metric label of err (for a counter such as
// weft_gossip_claims_refused_total{reason}): "" for nil, one fixed label per
// named error of this package, and "other" for anything else. The set of
// labels is closed, so a hostile input cannot create new time series.
func Reason(err error) string {
	if err == nil {
		return ""
	}
	for _, r := range reasons {
		if errors.Is(err, r.err) {
			return r.label
		}
	}
	return "other"
}

// Reasons returns every label Reason can return for a non-nil error, so that
// a metrics layer can create its counters up front.
func Reasons() []string {
	out := make([]string, 0, len(reasons)+1)
	for _, r := range reasons {
		out = append(out, r.label)
	}
	return append(out, "other")
}
