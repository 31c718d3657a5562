package l2

import (
	"errors"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// The forwarding database of one VNI: which remote VTEP owns a MAC address, as a learning
// switch keeps it. Remotes are an opaque comparable key: netip.AddrPort for the plaintext
// VTEP, *peers.Peer for the encrypted path.
//
// Concurrency: the outbound path (Route, ARPReply) and the inbound path (Learn) run on
// different goroutines. Lookups and the refresh of a known MAC from the same remote take only
// a read lock and an atomic store; a new MAC or a move takes the write lock. The remote list
// used for flooding is an immutable snapshot behind an atomic pointer.
//
// Bounds: learned entries are capped at MaxEntries; when full the oldest is evicted with a
// second chance for entries refreshed since they were queued (CLOCK), so a storm of fresh
// source MACs costs O(1) per frame and cannot grow memory. Flooding spends a token bucket of
// FloodRate frames per second; frames beyond it are dropped and counted.

// FDBConfig configures an FDB. The zero value of a field means its default.
type FDBConfig struct {
	// AgeingTime is how long a learned entry lives without traffic from its MAC.
	// Default 300 s, the Linux bridge default (`ageing_time`).
	AgeingTime time.Duration
	// MaxEntries bounds learned entries (static entries are bounded by the cluster size and
	// not counted). Default 16384: ~1.5 MiB, far more MACs than one overlay segment holds.
	MaxEntries int
	// FloodRate is the head-end replication budget in frames per second (each frame counted
	// once, however many remotes it is copied to), with an equal burst. Default 20000:
	// plenty for ARP/ND/DHCP chatter, small enough that a broadcast storm is clipped.
	FloodRate int
	// MoveHold is how long a learned MAC must have been quiet at its remote before a frame
	// from another remote may move it there. Zero: it moves at once, as in a learning switch
	// (the plain VTEP, whose remotes are unauthenticated UDP addresses anyway); negative: the
	// same. The encrypted Router holds moves for DefaultMoveHold, so that a peer cannot take
	// over a MAC in use behind another peer and receive its frames, while a migrated VM's MAC
	// follows it within seconds (its old host stops sending from it at once). A static entry
	// never moves, whatever MoveHold says.
	MoveHold time.Duration
	// ARPSuppression answers ARP requests for IPs known from gossip locally instead of
	// flooding them. Default off (as Linux `neigh_suppress`).
	ARPSuppression bool
	// Now is the clock; nil means time.Now. Tests inject a fake.
	Now func() time.Time
}

// DefaultFDBConfig returns the defaults described on FDBConfig.
func DefaultFDBConfig() FDBConfig {
	return FDBConfig{AgeingTime: 300 * time.Second, MaxEntries: 16384, FloodRate: 20000}
}

func (c FDBConfig) withDefaults() FDBConfig {
	d := DefaultFDBConfig()
	if c.AgeingTime <= 0 {
		c.AgeingTime = d.AgeingTime
	}
	if c.MaxEntries <= 0 {
		c.MaxEntries = d.MaxEntries
	}
	if c.FloodRate <= 0 {
		c.FloodRate = d.FloodRate
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Named outcomes of Route.
var (
	// ErrFloodBudget: the frame needed flooding and the flood budget of this second is spent.
	ErrFloodBudget = errors.New("fdb: flood budget exhausted")
	// ErrNoRemotes: the frame needed flooding and the VNI has no remote.
	ErrNoRemotes = errors.New("fdb: no remote to flood to")
)

// FDBEntry is one row of the forwarding database as listed by `weft fdb`.
type FDBEntry[K comparable] struct {
	MAC    MAC
	Remote K
	Static bool          // seeded from gossip; never aged or evicted
	Age    time.Duration // since the MAC was last seen (0 for static entries)
}

// FDBStats are the FDB's counters.
type FDBStats struct {
	Entries, StaticEntries               int
	Learned, Moved, Evicted, Aged        uint64
	StaticConflicts                      uint64 // learned from another remote than its static entry; ignored
	MovesRefused                         uint64 // learned MAC claimed by another remote within MoveHold; ignored
	Flooded, FloodDropped, ARPSuppressed uint64
	InvalidSource                        uint64 // multicast or zero source MAC; not learned
	Remotes, Neighbors                   int
}

type fdbEntry[K comparable] struct {
	mac    MAC
	remote K // written under the write lock
	static bool
	seen   atomic.Int64 // unix nanos of the last frame from mac
	queued int64        // seen when put in the queue (second chance)
	// intrusive FIFO of learned entries, oldest first (under the write lock)
	prev, next *fdbEntry[K]
}

// FDB is the forwarding database of one VNI. Safe for concurrent use.
type FDB[K comparable] struct {
	cfg FDBConfig
	vni uint32

	mu         sync.RWMutex
	byMAC      map[MAC]*fdbEntry[K]
	head, tail *fdbEntry[K] // learned entries, oldest first
	learned    int
	static     int

	remotes atomic.Pointer[[]K] // immutable snapshot

	nmu       sync.RWMutex
	neighbors map[netip.Addr]MAC

	bucketMu   sync.Mutex
	tokens     float64
	lastRefill int64

	nLearned, nMoved, nEvicted, nAged, nConflicts atomic.Uint64
	nMoveRefused                                  atomic.Uint64
	nFlooded, nFloodDropped, nARP, nInvalid       atomic.Uint64
}

// NewFDB returns an empty FDB for vni.
func NewFDB[K comparable](vni uint32, cfg FDBConfig) *FDB[K] {
	cfg = cfg.withDefaults()
	f := &FDB[K]{
		cfg:       cfg,
		vni:       vni,
		byMAC:     make(map[MAC]*fdbEntry[K]),
		neighbors: make(map[netip.Addr]MAC),
		tokens:    float64(cfg.FloodRate),
	}
	f.lastRefill = cfg.Now().UnixNano()
	empty := []K{}
	f.remotes.Store(&empty)
	return f
}

// VNI is the network this FDB serves.
func (f *FDB[K]) VNI() uint32 { return f.vni }

// Config returns the effective configuration (defaults filled in).
func (f *FDB[K]) Config() FDBConfig { return f.cfg }

// Lookup returns the remote owning dst, if known and not aged out. No allocation.
func (f *FDB[K]) Lookup(dst MAC) (K, bool) {
	var zero K
	f.mu.RLock()
	e := f.byMAC[dst]
	if e == nil {
		f.mu.RUnlock()
		return zero, false
	}
	r, static, seen := e.remote, e.static, e.seen.Load()
	f.mu.RUnlock()
	if !static && f.cfg.Now().UnixNano()-seen > int64(f.cfg.AgeingTime) {
		return zero, false // stale; Expire will remove it
	}
	return r, true
}

// Route decides where an outbound frame to dst goes: a known unicast MAC returns its remote
// (flood nil); broadcast, multicast and unknown unicast return every remote of the VNI
// (head-end replication). The flood slice is a shared snapshot: read it, never modify or keep
// it. Errors: ErrFloodBudget, ErrNoRemotes (both mean drop; both are counted). No allocation.
func (f *FDB[K]) Route(dst MAC) (to K, flood []K, err error) {
	if !dst.IsMulticast() {
		if r, ok := f.Lookup(dst); ok {
			return r, nil, nil
		}
	}
	rs := *f.remotes.Load()
	if len(rs) == 0 {
		f.nFloodDropped.Add(1)
		return to, nil, ErrNoRemotes
	}
	if !f.takeFloodToken() {
		f.nFloodDropped.Add(1)
		return to, nil, ErrFloodBudget
	}
	f.nFlooded.Add(1)
	return to, rs, nil
}

func (f *FDB[K]) takeFloodToken() bool {
	now := f.cfg.Now().UnixNano()
	rate := float64(f.cfg.FloodRate)
	f.bucketMu.Lock()
	defer f.bucketMu.Unlock()
	if el := now - f.lastRefill; el > 0 {
		f.tokens += float64(el) / 1e9 * rate
		if f.tokens > rate {
			f.tokens = rate
		}
		f.lastRefill = now
	}
	if f.tokens < 1 {
		return false
	}
	f.tokens--
	return true
}

// Learn records that a frame from src arrived from remote. It reports whether src may speak
// through remote: false for a multicast or zero source MAC (not learned), for a MAC whose
// static entry (gossip) names another remote, and for a learned MAC seen at another remote
// less than MoveHold ago (neither moved); all are counted. Refreshing a known
// MAC from the same remote allocates nothing and takes only the read lock.
func (f *FDB[K]) Learn(src MAC, remote K) bool {
	if src.IsMulticast() || src.IsZero() {
		f.nInvalid.Add(1)
		return false
	}
	now := f.cfg.Now().UnixNano()
	f.mu.RLock()
	e := f.byMAC[src]
	if e != nil && e.remote == remote {
		e.seen.Store(now)
		f.mu.RUnlock()
		return true
	}
	f.mu.RUnlock()

	f.mu.Lock()
	defer f.mu.Unlock()
	e = f.byMAC[src]
	switch {
	case e == nil:
		if f.learned >= f.cfg.MaxEntries {
			f.evictOldestLocked()
		}
		e = &fdbEntry[K]{mac: src, remote: remote}
		e.seen.Store(now)
		f.byMAC[src] = e
		f.pushLocked(e, now)
		f.learned++
		f.nLearned.Add(1)
	case e.static:
		if e.remote != remote {
			f.nConflicts.Add(1)
			return false
		}
	default:
		if e.remote != remote {
			if hold := int64(f.cfg.MoveHold); hold > 0 && now-e.seen.Load() < hold {
				f.nMoveRefused.Add(1) // in use behind its remote: not taken over
				return false
			}
			e.remote = remote // the MAC moved to another VTEP
			f.nMoved.Add(1)
		}
		e.seen.Store(now)
	}
	return true
}

// SetStatic installs (or replaces) a static entry: a MAC published over gossip by the host
// behind remote. It replaces a learned entry for the same MAC.
func (f *FDB[K]) SetStatic(mac MAC, remote K) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if e := f.byMAC[mac]; e != nil {
		if !e.static {
			f.unlinkLocked(e)
			f.learned--
			f.static++
		}
		e.static, e.remote = true, remote
		return
	}
	e := &fdbEntry[K]{mac: mac, remote: remote, static: true}
	f.byMAC[mac] = e
	f.static++
}

// Delete removes the entry for mac, static or learned.
func (f *FDB[K]) Delete(mac MAC) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if e := f.byMAC[mac]; e != nil {
		f.removeLocked(e)
	}
}

// AddRemote adds remote to the flood list of the VNI (idempotent).
func (f *FDB[K]) AddRemote(remote K) {
	f.mu.Lock() // serializes writers of the snapshot
	defer f.mu.Unlock()
	old := *f.remotes.Load()
	for _, r := range old {
		if r == remote {
			return
		}
	}
	rs := make([]K, len(old), len(old)+1)
	copy(rs, old)
	rs = append(rs, remote)
	f.remotes.Store(&rs)
}

// RemoveRemote removes remote from the flood list and forgets every MAC behind it.
func (f *FDB[K]) RemoveRemote(remote K) {
	f.mu.Lock()
	defer f.mu.Unlock()
	old := *f.remotes.Load()
	rs := make([]K, 0, len(old))
	for _, r := range old {
		if r != remote {
			rs = append(rs, r)
		}
	}
	f.remotes.Store(&rs)
	for _, e := range f.byMAC {
		if e.remote == remote {
			f.removeLocked(e)
		}
	}
}

// Remotes returns the flood list: a shared snapshot, not to be modified.
func (f *FDB[K]) Remotes() []K { return *f.remotes.Load() }

// Expire removes learned entries older than AgeingTime and returns how many it removed.
// The owner calls it periodically (the plaintext VTEP every few seconds).
func (f *FDB[K]) Expire() int {
	limit := f.cfg.Now().UnixNano() - int64(f.cfg.AgeingTime)
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for e := f.head; e != nil; {
		next := e.next
		if e.seen.Load() < limit {
			f.removeLocked(e)
			n++
		}
		e = next
	}
	f.nAged.Add(uint64(n))
	return n
}

// Entries lists the table (allocates; control path).
func (f *FDB[K]) Entries() []FDBEntry[K] {
	now := f.cfg.Now().UnixNano()
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]FDBEntry[K], 0, len(f.byMAC))
	for _, e := range f.byMAC {
		row := FDBEntry[K]{MAC: e.mac, Remote: e.remote, Static: e.static}
		if !e.static {
			row.Age = time.Duration(now - e.seen.Load())
		}
		out = append(out, row)
	}
	return out
}

// Stats returns the counters.
func (f *FDB[K]) Stats() FDBStats {
	f.mu.RLock()
	s := FDBStats{Entries: f.learned + f.static, StaticEntries: f.static}
	f.mu.RUnlock()
	f.nmu.RLock()
	s.Neighbors = len(f.neighbors)
	f.nmu.RUnlock()
	s.Remotes = len(f.Remotes())
	s.Learned, s.Moved, s.Evicted, s.Aged = f.nLearned.Load(), f.nMoved.Load(), f.nEvicted.Load(), f.nAged.Load()
	s.StaticConflicts, s.MovesRefused = f.nConflicts.Load(), f.nMoveRefused.Load()
	s.Flooded, s.FloodDropped, s.ARPSuppressed = f.nFlooded.Load(), f.nFloodDropped.Load(), f.nARP.Load()
	s.InvalidSource = f.nInvalid.Load()
	return s
}

// SetNeighbor records that ip is at mac (from gossip), for ARP suppression.
func (f *FDB[K]) SetNeighbor(ip netip.Addr, mac MAC) {
	f.nmu.Lock()
	f.neighbors[ip.Unmap()] = mac
	f.nmu.Unlock()
}

// RemoveNeighbor forgets ip.
func (f *FDB[K]) RemoveNeighbor(ip netip.Addr) {
	f.nmu.Lock()
	delete(f.neighbors, ip.Unmap())
	f.nmu.Unlock()
}

// ARPReply answers an outbound frame locally when ARP suppression is on, the frame is an
// ARP request for an IP known from gossip, and the owner is not the asker itself. It writes the
// reply into dst and returns its length; 0 means "not answered, forward as usual".
// Gratuitous ARP and probes (sender IP 0 or equal to the target) are never answered, so
// duplicate address detection keeps working. No allocation.
func (f *FDB[K]) ARPReply(dst []byte, frame []byte) int {
	if !f.cfg.ARPSuppression {
		return 0
	}
	eth, err := ParseEthernet(frame)
	if err != nil || eth.EtherType != EtherTypeARP || !eth.Dst.IsMulticast() {
		return 0
	}
	req, err := ParseARP(frame[eth.PayloadOffset:])
	if err != nil || req.Op != ARPRequest || !req.SenderIP.IsValid() || req.SenderIP.IsUnspecified() ||
		req.SenderIP == req.TargetIP {
		return 0
	}
	f.nmu.RLock()
	mac, ok := f.neighbors[req.TargetIP]
	f.nmu.RUnlock()
	if !ok || mac == req.SenderMAC || mac == eth.Src {
		return 0
	}
	n := BuildARPReply(dst, frame, mac)
	if n > 0 {
		f.nARP.Add(1)
	}
	return n
}

func (f *FDB[K]) pushLocked(e *fdbEntry[K], now int64) {
	e.queued = now
	e.prev, e.next = f.tail, nil
	if f.tail != nil {
		f.tail.next = e
	} else {
		f.head = e
	}
	f.tail = e
}

func (f *FDB[K]) unlinkLocked(e *fdbEntry[K]) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		f.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		f.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

func (f *FDB[K]) removeLocked(e *fdbEntry[K]) {
	delete(f.byMAC, e.mac)
	if e.static {
		f.static--
		return
	}
	f.unlinkLocked(e)
	f.learned--
}

// evictOldestLocked drops the oldest learned entry, giving up to a few entries refreshed
// since they were queued a second chance at the back of the queue.
func (f *FDB[K]) evictOldestLocked() {
	for range 8 {
		e := f.head
		if e == nil {
			return
		}
		if s := e.seen.Load(); s > e.queued && e != f.tail {
			f.unlinkLocked(e)
			f.pushLocked(e, s)
			continue
		}
		break
	}
	if e := f.head; e != nil {
		f.removeLocked(e)
		f.nEvicted.Add(1)
	}
}
