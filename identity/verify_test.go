package identity

import (
	"crypto/ed25519"
	"errors"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestVerify_ValidReturnsSignedClaims(t *testing.T) {
	ca := newTestCA(t, "ok", nil, nil)
	spec := typicalSpec()
	c := ca.sign(t, spec)
	got, err := Verify(c, ca.pool, t0, nil)
	if err != nil {
		t.Fatal(err)
	}
	fp, _ := c.Fingerprint()
	caFP, _ := ca.cert.Fingerprint()
	want := Claims{
		Name:        spec.Name,
		PublicKey:   spec.PublicKey,
		Prefixes:    spec.Prefixes,
		Groups:      []string{"prod", "web"}, // sorted
		NotBefore:   spec.NotBefore,
		NotAfter:    spec.NotAfter,
		Fingerprint: fp,
		CA:          caFP,
		CAName:      "ca-ok",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("claims:\n got %+v\nwant %+v", got, want)
	}
	// The claims are copies: changing them does not change the certificate.
	got.Prefixes[0] = netip.MustParsePrefix("0.0.0.0/0")
	if c.Prefixes[0] != spec.Prefixes[0] {
		t.Fatal("claims alias the certificate's prefixes")
	}
}

// TestVerify_Forged: a party without the CA key tries every way to get a
// certificate accepted.
func TestVerify_Forged(t *testing.T) {
	ca := newTestCA(t, "victim-ca", nil, nil)
	honest := ca.sign(t, typicalSpec())
	other := newTestCA(t, "attacker-ca", nil, nil)

	t.Run("own-key-with-the-CA's-issuer-id", func(t *testing.T) {
		// Sign with the attacker's key but name the trusted CA as issuer.
		c := *honest
		c.Prefixes = pfx("0.0.0.0/0")
		if err := c.sign(other.key); err != nil {
			t.Fatal(err)
		}
		if _, err := Verify(&c, ca.pool, t0, nil); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("err = %v, want ErrBadSignature", err)
		}
	})
	t.Run("certificate-of-another-CA", func(t *testing.T) {
		c := other.sign(t, typicalSpec())
		if _, err := Verify(c, ca.pool, t0, nil); !errors.Is(err, ErrUnknownCA) {
			t.Fatalf("err = %v, want ErrUnknownCA", err)
		}
	})
	t.Run("attacker-CA-with-the-victim-CA's-name", func(t *testing.T) {
		// Same name, different key: a different fingerprint, so unknown.
		imp, key, err := NewCA(CASpec{Name: ca.cert.Name, NotBefore: ca.cert.NotBefore, NotAfter: ca.cert.NotAfter}, newSeedReader("impostor"))
		if err != nil {
			t.Fatal(err)
		}
		c, err := Sign(imp, key, typicalSpec())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Verify(c, ca.pool, t0, nil); !errors.Is(err, ErrUnknownCA) {
			t.Fatalf("err = %v, want ErrUnknownCA", err)
		}
	})
	t.Run("signature-bits-flipped", func(t *testing.T) {
		for i := range SignatureSize * 8 {
			c := *honest
			c.Signature[i/8] ^= 1 << (i % 8)
			if _, err := Verify(&c, ca.pool, t0, nil); !errors.Is(err, ErrBadSignature) {
				t.Fatalf("bit %d: err = %v, want ErrBadSignature", i, err)
			}
		}
	})
	t.Run("zero-signature", func(t *testing.T) {
		c := *honest
		c.Signature = [SignatureSize]byte{}
		if _, err := Verify(&c, ca.pool, t0, nil); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("fields-changed-after-parsing", func(t *testing.T) {
		// The signature covers the fields, not the bytes parsed once.
		for name, f := range map[string]func(c *Certificate){
			"name":      func(c *Certificate) { c.Name = "host-0002.eu" },
			"key":       func(c *Certificate) { c.PublicKey = testKey("attacker") },
			"prefix":    func(c *Certificate) { c.Prefixes = pfx("10.42.0.0/16") },
			"group":     func(c *Certificate) { c.Groups = []string{"admin", "prod", "web"} },
			"not-after": func(c *Certificate) { c.NotAfter = c.NotAfter.Add(time.Second) },
		} {
			c := *honest
			f(&c)
			if _, err := Verify(&c, ca.pool, t0, nil); !errors.Is(err, ErrBadSignature) {
				t.Errorf("%s: err = %v, want ErrBadSignature", name, err)
			}
		}
	})
	t.Run("a-CA-certificate-as-host", func(t *testing.T) {
		if _, err := Verify(ca.cert, ca.pool, t0, nil); !errors.Is(err, ErrWrongKind) {
			t.Fatalf("err = %v, want ErrWrongKind", err)
		}
	})
	t.Run("context-separation", func(t *testing.T) {
		// A CA signature over the bare body (no context) is not accepted:
		// signatures over other documents cannot be replayed as certificates.
		c := *honest
		body, err := c.appendBody(nil)
		if err != nil {
			t.Fatal(err)
		}
		copy(c.Signature[:], ed25519.Sign(ca.key, body))
		if _, err := Verify(&c, ca.pool, t0, nil); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("err = %v, want ErrBadSignature", err)
		}
	})
	t.Run("nil", func(t *testing.T) {
		if _, err := Verify(nil, ca.pool, t0, nil); !errors.Is(err, ErrMalformed) {
			t.Fatalf("err = %v", err)
		}
		if _, err := Verify(honest, nil, t0, nil); !errors.Is(err, ErrUnknownCA) {
			t.Fatalf("nil pool: err = %v", err)
		}
	})
}

// TestVerify_TamperEveryByte: changing any byte of a signed certificate, in
// any of three ways, yields bytes that either do not parse or do not verify.
func TestVerify_TamperEveryByte(t *testing.T) {
	ca := newTestCA(t, "tamper", nil, nil)
	good := mustMarshal(t, ca.sign(t, typicalSpec()))
	for i := range good {
		for _, x := range []byte{0x01, 0x80, 0xff} {
			b := slices.Clone(good)
			b[i] ^= x
			c, err := ParseCertificate(b)
			if err != nil {
				if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnknownVersion) {
					t.Fatalf("byte %d ^%#x: unnamed parse error %v", i, x, err)
				}
				continue
			}
			if _, err := Verify(c, ca.pool, t0, nil); err == nil {
				t.Fatalf("byte %d ^%#x: tampered certificate verifies", i, x)
			}
		}
	}
}

func TestVerify_Validity(t *testing.T) {
	ca := newTestCA(t, "time", nil, nil)
	spec := typicalSpec()
	c := ca.sign(t, spec)
	cases := []struct {
		name string
		now  time.Time
		want error
	}{
		{"at-not-before", spec.NotBefore, nil},
		{"at-not-after", spec.NotAfter, nil},
		{"before", spec.NotBefore.Add(-time.Second), ErrNotYetValid},
		{"after", spec.NotAfter.Add(time.Second), ErrExpired},
		{"long-after", spec.NotAfter.AddDate(10, 0, 0), ErrExpired},
	}
	for _, tc := range cases {
		if _, err := Verify(c, ca.pool, tc.now, nil); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
	// The CA's own window counts too: a CA not yet valid or expired makes
	// its certificates fail with the same reasons.
	early, key, err := NewCA(CASpec{Name: "early", NotBefore: t0.Add(time.Hour), NotAfter: t0.AddDate(1, 0, 0)}, newSeedReader("early"))
	if err != nil {
		t.Fatal(err)
	}
	pool, _ := NewCAPool(early)
	hc, err := Sign(early, key, HostSpec{Name: "h", PublicKey: testKey("h"), NotBefore: t0.Add(time.Hour), NotAfter: t0.Add(2 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(hc, pool, t0, nil); !errors.Is(err, ErrNotYetValid) || !strings.Contains(err.Error(), "CA certificate") {
		t.Fatalf("CA not yet valid: %v", err)
	}
	if _, err := Verify(c, ca.pool, ca.cert.NotAfter.Add(time.Second), nil); !errors.Is(err, ErrExpired) {
		t.Fatalf("CA expired: %v", err)
	}
}

func TestVerify_Blocklist(t *testing.T) {
	ca := newTestCA(t, "block", nil, nil)
	c := ca.sign(t, typicalSpec())
	other := ca.sign(t, HostSpec{Name: "other", PublicKey: testKey("other"), NotBefore: t0, NotAfter: t0.Add(time.Hour)})
	fp, _ := c.Fingerprint()
	caFP, _ := ca.cert.Fingerprint()
	if _, err := Verify(c, ca.pool, t0, NewBlocklist(fp)); !errors.Is(err, ErrBlocklisted) {
		t.Fatalf("host blocklisted: %v", err)
	}
	if _, err := Verify(other, ca.pool, t0, NewBlocklist(fp)); err != nil {
		t.Fatalf("another host of the same CA: %v", err)
	}
	if _, err := Verify(other, ca.pool, t0, NewBlocklist(caFP)); !errors.Is(err, ErrBlocklisted) {
		t.Fatalf("CA blocklisted: %v", err)
	}
	// A renewed certificate (new validity, same claims) has a new
	// fingerprint: revoking the old one does not revoke the renewal...
	spec := typicalSpec()
	spec.NotAfter = spec.NotAfter.Add(time.Hour)
	renewed := ca.sign(t, spec)
	if _, err := Verify(renewed, ca.pool, t0, NewBlocklist(fp)); err != nil {
		t.Fatalf("renewed: %v", err)
	}
	// ...and a second signature over the revoked body cannot exist without
	// the CA key; the fingerprint covers the body, not the signature, so
	// even the CA cannot re-sign a revoked body into acceptance.
	c2 := *c
	if err := c2.sign(ca.key); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(&c2, ca.pool, t0, NewBlocklist(fp)); !errors.Is(err, ErrBlocklisted) {
		t.Fatalf("re-signed revoked body: %v", err)
	}
}

// TestVerify_CAConstraint: a constrained CA's key is used (by a buggy or
// hostile signer bypassing Sign) to claim more than the CA may sign.
func TestVerify_CAConstraint(t *testing.T) {
	ca := newTestCA(t, "constrained", pfx("10.42.0.0/16", "fd42::/32"), []string{"prod", "web"})
	fp, _ := ca.cert.Fingerprint()
	base := HostSpec{Name: "h", PublicKey: testKey("h"), NotBefore: t0, NotAfter: t0.Add(time.Hour), Prefixes: pfx("10.42.7.0/24"), Groups: []string{"web"}}
	if _, err := Verify(ca.sign(t, base), ca.pool, t0, nil); err != nil {
		t.Fatalf("within constraints: %v", err)
	}
	cases := map[string]func(c *Certificate){
		"prefix-outside":       func(c *Certificate) { c.Prefixes = pfx("10.43.0.0/24") },
		"prefix-wider":         func(c *Certificate) { c.Prefixes = pfx("10.0.0.0/8") },
		"prefix-any":           func(c *Certificate) { c.Prefixes = pfx("0.0.0.0/0") },
		"one-of-two-outside":   func(c *Certificate) { c.Prefixes = pfx("10.42.7.0/24", "192.168.0.0/24") },
		"ipv6-outside":         func(c *Certificate) { c.Prefixes = pfx("fd43::/48") },
		"ipv6-wider":           func(c *Certificate) { c.Prefixes = pfx("fd00::/8") },
		"group-outside":        func(c *Certificate) { c.Groups = []string{"admin"} },
		"one-group-outside":    func(c *Certificate) { c.Groups = []string{"admin", "web"} },
		"outlives-the-CA":      func(c *Certificate) { c.NotAfter = ca.cert.NotAfter.Add(time.Second) },
		"starts-before-the-CA": func(c *Certificate) { c.NotBefore = ca.cert.NotBefore.Add(-time.Second) },
	}
	for name, f := range cases {
		t.Run(name, func(t *testing.T) {
			c := &Certificate{Kind: KindHost, Name: base.Name, PublicKey: base.PublicKey, NotBefore: base.NotBefore, NotAfter: base.NotAfter,
				Prefixes: base.Prefixes, Groups: base.Groups, Issuer: fp.Issuer()}
			f(c)
			if err := c.sign(ca.key); err != nil {
				t.Fatal(err)
			}
			if _, err := Verify(c, ca.pool, t0, nil); !errors.Is(err, ErrCAConstraint) {
				t.Fatalf("Verify: %v, want ErrCAConstraint", err)
			}
			// Sign refuses the same claims up front.
			spec := HostSpec{Name: c.Name, PublicKey: c.PublicKey, NotBefore: c.NotBefore, NotAfter: c.NotAfter, Prefixes: c.Prefixes, Groups: c.Groups}
			if _, err := Sign(ca.cert, ca.key, spec); !errors.Is(err, ErrCAConstraint) {
				t.Fatalf("Sign: %v, want ErrCAConstraint", err)
			}
		})
	}
}

func TestSign_Refuses(t *testing.T) {
	ca := newTestCA(t, "sign", nil, nil)
	other := newTestCA(t, "sign-other", nil, nil)
	if _, err := Sign(ca.cert, other.key, typicalSpec()); err == nil || !strings.Contains(err.Error(), "does not belong") {
		t.Fatalf("wrong CA key: %v", err)
	}
	if _, err := Sign(ca.cert, nil, typicalSpec()); err == nil {
		t.Fatal("nil CA key accepted")
	}
	host := ca.sign(t, typicalSpec())
	if _, err := Sign(host, ca.key, typicalSpec()); !errors.Is(err, ErrWrongKind) {
		t.Fatalf("host certificate as CA: %v", err)
	}
	tampered := *ca.cert
	tampered.Prefixes = nil
	tampered.Groups = []string{"x"}
	if _, err := Sign(&tampered, ca.key, typicalSpec()); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("CA certificate with a broken self-signature: %v", err)
	}
	for name, f := range map[string]func(s *HostSpec){
		"zero-key":      func(s *HostSpec) { s.PublicKey = [32]byte{} },
		"name-space":    func(s *HostSpec) { s.Name = "a b" },
		"unmasked":      func(s *HostSpec) { s.Prefixes = pfx("10.0.0.1/24") },
		"4in6":          func(s *HostSpec) { s.Prefixes = pfx("::ffff:10.0.0.0/120") },
		"group-comma":   func(s *HostSpec) { s.Groups = []string{"a,b"} },
		"many-prefixes": func(s *HostSpec) { s.Prefixes = make([]netip.Prefix, MaxPrefixes+1) },
		"inverted":      func(s *HostSpec) { s.NotBefore, s.NotAfter = s.NotAfter, s.NotBefore },
	} {
		spec := typicalSpec()
		f(&spec)
		if _, err := Sign(ca.cert, ca.key, spec); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
	// Duplicates are folded and lists sorted: the signed form is canonical.
	spec := typicalSpec()
	spec.Prefixes = pfx("10.2.0.0/16", "10.1.0.0/16", "10.2.0.0/16")
	spec.Groups = []string{"web", "prod", "web"}
	c := ca.sign(t, spec)
	if !slices.Equal(c.Prefixes, pfx("10.1.0.0/16", "10.2.0.0/16")) || !slices.Equal(c.Groups, []string{"prod", "web"}) {
		t.Fatalf("not normalized: %v %v", c.Prefixes, c.Groups)
	}
}

// TestCAPool_Rotation: during a rotation the pool holds the old and the
// new CA and both generations verify; after it only the new one does.
func TestCAPool_Rotation(t *testing.T) {
	old := newTestCA(t, "old", nil, nil)
	next := newTestCA(t, "new", nil, nil)
	both, err := NewCAPool(old.cert, next.cert, old.cert)
	if err != nil {
		t.Fatal(err)
	}
	if both.Len() != 2 {
		t.Fatalf("pool of %d", both.Len())
	}
	a, b := old.sign(t, typicalSpec()), next.sign(t, typicalSpec())
	for _, c := range []*Certificate{a, b} {
		if _, err := Verify(c, both, t0, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Verify(a, next.pool, t0, nil); !errors.Is(err, ErrUnknownCA) {
		t.Fatalf("old certificate after the rotation: %v", err)
	}
	names := []string{}
	for _, c := range both.CAs() {
		names = append(names, c.Name)
	}
	if !slices.Equal(names, []string{"ca-new", "ca-old"}) {
		t.Fatalf("CAs() = %v", names)
	}
	// The pool keeps its own copies.
	both.CAs()[0].Name = "changed"
	if both.CAs()[0].Name != "ca-new" {
		t.Fatal("CAs() exposes the pool's certificates")
	}
}

func TestNewCAPool_Refuses(t *testing.T) {
	ca := newTestCA(t, "pool", nil, nil)
	host := ca.sign(t, typicalSpec())
	if _, err := NewCAPool(host); !errors.Is(err, ErrWrongKind) {
		t.Fatalf("host certificate: %v", err)
	}
	forged := *ca.cert
	forged.Name = "renamed"
	if _, err := NewCAPool(&forged); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("CA not signed by its own key: %v", err)
	}
	// A CA whose constraints were removed after signing is not self-signed any more.
	constrained := newTestCA(t, "pool-constrained", pfx("10.0.0.0/8"), nil)
	loosened := *constrained.cert
	loosened.Prefixes = nil
	if _, err := NewCAPool(&loosened); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("loosened CA: %v", err)
	}
	if _, err := NewCAPool(nil); !errors.Is(err, ErrWrongKind) {
		t.Fatalf("nil: %v", err)
	}
}

func TestCAPool_ExpiringWithin(t *testing.T) {
	ca := newTestCA(t, "exp", nil, nil) // expires t0 + 1 year
	if got := ca.pool.ExpiringWithin(t0, 300*24*time.Hour); len(got) != 0 {
		t.Fatalf("%d CAs expiring within 300 days", len(got))
	}
	if got := ca.pool.ExpiringWithin(t0, 400*24*time.Hour); len(got) != 1 {
		t.Fatalf("%d CAs expiring within 400 days", len(got))
	}
}

func TestClaims_Helpers(t *testing.T) {
	ca := newTestCA(t, "claims", nil, nil)
	spec := typicalSpec()
	spec.Prefixes = pfx("10.42.7.0/24", "fd42:7::/48", "192.0.2.1/32")
	cl, err := Verify(ca.sign(t, spec), ca.pool, t0, nil)
	if err != nil {
		t.Fatal(err)
	}
	prefixes := []struct {
		p    string
		want bool
	}{
		{"10.42.7.0/24", true},
		{"10.42.7.128/25", true},
		{"10.42.7.9/32", true},
		{"10.42.7.9/24", true}, // unmasked spelling of the /24
		{"10.42.6.0/23", false},
		{"10.42.0.0/16", false},
		{"0.0.0.0/0", false},
		{"10.42.8.0/24", false},
		{"192.0.2.1/32", true},
		{"192.0.2.0/31", false},
		{"fd42:7::/48", true},
		{"fd42:7:0:1::/64", true},
		{"fd42:7:1::/64", false},
		{"fd42::/32", false},
		{"::ffff:10.42.7.0/120", false}, // IPv4-mapped never matches IPv4
		{"::/0", false},
	}
	for _, tc := range prefixes {
		if got := cl.AllowsPrefix(netip.MustParsePrefix(tc.p)); got != tc.want {
			t.Errorf("AllowsPrefix(%s) = %v, want %v", tc.p, got, tc.want)
		}
	}
	if cl.AllowsPrefix(netip.Prefix{}) {
		t.Error("AllowsPrefix(zero) = true")
	}
	addrs := []struct {
		a    string
		want bool
	}{
		{"10.42.7.1", true}, {"10.42.8.1", false}, {"::ffff:10.42.7.1", false},
		{"fd42:7::1", true}, {"fd42:8::1", false}, {"fd42:7::1%eth0", true}, {"192.0.2.1", true}, {"192.0.2.2", false},
	}
	for _, tc := range addrs {
		if got := cl.AllowsAddr(netip.MustParseAddr(tc.a)); got != tc.want {
			t.Errorf("AllowsAddr(%s) = %v, want %v", tc.a, got, tc.want)
		}
	}
	if cl.AllowsAddr(netip.Addr{}) {
		t.Error("AllowsAddr(zero) = true")
	}
	if !cl.HasGroup("web") || !cl.HasGroup("prod") || cl.HasGroup("admin") || cl.HasGroup("Web") || cl.HasGroup("") {
		t.Errorf("HasGroup wrong for groups %v", cl.Groups)
	}
	if !cl.MatchesName(spec.Name) || cl.MatchesName("HOST-0001.eu") || !cl.MatchesKey(spec.PublicKey) || cl.MatchesKey(testKey("other")) {
		t.Error("name/key match wrong")
	}
	checks := []struct {
		name   string
		key    string
		subnet string
		want   error
	}{
		{spec.Name, "host-0001", "10.42.7.0/24", nil},
		{spec.Name, "host-0001", "", nil},
		{"host-0002.eu", "host-0001", "10.42.7.0/24", ErrNameMismatch},
		{spec.Name, "victim", "10.42.7.0/24", ErrKeyMismatch},
		{spec.Name, "host-0001", "10.42.8.0/24", ErrPrefixNotAllowed},
		{spec.Name, "host-0001", "0.0.0.0/0", ErrPrefixNotAllowed},
	}
	for _, tc := range checks {
		var subnet netip.Prefix
		if tc.subnet != "" {
			subnet = netip.MustParsePrefix(tc.subnet)
		}
		if err := cl.Check(tc.name, testKey(tc.key), subnet); !errors.Is(err, tc.want) {
			t.Errorf("Check(%s, %s, %s) = %v, want %v", tc.name, tc.key, tc.subnet, err, tc.want)
		}
	}
	left := spec.NotAfter.Sub(t0)
	if cl.TimeLeft(t0) != left {
		t.Errorf("TimeLeft = %v, want %v", cl.TimeLeft(t0), left)
	}
	if cl.ExpiresWithin(t0, left) || !cl.ExpiresWithin(t0, left+time.Second) || !cl.ExpiresWithin(spec.NotAfter.Add(time.Hour), 0) {
		t.Error("ExpiresWithin wrong")
	}
}

func TestReason_Labels(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range reasons {
		wrapped := errors.Join(errors.New("context"), r.err)
		if got := Reason(wrapped); got != r.label {
			t.Errorf("Reason(%v) = %q, want %q", r.err, got, r.label)
		}
		if seen[r.label] {
			t.Errorf("label %q twice", r.label)
		}
		seen[r.label] = true
	}
	if Reason(nil) != "" || Reason(errors.New("x")) != "other" {
		t.Error("Reason of nil or a foreign error")
	}
	if len(Reasons()) != len(reasons)+1 || Reasons()[len(reasons)] != "other" {
		t.Errorf("Reasons() = %v", Reasons())
	}
	// Verify's reasons come out as their labels.
	ca := newTestCA(t, "reason", nil, nil)
	c := ca.sign(t, typicalSpec())
	if _, err := Verify(c, ca.pool, t0.AddDate(5, 0, 0), nil); Reason(err) != "expired" {
		t.Errorf("Reason = %q for %v", Reason(err), err)
	}
}
