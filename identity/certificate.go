package identity

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Kind says what a certificate is for.
type Kind uint8

const (
	// KindCA is a self-signed CA certificate: its public key is Ed25519 and
	// its prefixes and groups constrain what it may sign (none: anything).
	KindCA Kind = 1
	// KindHost is a host certificate: its public key is the host's
	// WireGuard (X25519) key, its prefixes and groups are what it may claim.
	KindHost Kind = 2
)

func (k Kind) String() string {
	switch k {
	case KindCA:
		return "ca"
	case KindHost:
		return "host"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Limits of the format. The decoder refuses anything beyond them before it
// allocates, so a hostile input costs at most MaxCertificateSize bytes.
const (
	// Version is the certificate format this package writes and reads.
	Version = 1
	// MaxNameLen bounds the node (or CA) name in bytes.
	MaxNameLen = 64
	// MaxGroupLen bounds one group name in bytes.
	MaxGroupLen = 32
	// MaxPrefixes bounds the number of prefixes of one certificate.
	MaxPrefixes = 16
	// MaxGroups bounds the number of groups of one certificate.
	MaxGroups = 16
	// IssuerSize is the length of the issuer field: the first bytes of the
	// CA's fingerprint. 128 bits keep CAs apart while the cert stays small.
	IssuerSize = 16
	// SignatureSize is the length of the Ed25519 signature that ends a
	// certificate.
	SignatureSize = 64
	// KeySize is the length of both kinds of public key.
	KeySize = 32

	// MaxCertificateSize is the largest encoding the limits allow
	// (every field at its maximum; see the layout in doc.go).
	MaxCertificateSize = 3 + MaxNameLen + KeySize + 8 + 1 + MaxPrefixes*17 + 1 + MaxGroups*(1+MaxGroupLen) + IssuerSize + SignatureSize
)

// maxTime is the last second the 32-bit unsigned time fields can hold.
var maxTime = time.Unix(1<<32-1, 0).UTC()

// Fingerprint identifies a certificate: SHA-256 of its body (everything but
// the signature). Blocklists name certificates by it; a host certificate
// names its CA by the first IssuerSize bytes of the CA's.
type Fingerprint [sha256.Size]byte

// String returns f in lower-case hex, the blocklist's spelling.
func (f Fingerprint) String() string { return hex.EncodeToString(f[:]) }

// Issuer returns the issuer field a host certificate signed by the CA with
// fingerprint f carries.
func (f Fingerprint) Issuer() IssuerID {
	var id IssuerID
	copy(id[:], f[:IssuerSize])
	return id
}

// ParseFingerprint parses 64 hex digits (either case).
func ParseFingerprint(s string) (Fingerprint, error) {
	var f Fingerprint
	if len(s) != 2*len(f) {
		return Fingerprint{}, fmt.Errorf("fingerprint %q: want %d hex digits, got %d", s, 2*len(f), len(s))
	}
	if _, err := hex.Decode(f[:], []byte(s)); err != nil {
		return Fingerprint{}, fmt.Errorf("fingerprint %q is not hex: %v", s, err)
	}
	return f, nil
}

// IssuerID is the issuer field of a host certificate: the first IssuerSize
// bytes of its CA certificate's Fingerprint.
type IssuerID [IssuerSize]byte

func (id IssuerID) String() string { return hex.EncodeToString(id[:]) }

// Certificate is a CA or host certificate. Parse one with
// UnmarshalBinary, DecodeTag or ParseCertificatePEM; make one with NewCA or
// Sign. Verify checks a host certificate; a Certificate by itself is only
// well-formed, not trusted.
//
// The fields are what is signed. Verify signs nothing it does not re-encode
// from them, so changing a field after parsing makes the certificate fail
// verification rather than claim something unsigned.
type Certificate struct {
	Kind Kind
	// Name is the node name (host) or the CA's name: 1..MaxNameLen bytes of
	// printable ASCII without spaces.
	Name string
	// PublicKey is the CA's Ed25519 key or the host's WireGuard key.
	PublicKey [KeySize]byte
	// NotBefore and NotAfter bound the validity, both inclusive, to the
	// second (UTC, 1970..2106).
	NotBefore, NotAfter time.Time
	// Prefixes, sorted and distinct, masked, IPv4 or IPv6 (never an
	// IPv4-mapped IPv6 prefix). Host: what it may announce. CA: what its
	// host certificates may hold (empty: any).
	Prefixes []netip.Prefix
	// Groups, sorted and distinct, 1..MaxGroupLen bytes of printable ASCII
	// without spaces or commas. Host: its groups. CA: what its host
	// certificates may hold (empty: any).
	Groups []string
	// Issuer names the CA of a host certificate; zero for a CA.
	Issuer IssuerID
	// Signature is Ed25519 over signContext || body.
	Signature [SignatureSize]byte
}

// Fingerprint returns SHA-256 of c's body. It fails only for a certificate
// whose fields cannot be encoded.
func (c *Certificate) Fingerprint() (Fingerprint, error) {
	body, err := c.appendBody(nil)
	if err != nil {
		return Fingerprint{}, err
	}
	return sha256.Sum256(body), nil
}

// TimeLeft returns how long c stays valid after now (negative: expired
// that long ago). Callers warn when it drops under their threshold.
func (c *Certificate) TimeLeft(now time.Time) time.Duration { return c.NotAfter.Sub(now) }

// validName reports whether s is 1..max bytes of printable ASCII without
// spaces (and without commas when noComma): names survive logs, JSON,
// comma-joined lists and shells unchanged.
func validName(s string, max int, noComma bool) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' || (noComma && s[i] == ',') {
			return false
		}
	}
	return true
}

// comparePrefix orders prefixes IPv4 first, then by address, then by length.
func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

// validPrefix reports whether p is one this format carries: valid, masked,
// no zone, and not an IPv4-mapped IPv6 prefix (whose meaning as IPv4 or
// IPv6 would depend on the reader).
func validPrefix(p netip.Prefix) bool {
	return p.IsValid() && p.Masked() == p && p.Addr().Zone() == "" && !p.Addr().Is4In6()
}

// normalize returns a copy of the lists sorted and checked, or an error
// that names the offending entry (for Sign and NewCA).
func normalize(prefixes []netip.Prefix, groups []string) ([]netip.Prefix, []string, error) {
	if len(prefixes) > MaxPrefixes {
		return nil, nil, fmt.Errorf("%w: %d prefixes, at most %d", ErrMalformed, len(prefixes), MaxPrefixes)
	}
	if len(groups) > MaxGroups {
		return nil, nil, fmt.Errorf("%w: %d groups, at most %d", ErrMalformed, len(groups), MaxGroups)
	}
	ps := slices.Clone(prefixes)
	for _, p := range ps {
		if !validPrefix(p) {
			if p.IsValid() && p.Masked() != p {
				return nil, nil, fmt.Errorf("%w: prefix %s has host bits set: use %s", ErrMalformed, p, p.Masked())
			}
			return nil, nil, fmt.Errorf("%w: prefix %s is not an IPv4 or IPv6 prefix", ErrMalformed, p)
		}
	}
	slices.SortFunc(ps, comparePrefix)
	ps = slices.Compact(ps)
	gs := slices.Clone(groups)
	for _, g := range gs {
		if !validName(g, MaxGroupLen, true) {
			return nil, nil, fmt.Errorf("%w: group %q must be 1..%d printable ASCII characters without spaces or commas", ErrMalformed, g, MaxGroupLen)
		}
	}
	slices.Sort(gs)
	gs = slices.Compact(gs)
	if len(ps) == 0 {
		ps = nil
	}
	if len(gs) == 0 {
		gs = nil
	}
	return ps, gs, nil
}

// String is a one-line summary for logs.
func (c *Certificate) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s certificate %q", c.Kind, c.Name)
	if len(c.Prefixes) > 0 {
		fmt.Fprintf(&b, " prefixes %v", c.Prefixes)
	}
	if len(c.Groups) > 0 {
		fmt.Fprintf(&b, " groups %s", strings.Join(c.Groups, ","))
	}
	fmt.Fprintf(&b, " valid %s..%s", c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339))
	return b.String()
}

// ValidGroup says whether s can be a group name: 1..MaxGroupLen bytes of printable ASCII
// without spaces or commas, as certificates carry them.
func ValidGroup(s string) bool { return validName(s, MaxGroupLen, true) }
