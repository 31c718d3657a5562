package identity

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

func TestCertificate_RoundTrip(t *testing.T) {
	ca := newTestCA(t, "rt", nil, nil)
	constrained := newTestCA(t, "rt2", pfx("10.42.0.0/16", "fd00::/8"), []string{"prod", "web"})
	max := HostSpec{Name: strings.Repeat("n", MaxNameLen), PublicKey: testKey("max"), NotBefore: t0, NotAfter: t0.Add(time.Hour)}
	for i := range MaxPrefixes {
		a := netip.MustParseAddr("2001:db8::").As16()
		a[15] = byte(i)
		max.Prefixes = append(max.Prefixes, netip.PrefixFrom(netip.AddrFrom16(a), 128))
	}
	for i := range MaxGroups {
		max.Groups = append(max.Groups, strings.Repeat(string(rune('a'+i)), MaxGroupLen))
	}
	cases := map[string]*Certificate{
		"ca":             ca.cert,
		"ca-constrained": constrained.cert,
		"host-typical":   ca.sign(t, typicalSpec()),
		"host-bare":      ca.sign(t, HostSpec{Name: "x", PublicKey: testKey("x"), NotBefore: t0, NotAfter: t0.Add(time.Second)}),
		"host-v6-and-any": ca.sign(t, HostSpec{Name: "y", PublicKey: testKey("y"), NotBefore: t0, NotAfter: t0.Add(time.Hour),
			Prefixes: pfx("0.0.0.0/0", "10.0.0.1/32", "10.1.0.0/17", "::/0", "fd00:1:2:3::/64", "2001:db8::1/128")}),
		"host-max":         ca.sign(t, max),
		"host-constrained": constrained.sign(t, HostSpec{Name: "z", PublicKey: testKey("z"), NotBefore: t0, NotAfter: t0.Add(time.Hour), Prefixes: pfx("10.42.9.0/24", "fd00:9::/32"), Groups: []string{"web"}}),
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			b := mustMarshal(t, c)
			if len(b) > MaxCertificateSize {
				t.Fatalf("%d bytes > MaxCertificateSize %d", len(b), MaxCertificateSize)
			}
			got, err := ParseCertificate(b)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, c)
			}
			if again := mustMarshal(t, got); !bytes.Equal(again, b) {
				t.Fatal("decode→encode is not byte-identical")
			}
			tag, err := c.EncodeTag()
			if err != nil {
				t.Fatal(err)
			}
			fromTag, err := DecodeTag(tag)
			if err != nil || !reflect.DeepEqual(fromTag, c) {
				t.Fatalf("tag round trip: %v", err)
			}
		})
	}
	// Every field at its limit makes exactly MaxCertificateSize.
	if n := len(mustMarshal(t, cases["host-max"])); n != MaxCertificateSize {
		t.Fatalf("host-max: %d bytes, MaxCertificateSize %d", n, MaxCertificateSize)
	}
}

// TestCertificate_Size measures the typical host certificate (12-character
// name, one /24, two groups) in binary, in the base64url tag and in Serf's
// metadata (msgpack of the tags map, whose total is bounded by 512 bytes).
func TestCertificate_Size(t *testing.T) {
	ca := newTestCA(t, "size", nil, nil)
	c := ca.sign(t, typicalSpec())
	bin := mustMarshal(t, c)
	tag, err := c.EncodeTag()
	if err != nil {
		t.Fatal(err)
	}
	meta := msgpackSize(t, map[string]string{TagKey: tag}) - msgpackSize(t, map[string]string{})
	// Beside the node-info tag (63 characters in discovery's
	// TestNodeInfo_Size), plus Serf's magic byte as discovery.EncodedTagsSize counts it.
	both := 1 + msgpackSize(t, map[string]string{TagKey: tag, "n": strings.Repeat("A", 63)})
	const serfBudget = 512
	t.Logf("typical host certificate: %d bytes binary (body %d + signature %d), %d characters in the tag, %d bytes of Serf metadata; with the node-info tag %d of %d, %d left for the catalog",
		len(bin), len(bin)-SignatureSize, SignatureSize, len(tag), meta, both, serfBudget, serfBudget-both)
	// Upper bounds measured: 150 bytes binary, 200 characters, 205 bytes of
	// metadata (go-msgpack writes a 3-byte raw16 header for it). A change
	// that grows them must update doc.go and the README's budget.
	if len(bin) > 150 || len(tag) > 200 || meta > 205 {
		t.Errorf("typical certificate grew: binary %d (bound 150), tag %d (bound 200), metadata %d (bound 205)", len(bin), len(tag), meta)
	}
	t.Logf("largest certificate the limits allow: %d bytes, %d characters", MaxCertificateSize, MaxTagLen)
}

func msgpackSize(t *testing.T, tags map[string]string) int {
	t.Helper()
	var buf bytes.Buffer
	if err := codec.NewEncoder(&buf, &codec.MsgpackHandle{}).Encode(tags); err != nil {
		t.Fatal(err)
	}
	return buf.Len()
}

// TestUnmarshalBinary_Hostile: every way of bending the encoding is refused
// with a named error, never a panic, and leaves the target unchanged.
func TestUnmarshalBinary_Hostile(t *testing.T) {
	ca := newTestCA(t, "hostile", nil, nil)
	good := mustMarshal(t, ca.sign(t, typicalSpec()))
	// Offsets in the typical certificate (see doc.go).
	const (
		offKind   = 1
		offName   = 2
		offTimes  = 3 + 12 + KeySize
		offNPfx   = offTimes + 8
		offPfxLen = offNPfx + 1
		offNGrp   = offPfxLen + 4
		offGrp0   = offNGrp + 1 // length of "prod"
	)
	if good[offName] != 12 || good[offNPfx] != 1 || good[offPfxLen] != 24 || good[offNGrp] != 2 || good[offGrp0] != 4 {
		t.Fatalf("layout assumption broken: % x", good[:offGrp0+1])
	}
	mut := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	set := func(off int, v byte) []byte { return mut(func(b []byte) []byte { b[off] = v; return b }) }
	cases := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrMalformed},
		{"version-0", set(0, 0), ErrUnknownVersion},
		{"version-2", set(0, 2), ErrUnknownVersion},
		{"kind-0", set(offKind, 0), ErrMalformed},
		{"kind-3", set(offKind, 3), ErrMalformed},
		{"kind-ca-with-issuer", set(offKind, byte(KindCA)), ErrMalformed}, // the issuer's 16 bytes become trailing
		{"name-len-0", set(offName, 0), ErrMalformed},
		{"name-len-oversize", set(offName, MaxNameLen+1), ErrMalformed},
		{"name-len-255", set(offName, 255), ErrMalformed},
		{"name-space", set(offName+1, ' '), ErrMalformed},
		{"name-control", set(offName+1, 0x07), ErrMalformed},
		{"name-high-bit", set(offName+1, 0xc3), ErrMalformed},
		{"not-after-before-not-before", mut(func(b []byte) []byte {
			copy(b[offTimes+4:], b[offTimes:offTimes+4])
			return b
		}), ErrMalformed},
		{"prefix-count-oversize", set(offNPfx, MaxPrefixes+1), ErrMalformed},
		{"prefix-count-255", set(offNPfx, 255), ErrMalformed},
		{"prefix-len-33", set(offPfxLen, 33), ErrMalformed},
		{"prefix-len-63", set(offPfxLen, 63), ErrMalformed},
		{"prefix-len-193", set(offPfxLen, 193), ErrMalformed},
		{"prefix-host-bits", mut(func(b []byte) []byte { b[offPfxLen] = 23; return b }), ErrMalformed}, // 10.42.7.0/23: bit 24 set
		{"prefix-duplicate", mut(func(b []byte) []byte {
			b[offNPfx] = 2
			return append(b[:offPfxLen+4], append(bytes.Clone(b[offPfxLen:offPfxLen+4]), b[offPfxLen+4:]...)...)
		}), ErrMalformed},
		{"prefix-4in6", mut(func(b []byte) []byte {
			v6 := []byte{prefix6Base + 120, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 42, 7}
			return append(b[:offPfxLen], append(v6, b[offPfxLen+4:]...)...)
		}), ErrMalformed},
		{"group-count-oversize", set(offNGrp, MaxGroups+1), ErrMalformed},
		{"group-len-0", set(offGrp0, 0), ErrMalformed},
		{"group-len-oversize", set(offGrp0, MaxGroupLen+1), ErrMalformed},
		{"group-comma", set(offGrp0+1, ','), ErrMalformed},
		{"groups-unsorted", mut(func(b []byte) []byte { // "prod","web" → "web","prod"
			g := append([]byte{3, 'w', 'e', 'b', 4}, "prod"...)
			copy(b[offGrp0:], g)
			return b
		}), ErrMalformed},
		{"trailing-byte", append(bytes.Clone(good), 0), ErrMalformed},
		{"trailing-signature", append(bytes.Clone(good), good[len(good)-SignatureSize:]...), ErrMalformed},
		{"oversize-input", make([]byte, MaxCertificateSize+1), ErrMalformed},
	}
	for i := range len(good) {
		cases = append(cases, struct {
			name string
			in   []byte
			want error
		}{"truncated-" + strconv.Itoa(i), good[:i], ErrMalformed})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := &Certificate{Name: "untouched"}
			err := c.UnmarshalBinary(tc.in)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if c.Name != "untouched" {
				t.Fatal("target modified on error")
			}
		})
	}
	// The 4-byte time fields are big-endian Unix seconds.
	if got := binary.BigEndian.Uint32(good[offTimes:]); int64(got) != typicalSpec().NotBefore.Unix() {
		t.Fatalf("not-before field %d", got)
	}
}

// TestMarshalBinary_RefusesWhatCannotBeParsed: the encoder refuses the
// fields the decoder would refuse, so a certificate never leaves in a form
// that does not come back.
func TestMarshalBinary_RefusesWhatCannotBeParsed(t *testing.T) {
	ca := newTestCA(t, "marshal", nil, nil)
	base := ca.sign(t, typicalSpec())
	cases := map[string]func(c *Certificate){
		"kind":              func(c *Certificate) { c.Kind = 9 },
		"empty-name":        func(c *Certificate) { c.Name = "" },
		"long-name":         func(c *Certificate) { c.Name = strings.Repeat("a", MaxNameLen+1) },
		"zero-time":         func(c *Certificate) { c.NotBefore = time.Time{} },
		"after-2106":        func(c *Certificate) { c.NotAfter = time.Date(2107, 1, 1, 0, 0, 0, 0, time.UTC) },
		"inverted":          func(c *Certificate) { c.NotBefore, c.NotAfter = c.NotAfter, c.NotBefore },
		"equal-times":       func(c *Certificate) { c.NotBefore = c.NotAfter },
		"unsorted-prefixes": func(c *Certificate) { c.Prefixes = pfx("10.2.0.0/16", "10.1.0.0/16") },
		"dup-prefixes":      func(c *Certificate) { c.Prefixes = pfx("10.1.0.0/16", "10.1.0.0/16") },
		"unmasked":          func(c *Certificate) { c.Prefixes = pfx("10.1.0.1/16") },
		"4in6":              func(c *Certificate) { c.Prefixes = pfx("::ffff:10.0.0.0/104") },
		"unsorted-groups":   func(c *Certificate) { c.Groups = []string{"b", "a"} },
		"group-space":       func(c *Certificate) { c.Groups = []string{"a b"} },
		"too-many-groups":   func(c *Certificate) { c.Groups = make([]string, MaxGroups+1) },
		"ca-with-issuer":    func(c *Certificate) { c.Kind = KindCA },
	}
	for name, f := range cases {
		t.Run(name, func(t *testing.T) {
			c := *base
			f(&c)
			if _, err := c.MarshalBinary(); !errors.Is(err, ErrMalformed) {
				t.Fatalf("MarshalBinary: %v, want ErrMalformed", err)
			}
		})
	}
}

func TestDecodeTag_Strict(t *testing.T) {
	ca := newTestCA(t, "tag", nil, nil)
	spec := typicalSpec()
	spec.Name += "x" // 151 bytes: the last character carries padding bits
	c := ca.sign(t, spec)
	if len(mustMarshal(t, c))%3 == 0 {
		t.Fatal("want a length that is not a multiple of 3")
	}
	tag, err := c.EncodeTag()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeTag(tag); err != nil {
		t.Fatal(err)
	}
	// The last character carries padding bits when the length is not a
	// multiple of 3; a different spelling of the same bytes is refused.
	last := strings.IndexByte(tagAlphabet, tag[len(tag)-1])
	alt := tag[:len(tag)-1] + string(tagAlphabet[last^1])
	bad := map[string]string{
		"padding-bits": alt,
		"newline":      tag[:10] + "\n" + tag[10:],
		"std-base64":   strings.NewReplacer("-", "+", "_", "/").Replace(tag) + "+/",
		"padded":       tag + "=",
		"oversize":     strings.Repeat("A", MaxTagLen+1),
		"empty":        "",
	}
	for name, s := range bad {
		if _, err := DecodeTag(s); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

const tagAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
