package enroll

import (
	"crypto/ed25519"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/identity"
	"github.com/weftnet/weft/internal/fsutil"
)

// The CA host's enrollment state, in one directory (STATE_DIR/enroll, mode 0700):
//
//	tokens.json       every token: id, MAC key (HKDF of the secret, never the token's text),
//	                  groups, expiry, uses, revoked
//	allocations.json  every /24 handed out: name, public key, prefix (never reused)
//
// Allocation: the /24s of the cluster CIDR are numbered from 0; number 0 is never handed
// out (as the gossip allocator does, membership/subnet.go); a new public key gets the
// lowest number no allocation holds, a key enrolled before gets its /24 again. Only the CA
// host that holds allocations.json enrolls new hosts (Allocate); another CA host (a copy
// of the CA key without the directory) serves renewals only, which re-sign a certificate's
// own prefixes: two CA hosts can therefore never hand out one /24 twice.

const (
	tokensFile = "tokens.json"
	allocsFile = "allocations.json"
	// maxTokens bounds the token list (expired and spent ones included until pruned).
	maxTokens = 1024
	// MaxTokenUses bounds --uses.
	MaxTokenUses = 1000
)

// StoreConfig configures a Store.
type StoreConfig struct {
	// Dir holds the state (created 0700).
	Dir string
	// CA and CAKey sign the certificates.
	CA    *identity.Certificate
	CAKey ed25519.PrivateKey
	// Cluster is the cluster CIDR, cut into subnets of SubnetBits (the cluster's subnet_len;
	// 0: 24).
	Cluster    netip.Prefix
	SubnetBits int
	// GossipKey returns the gossip key handed to joiners (the one the cluster sends with).
	GossipKey func() []byte
	// Validity of an issued host certificate (capped by the CA's).
	Validity time.Duration
	// Blocklist, when set, returns the certificates that are not renewed.
	Blocklist func() *identity.Blocklist
}

// TokenInfo is a token as `weft token list` shows it (no secret).
type TokenInfo struct {
	ID      string    `json:"id"`
	Groups  []string  `json:"groups,omitempty"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
	Uses    int       `json:"uses"`
	Used    int       `json:"used"`
	Revoked bool      `json:"revoked,omitempty"`
}

type tokenRecord struct {
	TokenInfo
	Key string `json:"key"` // hex TokenKey(secret)
}

// Allocation is one /24 handed out.
type Allocation struct {
	Name      string       `json:"name"`
	PublicKey string       `json:"public_key"`
	Prefix    netip.Prefix `json:"prefix"`
	Issued    time.Time    `json:"issued"`
}

// Store is a CA host's enrollment state; it implements Authority.
type Store struct {
	cfg StoreConfig

	mu       sync.Mutex
	tokens   []*tokenRecord
	allocs   []Allocation
	allocate bool // allocations.json exists: this CA host enrolls new hosts
}

var _ Authority = (*Store)(nil)

// InitStore creates the directory and an empty allocations file: the CA host that ran it
// enrolls new hosts. It leaves an existing state alone.
func InitStore(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	p := filepath.Join(dir, allocsFile)
	if _, err := os.Stat(p); err == nil {
		return nil
	}
	return fsutil.WriteFileAtomic(p, []byte("[]\n"), 0o600)
}

// OpenStore reads the state in cfg.Dir (a missing directory: renewals only).
func OpenStore(cfg StoreConfig) (*Store, error) {
	if cfg.CA == nil || len(cfg.CAKey) != ed25519.PrivateKeySize || cfg.GossipKey == nil || cfg.Validity <= 0 {
		return nil, errors.New("enroll: a store needs the CA, its key, the gossip key and a validity")
	}
	if !cfg.Cluster.IsValid() || cfg.Cluster.Bits() > 24 || !cfg.Cluster.Addr().Is4() {
		return nil, fmt.Errorf("enroll: cluster CIDR %s: want an IPv4 prefix of /24 or larger", cfg.Cluster)
	}
	s := &Store{cfg: cfg}
	if err := readJSON(filepath.Join(cfg.Dir, tokensFile), &s.tokens); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	switch err := readJSON(filepath.Join(cfg.Dir, allocsFile), &s.allocs); {
	case err == nil:
		s.allocate = true
	case !errors.Is(err, os.ErrNotExist):
		return nil, err
	}
	return s, nil
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w (restore it from a backup; it is the CA host's enrollment state)", path, err)
	}
	return nil
}

func (s *Store) save(name string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(s.cfg.Dir, 0o700); err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(filepath.Join(s.cfg.Dir, name), append(b, '\n'), 0o600)
}

// Allocates reports whether this CA host enrolls new hosts.
func (s *Store) Allocates() bool { return s.allocate }

// CA implements Authority.
func (s *Store) CA() (*identity.Certificate, ed25519.PrivateKey) { return s.cfg.CA, s.cfg.CAKey }

// CreateToken makes a token for groups, valid for ttl, usable uses times.
func (s *Store) CreateToken(groups []string, ttl time.Duration, uses int, now time.Time) (identity.Token, TokenInfo, error) {
	if ttl <= 0 {
		return identity.Token{}, TokenInfo{}, errors.New("--ttl must be positive (like 1h)")
	}
	if uses < 1 || uses > MaxTokenUses {
		return identity.Token{}, TokenInfo{}, fmt.Errorf("--uses %d: must be 1 to %d", uses, MaxTokenUses)
	}
	for _, g := range groups {
		if !identity.ValidGroup(g) {
			return identity.Token{}, TokenInfo{}, fmt.Errorf("--groups %q: a group is 1 to 32 printable characters without spaces or commas", g)
		}
	}
	if !s.allocate {
		return identity.Token{}, TokenInfo{}, errors.New("this CA host does not enroll new hosts (no enroll/allocations.json; it serves renewals only): create tokens on the CA host where `weft init` ran")
	}
	fp, err := s.cfg.CA.Fingerprint()
	if err != nil {
		return identity.Token{}, TokenInfo{}, err
	}
	tok, err := identity.NewToken(fp)
	if err != nil {
		return identity.Token{}, TokenInfo{}, err
	}
	key := TokenKey(tok.Secret)
	rec := &tokenRecord{TokenInfo: TokenInfo{ID: tok.ID.String(), Groups: slices.Clone(groups), Created: now.UTC(), Expires: now.Add(ttl).UTC(), Uses: uses}, Key: hex.EncodeToString(key[:])}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.prune(now)
	if len(s.tokens) >= maxTokens {
		return identity.Token{}, TokenInfo{}, fmt.Errorf("%d tokens are pending: revoke some (`weft token revoke ID`) or wait for them to expire", len(s.tokens))
	}
	s.tokens = append(s.tokens, rec)
	if err := s.save(tokensFile, s.tokens); err != nil {
		s.tokens = s.tokens[:len(s.tokens)-1]
		return identity.Token{}, TokenInfo{}, err
	}
	return tok, rec.TokenInfo, nil
}

// prune forgets tokens that expired or were spent or revoked over a day ago.
func (s *Store) prune(now time.Time) {
	s.tokens = slices.DeleteFunc(s.tokens, func(r *tokenRecord) bool {
		return now.Sub(r.Expires) > 24*time.Hour
	})
}

// Tokens lists the tokens, oldest first.
func (s *Store) Tokens() []TokenInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]TokenInfo, 0, len(s.tokens))
	for _, r := range s.tokens {
		out = append(out, r.TokenInfo)
	}
	return out
}

// Allocations lists the /24s handed out.
func (s *Store) Allocations() []Allocation {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.allocs)
}

// ErrNoToken: no token has the id given.
var ErrNoToken = errors.New("no such token")

// Revoke marks token id revoked.
func (s *Store) Revoke(id identity.TokenID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.find(id)
	if r == nil {
		return fmt.Errorf("%w %s: `weft token list` shows the tokens", ErrNoToken, id)
	}
	old := r.Revoked
	r.Revoked = true
	if err := s.save(tokensFile, s.tokens); err != nil {
		r.Revoked = old
		return err
	}
	return nil
}

func (s *Store) find(id identity.TokenID) *tokenRecord {
	for _, r := range s.tokens {
		if r.ID == id.String() {
			return r
		}
	}
	return nil
}

// check says why r cannot be used now (0: it can).
func (r *tokenRecord) check(now time.Time) Reason {
	switch {
	case r.Revoked:
		return ReasonTokenRevoked
	case r.Used >= r.Uses:
		return ReasonTokenUsed
	case !now.Before(r.Expires):
		return ReasonTokenExpired
	}
	return 0
}

// TokenKey implements Authority.
func (s *Store) TokenKey(id identity.TokenID, now time.Time) ([32]byte, Reason) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.allocate {
		return [32]byte{}, ReasonNotAllocator
	}
	r := s.find(id)
	if r == nil {
		return [32]byte{}, ReasonUnknownToken
	}
	if why := r.check(now); why != 0 {
		return [32]byte{}, why
	}
	k, err := hex.DecodeString(r.Key)
	if err != nil || len(k) != 32 {
		return [32]byte{}, ReasonInternal
	}
	return [32]byte(k), 0
}

// Enroll implements Authority: it re-checks the token under the lock (two sessions racing
// for the last use: one wins), allocates and signs, and only then spends the use.
func (s *Store) Enroll(id identity.TokenID, name string, key crypto.PublicKey, now time.Time) (Grant, Reason) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.find(id)
	if r == nil {
		return Grant{}, ReasonUnknownToken
	}
	if why := r.check(now); why != 0 {
		return Grant{}, why
	}
	g, why := s.issueLocked(name, key, r.Groups, now, false)
	if why != 0 {
		return Grant{}, why
	}
	r.Used++
	if err := s.save(tokensFile, s.tokens); err != nil {
		r.Used--
		return Grant{}, ReasonInternal
	}
	return g, 0
}

// Issue signs a certificate for name and key with groups, allocating its /24 (the CA host's
// own certificate; Enroll after the token).
func (s *Store) Issue(name string, key crypto.PublicKey, groups []string, now time.Time) (Grant, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.allocate {
		return Grant{}, errors.New("this CA host does not allocate subnets (no enroll/allocations.json)")
	}
	g, why := s.issueLocked(name, key, groups, now, true)
	if why != 0 {
		return Grant{}, fmt.Errorf("issue a certificate: %s", why)
	}
	return g, nil
}

func (s *Store) issueLocked(name string, key crypto.PublicKey, groups []string, now time.Time, own bool) (Grant, Reason) {
	p, fresh, why := s.allocLocked(name, key, now, own)
	if why != 0 {
		return Grant{}, why
	}
	g, err := s.sign(name, key, []netip.Prefix{p}, groups, now)
	if err != nil {
		if fresh {
			s.allocs = s.allocs[:len(s.allocs)-1]
		}
		if errors.Is(err, identity.ErrMalformed) {
			return Grant{}, ReasonBadRequest
		}
		return Grant{}, ReasonInternal
	}
	if fresh {
		if err := s.save(allocsFile, s.allocs); err != nil {
			s.allocs = s.allocs[:len(s.allocs)-1]
			return Grant{}, ReasonInternal
		}
	}
	return g, 0
}

// allocLocked returns key's /24: the one it holds, or the lowest free one (appended to
// s.allocs, unsaved; fresh reports that). A node name stays bound to the first key enrolled
// under it, so that a token holder cannot take another host's name (and its `host:` rules
// and DNS name) while that host is down; own (the CA host's own certificate) may re-key.
func (s *Store) allocLocked(name string, key crypto.PublicKey, now time.Time, own bool) (netip.Prefix, bool, Reason) {
	ks := key.String()
	for _, a := range s.allocs {
		if a.PublicKey == ks {
			return a.Prefix, false, 0
		}
	}
	for _, a := range s.allocs {
		if a.Name == name && !own {
			return netip.Prefix{}, false, ReasonNameTaken
		}
	}
	held := make(map[netip.Prefix]bool, len(s.allocs))
	for _, a := range s.allocs {
		held[a.Prefix] = true
	}
	bits := s.cfg.SubnetBits
	if bits == 0 {
		bits = 24
	}
	n := 1 << (bits - s.cfg.Cluster.Bits())
	base := s.cfg.Cluster.Masked().Addr().As4()
	for i := 1; i < n; i++ {
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], binary.BigEndian.Uint32(base[:])+uint32(i)<<(32-bits))
		p := netip.PrefixFrom(netip.AddrFrom4(a), bits)
		if !held[p] {
			s.allocs = append(s.allocs, Allocation{Name: name, PublicKey: ks, Prefix: p, Issued: now.UTC()})
			return p, true, 0
		}
	}
	return netip.Prefix{}, false, ReasonNoPrefix
}

// sign issues the host certificate, backdated for clock skew by a minute (a tenth of
// the validity when that is shorter, so that a short validity keeps its meaning) and valid
// for the configured validity, capped by the CA's.
func (s *Store) sign(name string, key crypto.PublicKey, prefixes []netip.Prefix, groups []string, now time.Time) (Grant, error) {
	ca := s.cfg.CA
	skew := min(time.Minute, s.cfg.Validity/10)
	spec := identity.HostSpec{Name: name, PublicKey: key, Prefixes: prefixes, Groups: groups,
		NotBefore: now.Add(-skew), NotAfter: now.Add(s.cfg.Validity)}
	if spec.NotBefore.Before(ca.NotBefore) {
		spec.NotBefore = ca.NotBefore
	}
	if spec.NotAfter.After(ca.NotAfter) {
		spec.NotAfter = ca.NotAfter
	}
	c, err := identity.Sign(ca, s.cfg.CAKey, spec)
	if err != nil {
		return Grant{}, err
	}
	return Grant{Cert: c, GossipKey: s.cfg.GossipKey(), Cluster: s.cfg.Cluster.Masked()}, nil
}

// Renew implements Authority: the same name, key, prefixes and groups, a new validity;
// refused for a blocklisted certificate.
func (s *Store) Renew(cur identity.Claims, now time.Time) (Grant, Reason) {
	if s.cfg.Blocklist != nil && s.cfg.Blocklist().Contains(cur.Fingerprint) {
		return Grant{}, ReasonNotRenewable
	}
	g, err := s.sign(cur.Name, cur.PublicKey, cur.Prefixes, cur.Groups, now)
	if err != nil {
		return Grant{}, ReasonInternal
	}
	return g, 0
}
