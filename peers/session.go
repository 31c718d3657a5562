package peers

import (
	"sync"
	"sync/atomic"
	"time"
)

// Session is the handshake state of a peer: the outstanding initiation attempt and the
// packets waiting for it. It has one owner: its mutex is unexported and every operation the
// datapath needs is a method, so no other package takes the lock. The tunnel's send loop
// queues packets and asks for handshakes; its handshake worker begins, completes and
// abandons attempts and drains the queue; the table tears the session down.
type Session struct {
	// requested is set by the datapath when it asked the handshake worker for an
	// initiation and cleared by the worker; it keeps the datapath from asking per packet.
	// It is atomic and not guarded by mu.
	requested atomic.Bool

	mu sync.Mutex
	// inFlight: an initiation was sent and no response has arrived yet.
	inFlight bool
	// started is when the current attempt sent its first initiation (RekeyAttemptTime
	// counts from here).
	started time.Time
	// lastInitiation is when the last initiation was sent (RekeyTimeout counts from here).
	lastInitiation time.Time
	// retry asks the timer to retransmit without jitter (a crossed handshake).
	retry bool
	// initIndex is the receiver index of the outstanding initiation; 0: none.
	initIndex uint32
	// pending holds packets waiting for the session.
	pending Queue

	// What `weft peers` shows of the handshake (View): initiations sent in the current
	// attempt, attempts given up, when the last was, and whether the responder answered
	// the current attempt with a cookie reply (it is under load and wants a mac2).
	sent, gaveUp uint64
	lastGaveUp   time.Time
	cookie       bool
}

// MarkRequested records that the datapath asks the handshake worker for an initiation. It
// returns false when a request is already outstanding (the caller then asks nothing).
// Lock-free, for the send path.
func (s *Session) MarkRequested() bool {
	return !s.requested.Load() && s.requested.CompareAndSwap(false, true)
}

// ClearRequested ends an outstanding request: the worker acts on it, or it could not be
// delivered and the next packet asks again.
func (s *Session) ClearRequested() { s.requested.Store(false) }

// Enqueue appends a packet to the queue of packets waiting for the session, creating the
// queue with room for capacity packets on first use. When the queue is full the oldest
// packet is evicted and returned (evicted true) for the caller to count and recycle. The
// queue takes ownership of b.
func (s *Session) Enqueue(b []byte, capacity int) (old []byte, evicted bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pending.Init(capacity)
	return s.pending.Push(b)
}

// PendingLen returns the number of queued packets.
func (s *Session) PendingLen() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pending.Len()
}

// Drain empties the queue in order, appending its packets to dst; the caller owns them.
func (s *Session) Drain(dst [][]byte) [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.drainLocked(dst)
}

func (s *Session) drainLocked(dst [][]byte) [][]byte {
	for {
		b, ok := s.pending.Pop()
		if !ok {
			return dst
		}
		dst = append(dst, b)
	}
}

// BeginAttempt prepares an initiation at now. Unless retransmit, it refuses (ok false) while
// an initiation younger than rekeyTimeout is outstanding. A new attempt (none in flight)
// starts its RekeyAttemptTime clock at now. The outstanding initiation's receiver index is
// forgotten and returned (0: none), for the caller to free; AttemptSent records the next.
func (s *Session) BeginAttempt(now time.Time, retransmit bool, rekeyTimeout time.Duration) (oldIndex uint32, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inFlight && !retransmit && now.Sub(s.lastInitiation) < rekeyTimeout {
		return 0, false
	}
	if !s.inFlight {
		s.started, s.sent, s.cookie = now, 0, false
	}
	oldIndex, s.initIndex = s.initIndex, 0
	return oldIndex, true
}

// AttemptSent records an initiation sent (or, with index 0, due but not sendable: the
// timers retry it until the attempt's time is up) at now.
func (s *Session) AttemptSent(now time.Time, index uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inFlight, s.lastInitiation, s.initIndex = true, now, index
	s.sent++
}

// CookieReceived records that the responder answered the current attempt with a cookie
// reply instead of a response.
func (s *Session) CookieReceived() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cookie = true
}

// SessionView is a session's handshake state for display (`weft peers`).
type SessionView struct {
	// InFlight: an attempt is outstanding; Started is when it sent its first initiation
	// and Sent how many initiations it has sent.
	InFlight bool
	Started  time.Time
	Sent     uint64
	// Cookie: the responder answered the outstanding (or the last) attempt with a cookie.
	Cookie bool
	// GaveUp counts attempts ended unanswered after RekeyAttemptTime; LastGaveUp is the
	// last one's end.
	GaveUp     uint64
	LastGaveUp time.Time
}

// View returns the handshake state for display.
func (s *Session) View() SessionView {
	s.mu.Lock()
	defer s.mu.Unlock()
	return SessionView{InFlight: s.inFlight, Started: s.started, Sent: s.sent, Cookie: s.cookie, GaveUp: s.gaveUp, LastGaveUp: s.lastGaveUp}
}

// CompleteAttempt ends the attempt after a response to the initiation with receiver index
// index was consumed; that index now names the new keypair and stays allocated.
func (s *Session) CompleteAttempt(index uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.initIndex == index {
		s.initIndex = 0
	}
	s.inFlight = false
}

// AbandonAttempt ends the outstanding attempt (the session came up another way) and
// returns its initiation's receiver index for the caller to free (0: none).
func (s *Session) AbandonAttempt() (index uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	index, s.initIndex = s.initIndex, 0
	s.inFlight = false
	return index
}

// RetrySoon makes an outstanding attempt's last initiation look as if it had been sent at
// at, and asks the timers to retransmit without jitter (a crossed handshake). No-op when no
// attempt is in flight.
func (s *Session) RetrySoon(at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inFlight {
		s.lastInitiation = at
		s.retry = true
	}
}

// InFlight reports whether an initiation is outstanding.
func (s *Session) InFlight() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inFlight
}

// TimerView is a session's attempt state as the timers read it, taken in one look.
type TimerView struct {
	InFlight       bool
	LastInitiation time.Time
	// Retry: a crossed handshake asked for a retransmit without jitter (read once).
	Retry bool
	// Pending is the number of queued packets (before a give-up emptied the queue).
	Pending int
	// GaveUp: the attempt had run for attemptTime and was ended; the queued packets were
	// appended to the caller's slice.
	GaveUp bool
	// FreeIndex (GaveUp) is the receiver index of the attempt's last initiation, to free.
	FreeIndex uint32
}

// Tick reads the attempt state for the timers at now and clears the retry request. An
// attempt in flight for attemptTime or longer is given up: ended, its index returned in
// FreeIndex and the queued packets appended to dropped (returned).
func (s *Session) Tick(now time.Time, attemptTime time.Duration, dropped [][]byte) (TimerView, [][]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := TimerView{InFlight: s.inFlight, LastInitiation: s.lastInitiation, Retry: s.retry, Pending: s.pending.Len()}
	s.retry = false
	if s.inFlight && now.Sub(s.started) >= attemptTime {
		v.GaveUp = true
		s.inFlight = false
		s.gaveUp++
		s.lastGaveUp = now
		v.FreeIndex, s.initIndex = s.initIndex, 0
		dropped = s.drainLocked(dropped)
	}
	return v, dropped
}

// reset ends any attempt and empties the queue (a teardown): it returns the outstanding
// initiation's index (0: none) and appends the queued packets to dst.
func (s *Session) reset(dst [][]byte) (index uint32, pending [][]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	index, s.initIndex = s.initIndex, 0
	s.inFlight = false
	return index, s.drainLocked(dst)
}

// Queue is a bounded FIFO of packets waiting for a handshake. When full, Push drops the
// oldest packet and returns it so the caller can count it and recycle its buffer.
// Not safe for concurrent use (Session guards its own).
type Queue struct {
	buf        [][]byte
	head, size int
}

// Init sets the capacity; it is a no-op once set.
func (q *Queue) Init(capacity int) {
	if q.buf == nil && capacity > 0 {
		q.buf = make([][]byte, capacity)
	}
}

// Len returns the number of queued packets.
func (q *Queue) Len() int { return q.size }

// Push appends b. When the queue is full it evicts the oldest packet and returns it
// with evicted == true. Push on an uninitialized queue returns b itself as evicted.
func (q *Queue) Push(b []byte) (old []byte, evicted bool) {
	if len(q.buf) == 0 {
		return b, true
	}
	if q.size == len(q.buf) {
		old = q.buf[q.head]
		q.buf[q.head] = b
		q.head = (q.head + 1) % len(q.buf)
		return old, true
	}
	q.buf[(q.head+q.size)%len(q.buf)] = b
	q.size++
	return nil, false
}

// Pop removes and returns the oldest packet.
func (q *Queue) Pop() ([]byte, bool) {
	if q.size == 0 {
		return nil, false
	}
	b := q.buf[q.head]
	q.buf[q.head] = nil
	q.head = (q.head + 1) % len(q.buf)
	q.size--
	return b, true
}
