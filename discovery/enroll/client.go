package enroll

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/identity"
)

// Result is what a joiner receives: checked against the pinned CA and its own name and key.
type Result struct {
	CA        *identity.Certificate
	Cert      *identity.Certificate
	GossipKey []byte
	Cluster   netip.Prefix
}

// ErrWrongCA: the CA host holds another CA than the one the token (or the host's current
// certificate) pins.
var ErrWrongCA = errors.New("the CA host holds another CA")

// ErrImpostor: the host did not prove it holds the CA key it presented.
var ErrImpostor = errors.New("the host did not prove it holds the CA key")

// clientTimeout bounds one exchange from the joiner's side.
const clientTimeout = 15 * time.Second

// session is the joiner's side of one exchange, after the CA host proved its CA.
type session struct {
	addr  string
	conn  *tls.Conn
	exp   []byte
	hello ServerHello
}

// dial connects to addr, checks that the CA host proves the CA pinned by fingerprint pin.
func dial(ctx context.Context, addr string, pin identity.Fingerprint) (*session, error) {
	ctx, cancel := context.WithTimeout(ctx, clientTimeout)
	defer cancel()
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("enroll: connect to the CA host %s: %w (is a CA host's agent running there, with enroll.listen reachable?)", addr, err)
	}
	deadline, _ := ctx.Deadline()
	_ = raw.SetDeadline(deadline)
	// No X.509 verification: the server's certificate is an ephemeral self-signed one. The
	// CA host authenticates by signing this session's exporter value with the CA key, which
	// the joiner checks against the CA it pins (below).
	tc := tls.Client(raw, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}) //nolint:gosec // channel binding, see doc.go
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("enroll: TLS with %s: %w", addr, err)
	}
	s := &session{addr: addr, conn: tc}
	if s.exp, err = exporter(tc.ConnectionState()); err != nil {
		tc.Close()
		return nil, err
	}
	b, err := readFrame(tc)
	if err == nil {
		err = s.hello.UnmarshalBinary(b)
	}
	if err != nil {
		tc.Close()
		return nil, fmt.Errorf("enroll: hello from %s: %w", addr, err)
	}
	fp, err := s.hello.CA.Fingerprint()
	if err != nil {
		tc.Close()
		return nil, err
	}
	if fp != pin {
		tc.Close()
		return nil, fmt.Errorf("%w: %s presents CA %q (%s), but the token pins CA %s: the token was created for another cluster, or ADDR is not this cluster's CA host; create a token on this cluster's CA host with `weft token create`", ErrWrongCA, addr, s.hello.CA.Name, fp, pin)
	}
	if _, err := identity.NewCAPool(s.hello.CA); err != nil || !checkHello(&s.hello, s.exp) {
		tc.Close()
		return nil, fmt.Errorf("%w: %s presents the pinned CA but did not sign this session with its key: an impostor or a man in the middle; check the address given to --retry-join", ErrImpostor, addr)
	}
	return s, nil
}

func (s *session) close() { s.conn.Close() }

// send writes a request's bytes and reads the response.
func (s *session) send(b []byte) (*Response, error) {
	if err := writeFrame(s.conn, b); err != nil {
		return nil, fmt.Errorf("enroll: send to %s: %w", s.addr, err)
	}
	rb, err := readFrame(s.conn)
	if err != nil {
		return nil, fmt.Errorf("enroll: no answer from %s: %w (the CA host may be busy or rate-limiting: retry shortly)", s.addr, err)
	}
	var resp Response
	if err := resp.UnmarshalBinary(rb); err != nil {
		return nil, err
	}
	if resp.Refusal != 0 {
		return nil, &RefusedError{Addr: s.addr, Reason: resp.Refusal}
	}
	return &resp, nil
}

// finish checks the grant: a certificate of the pinned CA, for this name and key, now.
func (s *session) finish(resp *Response, name string, key crypto.PublicKey) (*Result, error) {
	pool, err := identity.NewCAPool(s.hello.CA)
	if err != nil {
		return nil, err
	}
	cl, err := identity.Verify(resp.Cert, pool, time.Now(), nil)
	if err != nil {
		return nil, fmt.Errorf("enroll: the certificate from %s does not verify: %w (check both hosts' clocks)", s.addr, err)
	}
	if cl.Name != name || cl.PublicKey != key {
		return nil, fmt.Errorf("enroll: the certificate from %s is for %q, not this host %q and its key", s.addr, cl.Name, name)
	}
	return &Result{CA: s.hello.CA, Cert: resp.Cert, GossipKey: resp.GossipKey, Cluster: resp.Cluster}, nil
}

// Enroll proves tok to the CA host at addr and returns this host's certificate for name and
// the public key of priv. The CA host must prove the CA the token pins.
func Enroll(ctx context.Context, addr string, tok identity.Token, name string, key crypto.PublicKey) (*Result, error) {
	s, err := dial(ctx, addr, tok.CA)
	if err != nil {
		return nil, err
	}
	defer s.close()
	q := &Request{Kind: KindEnroll, Name: name, PublicKey: key, TokenID: tok.ID}
	b, err := s.seal(q, TokenKey(tok.Secret))
	if err != nil {
		return nil, err
	}
	resp, err := s.send(b)
	if err != nil {
		return nil, err
	}
	return s.finish(resp, name, key)
}

// seal computes q's MAC under key for this session and encodes q.
func (s *session) seal(q *Request, key [32]byte) ([]byte, error) {
	u, err := q.unsigned()
	if err != nil {
		return nil, err
	}
	q.MAC = requestMAC(key, s.exp, u)
	return q.MarshalBinary()
}

// Renew proves the key of cert (priv) to the CA host at addr, which must hold the CA whose
// fingerprint is ca, and returns the renewed certificate.
func Renew(ctx context.Context, addr string, ca identity.Fingerprint, cert *identity.Certificate, priv crypto.PrivateKey) (*Result, error) {
	s, err := dial(ctx, addr, ca)
	if err != nil {
		return nil, err
	}
	defer s.close()
	pub := priv.Public()
	shared, err := x25519(priv[:], s.hello.Ephemeral[:])
	if err != nil {
		return nil, fmt.Errorf("enroll: %s sent a bad ephemeral key: %w", addr, err)
	}
	q := &Request{Kind: KindRenew, Name: cert.Name, PublicKey: pub, Cert: cert}
	b, err := s.seal(q, renewKey(shared, s.exp))
	if err != nil {
		return nil, err
	}
	resp, err := s.send(b)
	if err != nil {
		return nil, err
	}
	return s.finish(resp, cert.Name, pub)
}
