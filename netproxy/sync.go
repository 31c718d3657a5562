package netproxy

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// syncSet is a set of open connections.
type syncSet struct {
	mu sync.Mutex
	m  map[net.Conn]struct{}
}

func (s *syncSet) add(c net.Conn) {
	s.mu.Lock()
	if s.m == nil {
		s.m = map[net.Conn]struct{}{}
	}
	s.m[c] = struct{}{}
	s.mu.Unlock()
}

func (s *syncSet) remove(c net.Conn) {
	s.mu.Lock()
	delete(s.m, c)
	s.mu.Unlock()
}

func (s *syncSet) closeAll() {
	s.mu.Lock()
	cs := make([]net.Conn, 0, len(s.m))
	for c := range s.m {
		cs = append(cs, c)
	}
	s.mu.Unlock()
	for _, c := range cs {
		c.Close()
	}
}

// onceFlag is true for the first caller of first only.
type onceFlag struct{ done atomic.Bool }

func (o *onceFlag) first() bool { return o.done.CompareAndSwap(false, true) }

// lastUse is when a session was last used, safe for concurrent use.
type lastUse struct {
	lastMu sync.Mutex
	last   time.Time
}

func (l *lastUse) touch() {
	l.lastMu.Lock()
	l.last = time.Now()
	l.lastMu.Unlock()
}

func (l *lastUse) idle() time.Duration {
	l.lastMu.Lock()
	defer l.lastMu.Unlock()
	return time.Since(l.last)
}
