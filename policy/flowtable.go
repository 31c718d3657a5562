package policy

import (
	"encoding/binary"
	"hash/maphash"
	"sync"
	"sync/atomic"
)

// The flow table (conntrack) remembers the flows the rules admitted so that their later
// packets, in both directions, pass with one lookup and no rule walk.
//
// It is a fixed array of shards, each an open-addressing hash table with linear probing
// and backward-shift deletion (no tombstones, so it never needs a rehash) allocated once
// at New: a packet never allocates, and a full shard evicts instead of growing. The shard
// is chosen by the top bits of a seeded hash (hash/maphash, seeded per Engine, so a
// hostile peer cannot aim its tuples at one chain). Each shard has its own mutex, held
// for the lookup and update of one packet; datapath goroutines contend only when they
// hit the same shard.
//
// Expiry is lazy: a lookup that finds an expired entry removes it, and every insert
// sweeps a few slots behind a clock hand. When a shard holds its capacity, the insert
// evicts the entry closest to expiry among the next evictScan slots after the hand,
// counted in Stats.Evicted.

const (
	numShards   = 16
	sweepPerAdd = 4  // slots the clock hand examines per insert
	evictScan   = 64 // slots examined to choose a victim when a shard is full
)

// flowKey identifies a flow in both directions: the two (address, port) ends in a
// canonical order, then the protocol and the key kind. Fragment keys are directional and
// carry the datagram's identification in place of ports.
type flowKey [40]byte

const (
	kindFlow uint8 = 1 + iota
	kindFrag
)

// entry states (TCP).
const (
	stReply    = 1 << iota // a packet in the reply direction was seen
	stFinOrig              // FIN from the originator
	stFinReply             // FIN from the responder
	stRST                  // RST from either side
)

type entry struct {
	key     flowKey
	hash    uint64
	expires int64  // caller's clock, nanoseconds
	gen     uint64 // Set generation that last validated the flow
	rule    int32  // rule that admitted it, -1 for the default
	peer    uint32 // quota id of the peer that opened it inbound (Engine.quotaID), 0: none
	used    bool
	origA   bool // the originator is the key's first end
	inbound bool // the first packet came inbound
	state   uint8
}

type shard struct {
	mu        sync.Mutex
	slots     []entry        // nil until the shard's first flow: a host without policy traffic holds none
	size      int            // len(slots) once allocated
	peerFlows []atomic.Int32 // the table's, shared: remove decrements the owner's count
	mask      uint64
	count     int
	limit     int
	hand      uint64
	added     uint64
	expired   uint64
	evicted   uint64
	_         [64]byte
}

type flowTable struct {
	seed   maphash.Seed
	shards [numShards]shard
	// peerFlows[id] counts the flows peer id (Engine.quotaID) opened inbound; index 0 is
	// unused (no peer).
	peerFlows []atomic.Int32
}

func newFlowTable(maxFlows int) *flowTable {
	t := &flowTable{seed: maphash.MakeSeed(), peerFlows: make([]atomic.Int32, maxQuotaPeers+1)}
	per := (maxFlows + numShards - 1) / numShards
	slots := 8
	for slots < 2*per {
		slots <<= 1
	}
	for i := range t.shards {
		s := &t.shards[i]
		s.size = slots // allocated on the shard's first flow (insert)
		s.peerFlows = t.peerFlows
		s.mask = uint64(slots - 1)
		s.limit = per
	}
	return t
}

// makeKey builds the bidirectional key of f; fwdIsA reports whether f's source is the
// key's first end.
func makeKey(f *Flow) (k flowKey, fwdIsA bool) {
	src, dst := f.Src.As16(), f.Dst.As16()
	sp, dp := f.SrcPort, f.DstPort
	fwdIsA = true
	if c := compare16(&src, &dst); c > 0 || c == 0 && sp > dp {
		src, dst, sp, dp = dst, src, dp, sp
		fwdIsA = false
	}
	copy(k[0:16], src[:])
	copy(k[16:32], dst[:])
	binary.BigEndian.PutUint16(k[32:34], sp)
	binary.BigEndian.PutUint16(k[34:36], dp)
	k[36] = f.Proto
	k[37] = kindFlow
	return k, fwdIsA
}

// makeFragKey builds the directional key of f's datagram: what reassembly keys on,
// (source, destination, protocol, identification) in IPv4 and (source, destination,
// identification) in IPv6, where the fragment header's next header (which a later
// fragment carries) may differ from the first fragment's transport protocol.
func makeFragKey(f *Flow) (k flowKey) {
	src, dst := f.Src.As16(), f.Dst.As16()
	copy(k[0:16], src[:])
	copy(k[16:32], dst[:])
	binary.BigEndian.PutUint32(k[32:36], f.FragID)
	if f.Src.Is4() {
		k[36] = f.Proto
	}
	k[37] = kindFrag
	return k
}

func compare16(a, b *[16]byte) int {
	x, y := binary.BigEndian.Uint64(a[0:8]), binary.BigEndian.Uint64(b[0:8])
	if x == y {
		x, y = binary.BigEndian.Uint64(a[8:16]), binary.BigEndian.Uint64(b[8:16])
	}
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

func (t *flowTable) hash(k *flowKey) uint64 { return maphash.Bytes(t.seed, k[:]) }

func (t *flowTable) shardOf(h uint64) *shard { return &t.shards[h>>60] }

// find returns the slot holding k, or -1. Caller holds s.mu.
func (s *shard) find(k *flowKey, h uint64) int {
	if s.slots == nil {
		return -1
	}
	for i := h & s.mask; ; i = (i + 1) & s.mask {
		e := &s.slots[i]
		if !e.used {
			return -1
		}
		if e.hash == h && e.key == *k {
			return int(i)
		}
	}
}

// insert stores a new entry for k (which must be absent) and returns its slot, making room
// by sweeping and, when the shard is at its limit, by evicting. Caller holds s.mu.
func (s *shard) insert(k *flowKey, h uint64, now int64) int {
	if s.slots == nil {
		s.slots = make([]entry, s.size) // once per shard: the packets after it allocate nothing
	}
	s.sweep(now, sweepPerAdd)
	if s.count >= s.limit {
		s.evict()
	}
	i := h & s.mask
	for s.slots[i].used {
		i = (i + 1) & s.mask
	}
	s.slots[i] = entry{key: *k, hash: h, used: true}
	s.count++
	s.added++
	return int(i)
}

// sweep examines n slots after the clock hand and removes the expired ones.
// Removals do not advance the hand (the backward shift may have moved another entry into
// the slot), so the work is bounded by n plus the entries removed.
func (s *shard) sweep(now int64, n int) {
	if s.count == 0 {
		return // nothing to expire (and no slots to read in a shard never used)
	}
	for n > 0 {
		i := s.hand & s.mask
		if e := &s.slots[i]; e.used && e.expires <= now {
			s.remove(int(i))
			s.expired++
			continue
		}
		s.hand++
		n--
	}
}

// evict removes the entry closest to expiry among the next evictScan slots.
func (s *shard) evict() {
	victim := -1
	for n := uint64(0); n < evictScan; n++ {
		i := (s.hand + n) & s.mask
		if e := &s.slots[i]; e.used && (victim < 0 || e.expires < s.slots[victim].expires) {
			victim = int(i)
		}
	}
	if victim < 0 {
		// Cannot happen while count ≥ limit ≥ 1 and slots = 2×limit... unless evictScan
		// slots in a row are empty; take the first used slot after them.
		for n := uint64(evictScan); n <= s.mask; n++ {
			if i := (s.hand + n) & s.mask; s.slots[i].used {
				victim = int(i)
				break
			}
		}
	}
	if victim >= 0 {
		s.remove(victim)
		s.evicted++
	}
}

// remove deletes slot i by shifting back the entries of its probe run.
func (s *shard) remove(i int) {
	if p := s.slots[i].peer; p != 0 {
		s.peerFlows[p].Add(-1)
	}
	hole := uint64(i)
	for j := (hole + 1) & s.mask; s.slots[j].used; j = (j + 1) & s.mask {
		home := s.slots[j].hash & s.mask
		// Move j into the hole unless its home lies cyclically in (hole, j].
		if (j-home)&s.mask >= (j-hole)&s.mask {
			s.slots[hole] = s.slots[j]
			hole = j
		}
	}
	s.slots[hole] = entry{}
	s.count--
}

// sweepAll removes every expired entry (control path, e.g. a once-a-second timer).
func (t *flowTable) sweepAll(now int64) {
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		s.sweep(now, s.size)
		s.mu.Unlock()
	}
}

func (t *flowTable) stats() (flows int, added, expired, evicted uint64) {
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		flows += s.count
		added += s.added
		expired += s.expired
		evicted += s.evicted
		s.mu.Unlock()
	}
	return
}
