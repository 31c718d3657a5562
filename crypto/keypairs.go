package crypto

import (
	"sync"
	"sync/atomic"
)

// Keypairs holds the current, previous and next keypair of one peer and
// rotates them as WireGuard does (wireguard-go's BeginSymmetricSession and
// ReceivedWithKeypair):
//
//   - a keypair we initiated becomes current at once: the responder has
//     proven it holds the keys by answering. The old current becomes
//     previous (or, if a responder keypair was waiting as next, that one
//     becomes previous and the old current is evicted).
//   - a keypair we responded with waits as next until the initiator proves
//     it by sending on it (Confirm); previous is evicted then so a stale
//     keypair cannot be confirmed later.
//
// Previous stays usable for receiving so packets in flight at a rotation are
// not lost. Every keypair that leaves the set is returned so the caller can
// free its receiver index. The zero value is ready to use; Current is
// lock-free for the hot path.
type Keypairs struct {
	mu       sync.Mutex // serialises writers
	current  atomic.Pointer[Keypair]
	next     atomic.Pointer[Keypair]
	previous atomic.Pointer[Keypair]
}

// Install adds a keypair fresh from a handshake and returns the keypairs it
// displaced (nil entries are left out).
func (k *Keypairs) Install(kp *Keypair) (evicted []*Keypair) {
	k.mu.Lock()
	defer k.mu.Unlock()
	current, next, previous := k.current.Load(), k.next.Load(), k.previous.Load()
	if kp.IsInitiator() {
		if next != nil {
			k.next.Store(nil)
			k.previous.Store(next)
			evicted = appendNonNil(evicted, current)
		} else {
			k.previous.Store(current)
		}
		evicted = appendNonNil(evicted, previous)
		k.current.Store(kp)
		return evicted
	}
	k.next.Store(kp)
	k.previous.Store(nil)
	evicted = appendNonNil(evicted, next)
	evicted = appendNonNil(evicted, previous)
	return evicted
}

// Current returns the keypair to seal with, or nil. Lock-free.
func (k *Keypairs) Current() *Keypair { return k.current.Load() }

// Previous returns the keypair before current (still valid for receiving),
// or nil.
func (k *Keypairs) Previous() *Keypair { return k.previous.Load() }

// Next returns the responder keypair awaiting confirmation, or nil.
func (k *Keypairs) Next() *Keypair { return k.next.Load() }

// Confirm is called when a packet authenticated with kp arrived: if kp is
// next it is promoted to current and Confirm returns true. The evicted
// previous keypair is dropped; callers that free indexes use
// ConfirmEvicting instead.
func (k *Keypairs) Confirm(kp *Keypair) bool {
	ok, _ := k.ConfirmEvicting(kp)
	return ok
}

// ConfirmEvicting is Confirm that also returns the keypair the promotion
// evicted (the old previous, possibly nil), so the caller can free its index.
// The common case, kp is not next, takes no lock.
func (k *Keypairs) ConfirmEvicting(kp *Keypair) (promoted bool, evicted *Keypair) {
	if kp == nil || k.next.Load() != kp {
		return false, nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.next.Load() != kp {
		return false, nil
	}
	evicted = k.previous.Load()
	k.previous.Store(k.current.Load())
	k.current.Store(kp)
	k.next.Store(nil)
	return true, evicted
}

// Clear removes all keypairs (after RejectAfterTime*3 of silence, or when
// the peer is removed) and returns them.
func (k *Keypairs) Clear() (evicted []*Keypair) {
	k.mu.Lock()
	defer k.mu.Unlock()
	evicted = appendNonNil(evicted, k.current.Swap(nil))
	evicted = appendNonNil(evicted, k.previous.Swap(nil))
	evicted = appendNonNil(evicted, k.next.Swap(nil))
	return evicted
}

func appendNonNil(s []*Keypair, kp *Keypair) []*Keypair {
	if kp == nil {
		return s
	}
	return append(s, kp)
}
