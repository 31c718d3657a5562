package identity

import (
	"bytes"
	"errors"
	"testing"
)

func signedSeed(tb testing.TB, ca testCA, version uint64, body string) []byte {
	tb.Helper()
	b, err := SignDocument(ca.cert, ca.key, "policy", version, []byte(body))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestSignDocument_Verify(t *testing.T) {
	ca := newTestCA(t, "signed", nil, nil)
	other := newTestCA(t, "other", nil, nil)
	env := signedSeed(t, ca, 7, "default: deny\n")
	s, err := VerifySigned(env, "policy", ca.pool, t0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.Version != 7 || string(s.Body) != "default: deny\n" || s.Purpose != "policy" {
		t.Fatalf("got %+v", s)
	}
	again, _ := s.MarshalBinary()
	if !bytes.Equal(again, env) {
		t.Fatal("marshal of a decoded envelope differs")
	}

	// Hostile parties: another CA's key, a renumbered version, a changed body, another
	// purpose, a certificate's signature context, an expired or blocklisted CA.
	forged := signedSeed(t, other, 7, "default: deny\n")
	if _, err := VerifySigned(forged, "policy", ca.pool, t0, nil); !errors.Is(err, ErrUnknownCA) {
		t.Errorf("other CA: %v, want ErrUnknownCA", err)
	}
	// Same issuer ID claimed, signed by another key.
	spoof := bytes.Clone(forged)
	copy(spoof[4:4+IssuerSize], env[4:4+IssuerSize])
	if _, err := VerifySigned(spoof, "policy", ca.pool, t0, nil); !errors.Is(err, ErrBadSignature) {
		t.Errorf("spoofed issuer: %v, want ErrBadSignature", err)
	}
	renum := bytes.Clone(env)
	renum[4+IssuerSize+7] = 99
	if _, err := VerifySigned(renum, "policy", ca.pool, t0, nil); !errors.Is(err, ErrBadSignature) {
		t.Errorf("renumbered: %v, want ErrBadSignature", err)
	}
	tampered := bytes.Clone(env)
	tampered[len(tampered)-SignatureSize-2] ^= 1
	if _, err := VerifySigned(tampered, "policy", ca.pool, t0, nil); !errors.Is(err, ErrBadSignature) {
		t.Errorf("tampered body: %v, want ErrBadSignature", err)
	}
	otherPurpose, err := SignDocument(ca.cert, ca.key, "blocklist", 7, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := VerifySigned(otherPurpose, "policy", ca.pool, t0, nil); !errors.Is(err, ErrWrongPurpose) {
		t.Errorf("other purpose: %v, want ErrWrongPurpose", err)
	}
	if _, err := VerifySigned(env, "policy", ca.pool, ca.cert.NotAfter.AddDate(0, 0, 1), nil); !errors.Is(err, ErrExpired) {
		t.Errorf("expired CA: %v, want ErrExpired", err)
	}
	fp, _ := ca.cert.Fingerprint()
	bl := &Blocklist{set: map[Fingerprint]struct{}{fp: {}}}
	if _, err := VerifySigned(env, "policy", ca.pool, t0, bl); !errors.Is(err, ErrBlocklisted) {
		t.Errorf("blocklisted CA: %v, want ErrBlocklisted", err)
	}
	if _, err := VerifySigned(env[:len(env)-1], "policy", ca.pool, t0, nil); !errors.Is(err, ErrBadEnvelope) {
		t.Errorf("truncated: %v, want ErrBadEnvelope", err)
	}
	if _, err := VerifySigned(append(bytes.Clone(env), 0), "policy", ca.pool, t0, nil); !errors.Is(err, ErrBadEnvelope) {
		t.Errorf("trailing byte: %v, want ErrBadEnvelope", err)
	}
	if got := Reason(fmtWrap(ErrBadEnvelope)); got != "bad_envelope" {
		t.Errorf("Reason = %q", got)
	}
	if _, err := SignDocument(ca.cert, other.key, "policy", 1, nil); err == nil {
		t.Error("signing with a key that is not the CA's succeeded")
	}
}

func fmtWrap(err error) error { return errors.Join(err) }

// FuzzIdentity_DecodeSigned: the envelope decoder never panics, what it accepts marshals
// back to the same bytes, and nothing but the seeds verifies.
func FuzzIdentity_DecodeSigned(f *testing.F) {
	ca := newTestCA(f, "signed", nil, nil)
	seeds := [][]byte{
		signedSeed(f, ca, 1, ""),
		signedSeed(f, ca, 42, "default: deny\nrules:\n  - from: {groups: [web]}\n    to: {services: [db]}\n"),
	}
	valid := map[string]bool{}
	for _, s := range seeds {
		f.Add(s)
		valid[string(s)] = true
	}
	f.Add([]byte("WSD1"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := DecodeSigned(data)
		if err != nil {
			if s != nil {
				t.Fatal("envelope returned with an error")
			}
			return
		}
		again, err := s.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded envelope does not marshal: %v", err)
		}
		if !bytes.Equal(again, data) {
			t.Fatal("decode → marshal is not the identity")
		}
		s2, err := DecodeSigned(again)
		if err != nil || s2.Version != s.Version || !bytes.Equal(s2.Body, s.Body) {
			t.Fatal("decode → marshal → decode differs")
		}
		if _, err := VerifySigned(data, "policy", ca.pool, t0, nil); err == nil && !valid[string(data)] {
			t.Fatal("a mutated envelope verifies")
		}
	})
}
