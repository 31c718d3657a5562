package peers

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/weftnet/weft/crypto"
)

// Named errors of the table's control path.
var (
	// ErrPrefixMoved: Upsert gave a prefix to the new peer that another peer owned
	// (last writer wins, as in WireGuard). The update WAS applied; the error only
	// reports the move. Use errors.As with *PrefixMovedError for the details.
	ErrPrefixMoved = errors.New("peers: allowed prefix moved from another peer")
	// ErrInvalidPrefix: an allowed prefix is not valid.
	ErrInvalidPrefix = errors.New("peers: invalid allowed prefix")
	// ErrIndexSpace: no free receiver index could be found (practically unreachable).
	ErrIndexSpace = errors.New("peers: receiver index space exhausted")
)

// PrefixMovedError lists prefixes that Upsert took from other peers.
type PrefixMovedError struct {
	Prefixes []netip.Prefix
	From     []crypto.PublicKey // From[i] owned Prefixes[i] before
}

func (e *PrefixMovedError) Error() string {
	var b strings.Builder
	b.WriteString(ErrPrefixMoved.Error())
	b.WriteString(":")
	for i, p := range e.Prefixes {
		fmt.Fprintf(&b, " %s (was %s)", p, e.From[i])
	}
	return b.String()
}

// Unwrap makes errors.Is(err, ErrPrefixMoved) hold.
func (e *PrefixMovedError) Unwrap() error { return ErrPrefixMoved }

// IndexEntry is what a receiver index stands for: a peer, and the keypair it names
// (nil while the index belongs to an outstanding handshake initiation).
type IndexEntry struct {
	Peer    *Peer
	Keypair *crypto.Keypair
}

// Table is the set of peers. Writers serialize on an internal mutex; the hot-path reads
// Lookup and ByIndex are lock-free snapshot reads. Safe for concurrent use.
type Table struct {
	id *crypto.Identity

	mu     sync.Mutex
	byKey  map[crypto.PublicKey]*Peer
	owners map[netip.Prefix]*Peer

	trie  atomic.Pointer[trie]
	index atomic.Pointer[map[uint32]IndexEntry]
}

// NewTable returns an empty table whose handshakes are made with id (may be nil for
// tests that only route; handshakes then cannot be made).
func NewTable(id *crypto.Identity) *Table {
	t := &Table{
		id:     id,
		byKey:  make(map[crypto.PublicKey]*Peer),
		owners: make(map[netip.Prefix]*Peer),
	}
	t.trie.Store(&trie{})
	idx := make(map[uint32]IndexEntry)
	t.index.Store(&idx)
	return t
}

// Identity returns the identity the table's handshakes are made with.
func (t *Table) Identity() *crypto.Identity { return t.id }

// Upsert adds the peer or updates it in place (endpoint, allowed prefixes, keepalive;
// sessions survive). A prefix that another peer owned moves to this one (last writer
// wins); the returned error then wraps ErrPrefixMoved although the update was applied
// and the peer is returned. A changed preshared key replaces the handshake state and
// tears down the sessions.
func (t *Table) Upsert(cfg PeerConfig) (*Peer, error) {
	prefixes := make([]netip.Prefix, 0, len(cfg.AllowedIPs))
	for _, p := range cfg.AllowedIPs {
		if !p.IsValid() {
			return nil, fmt.Errorf("%w: %v", ErrInvalidPrefix, p)
		}
		prefixes = append(prefixes, p.Masked())
	}
	slices.SortFunc(prefixes, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr())*256 + a.Bits() - b.Bits() })
	prefixes = slices.Compact(prefixes)

	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.byKey[cfg.PublicKey]
	if p == nil {
		p = &Peer{key: cfg.PublicKey, psk: cfg.PresharedKey}
		p.handshake = crypto.NewHandshake(t.id, cfg.PublicKey, cfg.PresharedKey)
		t.byKey[cfg.PublicKey] = p
	} else if p.psk != cfg.PresharedKey {
		p.psk = cfg.PresharedKey
		t.teardownLocked(p)
		p.handshake = crypto.NewHandshake(t.id, cfg.PublicKey, cfg.PresharedKey)
	}
	if cfg.Endpoint.IsValid() {
		if cur := p.endpoint.Load(); cur == nil || cur.Addr != cfg.Endpoint {
			p.SetEndpoint(cfg.Endpoint, nil)
		}
	}
	p.keepalive.Store(int64(cfg.PersistentKeepalive))
	p.wgFraming.Store(cfg.WireGuardFraming)

	touched := p.allowedSnapshot()
	for _, old := range touched {
		if t.owners[old] == p {
			delete(t.owners, old)
		}
	}
	var moved *PrefixMovedError
	for _, pfx := range prefixes {
		if prev := t.owners[pfx]; prev != nil && prev != p {
			if moved == nil {
				moved = &PrefixMovedError{}
			}
			moved.Prefixes = append(moved.Prefixes, pfx)
			moved.From = append(moved.From, prev.key)
			t.dropPrefixLocked(prev, pfx)
		}
		t.owners[pfx] = p
	}
	p.allowedPtr.Store(&prefixes)
	t.publishLocked(slices.Concat(touched, prefixes))
	if moved != nil {
		return p, moved
	}
	return p, nil
}

// publishLocked brings the lookup trie in line with t.owners for the prefixes that may
// have changed, and publishes it: one path copied per prefix, not the whole table.
func (t *Table) publishLocked(changed []netip.Prefix) {
	tr := t.trie.Load()
	for _, pfx := range changed {
		tr = tr.with(pfx, t.owners[pfx])
	}
	t.trie.Store(tr)
}

// dropPrefixLocked removes pfx from prev's configured list (it moved to another peer).
func (t *Table) dropPrefixLocked(prev *Peer, pfx netip.Prefix) {
	old := prev.allowedSnapshot()
	next := make([]netip.Prefix, 0, len(old))
	for _, q := range old {
		if q != pfx {
			next = append(next, q)
		}
	}
	prev.allowedPtr.Store(&next)
}

// Remove deletes the peer: its routes go, its sessions are torn down, its indexes are
// freed and packets it had queued are dropped. It reports whether the peer existed.
func (t *Table) Remove(key crypto.PublicKey) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.byKey[key]
	if p == nil {
		return false
	}
	delete(t.byKey, key)
	held := p.allowedSnapshot()
	for _, pfx := range held {
		if t.owners[pfx] == p {
			delete(t.owners, pfx)
		}
	}
	p.allowedPtr.Store(nil)
	t.publishLocked(held)
	p.removed.Store(true)
	if n := len(t.teardownLocked(p)); n > 0 {
		p.drops.Add(DropNoRoute, uint64(n))
	}
	return true
}

// teardownLocked clears p's keypairs and handshake state and frees their indexes.
func (t *Table) teardownLocked(p *Peer) (pending [][]byte) {
	var free []uint32
	for _, kp := range p.keypairs.Clear() {
		if kp != nil {
			free = append(free, kp.LocalIndex())
		}
	}
	idx, pending := p.session.reset(nil)
	if idx != 0 {
		free = append(free, idx)
	}
	t.updateIndexLocked(func(m map[uint32]IndexEntry) {
		for _, i := range free {
			delete(m, i)
		}
	})
	return pending
}

// Teardown clears p's sessions (keypairs, outstanding handshake) and frees their
// indexes, keeping the peer and its routes. Returns the packets it had queued.
func (t *Table) Teardown(p *Peer) [][]byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.teardownLocked(p)
}

// ByKey returns the peer with static key k, or nil.
func (t *Table) ByKey(k crypto.PublicKey) *Peer {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.byKey[k]
}

// Peers returns all peers, ordered by public key.
func (t *Table) Peers() []*Peer {
	t.mu.Lock()
	out := make([]*Peer, 0, len(t.byKey))
	for _, p := range t.byKey {
		out = append(out, p)
	}
	t.mu.Unlock()
	slices.SortFunc(out, func(a, b *Peer) int { return strings.Compare(string(a.key[:]), string(b.key[:])) })
	return out
}

// Lookup returns the peer owning the longest allowed prefix that holds a, or nil.
// Lock-free and allocation-free: the outbound hot path calls it per packet.
func (t *Table) Lookup(a netip.Addr) *Peer { return t.trie.Load().lookup(a) }

// ByIndex returns what receiver index i stands for. Lock-free and allocation-free: the
// inbound hot path calls it per packet.
func (t *Table) ByIndex(i uint32) (IndexEntry, bool) {
	e, ok := (*t.index.Load())[i]
	return e, ok
}

// NewIndex allocates a fresh random nonzero receiver index for p, standing for an
// outstanding handshake until SetIndexKeypair names its keypair.
func (t *Table) NewIndex(p *Peer) (uint32, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	cur := *t.index.Load()
	var b [4]byte
	for range 64 {
		if _, err := rand.Read(b[:]); err != nil {
			return 0, fmt.Errorf("rand: %w", err)
		}
		i := binary.LittleEndian.Uint32(b[:])
		if _, taken := cur[i]; i == 0 || taken {
			continue
		}
		t.updateIndexLocked(func(m map[uint32]IndexEntry) { m[i] = IndexEntry{Peer: p} })
		return i, nil
	}
	return 0, ErrIndexSpace
}

// SetIndexKeypair makes index i stand for kp (of i's peer). A no-op when i was freed.
func (t *Table) SetIndexKeypair(i uint32, kp *crypto.Keypair) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.updateIndexLocked(func(m map[uint32]IndexEntry) {
		if e, ok := m[i]; ok {
			e.Keypair = kp
			m[i] = e
		}
	})
}

// FreeIndexes releases receiver indexes (of evicted keypairs or abandoned initiations).
func (t *Table) FreeIndexes(idx ...uint32) {
	if len(idx) == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.updateIndexLocked(func(m map[uint32]IndexEntry) {
		for _, i := range idx {
			delete(m, i)
		}
	})
}

// NumIndexes returns how many receiver indexes are allocated (for tests and stats).
func (t *Table) NumIndexes() int { return len(*t.index.Load()) }

// updateIndexLocked publishes a modified copy of the index map (copy-on-write: handshakes
// are rare, transport packets are not).
func (t *Table) updateIndexLocked(f func(map[uint32]IndexEntry)) {
	cur := *t.index.Load()
	next := make(map[uint32]IndexEntry, len(cur)+1)
	maps.Copy(next, cur)
	f(next)
	t.index.Store(&next)
}
