package identity

import (
	"errors"
	"strings"
	"testing"
)

func TestToken_RoundTrip(t *testing.T) {
	var fp Fingerprint
	fp[0], fp[31] = 1, 2
	tok, err := NewToken(fp)
	if err != nil {
		t.Fatal(err)
	}
	s := tok.String()
	if !strings.HasPrefix(s, TokenPrefix) {
		t.Fatalf("token %q lacks prefix", s)
	}
	got, err := ParseToken(s)
	if err != nil {
		t.Fatal(err)
	}
	if got != tok {
		t.Fatalf("round trip: %+v != %+v", got, tok)
	}
	id, err := ParseTokenID(tok.ID.String())
	if err != nil || id != tok.ID {
		t.Fatalf("id round trip: %v %v", id, err)
	}
}

// TestParseToken_Hostile: altered, truncated, padded, re-versioned or zero-secret tokens
// are refused.
func TestParseToken_Hostile(t *testing.T) {
	tok, _ := NewToken(Fingerprint{9})
	s := tok.String()
	zero := Token{CA: Fingerprint{9}}
	cases := map[string]string{
		"empty":        "",
		"no prefix":    strings.TrimPrefix(s, TokenPrefix),
		"truncated":    s[:len(s)-1],
		"padded":       s + "=",
		"extra":        s + "A",
		"std alphabet": strings.NewReplacer("-", "+", "_", "/").Replace(s) + "+",
		"space":        s + " ",
		"long":         s + strings.Repeat("A", 300),
		"zero secret":  zero.String(),
		"version 2":    TokenPrefix + "Ag" + s[len(TokenPrefix)+2:],
	}
	for name, in := range cases {
		if _, err := ParseToken(in); !errors.Is(err, ErrTokenMalformed) {
			t.Errorf("%s: ParseToken(%q) = %v, want ErrTokenMalformed", name, in, err)
		}
	}
}

func FuzzParseToken(f *testing.F) {
	tok, _ := NewToken(Fingerprint{1, 2, 3})
	f.Add(tok.String())
	f.Add(TokenPrefix)
	f.Add("weft1.AAAA")
	f.Fuzz(func(t *testing.T, s string) {
		tk, err := ParseToken(s)
		if err != nil {
			return
		}
		if tk.String() != s {
			t.Fatalf("not canonical: %q parsed, %q encoded", s, tk.String())
		}
		again, err := ParseToken(tk.String())
		if err != nil || again != tk {
			t.Fatalf("parse→encode→parse unstable: %v", err)
		}
	})
}
