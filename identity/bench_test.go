package identity

import "testing"

// BenchmarkVerify: one full verification of a typical host certificate
// (re-encoding, SHA-256, Ed25519 verify, constraint and validity checks).
func BenchmarkVerify(b *testing.B) {
	ca := newTestCA(b, "bench", pfx("10.0.0.0/8"), nil)
	c := ca.sign(b, typicalSpec())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Verify(c, ca.pool, t0, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeTag: parsing a typical certificate from its gossip tag.
func BenchmarkDecodeTag(b *testing.B) {
	ca := newTestCA(b, "bench", nil, nil)
	tag, err := ca.sign(b, typicalSpec()).EncodeTag()
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(tag)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeTag(tag); err != nil {
			b.Fatal(err)
		}
	}
}
