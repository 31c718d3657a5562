package identity

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// signContext is prepended to the body before signing, so that a CA's
// signature over a certificate can never be presented as its signature over
// another kind of document (the signed policy of DESIGN.md will use its own
// context) and the reverse.
const signContext = "weft certificate v1\x00"

// Prefix length byte: IPv4 prefixes are their length (0..32), IPv6 ones
// prefix6Base plus their length (64..192); other values are malformed.
const prefix6Base = 64

// appendBody appends the canonical body of c (the layout in doc.go) and
// refuses fields the format cannot carry.
func (c *Certificate) appendBody(b []byte) ([]byte, error) {
	switch c.Kind {
	case KindCA:
		if c.Issuer != (IssuerID{}) {
			return b, fmt.Errorf("%w: a CA certificate has no issuer", ErrMalformed)
		}
	case KindHost:
	default:
		return b, fmt.Errorf("%w: kind %d", ErrMalformed, c.Kind)
	}
	if !validName(c.Name, MaxNameLen, false) {
		return b, fmt.Errorf("%w: name %q must be 1..%d printable ASCII characters without spaces", ErrMalformed, c.Name, MaxNameLen)
	}
	nb, err := encodeTime(c.NotBefore)
	if err != nil {
		return b, err
	}
	na, err := encodeTime(c.NotAfter)
	if err != nil {
		return b, err
	}
	if nb >= na {
		return b, fmt.Errorf("%w: not-before %s is not before not-after %s", ErrMalformed, c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339))
	}
	if len(c.Prefixes) > MaxPrefixes || len(c.Groups) > MaxGroups {
		return b, fmt.Errorf("%w: more than %d prefixes or %d groups", ErrMalformed, MaxPrefixes, MaxGroups)
	}
	b = append(b, Version, byte(c.Kind), byte(len(c.Name)))
	b = append(b, c.Name...)
	b = append(b, c.PublicKey[:]...)
	b = binary.BigEndian.AppendUint32(b, nb)
	b = binary.BigEndian.AppendUint32(b, na)
	b = append(b, byte(len(c.Prefixes)))
	for i, p := range c.Prefixes {
		if !validPrefix(p) {
			return b, fmt.Errorf("%w: prefix %s", ErrMalformed, p)
		}
		if i > 0 && comparePrefix(c.Prefixes[i-1], p) >= 0 {
			return b, fmt.Errorf("%w: prefixes not sorted and distinct", ErrMalformed)
		}
		b = appendPrefix(b, p)
	}
	b = append(b, byte(len(c.Groups)))
	for i, g := range c.Groups {
		if !validName(g, MaxGroupLen, true) {
			return b, fmt.Errorf("%w: group %q", ErrMalformed, g)
		}
		if i > 0 && c.Groups[i-1] >= g {
			return b, fmt.Errorf("%w: groups not sorted and distinct", ErrMalformed)
		}
		b = append(b, byte(len(g)))
		b = append(b, g...)
	}
	if c.Kind == KindHost {
		b = append(b, c.Issuer[:]...)
	}
	return b, nil
}

func encodeTime(t time.Time) (uint32, error) {
	s := t.Unix()
	if t.IsZero() || s < 0 || s > maxTime.Unix() {
		return 0, fmt.Errorf("%w: time %s outside 1970..2106 (choose a shorter duration)", ErrMalformed, t.UTC().Format(time.RFC3339))
	}
	return uint32(s), nil
}

// appendPrefix writes the length byte and only the address bytes the length
// covers; the bits past the length are zero because p is masked.
func appendPrefix(b []byte, p netip.Prefix) []byte {
	bits := p.Bits()
	if p.Addr().Is4() {
		a := p.Addr().As4()
		b = append(b, byte(bits))
		return append(b, a[:(bits+7)/8]...)
	}
	a := p.Addr().As16()
	b = append(b, byte(prefix6Base+bits))
	return append(b, a[:(bits+7)/8]...)
}

// AppendBinary appends the encoding of c (body, then signature) to b.
func (c *Certificate) AppendBinary(b []byte) ([]byte, error) {
	b, err := c.appendBody(b)
	if err != nil {
		return b, err
	}
	return append(b, c.Signature[:]...), nil
}

// MarshalBinary returns the encoding of c.
func (c *Certificate) MarshalBinary() ([]byte, error) {
	return c.AppendBinary(make([]byte, 0, 192))
}

// decoder reads a body; every read is bounds-checked and a failure sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n > len(d.b) {
		d.err = fmt.Errorf("%w: truncated", ErrMalformed)
		return nil
	}
	out := d.b[:n:n]
	d.b = d.b[n:]
	return out
}

func (d *decoder) byte() byte {
	if p := d.take(1); p != nil {
		return p[0]
	}
	return 0
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
	}
}

// UnmarshalBinary decodes a certificate strictly: a known version and kind,
// every length and count within the limits, every field in its domain,
// lists sorted and distinct, no trailing bytes. The encoding is canonical:
// what it accepts, MarshalBinary reproduces byte for byte, so one signature
// never covers two different parses. On error c is unchanged. It does not
// verify the signature (Verify does).
func (c *Certificate) UnmarshalBinary(b []byte) error {
	if len(b) > MaxCertificateSize {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrMalformed, len(b), MaxCertificateSize)
	}
	if len(b) > 0 && b[0] != Version {
		return fmt.Errorf("%w: %d", ErrUnknownVersion, b[0])
	}
	d := decoder{b: b}
	d.byte() // version
	var out Certificate
	out.Kind = Kind(d.byte())
	if d.err == nil && out.Kind != KindCA && out.Kind != KindHost {
		d.fail("kind %d", out.Kind)
	}
	n := int(d.byte())
	if d.err == nil && (n == 0 || n > MaxNameLen) {
		d.fail("name length %d", n)
	}
	name := d.take(n)
	if d.err == nil && !validName(string(name), MaxNameLen, false) {
		d.fail("name is not printable ASCII without spaces")
	}
	out.Name = string(name)
	copy(out.PublicKey[:], d.take(KeySize))
	nb, na := d.take(4), d.take(4)
	if d.err == nil {
		s, e := binary.BigEndian.Uint32(nb), binary.BigEndian.Uint32(na)
		if s >= e {
			d.fail("validity %d..%d", s, e)
		}
		out.NotBefore, out.NotAfter = time.Unix(int64(s), 0).UTC(), time.Unix(int64(e), 0).UTC()
	}
	np := int(d.byte())
	if d.err == nil && np > MaxPrefixes {
		d.fail("%d prefixes, at most %d", np, MaxPrefixes)
	}
	if d.err == nil && np > 0 {
		out.Prefixes = make([]netip.Prefix, 0, np)
	}
	for i := 0; i < np && d.err == nil; i++ {
		p, ok := d.prefix()
		if !ok {
			break
		}
		if i > 0 && comparePrefix(out.Prefixes[i-1], p) >= 0 {
			d.fail("prefixes not sorted and distinct")
			break
		}
		out.Prefixes = append(out.Prefixes, p)
	}
	ng := int(d.byte())
	if d.err == nil && ng > MaxGroups {
		d.fail("%d groups, at most %d", ng, MaxGroups)
	}
	if d.err == nil && ng > 0 {
		out.Groups = make([]string, 0, ng)
	}
	for i := 0; i < ng && d.err == nil; i++ {
		l := int(d.byte())
		g := string(d.take(l))
		if d.err != nil {
			break
		}
		if !validName(g, MaxGroupLen, true) {
			d.fail("group %d is not 1..%d printable ASCII characters without spaces or commas", i, MaxGroupLen)
			break
		}
		if i > 0 && out.Groups[i-1] >= g {
			d.fail("groups not sorted and distinct")
			break
		}
		out.Groups = append(out.Groups, g)
	}
	if out.Kind == KindHost {
		copy(out.Issuer[:], d.take(IssuerSize))
	}
	copy(out.Signature[:], d.take(SignatureSize))
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
	if d.err != nil {
		return d.err
	}
	// Belt and braces: the checks above are meant to make the encoding
	// canonical; this makes it so even if one of them has a hole.
	again, err := out.MarshalBinary()
	if err != nil || !bytes.Equal(again, b) {
		return fmt.Errorf("%w: not in canonical form", ErrMalformed)
	}
	*c = out
	return nil
}

func (d *decoder) prefix() (netip.Prefix, bool) {
	h := int(d.byte())
	if d.err != nil {
		return netip.Prefix{}, false
	}
	var bits int
	var addr netip.Addr
	switch {
	case h <= 32:
		bits = h
		var a [4]byte
		copy(a[:], d.take((bits+7)/8))
		addr = netip.AddrFrom4(a)
	case h >= prefix6Base && h <= prefix6Base+128:
		bits = h - prefix6Base
		var a [16]byte
		copy(a[:], d.take((bits+7)/8))
		addr = netip.AddrFrom16(a)
		if d.err == nil && addr.Is4In6() {
			d.fail("IPv4-mapped IPv6 prefix")
		}
	default:
		d.fail("prefix length byte %d", h)
	}
	if d.err != nil {
		return netip.Prefix{}, false
	}
	p := netip.PrefixFrom(addr, bits)
	if p.Masked() != p {
		d.fail("prefix %s has bits set past its length", p)
		return netip.Prefix{}, false
	}
	return p, true
}

// ParseCertificate decodes b (see UnmarshalBinary).
func ParseCertificate(b []byte) (*Certificate, error) {
	c := new(Certificate)
	if err := c.UnmarshalBinary(b); err != nil {
		return nil, err
	}
	return c, nil
}

// tagEncoding is the text form of the gossip tag: unpadded base64url, as
// the node-info tag. Strict refuses non-zero padding bits, so one
// certificate has one tag spelling.
var tagEncoding = base64.RawURLEncoding.Strict()

// MaxTagLen is the longest tag DecodeTag accepts: MaxCertificateSize bytes
// in unpadded base64.
const MaxTagLen = (MaxCertificateSize*8 + 5) / 6

// TagKey is the Serf tag key suggested for a member's host certificate
// (the gossip layer reserves it as it reserves the node-info tag "n").
const TagKey = "c"

// EncodeTag returns c's encoding in unpadded base64url, the value of the
// gossip tag. Serf would carry raw bytes, but tags also leave the process as
// JSON and log fields, where invalid UTF-8 is mangled.
func (c *Certificate) EncodeTag() (string, error) {
	b, err := c.MarshalBinary()
	if err != nil {
		return "", err
	}
	return tagEncoding.EncodeToString(b), nil
}

// DecodeTag parses a gossip tag value strictly: bounded before decoding,
// exactly one base64url spelling, then UnmarshalBinary.
func DecodeTag(tag string) (*Certificate, error) {
	if len(tag) > MaxTagLen {
		return nil, fmt.Errorf("%w: tag of %d characters, at most %d", ErrMalformed, len(tag), MaxTagLen)
	}
	if strings.ContainsAny(tag, "\r\n") { // the decoder skips them; one tag, one spelling
		return nil, fmt.Errorf("%w: tag is not unpadded base64url", ErrMalformed)
	}
	b, err := tagEncoding.DecodeString(tag)
	if err != nil {
		return nil, fmt.Errorf("%w: tag is not unpadded base64url", ErrMalformed)
	}
	return ParseCertificate(b)
}
