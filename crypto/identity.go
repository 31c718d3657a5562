package crypto

import (
	"net/netip"
	"sync"
	"time"

	"golang.org/x/crypto/blake2s"
	"golang.org/x/crypto/chacha20poly1305"
	"golang.zx2c4.com/wireguard/ratelimiter"
)

// Identity is this host's static key plus what all its handshakes share: the
// mac1 key, the cookie checker (secret rotated every CookieRefreshTime) and
// the per-source rate limiter. It is safe for concurrent use; Close it to
// stop the rate limiter's goroutine.
type Identity struct {
	priv PrivateKey
	pub  PublicKey

	// mac1Key authenticates mac1 of messages sent to us; cookieKey
	// encrypts the cookie replies we send. Both derive from pub.
	mac1Key   [blake2s.Size]byte
	cookieKey [chacha20poly1305.KeySize]byte

	// now is the clock of handshakes, cookies and keypairs; nil is the
	// real clock (see clock). Tests set it.
	now func() time.Time

	cookieMu  sync.RWMutex
	secret    [blake2s.Size]byte // cookie secret
	secretSet time.Time          // zero: never set, a fresh one is drawn

	// limiterMu guards the limiter against use after Close, which would
	// panic inside it (it signals its stopped goroutine).
	limiterMu sync.RWMutex
	limiter   ratelimiter.Ratelimiter
	closed    bool
}

// NewIdentity returns the Identity of priv and starts its rate limiter.
func NewIdentity(priv PrivateKey) *Identity {
	id := &Identity{priv: priv, pub: priv.Public()}
	id.mac1Key = labelKey(labelMAC1, id.pub)
	id.cookieKey = labelKey(labelCookie, id.pub)
	id.limiter.Init()
	return id
}

// clock returns the identity's time: time.Now unless a test set now.
func (id *Identity) clock() time.Time {
	if id.now == nil {
		return time.Now()
	}
	return id.now()
}

// Present returns wall, the caller's own reading of time.Now (a datapath takes one per
// batch of packets), unless SetClock set a test clock: then that clock's reading. It is
// the time to give the keypairs' SealAt and OpenAt, so that they judge expiry by the same
// clock as their creation.
func (id *Identity) Present(wall time.Time) time.Time {
	if id.now == nil {
		return wall
	}
	return id.now()
}

// SetClock makes now the clock of the identity's handshakes, cookies and the keypairs it
// derives from here on (nil: the real clock). For tests and simulations that must not
// depend on wall time (a fuzzer whose keypair would expire after RejectAfterTime, a test
// of that expiry). Call it before the identity is used: it is not synchronized.
func (id *Identity) SetClock(now func() time.Time) { id.now = now }

// PublicKey returns the public key of the identity.
func (id *Identity) PublicKey() PublicKey { return id.pub }

// Close stops the rate limiter's goroutine. Handshakes keep working; Admit
// under load drops everything afterwards. Close is idempotent.
func (id *Identity) Close() {
	id.limiterMu.Lock()
	defer id.limiterMu.Unlock()
	if !id.closed {
		id.closed = true
		id.limiter.Close()
	}
}

// allow asks the per-source rate limiter; false after Close.
func (id *Identity) allow(src netip.Addr) bool {
	id.limiterMu.RLock()
	defer id.limiterMu.RUnlock()
	return !id.closed && id.limiter.Allow(src)
}
