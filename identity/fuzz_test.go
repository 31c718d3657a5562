package identity

import (
	"bytes"
	"reflect"
	"sync"
	"testing"
	"time"
)

// fuzzCorpus is a fixed CA and the certificates it signed, shared by the
// fuzz targets: their seeds, and for FuzzIdentity_Verify the complete list
// of what may verify.
type fuzzCorpus struct {
	ca      testCA
	signed  [][]byte // encodings of every certificate the CA signed
	invalid [][]byte // well-formed but refused ones (expired, other CA)
}

var (
	fuzzOnce sync.Once
	fuzzData fuzzCorpus
)

func corpus(tb testing.TB) *fuzzCorpus {
	fuzzOnce.Do(func() {
		ca := newTestCA(tb, "fuzz", pfx("10.0.0.0/8", "fd00::/8"), []string{"db", "prod", "web"})
		specs := []HostSpec{
			typicalSpec(),
			{Name: "v6-host", PublicKey: testKey("v6"), NotBefore: t0, NotAfter: t0.Add(time.Hour), Prefixes: pfx("10.1.0.0/16", "fd00:1::/32", "fd00:2::1/128"), Groups: []string{"db"}},
			{Name: "bare", PublicKey: testKey("bare"), NotBefore: t0.Add(-time.Minute), NotAfter: t0.Add(time.Minute)},
		}
		fuzzData.ca = ca
		for _, s := range specs {
			fuzzData.signed = append(fuzzData.signed, mustMarshal(tb, ca.sign(tb, s)))
		}
		expired := typicalSpec()
		expired.NotBefore, expired.NotAfter = t0.Add(-2*time.Hour), t0.Add(-time.Hour)
		fuzzData.signed = append(fuzzData.signed, mustMarshal(tb, ca.sign(tb, expired)))
		other := newTestCA(tb, "fuzz-other", nil, nil)
		fuzzData.invalid = append(fuzzData.invalid, mustMarshal(tb, other.sign(tb, typicalSpec())), mustMarshal(tb, ca.cert), mustMarshal(tb, other.cert))
	})
	return &fuzzData
}

func addSeeds(f *testing.F, c *fuzzCorpus) {
	for _, b := range c.signed {
		f.Add(b)
	}
	for _, b := range c.invalid {
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{Version, byte(KindHost)})
}

// FuzzIdentity_Decode: the decoder never panics, and whatever it accepts
// re-encodes to the same bytes and parses again to the same certificate.
// The tag decoder gets the same input as text.
func FuzzIdentity_Decode(f *testing.F) {
	addSeeds(f, corpus(f))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = DecodeTag(string(data))
		c, err := ParseCertificate(data)
		if err != nil {
			if c != nil {
				t.Fatal("certificate returned with an error")
			}
			return
		}
		again, err := c.MarshalBinary()
		if err != nil {
			t.Fatalf("accepted certificate does not marshal: %v", err)
		}
		if !bytes.Equal(again, data) {
			t.Fatalf("decode→encode not byte-identical:\n in % x\nout % x", data, again)
		}
		c2, err := ParseCertificate(again)
		if err != nil || !reflect.DeepEqual(c, c2) {
			t.Fatalf("parse→marshal→parse unstable: %v", err)
		}
		tag, err := c.EncodeTag()
		if err != nil {
			t.Fatal(err)
		}
		if c3, err := DecodeTag(tag); err != nil || !reflect.DeepEqual(c, c3) {
			t.Fatalf("tag round trip: %v", err)
		}
	})
}

// FuzzIdentity_Verify: any input either fails verification or is byte for
// byte one of the certificates the CA signed and verifies to exactly its
// claims. Without the CA key no mutation may produce a new valid
// certificate, nor a new parse of a signed one.
func FuzzIdentity_Verify(f *testing.F) {
	c := corpus(f)
	addSeeds(f, c)
	want := map[string]Claims{}
	for _, b := range c.signed {
		cert, err := ParseCertificate(b)
		if err != nil {
			f.Fatal(err)
		}
		if cl, err := Verify(cert, c.ca.pool, t0, nil); err == nil {
			want[string(b)] = cl
		}
	}
	if len(want) != 3 {
		f.Fatalf("%d seeds verify, want 3", len(want))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cert, err := ParseCertificate(data)
		if err != nil {
			return
		}
		cl, err := Verify(cert, c.ca.pool, t0, nil)
		if err != nil {
			if Reason(err) == "other" {
				t.Fatalf("unnamed refusal: %v", err)
			}
			return
		}
		exp, ok := want[string(data)]
		if !ok {
			t.Fatalf("a certificate the CA never signed verifies: % x", data)
		}
		if !reflect.DeepEqual(cl, exp) {
			t.Fatalf("claims differ from the signed ones:\n got %+v\nwant %+v", cl, exp)
		}
	})
}
