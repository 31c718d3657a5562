package netproxy

// Relays: forwards (a local listener to one overlay destination) and exposes (an overlay
// listener to one local address) are the same two shapes with the sides swapped.
//
//   - TCP: one goroutine accepts (bounded by MaxConns); each connection gets a fresh dial of
//     the destination (a service name is resolved again, so a moved instance is followed)
//     and two copy goroutines.
//   - UDP: one goroutine reads the listening socket; each source address gets a session, a
//     connected socket to the destination with a goroutine copying its replies back to the
//     source. Sessions end after UDPIdle without traffic; a source over MaxUDPSessions is
//     dropped and counted.

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"
)

// Dialer opens one connection to a relay's destination.
type Dialer func(ctx context.Context) (net.Conn, error)

// TCPRelay is a running TCP forward or expose.
type TCPRelay struct{ *server }

// RelayTCP accepts on ln and connects every connection to a fresh dial.
func RelayTCP(ln net.Listener, dial Dialer, lim Limits, log *slog.Logger, cnt *Counters) *TCPRelay {
	lim = lim.withDefaults()
	r := &TCPRelay{}
	r.server = newServer(ln, lim.MaxConns, log, cnt, func(c net.Conn) {
		ctx, cancel := context.WithTimeout(r.server.ctx, lim.DialTimeout)
		up, err := dial(ctx)
		cancel()
		if err != nil {
			cnt.add(relayReason(err))
			r.server.log.Debug("relay dial", "listen", ln.Addr().String(), "err", err)
			return
		}
		cnt.add("relay_tcp")
		splice(c, up)
	})
	r.serve()
	return r
}

func relayReason(err error) string {
	switch {
	case errors.Is(err, ErrNotAllowed):
		return "not_allowed"
	case errors.Is(err, ErrUnknownName):
		return "unknown_name"
	}
	return "relay_dial_failed"
}

// UDPRelay is a running UDP forward or expose.
type UDPRelay struct {
	pc   net.PacketConn
	dial Dialer
	lim  Limits
	log  *slog.Logger
	cnt  *Counters

	mu       sync.Mutex
	sessions map[string]*udpSession
	closed   bool
	stop     chan struct{}   // closed by Close: ends reap
	ctx      context.Context // ends with Close: a dial in progress gives up
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

type udpSession struct {
	up net.Conn
	lastUse
}

// RelayUDP reads datagrams on pc and relays each source's to its own dial of the
// destination, and the replies back.
func RelayUDP(pc net.PacketConn, dial Dialer, lim Limits, log *slog.Logger, cnt *Counters) *UDPRelay {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &UDPRelay{pc: pc, dial: dial, lim: lim.withDefaults(), log: log, cnt: cnt, sessions: map[string]*udpSession{},
		stop: make(chan struct{}), ctx: ctx, cancel: cancel}
	r.wg.Add(2)
	go r.read()
	go r.reap()
	return r
}

// Addr is the listening socket's address.
func (r *UDPRelay) Addr() net.Addr { return r.pc.LocalAddr() }

// Sessions is the number of live sessions.
func (r *UDPRelay) Sessions() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.sessions)
}

// Close closes the socket and every session and waits for their goroutines.
func (r *UDPRelay) Close() error {
	r.mu.Lock()
	if !r.closed {
		close(r.stop)
		r.cancel()
	}
	r.closed = true
	for k, s := range r.sessions {
		s.up.Close()
		delete(r.sessions, k)
	}
	r.mu.Unlock()
	err := r.pc.Close()
	r.wg.Wait()
	return err
}

func (r *UDPRelay) read() {
	defer r.wg.Done()
	buf := make([]byte, 65535)
	for {
		n, src, err := r.pc.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			r.mu.Lock()
			closed := r.closed
			r.mu.Unlock()
			if closed {
				return
			}
			continue
		}
		s := r.session(src)
		if s == nil {
			continue
		}
		s.touch()
		if _, err := s.up.Write(buf[:n]); err != nil {
			r.cnt.add("udp_send_error")
		}
	}
}

// session returns src's session, opening it when new; nil when over the bound or the dial
// failed (counted).
func (r *UDPRelay) session(src net.Addr) *udpSession {
	key := src.String()
	r.mu.Lock()
	if s, ok := r.sessions[key]; ok || r.closed {
		r.mu.Unlock()
		return s
	}
	if len(r.sessions) >= r.lim.MaxUDPSessions {
		r.mu.Unlock()
		r.cnt.add("udp_session_limit")
		return nil
	}
	r.mu.Unlock()
	// Dialing outside the lock: a slow name lookup must not stall other sources. The read
	// loop is the only creator, so no other session for key appears meanwhile.
	ctx, cancel := context.WithTimeout(r.ctx, r.lim.DialTimeout)
	up, err := r.dial(ctx)
	cancel()
	if err != nil {
		r.cnt.add(relayReason(err))
		return nil
	}
	s := &udpSession{up: up}
	s.touch()
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		up.Close()
		return nil
	}
	r.sessions[key] = s
	r.wg.Add(1)
	r.mu.Unlock()
	r.cnt.add("relay_udp_session")
	go r.replies(key, src, s)
	return s
}

func (r *UDPRelay) replies(key string, src net.Addr, s *udpSession) {
	defer r.wg.Done()
	defer func() {
		r.mu.Lock()
		if r.sessions[key] == s {
			delete(r.sessions, key)
		}
		r.mu.Unlock()
		s.up.Close()
	}()
	buf := make([]byte, 65535)
	for {
		n, err := s.up.Read(buf)
		if err != nil {
			return
		}
		s.touch()
		if _, err := r.pc.WriteTo(buf[:n], src); err != nil {
			r.cnt.add("udp_send_error")
		}
	}
}

// reap ends idle sessions.
func (r *UDPRelay) reap() {
	defer r.wg.Done()
	t := time.NewTicker(max(r.lim.UDPIdle/4, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
		}
		r.mu.Lock()
		for k, s := range r.sessions {
			if s.idle() > r.lim.UDPIdle {
				s.up.Close() // its replies goroutine removes it
				delete(r.sessions, k)
				r.cnt.add("udp_session_expired")
			}
		}
		r.mu.Unlock()
	}
}
