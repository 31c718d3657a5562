package enroll

// The CA host's side. One goroutine per accepted connection, at most Config.MaxSessions at
// once (more are closed at once, counted busy); a source address over its rate is closed
// before the TLS handshake (rate_limited). A session lives at most Config.SessionTimeout:
// handshake, hello, one request, one response, close.

import (
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/identity"
)

// Grant is what an enrollment or renewal hands out.
type Grant struct {
	Cert      *identity.Certificate
	GossipKey []byte
	Cluster   netip.Prefix
}

// Authority is the CA host's state behind the server: the CA, its tokens and allocations
// (Store implements it).
type Authority interface {
	// CA returns the CA certificate and its private key.
	CA() (*identity.Certificate, ed25519.PrivateKey)
	// TokenKey returns the MAC key of token id, or why it cannot be used now.
	TokenKey(id identity.TokenID, now time.Time) ([32]byte, Reason)
	// Enroll spends one use of token id and issues a certificate for name and key.
	Enroll(id identity.TokenID, name string, key crypto.PublicKey, now time.Time) (Grant, Reason)
	// Renew re-issues the current certificate cur, whose key the server has verified.
	Renew(cur identity.Claims, now time.Time) (Grant, Reason)
}

// Config bounds the server.
type Config struct {
	// MaxSessions is how many sessions run at once; more connections are closed.
	MaxSessions int
	// Rate and Burst bound the connections one source address may open (a token bucket:
	// Burst at once, then Rate a second).
	Rate  float64
	Burst int
	// MaxSources bounds the sources the rate limiter remembers; when full it forgets all.
	MaxSources int
	// SessionTimeout bounds one session from accept to close.
	SessionTimeout time.Duration
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// DefaultConfig is the server's configuration on a CA host.
func DefaultConfig() Config {
	return Config{
		MaxSessions:    16,               // enrollment is rare; a burst of hosts booting together fits
		Rate:           1,                // a host enrolls once and renews rarely; a guesser gets 1/s
		Burst:          10,               // a few retries and several hosts behind one NAT
		MaxSources:     4096,             // bounded memory under a spoofed-source flood (TCP needs a handshake anyway)
		SessionTimeout: 10 * time.Second, // a LAN exchange takes milliseconds; a slow client holds a slot at most this long
	}
}

// Server serves enrollment on a listener.
type Server struct {
	cfg  Config
	auth Authority
	log  *slog.Logger
	tls  *tls.Config
	sem  chan struct{}

	mu      sync.Mutex
	buckets map[netip.Addr]*bucket
	counts  map[string]uint64
	ln      net.Listener
	closed  bool
	wg      sync.WaitGroup
}

type bucket struct {
	tokens float64
	last   time.Time
}

// NewServer makes a server for auth; Serve starts it.
func NewServer(cfg Config, auth Authority, log *slog.Logger) (*Server, error) {
	if cfg.MaxSessions <= 0 || cfg.Burst <= 0 || cfg.Rate <= 0 || cfg.SessionTimeout <= 0 || cfg.MaxSources <= 0 {
		return nil, errors.New("enroll: MaxSessions, Rate, Burst, MaxSources and SessionTimeout must be positive")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cert, err := ephemeralCert()
	if err != nil {
		return nil, err
	}
	return &Server{
		cfg: cfg, auth: auth, log: log,
		tls:     &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13},
		sem:     make(chan struct{}, cfg.MaxSessions),
		buckets: map[netip.Addr]*bucket{},
		counts:  map[string]uint64{},
	}, nil
}

// ephemeralCert is a self-signed certificate that only carries the TLS handshake: the
// client does not check it (the CA's signature over the exporter value authenticates).
func ephemeralCert() (tls.Certificate, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "weft enroll"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(10 * 365 * 24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("enroll: TLS certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv}, nil
}

// Serve accepts connections on ln until Close; it returns nil after Close.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return net.ErrClosed
	}
	s.ln = ln
	s.mu.Unlock()
	for {
		c, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			return err
		}
		if !s.allow(c.RemoteAddr()) {
			s.count(countRateLimited)
			c.Close()
			continue
		}
		select {
		case s.sem <- struct{}{}:
		default:
			s.count(countBusy)
			c.Close()
			continue
		}
		s.wg.Add(1)
		go func() {
			defer func() { <-s.sem; s.wg.Done() }()
			s.session(c)
		}()
	}
}

// Close stops accepting and waits for the sessions (each bounded by SessionTimeout).
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	ln := s.ln
	s.mu.Unlock()
	var err error
	if ln != nil {
		err = ln.Close()
	}
	s.wg.Wait()
	return err
}

// Stats returns the count of every outcome by name: enrolled, renewed, and each refusal.
func (s *Server) Stats() map[string]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[string]uint64, len(s.counts))
	for k, v := range s.counts {
		m[k] = v
	}
	return m
}

// StatNames lists every name Stats may report, sorted.
func StatNames() []string {
	names := []string{"enrolled", "renewed", countRateLimited, countBusy, countHandshakeFailed, countTooLarge, countIO}
	for r := Reason(1); r < numReasons; r++ {
		names = append(names, r.String())
	}
	sort.Strings(names)
	return names
}

func (s *Server) count(name string) {
	s.mu.Lock()
	s.counts[name]++
	s.mu.Unlock()
}

// allow takes a token from the bucket of addr's source address.
func (s *Server) allow(addr net.Addr) bool {
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil {
		return true // not IP (a test's pipe): nothing to key on
	}
	ip := ap.Addr().Unmap()
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.buckets[ip]
	if b == nil {
		if len(s.buckets) >= s.cfg.MaxSources {
			clear(s.buckets)
		}
		b = &bucket{tokens: float64(s.cfg.Burst), last: now}
		s.buckets[ip] = b
	}
	b.tokens = min(float64(s.cfg.Burst), b.tokens+now.Sub(b.last).Seconds()*s.cfg.Rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// session runs one exchange on c.
func (s *Server) session(c net.Conn) {
	defer c.Close()
	remote := c.RemoteAddr().String()
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.SessionTimeout)
	defer cancel()
	_ = c.SetDeadline(time.Now().Add(s.cfg.SessionTimeout))
	tc := tls.Server(c, s.tls)
	if err := tc.HandshakeContext(ctx); err != nil {
		s.count(countHandshakeFailed)
		return
	}
	exp, err := exporter(tc.ConnectionState())
	if err != nil {
		s.count(countHandshakeFailed)
		return
	}
	eph, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		s.count(ReasonInternal.String())
		return
	}
	ca, caKey := s.auth.CA()
	hello := &ServerHello{CA: ca, Ephemeral: [32]byte(eph.PublicKey().Bytes())}
	hello.Sig = signHello(caKey, exp, hello.Ephemeral)
	hb, err := hello.MarshalBinary()
	if err != nil {
		s.count(ReasonInternal.String())
		return
	}
	if err := writeFrame(tc, hb); err != nil {
		s.count(countIO)
		return
	}
	body, err := readFrame(tc)
	if err != nil {
		if errors.Is(err, errTooLarge) {
			s.count(countTooLarge)
		} else {
			s.count(countIO)
		}
		return
	}
	resp, what := s.answer(body, exp, eph, ca)
	if resp.Refusal != 0 {
		s.log.Warn("enrollment refused", "remote", remote, "reason", resp.Refusal.String())
	} else {
		s.log.Info("certificate issued", "remote", remote, "member", resp.Cert.Name, "what", what, "prefixes", resp.Cert.Prefixes, "not_after", resp.Cert.NotAfter)
	}
	s.count(what)
	rb, err := resp.MarshalBinary()
	if err != nil {
		s.count(ReasonInternal.String())
		return
	}
	_ = writeFrame(tc, rb)
}

// answer decides on one request; what names the outcome as counted.
func (s *Server) answer(body, exp []byte, eph *ecdh.PrivateKey, ca *identity.Certificate) (*Response, string) {
	refuse := func(r Reason) (*Response, string) { return &Response{Refusal: r}, r.String() }
	var q Request
	if err := q.UnmarshalBinary(body); err != nil {
		return refuse(ReasonBadRequest)
	}
	unsigned, err := q.unsigned()
	if err != nil {
		return refuse(ReasonBadRequest)
	}
	now := s.cfg.Now()
	var (
		g    Grant
		r    Reason
		what string
	)
	switch q.Kind {
	case KindEnroll:
		if q.PublicKey.IsZero() { // the name is checked by identity.Sign
			return refuse(ReasonBadRequest)
		}
		key, r := s.auth.TokenKey(q.TokenID, now)
		if r != 0 {
			return refuse(r)
		}
		if want := requestMAC(key, exp, unsigned); !hmac.Equal(want[:], q.MAC[:]) {
			return refuse(ReasonBadProof)
		}
		g, r = s.auth.Enroll(q.TokenID, q.Name, q.PublicKey, now)
		what = "enrolled"
		if r != 0 {
			return refuse(r)
		}
	case KindRenew:
		pool, err := identity.NewCAPool(ca)
		if err != nil {
			return refuse(ReasonInternal)
		}
		cl, err := identity.Verify(q.Cert, pool, now, nil)
		if err != nil {
			return refuse(ReasonNotRenewable)
		}
		if cl.Name != q.Name || cl.PublicKey != q.PublicKey {
			return refuse(ReasonBadRequest)
		}
		shared, err := x25519(eph.Bytes(), q.PublicKey[:])
		if err != nil {
			return refuse(ReasonBadRequest)
		}
		if want := requestMAC(renewKey(shared, exp), exp, unsigned); !hmac.Equal(want[:], q.MAC[:]) {
			return refuse(ReasonBadProof)
		}
		g, r = s.auth.Renew(cl, now)
		what = "renewed"
		if r != 0 {
			return refuse(r)
		}
	}
	return &Response{Cert: g.Cert, GossipKey: g.GossipKey, Cluster: g.Cluster}, what
}
