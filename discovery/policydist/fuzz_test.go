package policydist

import (
	"crypto/sha256"
	"path/filepath"
	"testing"

	"github.com/weftnet/weft/discovery/membership"
)

// FuzzDistributor_UserEvent: any chunk, from anyone, under any vouched key, never panics and
// never installs a document (the seeds are a forger CA's chunks: no mutation forges the
// trusted CA's signature); the assemblies stay within their bound.
func FuzzDistributor_UserEvent(f *testing.F) {
	pool := newPolicyCA(f, "ca").pool(f)
	env := newPolicyCA(f, "ca").sign(f, 7, denyDoc)
	for _, c := range Chunks(env, 7) {
		f.Add(c, true)
	}
	f.Add([]byte{1, 2, 3}, false)
	f.Add(make([]byte, policyChunkHeader+1), true)
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, p []byte, vouch bool) {
		d := New(Deps{Name: "h1", CAs: pool, StatePath: filepath.Join(dir, "policy.signed")})
		if vouch && len(p) >= 16 {
			var sum [32]byte
			copy(sum[:8], p[8:16])
			m := membership.Member{Name: "a1", Status: membership.StatusAlive, Tags: map[string]string{
				VersionTag: p2v(p), DigestTag: FormatDigest(sum)}}
			d.deps.Members = func() []membership.Member { return []membership.Member{m} }
			d.MemberVersion(m)
		}
		for range 3 {
			d.UserEvent(EventName, p)
		}
		if v := d.Version(); v != 0 {
			t.Fatalf("installed version %d from fuzz input", v)
		}
		d.mu.Lock()
		n := len(d.asm)
		d.mu.Unlock()
		if n > 2*policyMaxAssemblies {
			t.Fatalf("%d assemblies", n)
		}
	})
}

func p2v(p []byte) string {
	var v uint64
	for _, b := range p[:8] {
		v = v<<8 | uint64(b)
	}
	return FormatVersion(v)
}

// FuzzParseDigest: ParseDigest accepts what FormatDigest writes (bar zero) and nothing else
// of another width; parse → format → parse is stable.
func FuzzParseDigest(f *testing.F) {
	f.Add(FormatDigest(sha256.Sum256([]byte("x"))))
	f.Add("0000000000000000")
	f.Add("zz")
	f.Fuzz(func(t *testing.T, s string) {
		dg, ok := ParseDigest(s)
		if !ok {
			return
		}
		var sum [32]byte
		copy(sum[:], dg[:])
		again, ok := ParseDigest(FormatDigest(sum))
		if !ok || again != dg {
			t.Fatalf("%q → %x → %q", s, dg, FormatDigest(sum))
		}
	})
}
