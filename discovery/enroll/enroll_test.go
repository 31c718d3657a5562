package enroll

import (
	"context"
	"crypto/ed25519"
	"errors"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/crypto/cryptotest"
	"github.com/weftnet/weft/identity"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type lab struct {
	t     *testing.T
	ca    *identity.Certificate
	key   ed25519.PrivateKey
	store *Store
	srv   *Server
	addr  string
	clock *clock
}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func newCA(t *testing.T, name string) (*identity.Certificate, ed25519.PrivateKey) {
	t.Helper()
	now := time.Now()
	ca, key, err := identity.NewCA(identity.CASpec{Name: name, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return ca, key
}

// newLab starts a CA host's server on loopback with a fresh CA and store.
func newLab(t *testing.T, mod func(*Config)) *lab {
	t.Helper()
	ca, key := newCA(t, "cluster")
	return newLabWith(t, ca, key, key, mod)
}

// newLabWith serves ca; the store signs with signKey, the server proves helloKey.
func newLabWith(t *testing.T, ca *identity.Certificate, signKey, helloKey ed25519.PrivateKey, mod func(*Config)) *lab {
	t.Helper()
	dir := t.TempDir()
	if err := InitStore(dir); err != nil {
		t.Fatal(err)
	}
	st, err := OpenStore(StoreConfig{Dir: dir, CA: ca, CAKey: signKey, Cluster: netip.MustParsePrefix("10.42.0.0/16"),
		GossipKey: func() []byte { return make([]byte, 32) }, Validity: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	l := &lab{t: t, ca: ca, key: signKey, store: st, clock: &clock{now: time.Now()}}
	cfg := DefaultConfig()
	cfg.Now = l.clock.Now
	if mod != nil {
		mod(&cfg)
	}
	var auth Authority = st
	if helloKey != nil && !helloKey.Equal(signKey) {
		auth = impostor{st, helloKey}
	}
	srv, err := NewServer(cfg, auth, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l.srv, l.addr = srv, ln.Addr().String()
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return l
}

// impostor presents the real CA certificate but holds another key.
type impostor struct {
	*Store
	key ed25519.PrivateKey
}

func (i impostor) CA() (*identity.Certificate, ed25519.PrivateKey) { return i.Store.cfg.CA, i.key }

func (l *lab) token(uses int, ttl time.Duration, groups ...string) identity.Token {
	l.t.Helper()
	tok, _, err := l.store.CreateToken(groups, ttl, uses, l.clock.Now())
	if err != nil {
		l.t.Fatal(err)
	}
	return tok
}

func newKey(t *testing.T) crypto.PrivateKey { return cryptotest.NewKey(t) }

func refusal(err error) Reason {
	var re *RefusedError
	if errors.As(err, &re) {
		return re.Reason
	}
	return 0
}

func TestEnroll_AllocatesDistinctStablePrefixes(t *testing.T) {
	l := newLab(t, nil)
	ctx := context.Background()
	a, b := newKey(t), newKey(t)
	ra, err := Enroll(ctx, l.addr, l.token(1, time.Hour, "web"), "a", a.Public())
	if err != nil {
		t.Fatal(err)
	}
	rb, err := Enroll(ctx, l.addr, l.token(1, time.Hour), "b", b.Public())
	if err != nil {
		t.Fatal(err)
	}
	if got := ra.Cert.Prefixes; len(got) != 1 || got[0] != netip.MustParsePrefix("10.42.1.0/24") {
		t.Fatalf("a got %v", got)
	}
	if got := rb.Cert.Prefixes; len(got) != 1 || got[0] != netip.MustParsePrefix("10.42.2.0/24") {
		t.Fatalf("b got %v", got)
	}
	if len(ra.Cert.Groups) != 1 || ra.Cert.Groups[0] != "web" || ra.Cluster != netip.MustParsePrefix("10.42.0.0/16") || len(ra.GossipKey) != 32 {
		t.Fatalf("a's grant: %+v", ra)
	}
	// The same key enrolled again (a re-install keeping its key) keeps its /24.
	ra2, err := Enroll(ctx, l.addr, l.token(1, time.Hour), "a", a.Public())
	if err != nil {
		t.Fatal(err)
	}
	if ra2.Cert.Prefixes[0] != ra.Cert.Prefixes[0] {
		t.Fatalf("re-enrolled a moved from %v to %v", ra.Cert.Prefixes, ra2.Cert.Prefixes)
	}
	// The allocations survive a restart of the CA host.
	st2, err := OpenStore(l.store.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if al := st2.Allocations(); len(al) != 2 {
		t.Fatalf("allocations after reopen: %+v", al)
	}
	if s := l.srv.Stats(); s["enrolled"] != 3 {
		t.Fatalf("stats %v", s)
	}
}

// TestEnroll_Refusals: a second use of a single-use token, an expired, revoked or unknown
// token, a wrong secret: each refused with its reason and counted.
func TestEnroll_Refusals(t *testing.T) {
	l := newLab(t, nil)
	ctx := context.Background()
	used := l.token(1, time.Hour)
	if _, err := Enroll(ctx, l.addr, used, "a", newKey(t).Public()); err != nil {
		t.Fatal(err)
	}
	expired := l.token(1, time.Minute)
	revoked := l.token(1, time.Hour)
	if err := l.store.Revoke(revoked.ID); err != nil {
		t.Fatal(err)
	}
	l.clock.add(2 * time.Minute)
	unknown, _ := identity.NewToken(used.CA)
	altered := l.token(1, time.Hour)
	altered.Secret[0] ^= 1
	cases := []struct {
		name string
		tok  identity.Token
		want Reason
	}{
		{"second use", used, ReasonTokenUsed},
		{"expired", expired, ReasonTokenExpired},
		{"revoked", revoked, ReasonTokenRevoked},
		{"unknown", unknown, ReasonUnknownToken},
		{"wrong secret", altered, ReasonBadProof},
	}
	for _, c := range cases {
		_, err := Enroll(ctx, l.addr, c.tok, "x", newKey(t).Public())
		if refusal(err) != c.want {
			t.Errorf("%s: %v, want %s", c.name, err, c.want)
		}
		if l.srv.Stats()[c.want.String()] == 0 {
			t.Errorf("%s: not counted: %v", c.name, l.srv.Stats())
		}
		t.Logf("%s: %v", c.name, err)
	}
	// A token holder cannot take the name of a host enrolled with another key.
	if _, err := Enroll(ctx, l.addr, l.token(1, time.Hour), "a", newKey(t).Public()); refusal(err) != ReasonNameTaken {
		t.Errorf("another key under an enrolled name: %v", err)
	}
	if _, err := Enroll(ctx, l.addr, l.token(1, time.Hour), "bad name\n", newKey(t).Public()); refusal(err) != ReasonBadRequest {
		t.Errorf("a malformed name: %v", err)
	}
	if al := l.store.Allocations(); len(al) != 1 {
		t.Fatalf("refused enrollments allocated: %+v", al)
	}
}

// TestEnroll_WrongCA: a token of another cluster is refused by the joiner itself (the CA
// host presents another CA), and a host that presents the pinned CA's certificate without
// its key cannot enroll anyone.
func TestEnroll_WrongCA(t *testing.T) {
	l := newLab(t, nil)
	other, _ := newCA(t, "other")
	fp, _ := other.Fingerprint()
	tok := l.token(1, time.Hour)
	tok.CA = fp
	if _, err := Enroll(context.Background(), l.addr, tok, "a", newKey(t).Public()); !errors.Is(err, ErrWrongCA) {
		t.Fatalf("token of another CA: %v", err)
	}

	ca, key := newCA(t, "cluster")
	_, wrong, _ := ed25519.GenerateKey(nil)
	imp := newLabWith(t, ca, key, wrong, nil)
	if _, err := Enroll(context.Background(), imp.addr, imp.token(1, time.Hour), "a", newKey(t).Public()); !errors.Is(err, ErrImpostor) {
		t.Fatalf("impostor: %v", err)
	}
	if al := imp.store.Allocations(); len(al) != 0 {
		t.Fatalf("impostor session allocated: %v", al)
	}
}

// TestEnroll_Replay: a request captured from one session and sent again in another is
// refused (its MAC covers the first session's exporter value), even with uses left.
func TestEnroll_Replay(t *testing.T) {
	l := newLab(t, nil)
	ctx := context.Background()
	tok := l.token(3, time.Hour)
	fp, _ := l.ca.Fingerprint()
	s1, err := dial(ctx, l.addr, fp)
	if err != nil {
		t.Fatal(err)
	}
	q := &Request{Kind: KindEnroll, Name: "a", PublicKey: newKey(t).Public(), TokenID: tok.ID}
	captured, err := s1.seal(q, TokenKey(tok.Secret))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s1.send(captured); err != nil {
		t.Fatal(err)
	}
	s1.close()
	s2, err := dial(ctx, l.addr, fp)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.close()
	_, err = s2.send(captured)
	if refusal(err) != ReasonBadProof {
		t.Fatalf("replayed request: %v", err)
	}
	t.Logf("replay: %v", err)
}

// TestRenew: a host renews with its certificate and key; the same prefixes, a later
// expiry. A thief holding the certificate but not the key, an expired certificate and one
// of another CA are refused.
func TestRenew(t *testing.T) {
	l := newLab(t, nil)
	ctx := context.Background()
	priv := newKey(t)
	r, err := Enroll(ctx, l.addr, l.token(1, time.Hour, "db"), "a", priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	fp, _ := l.ca.Fingerprint()
	l.clock.add(30 * time.Second) // under the minute of clock skew a certificate allows
	rn, err := Renew(ctx, l.addr, fp, r.Cert, priv)
	if err != nil {
		t.Fatal(err)
	}
	if !rn.Cert.NotAfter.After(r.Cert.NotAfter) || rn.Cert.Prefixes[0] != r.Cert.Prefixes[0] || rn.Cert.Groups[0] != "db" {
		t.Fatalf("renewed %v, was %v", rn.Cert, r.Cert)
	}
	if _, err := Renew(ctx, l.addr, fp, r.Cert, newKey(t)); refusal(err) != ReasonBadRequest && refusal(err) != ReasonBadProof {
		t.Fatalf("renewal without the certificate's key: %v", err)
	}
	l.clock.add(2 * time.Hour)
	if _, err := Renew(ctx, l.addr, fp, rn.Cert, priv); refusal(err) != ReasonNotRenewable {
		t.Fatalf("renewal of an expired certificate: %v", err)
	}
}

// TestRenew_KeyProof: a renewal request claiming the certificate's key but whose MAC was
// made without the private key is refused as bad_proof.
func TestRenew_KeyProof(t *testing.T) {
	l := newLab(t, nil)
	ctx := context.Background()
	priv := newKey(t)
	r, err := Enroll(ctx, l.addr, l.token(1, time.Hour), "a", priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	fp, _ := l.ca.Fingerprint()
	s, err := dial(ctx, l.addr, fp)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	thief := newKey(t)
	shared, _ := x25519(thief[:], s.hello.Ephemeral[:])
	q := &Request{Kind: KindRenew, Name: "a", PublicKey: priv.Public(), Cert: r.Cert}
	b, _ := s.seal(q, renewKey(shared, s.exp))
	if _, err := s.send(b); refusal(err) != ReasonBadProof {
		t.Fatalf("renewal with a guessed key: %v", err)
	}
}

// TestServer_Bounds: an oversized frame is refused before it is read; a source over its
// rate is closed before the handshake; both counted.
func TestServer_Bounds(t *testing.T) {
	l := newLab(t, func(c *Config) { c.Burst, c.Rate = 2, 0.001 })
	fp, _ := l.ca.Fingerprint()
	s, err := dial(context.Background(), l.addr, fp)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = s.conn.Write([]byte{0xff, 0xff})
	_, _ = readFrame(s.conn)
	s.close()
	s2, err := dial(context.Background(), l.addr, fp)
	if err != nil {
		t.Fatal(err)
	}
	s2.close()
	if _, err := dial(context.Background(), l.addr, fp); err == nil {
		t.Fatal("third connection within the burst of 2 was served")
	}
	waitStat(t, l.srv, countTooLarge)
	waitStat(t, l.srv, countRateLimited)
}

func waitStat(t *testing.T, s *Server, name string) {
	t.Helper()
	for i := 0; i < 100; i++ {
		if s.Stats()[name] > 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s not counted: %v", name, s.Stats())
}
